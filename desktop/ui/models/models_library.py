"""The library as a person sees it: installed models with their metadata, kind and pair; broken files with
the reason; Import (copy or link), Remove (confirmed) and Open folder.

The list comes from ``desktop.core.library.Library.scan()`` on a worker thread (its metadata cache makes a
rescan cost a ``stat`` per file). The view rescans whenever the app's ``libraryChanged`` fires, and asks
the app to rescan (``AppContext.refresh_library``) after an import or removal, so the panes' pickers follow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.fit import human_bytes
from desktop.ui.models.models_common import (
    ERROR_COLOR,
    KIND_STYLE,
    badge_cell,
    error_text,
)
from desktop.ui.models.models_library_rows import KIND_TIPS, SOURCE_NAMES, details_html, entry_item
from desktop.ui.runtime.workers import CoalescingRefresh, run_in_thread

COLUMNS = ("Model", "Kind", "Pair", "Parameters", "Quant", "Context", "Size", "Architecture")
GROUPS = (  # (key, title)
    ("library", "In your models folder"),
    ("hf-cache", "Found in the Hugging Face cache (used in place)"),
    ("lmstudio", "Found in LM Studio's models folder (used in place)"),
    ("broken", "Broken files: they can't be loaded"),
)


def scan_entries(models_dir: Path) -> list:
    """Every LibraryEntry (blocking: call on a worker thread)."""
    from desktop.core.library import Library

    return Library(models_dir).scan()


class LibraryView(QWidget):
    """``changed`` is emitted after this view added or removed files (the page asks the app to rescan)."""

    changed = Signal()
    message = Signal(str, str)  # text, level ("info" | "error"): shown in the page's notice
    scanned = Signal(list)  # list[LibraryEntry], after every scan

    def __init__(self, models_dir: Callable[[], Path], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("libraryView")
        self.models_dir = models_dir
        self.entries: list = []
        self._scan = CoalescingRefresh(self._start_scan, self._on_scanned, self._on_scan_failed,
                                       name="tandem-library-details")
        self._work: list = []  # running import/remove calls

        self._build_buttons()
        self._build_tree()
        self._lay_out(self._build_details())
        self._on_selection()

    def _build_buttons(self) -> None:
        """Import (copy or link), Remove, Open folder, Rescan and the folder's path."""
        self.import_button = QPushButton("Import…")
        self.import_button.setObjectName("importButton")
        self.import_button.setToolTip("Add a .gguf file you already have")
        menu = QMenu(self.import_button)
        copy_action = menu.addAction("Copy a GGUF file into the library…")
        copy_action.triggered.connect(lambda: self.choose_and_import(link=False))
        link_action = menu.addAction("Link a GGUF file where it is (no copy)…")
        link_action.triggered.connect(lambda: self.choose_and_import(link=True))
        self.import_button.setMenu(menu)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setObjectName("removeButton")
        self.remove_button.clicked.connect(lambda: self.remove_selected())
        self.open_button = QPushButton("Open folder")
        self.open_button.setObjectName("openFolderButton")
        self.open_button.clicked.connect(self.open_folder)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setObjectName("rescanButton")
        self.rescan_button.setToolTip("Look for new or changed files in the models folder")
        self.rescan_button.clicked.connect(self.changed.emit)
        self.folder_label = QLabel()
        self.folder_label.setObjectName("modelsFolderLabel")
        self.folder_label.setStyleSheet("color: palette(placeholder-text);")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def _build_tree(self) -> None:
        self.tree = QTreeWidget()
        self.tree.setObjectName("libraryTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.tree.setStyleSheet("QTreeWidget::item { padding: 5px 2px; }")

    def _build_details(self) -> QScrollArea:
        """The details panel under the tree, in its scroll area."""
        self.details = QLabel()
        self.details.setObjectName("modelDetails")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setMargin(8)
        details_scroll = QScrollArea()
        details_scroll.setObjectName("modelDetailsScroll")
        details_scroll.setWidgetResizable(True)
        details_scroll.setWidget(self.details)
        details_scroll.setMinimumHeight(120)
        return details_scroll

    def _lay_out(self, details_scroll: QScrollArea) -> None:
        bar = QHBoxLayout()
        bar.addWidget(self.import_button)
        bar.addWidget(self.remove_button)
        bar.addWidget(self.open_button)
        bar.addWidget(self.rescan_button)
        bar.addSpacing(12)
        bar.addWidget(self.folder_label, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(details_scroll)
        split.setSizes([420, 230])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

    # --- scanning --------------------------------------------------------------------------------

    def rescan(self) -> None:
        self._scan.refresh()

    def _start_scan(self):
        folder = self.models_dir()
        self.folder_label.setText(f"Models folder: {folder}")
        return lambda: scan_entries(folder)

    def _on_scanned(self, entries: list) -> None:
        self.entries = entries
        self._fill()
        self.scanned.emit(entries)

    def _on_scan_failed(self, exc: BaseException) -> None:
        self.message.emit(f"Could not read the models folder: {error_text(exc)}", "error")
        self.scanned.emit(self.entries)

    @property
    def scanning(self) -> bool:
        return self._scan.running

    # --- the tree --------------------------------------------------------------------------------

    def _fill(self) -> None:
        selected = self.selected_entry()
        keep = str(selected.path) if selected is not None else None
        self.tree.clear()
        by_path = {e.path: e for e in self.entries}
        groups: dict[str, list] = {key: [] for key, _t in GROUPS}
        for e in self.entries:
            groups["broken" if e.broken else e.source if e.source in groups else "library"].append(e)
        if not self.entries:
            empty = QTreeWidgetItem(["No models yet. Download a pair from the catalog, search Hugging Face, "
                                     "or import a .gguf file you already have."])
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.tree.addTopLevelItem(empty)
            empty.setFirstColumnSpanned(True)
        for key, title in GROUPS:
            members = groups[key]
            if not members:
                continue
            head = QTreeWidgetItem([f"{title} ({len(members)})"])
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            if key == "broken":
                head.setForeground(0, QBrush(QColor(ERROR_COLOR)))
            self.tree.addTopLevelItem(head)
            head.setFirstColumnSpanned(True)
            # Pairs side by side: sort by the pair's shared key (the base's path), then base before instruct.
            members.sort(key=lambda e: (str(min(e.path, e.pair)) if e.pair else str(e.path), e.kind or "",
                                        e.name.lower()))
            for e in members:
                item = entry_item(e, by_path)
                self.tree.addTopLevelItem(item)
                if e.broken:
                    item.setFirstColumnSpanned(True)
                else:
                    kind = e.kind or "unknown"
                    self.tree.setItemWidget(item, 1, badge_cell(kind, KIND_STYLE.get(kind, KIND_STYLE["unknown"]),
                                                                KIND_TIPS.get(kind, ""), name="kindBadge"))
                if keep and str(e.path) == keep:
                    item.setSelected(True)
                    self.tree.setCurrentItem(item)
        self._on_selection()

    def selected_entry(self):
        items = self.tree.selectedItems()
        path = items[0].data(0, Qt.ItemDataRole.UserRole) if items else None
        return next((e for e in self.entries if str(e.path) == path), None) if path else None

    def select(self, path: str | Path) -> bool:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == str(path):
                self.tree.setCurrentItem(item)
                item.setSelected(True)
                return True
        return False

    def _on_selection(self) -> None:
        e = self.selected_entry()
        can_remove = e is not None and e.source == "library"
        self.remove_button.setEnabled(can_remove)
        if e is None:
            self.remove_button.setToolTip("Select a model to remove it")
        elif e.source != "library":
            self.remove_button.setToolTip(f"This model lives in the {SOURCE_NAMES[e.source]}; Tandem only lists it there.")
        else:
            self.remove_button.setToolTip("Unlist this linked model (its file stays)" if e.linked
                                          else "Delete this model's file from the models folder")
        self.details.setText(details_html(e, self.entries) if e is not None else
                             "<span style='color:palette(placeholder-text)'>Select a model to see its details.</span>")

    # --- import ----------------------------------------------------------------------------------

    def choose_and_import(self, link: bool) -> None:
        title = "Link GGUF models where they are" if link else "Copy GGUF models into the library"
        files, _ = QFileDialog.getOpenFileNames(self, title, str(Path.home()), "GGUF models (*.gguf);;All files (*)")
        if files:
            self.import_files(files, link=link)

    def import_files(self, files: list[str], link: bool = False) -> None:
        """Validate and copy (or link) each file off the GUI thread; one line per problem."""
        folder = self.models_dir()
        verb = "Linking" if link else "Copying"
        self.message.emit(f"{verb} {len(files)} file{'s' * (len(files) != 1)} into the library…", "info")

        def work():
            from desktop.core.library import Library

            library = Library(folder)
            done, problems = [], []
            for f in files:
                try:
                    done.append(library.import_file(f, link=link))
                except Exception as exc:  # noqa: BLE001 - reported per file, the others still go in
                    problems.append(f"{Path(f).name}: {error_text(exc)}")
            return done, problems

        self._start(work, self._on_imported)

    def _on_imported(self, result) -> None:
        done, problems = result
        if done:
            self.changed.emit()
        if problems:
            self.message.emit("Not imported: " + "; ".join(problems), "error")
        elif done:
            names = ", ".join(e.path.name for e in done)
            self.message.emit(f"Added {names} to the library.", "info")

    # --- remove ----------------------------------------------------------------------------------

    def remove_selected(self, confirm: bool = True) -> None:
        e = self.selected_entry()
        if e is None or e.source != "library":
            return
        if e.linked:
            text = (f"Unlist {e.path.name}?\n\nIt was linked, not copied: the file stays at {e.path}.")
        else:
            what = f"{e.path.name} ({human_bytes(e.file_size)})" if e.file_size else e.path.name
            text = f"Delete {what} from the models folder?\n\nThis cannot be undone; you can download it again."
        if confirm:
            answer = QMessageBox.question(self, "Remove model", text,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                          QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Yes:
                return
        folder = self.models_dir()
        path = e.path

        def work():
            from desktop.core.library import Library

            return Library(folder).remove(path)

        self._start(work, lambda removed: self._on_removed(e, removed))

    def _on_removed(self, entry, removed: list) -> None:
        self.message.emit(f"Removed {entry.path.name}." if removed else f"Unlisted {entry.path.name}; its file "
                          "was left where it is.", "info")
        self.changed.emit()

    # --- open folder -----------------------------------------------------------------------------

    def folder_to_open(self) -> Path:
        e = self.selected_entry()
        return e.path.parent if e is not None else self.models_dir()

    def open_folder(self) -> None:
        folder = self.folder_to_open()
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.message.emit(f"Could not open a file manager; the folder is {folder}", "error")

    # --- helpers ---------------------------------------------------------------------------------

    def _start(self, work, on_done) -> None:
        def finished(call, value):
            self._work.remove(call)
            on_done(value)

        def failed(call, exc):
            self._work.remove(call)
            self.message.emit(error_text(exc), "error")

        holder: list = []
        call = run_in_thread(work, lambda v: finished(holder[0], v), lambda x: failed(holder[0], x),
                             name="tandem-library-change")
        holder.append(call)
        self._work.append(call)
