"""The catalog of base/instruct pairs as a table: quant choice, download size and the fit for this machine.

The verdict is for the *pair* loaded at once (what Compare does) at the default context, from
``Family.pair_fit`` in desktop/core/catalog.py; its one-line explanation is the cell's tooltip, so a person
can check the arithmetic. Rows only hold data the page hands in; nothing here blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.catalog import Catalog, Family
from desktop.core.fit import FitEstimate, human_bytes
from desktop.ui.models.models_common import FIT_STYLE, MachineMemory, badge_cell, badge_css, format_ctx
from desktop.ui.widgets.layout import restyle

COLUMNS = ("Pair", "Licence", "Context", "Quant", "Download", "Fit", "")
COL_PAIR, COL_LICENCE, COL_CTX, COL_QUANT, COL_SIZE, COL_FIT, COL_ACTION = range(len(COLUMNS))
FILL_BUDGET_S = 0.008  # GUI time one turn of the event loop spends filling rows


def pair_quants(fam: Family) -> list[str]:
    """Quants both halves offer, the default first (a pair is downloaded at one quant)."""
    common = [q for q in fam.base.quants if q in fam.instruct.quants]
    default = fam.base.default_quant if fam.base.default_quant in common else (common[0] if common else "")
    return [default] + [q for q in common if q != default] if default else [fam.base.default_quant]


def pair_files(fam: Family, quant: str | None) -> list:
    """The base and instruct CatalogFile at ``quant`` (each side's default where it lacks that quant)."""
    return [v.file_for(quant if quant in v.quants else None) for v in (fam.base, fam.instruct)]


def pair_fit(fam: Family, memory: MachineMemory | None, n_ctx: int, quant: str | None) -> FitEstimate:
    ram = memory.free_ram if memory else None
    vram = memory.free_vram if memory else None
    return fam.pair_fit(ram, min(n_ctx, fam.context_length), quant, free_vram=vram)


class CatalogView(QWidget):
    """One row per catalog family; ``downloadRequested`` carries the family id and [(repo, file), ...]."""

    downloadRequested = Signal(str, list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("catalogView")
        self.catalog: Catalog | None = None
        self.memory: MachineMemory | None = None
        self.n_ctx = 4096
        self.installed: set[str] = set()  # lower-case file names present in the library
        self.busy: Callable[[str, str], bool] = lambda repo, file: False
        self.offline: str | None = None
        self.quant_choice: dict[str, str] = {}
        self._row_keys: dict[int, tuple] = {}  # row -> the inputs it was last filled from
        self.families: list[Family] = []
        self._missing: dict[str, list[tuple[str, str]]] = {}  # family id -> files its button queues
        self._resize_due = False
        self._fill_timer = QTimer(self)
        self._fill_timer.setSingleShot(True)
        self._fill_timer.setInterval(0)
        self._fill_timer.timeout.connect(self._fill)

        self.memory_label = QLabel("Reading this machine's free memory…")
        self.memory_label.setObjectName("memoryLabel")
        self.memory_label.setStyleSheet("color: palette(placeholder-text);")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("catalogTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        # Sized when rows are filled (refresh), not by ResizeToContents: that mode re-measures every row's
        # cells and widgets on each change of any item, a GUI stall of tenths of a second per download event.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_PAIR, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_FIT, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_ACTION, QHeaderView.ResizeMode.Fixed)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.verticalHeader().setDefaultSectionSize(36)
        fit_header = self.table.horizontalHeaderItem(COL_FIT)
        fit_header.setToolTip("Base and instruct loaded together (as Compare does), weights + KV cache + overhead, "
                              "against this machine's free memory")

        top = QHBoxLayout()
        top.addWidget(self.memory_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self._fit_widths()

    # --- inputs ----------------------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.families = catalog.pairs_by_size()
        self.refresh()

    def set_memory(self, memory: MachineMemory | None) -> None:
        self.memory = memory
        self.refresh()

    def set_context(self, n_ctx: int, installed: set[str], offline: str | None) -> None:
        self.n_ctx, self.installed, self.offline = n_ctx, installed, offline
        self.refresh()

    # --- the table -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the rows up to date with the inputs. Rows are filled a few at a time from the event loop
        (a first fill makes 14 rows of cell widgets, ~40 ms of GUI work at once); every reader below
        finishes the fill first, so callers see a complete table."""
        if self.memory is not None:
            self.memory_label.setText(f"This machine: {self.memory.describe()}. Fit is for both models loaded "
                                      f"at once with up to {self.n_ctx:,} tokens of context.")
        if self.table.rowCount() != len(self.families):
            self.table.setRowCount(len(self.families))
            self._row_keys.clear()
        self._fill_timer.start()

    def flush(self) -> None:
        """Fill every row whose inputs changed, now."""
        self._fill(budget_s=None)

    def _fill(self, budget_s: float | None = FILL_BUDGET_S) -> None:
        self._fill_timer.stop()
        start = time.perf_counter()
        for row, fam in enumerate(self.families):
            key, old = self._row_key(fam), self._row_keys.get(row)
            if old != key:  # the page pushes its context on every download event:
                self._row_keys[row] = key  # refill only the rows whose inputs changed
                static = old is None or old[:2] != key[:2]  # the family or its quant: the sized columns
                self._fill_row(row, fam, static)
                self._resize_due = self._resize_due or static
                if budget_s is not None and time.perf_counter() - start > budget_s:
                    self._fill_timer.start()  # the rest after the event loop has had its turn
                    return
        if self._resize_due:
            self._resize_due = False
            for column in (COL_LICENCE, COL_CTX, COL_QUANT, COL_SIZE):
                self.table.resizeColumnToContents(column)

    def _row_key(self, fam: Family) -> tuple:
        """Everything a row shows depends on: the same key, the same row."""
        quant = self.quant_choice.get(fam.id) or pair_quants(fam)[0]
        files = pair_files(fam, quant)
        return (fam.id, quant, self.memory, self.n_ctx, self.offline,
                tuple(f.file.lower() in self.installed for f in files), tuple(self.busy(f.repo, f.file) for f in files))

    def _fill_row(self, row: int, fam: Family, static: bool = True) -> None:
        """``static``: the family or its quant changed, so the name, licence, context, quant and size cells
        too; otherwise only the fit badge and the button (memory, context, installed, busy)."""
        quants = pair_quants(fam)
        quant = self.quant_choice.get(fam.id, quants[0])
        files = pair_files(fam, quant)
        if static:
            self._fill_static(row, fam, quants, quant, files)
        self._fit_badge(row, fam, quant)
        self._action(row, fam, files)

    def _fill_static(self, row: int, fam: Family, quants: list[str], quant: str, files: list) -> None:
        size = sum(f.size for f in files)
        approximate = not all(f.confirmed for f in files)

        title = QTableWidgetItem(fam.title)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        title.setData(Qt.ItemDataRole.UserRole, fam.id)
        tip = [f"Base: {files[0].repo} / {files[0].file}", f"Instruct: {files[1].repo} / {files[1].file}"]
        if fam.note:
            tip.append(fam.note)
        title.setToolTip("\n".join(tip))
        self.table.setItem(row, COL_PAIR, title)
        self.table.setItem(row, COL_LICENCE, QTableWidgetItem(fam.license))
        ctx = QTableWidgetItem(format_ctx(fam.context_length))
        ctx.setToolTip(f"Trained context: {fam.context_length:,} tokens")
        self.table.setItem(row, COL_CTX, ctx)

        holder = self.table.cellWidget(row, COL_QUANT)
        combo = holder.findChild(QComboBox) if holder is not None else None
        if combo is None or [combo.itemText(i) for i in range(combo.count())] != quants:
            combo = QComboBox()
            combo.setObjectName("quantCombo")
            combo.setMinimumContentsLength(7)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.addItems(quants)
            combo.setEnabled(len(quants) > 1)
            combo.setToolTip("Quantization: fewer bits download faster and need less memory; Q8_0 is closest "
                             "to the original, Q4_K_M the usual balance.")
            combo.currentTextChanged.connect(lambda q, fid=fam.id: self._on_quant(fid, q))
            holder = QWidget()
            box = QHBoxLayout(holder)
            box.setContentsMargins(4, 3, 4, 3)
            box.addWidget(combo)
            self.table.setCellWidget(row, COL_QUANT, holder)
        if combo.currentText() != quant:
            combo.blockSignals(True)
            combo.setCurrentText(quant)
            combo.blockSignals(False)

        size_item = QTableWidgetItem(("≈ " if approximate else "") + human_bytes(size))
        size_item.setToolTip(f"Base {human_bytes(files[0].size)} + instruct {human_bytes(files[1].size)}"
                             + ("\nApproximate: the hub's exact size is used when downloading." if approximate else ""))
        size_item.setData(Qt.ItemDataRole.UserRole, size)
        self.table.setItem(row, COL_SIZE, size_item)

    # Cell widgets are made once per row and updated in place. Replacing them (setCellWidget on a filled
    # cell) while the old button is still delivering its click left the old badge and button painted at
    # the table's top-left, over the first row's name, until the next full repaint.

    def _cell(self, row: int, column: int, make: Callable[[], QWidget]) -> QWidget:
        holder = self.table.cellWidget(row, column)
        if holder is None:
            holder = make()
            self.table.setCellWidget(row, column, holder)
        return holder

    def _fit_badge(self, row: int, fam: Family, quant: str) -> None:
        holder = self._cell(row, COL_FIT, lambda: badge_cell("…", None))
        label = holder.findChild(QLabel, "fitVerdict")
        if self.memory is None:
            text, style, tip = "…", None, "Reading this machine's free memory"
        else:
            fit = pair_fit(fam, self.memory, self.n_ctx, quant)
            text, style, tip = fit.verdict, FIT_STYLE[fit.verdict], fit.explanation
        label.setText(text)
        restyle(label, badge_css(*style) if style else "")
        label.setToolTip(tip)
        label.adjustSize()

    def _make_action(self, row: int) -> QWidget:
        holder = QWidget()
        layout = QHBoxLayout(holder)
        layout.setContentsMargins(4, 2, 4, 2)
        button = QPushButton()
        button.setObjectName("downloadPairButton")
        button.clicked.connect(lambda _=False, r=row: self._on_action(r))
        layout.addWidget(button)
        return holder

    def _action(self, row: int, fam: Family, files: list) -> None:
        button = self._cell(row, COL_ACTION, lambda: self._make_action(row)).findChild(QPushButton)
        have = [f.file.lower() in self.installed for f in files]
        busy = [self.busy(f.repo, f.file) for f in files]
        missing = [(f.repo, f.file) for f, h, b in zip(files, have, busy, strict=True) if not h and not b]
        self._missing[fam.id] = missing
        if all(have):
            button.setText("Installed ✓")
            button.setEnabled(False)
            button.setToolTip("Both models of this pair are in your library")
        elif any(busy) and not missing:
            button.setText("Downloading…")
            button.setEnabled(False)
            button.setToolTip("See the Downloads tab")
        else:
            which = "instruct" if have[0] else "base" if have[1] else ""
            button.setText(f"Get the {which} model" if which else "Download pair")
            button.setToolTip("Queues " + " and ".join(f for _r, f in missing))
            button.setEnabled(self.offline is None)
            if self.offline:
                button.setToolTip(self.offline)

    def _on_action(self, row: int) -> None:
        if row >= len(self.families):
            return
        family_id = self.families[row].id
        missing = self._missing.get(family_id)
        if self._fill_timer.isActive():
            self.flush()
            missing = self._missing.get(family_id)
        if missing and self.offline is None:
            self.downloadRequested.emit(family_id, list(missing))

    def _fit_widths(self) -> None:
        """The Fit and action columns as wide as their widest possible content, so a badge or button that
        changes text ("…" → "won't fit", "Download pair" → "Downloading…") is never clipped."""
        probe = badge_cell("won't fit", FIT_STYLE["won't fit"])
        self.table.horizontalHeader().resizeSection(COL_FIT, max(probe.sizeHint().width() + 8,
                                                                   self._header_width(COL_FIT)))
        probe.deleteLater()
        holder = self._make_action(-1)
        button = holder.findChild(QPushButton)
        widest = 0
        for text in ("Download pair", "Get the instruct model", "Installed ✓", "Downloading…"):
            button.setText(text)
            widest = max(widest, holder.sizeHint().width())
        holder.deleteLater()
        self.table.horizontalHeader().resizeSection(COL_ACTION, widest + 4)

    def _header_width(self, column: int) -> int:
        text = self.table.horizontalHeaderItem(column).text()
        return self.table.horizontalHeader().fontMetrics().horizontalAdvance(text) + 16

    def _on_quant(self, family_id: str, quant: str) -> None:
        self.quant_choice[family_id] = quant
        self.refresh()

    # --- for the page and tests ------------------------------------------------------------------

    def row_of(self, family_id: str) -> int:
        self.flush()
        return next(i for i, f in enumerate(self.families) if f.id == family_id)

    def verdict(self, family_id: str) -> str:
        holder = self.table.cellWidget(self.row_of(family_id), COL_FIT)
        return holder.findChild(QLabel, "fitVerdict").text()

    def action_button(self, family_id: str) -> QPushButton:
        return self.table.cellWidget(self.row_of(family_id), COL_ACTION).findChild(QPushButton)

    def current_quant(self, family_id: str) -> str | None:
        return self.quant_choice.get(family_id)

    def quant_combo(self, family_id: str) -> QComboBox:
        return self.table.cellWidget(self.row_of(family_id), COL_QUANT).findChild(QComboBox)
