"""Hugging Face search: GGUF repositories by text, then a repository's GGUF files with Download buttons.

Both requests run on worker threads (``run_in_thread``); starting a new search or opening another repo
discards the previous request so a slow answer can't overwrite a newer one. Errors (offline, not found,
gated, no network) become one line in the view, with a button to the token field where a token helps.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.fit import estimate_fit, human_bytes
from desktop.ui.models.models_common import (
    FIT_STYLE,
    MachineMemory,
    badge_cell,
    error_kind,
    error_text,
    format_count,
)
from desktop.ui.models.models_downloads import display_name
from desktop.ui.runtime.workers import run_in_thread
from desktop.ui.widgets.notice import Notice

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
RESULT_COLUMNS = ("Repository", "Downloads", "Likes", "Updated", "Access")
FILE_COLUMNS = ("File", "Quant", "Size", "Fit", "")


class _NumericItem(QTableWidgetItem):
    """Sorts by the number in UserRole, not by the text ("12.3k" < "950" as text)."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return super().__lt__(other)


def _table(columns: tuple[str, ...], name: str) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.verticalHeader().setDefaultSectionSize(32)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    return table


class SearchView(QWidget):
    PLACEHOLDER = "Search Hugging Face for GGUF models (e.g. “qwen2.5 instruct”), or paste a repository id (owner/name)"
    downloadRequested = Signal(str, str)  # repo, file name in the repo (the first part of a split model)
    tokenRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("searchView")
        self.memory: MachineMemory | None = None
        self.n_ctx = 4096
        self.installed: set[str] = set()
        self.busy: Callable[[str, str], bool] = lambda repo, file: False
        self.offline: str | None = None
        self.results: list = []  # RepoSummary
        self.files: list = []  # GGUFFile of the open repo
        self.repo: str | None = None
        self._search_call = None
        self._files_call = None

        self._build_query()
        self._build_tables()
        self._lay_out()

    def _build_query(self) -> None:
        """The query box, Search, the notice and its "Add a token…" button."""
        self.query = QLineEdit()
        self.query.setObjectName("searchEdit")
        self.query.setPlaceholderText(self.PLACEHOLDER)
        self.query.setClearButtonEnabled(True)
        self.query.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("searchButton")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.notice = Notice("searchNotice")
        self.token_button = QPushButton("Add a token…")
        self.token_button.setObjectName("searchTokenButton")
        self.token_button.setVisible(False)
        self.token_button.clicked.connect(self.tokenRequested.emit)

    def _build_tables(self) -> None:
        """The results table over the open repository's files."""
        self.status = QLabel("Type a model name and press Enter; the most downloaded GGUF repositories come first.")
        self.status.setObjectName("searchStatus")
        self.status.setStyleSheet("color: palette(placeholder-text);")
        self.result_table = _table(RESULT_COLUMNS, "searchResults")
        self.result_table.horizontalHeader().setSortIndicator(1, Qt.SortOrder.DescendingOrder)
        self.result_table.setSortingEnabled(True)
        self.result_table.itemSelectionChanged.connect(self._on_result_selected)
        self.files_title = QLabel("Pick a repository to see its GGUF files.")
        self.files_title.setObjectName("filesTitle")
        self.file_table = _table(FILE_COLUMNS, "repoFiles")

    def _lay_out(self) -> None:
        row = QHBoxLayout()
        row.addWidget(self.query, 1)
        row.addWidget(self.search_button)
        notice_row = QHBoxLayout()
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.token_button)

        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(self.status)
        results_layout.addWidget(self.result_table, 1)
        files = QWidget()
        files_layout = QVBoxLayout(files)
        files_layout.setContentsMargins(0, 4, 0, 0)
        files_layout.addWidget(self.files_title)
        files_layout.addWidget(self.file_table, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(results)
        split.addWidget(files)
        split.setChildrenCollapsible(False)
        split.setSizes([300, 300])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(row)
        layout.addLayout(notice_row)
        layout.addWidget(split, 1)

    # --- state from the page ---------------------------------------------------------------------

    def set_context(self, memory: MachineMemory | None, n_ctx: int, installed: set[str],
                    offline: str | None) -> None:
        self.memory, self.n_ctx, self.installed = memory, n_ctx, installed
        if offline != self.offline:
            self.offline = offline
            self.query.setEnabled(offline is None)
            self.search_button.setEnabled(offline is None)
            self.query.setToolTip(offline or "")
            self.search_button.setToolTip(offline or "")
            # The page's own notice says why; here the empty box says it too, without repeating the banner.
            self.query.setPlaceholderText("Offline: searching Hugging Face is turned off" if offline else
                                          self.PLACEHOLDER)
            if offline:
                self.token_button.setVisible(False)
            if self.notice.level is not None:
                self.notice.clear()
        self._fill_files()

    # --- search ----------------------------------------------------------------------------------

    def search(self) -> None:
        if self.offline:
            self.notice.show_message(self.offline, "info")
            return
        text = self.query.text().strip()
        if self._search_call is not None:
            self._search_call.discard()
        self._clear_error()
        self.status.setText(f"Searching Hugging Face for “{text}”…" if text else "Loading the most downloaded GGUF "
                                                                              "repositories…")

        def work():
            from desktop.hub.search import search_models

            return search_models(text, limit=50)

        self._search_call = run_in_thread(work, lambda r: self._on_results(text, r), self._on_search_error,
                                          name="tandem-hub-search")

    def _on_results(self, text: str, results: list) -> None:
        self._search_call = None
        self.results = results
        table = self.result_table
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(results))
        for row, r in enumerate(results):
            name = QTableWidgetItem(r.id)
            name.setData(Qt.ItemDataRole.UserRole, r.id)
            table.setItem(row, 0, name)
            for col, value in ((1, r.downloads), (2, r.likes)):
                item = _NumericItem(format_count(value))
                item.setData(Qt.ItemDataRole.UserRole, value)
                item.setToolTip(f"{value:,}")
                table.setItem(row, col, item)
            table.setItem(row, 3, QTableWidgetItem(r.last_modified or ""))
            access = QTableWidgetItem("gated: needs a token" if r.gated else "open")
            if r.gated:
                access.setToolTip("Downloading needs a Hugging Face token from an account that accepted the "
                                  "model's licence")
            table.setItem(row, 4, access)
        table.setSortingEnabled(True)
        if not results:
            self.status.setText(f"No GGUF repositories match “{text}”." if text else "No repositories found.")
        else:
            self.status.setText(f"{len(results)} repositories" + (f" for “{text}”" if text else "")
                                + ", most downloaded first. Pick one to see its files.")
        exact = next((i for i, r in enumerate(results) if r.id.lower() == text.lower()), None)
        if exact is not None:
            table.selectRow(exact)
        elif not results and _REPO_ID.match(text):
            self.open_repo(text)  # a pasted id the search index does not know yet: try the repo itself

    def _on_search_error(self, exc: BaseException) -> None:
        self._search_call = None
        self.status.setText("")
        self._show_error(exc)

    # --- a repository's files --------------------------------------------------------------------

    def _on_result_selected(self) -> None:
        rows = self.result_table.selectionModel().selectedRows()
        if rows:
            item = self.result_table.item(rows[0].row(), 0)
            if item is not None:
                self.open_repo(item.data(Qt.ItemDataRole.UserRole))

    def open_repo(self, repo: str) -> None:
        if self.offline:
            self.notice.show_message(self.offline, "info")
            return
        if self._files_call is not None:
            self._files_call.discard()
        self.repo = repo
        self.files = []
        self._fill_files()
        self._clear_error()
        self.files_title.setText(f"Listing the GGUF files of <b>{repo}</b>…")

        def work():
            from desktop.hub.files import list_gguf_files

            return list_gguf_files(repo)

        self._files_call = run_in_thread(work, lambda f: self._on_files(repo, f), self._on_files_error,
                                         name="tandem-hub-files")

    def _on_files(self, repo: str, files: list) -> None:
        self._files_call = None
        self.files = files
        if files:
            self.files_title.setText(f"<b>{repo}</b>: {len(files)} GGUF model file{'s' * (len(files) != 1)}, "
                                     "smallest first")
        else:
            self.files_title.setText(f"<b>{repo}</b> has no GGUF model files.")
        self._fill_files()

    def _on_files_error(self, exc: BaseException) -> None:
        self._files_call = None
        self.files_title.setText(f"Could not list the files of <b>{self.repo}</b>.")
        self._show_error(exc)

    def _fill_files(self) -> None:
        table = self.file_table
        table.clearContents()
        table.setRowCount(len(self.files))
        for row, f in enumerate(self.files):
            name = QTableWidgetItem(f.name)
            if f.is_split:
                folder = f.name.rpartition("/")[0]
                name.setText((f"{folder}/" if folder else "") + display_name(f.name))
                name.setToolTip("A split model, downloaded as one:\n" + "\n".join(
                    f"{p}  ({human_bytes(s)})" for p, s in zip(f.parts, f.part_sizes, strict=True)))
            table.setItem(row, 0, name)
            table.setItem(row, 1, QTableWidgetItem(f.quant or "?"))
            size = QTableWidgetItem(human_bytes(f.size))
            size.setToolTip(f"{f.size:,} bytes")
            table.setItem(row, 2, size)
            table.setCellWidget(row, 3, self._fit_badge(f.size))
            table.setCellWidget(row, 4, self._download_button(f))

    def _fit_badge(self, size: int) -> QWidget:
        if self.memory is None:
            return badge_cell("…", None, "Reading this machine's free memory")
        # Only the file size is known before download: no KV-cache shape, so this is a lower bound.
        fit = estimate_fit(size, 0, 0, 1, 1, self.n_ctx, self.memory.free_ram, self.memory.free_vram)
        return badge_cell(fit.verdict, FIT_STYLE[fit.verdict],
                          fit.explanation + " (From the file size; the KV cache is known once downloaded.)")

    def _download_button(self, f) -> QWidget:
        holder = QWidget()
        layout = QHBoxLayout(holder)
        layout.setContentsMargins(4, 1, 4, 1)
        button = QPushButton("Download")
        button.setObjectName("downloadFileButton")
        local = f.name.rsplit("/", 1)[-1].lower()
        repo = self.repo or ""
        if local in self.installed:
            button.setText("In library ✓")
            button.setEnabled(False)
        elif self.busy(repo, f.name):
            button.setText("Downloading…")
            button.setEnabled(False)
        else:
            button.setEnabled(self.offline is None)
            button.setToolTip(self.offline or f"Download {human_bytes(f.size)} into the models folder")
            button.clicked.connect(lambda _=False, name=f.name: self.downloadRequested.emit(repo, name))
        layout.addWidget(button)
        return holder

    # --- errors ----------------------------------------------------------------------------------

    def _show_error(self, exc: BaseException) -> None:
        kind = error_kind(exc)
        self.notice.show_message(error_text(exc), "info" if kind == "offline" else "error")
        self.token_button.setVisible(kind == "gated")

    def _clear_error(self) -> None:
        if self.notice.level == "error":
            self.notice.clear()
        self.token_button.setVisible(False)

    def file_row(self, name: str) -> int:
        return next(i for i, f in enumerate(self.files) if f.name == name)

    def file_button(self, name: str) -> QPushButton:
        return self.file_table.cellWidget(self.file_row(name), 4).findChild(QPushButton)
