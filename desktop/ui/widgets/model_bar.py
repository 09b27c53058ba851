"""A model picker bar: the library in a combo, the model's kind as a badge, and its load state.

The bar shows and picks; it holds no model. Picking one asks the shared ModelManager to load it (off the GUI
thread, under this bar's owner name) and the bar reports what the manager did into the pane's ``PaneModel``
(``desktop.compare.pane_model``): the pane reads the handle there and observes ``model.events`` (loaded,
lost, failed). The combo's item text holds the file name, so a person (and a test) can find a model by it.
Reusable by any pane: Compare puts two bars, each on one side of its ``PairModel``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from desktop.compare.pane_model import PaneModel
from desktop.engine.types import LoadInfo
from desktop.ui.runtime.context import AppContext, LibraryModel
from desktop.ui.runtime.model_manager import ModelKey
from desktop.ui.runtime.remote_models import parse_ref, ref_label
from desktop.ui.widgets.remote_items import add_remote_items

_BADGE_STYLE = {
    "base": "background:#2e7d5b; color:white;",
    "instruct": "background:#3d5fb8; color:white;",
    "unknown": "background:#777; color:white;",
}


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class ModelBar(QWidget):
    """Shows ``model`` (the pane's PaneModel) and picks what it holds."""

    picked = Signal(str)  # the path a person picked ("" for none)

    def __init__(self, context: AppContext, model: PaneModel, owner: str, picker_name: str = "modelPicker",
                 label: str = "Model", parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.model = model
        self.owner = owner
        self.key: ModelKey | None = None  # what this bar asked the manager for
        self._wanted_path = ""
        self._populating = False

        self.combo = QComboBox()
        self.combo.setObjectName(picker_name)
        self.combo.setAccessibleName(f"{label} picker")
        self.combo.setMinimumContentsLength(28)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.currentIndexChanged.connect(self._on_index_changed)
        self.badge = QLabel()
        self.badge.setObjectName("modelKind")
        self.badge.setVisible(False)
        self.status = QLabel()
        self.status.setObjectName("modelStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.unload_button = QToolButton()
        self.unload_button.setObjectName("unloadButton")
        self.unload_button.setText("Unload")
        self.unload_button.setToolTip("Unload this model to free its memory (picking it again reloads it).")
        self.unload_button.clicked.connect(self.unload)
        self.unload_button.setVisible(False)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        caption = QLabel(f"{label}:")
        caption.setBuddy(self.combo)
        layout.addWidget(caption)
        layout.addWidget(self.combo)
        layout.addWidget(self.badge)
        layout.addWidget(self.unload_button)
        layout.addWidget(self.status, 1)

        models = context.models
        models.loading.connect(self._on_loading)
        models.loaded.connect(self._on_loaded)
        models.loadFailed.connect(self._on_failed)
        models.unloaded.connect(self._on_unloaded)
        context.libraryChanged.connect(self._populate)
        context.remote.changed.connect(self._on_remote_changed)  # a method: it goes with this widget
        self._populate(context.library)

    # --- the list --------------------------------------------------------------------------------

    def _populate(self, entries: list[LibraryModel]) -> None:
        current = self.current_path() or self._wanted_path
        self._populating = True
        try:
            self.combo.clear()
            remote = self.context.remote.entries
            if not entries and not remote:
                scanned = self.context.library_scanned
                self.combo.addItem("No models yet: get one on the Models page" if scanned else "Reading library…",
                                   "")
            else:
                self.combo.addItem("Choose a model…", "")
            for e in entries:
                text = f"{e.file_name}  ·  {e.kind}" + (f"  ·  {human_size(e.size)}" if e.size else "")
                if e.broken:
                    text = f"{e.file_name}  ·  broken"
                self.combo.addItem(text, e.path)
                index = self.combo.count() - 1
                tip = e.path + (f"\nBroken: {e.reason}" if e.broken else "")
                self.combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
                if e.broken:  # listed so a person sees it, but not selectable
                    item = self.combo.model().item(index)
                    if item is not None:
                        item.setEnabled(False)
            add_remote_items(self.combo, remote)  # under each endpoint's name
            index = self.combo.findData(current) if current else 0
            if current and index < 0 and self.key is not None:  # loaded but gone from the folder
                gone = "not served now" if parse_ref(current) else "not in library"
                self.combo.addItem(f"{ref_label(current) if parse_ref(current) else Path(current).name}  ·  {gone}",
                                   current)
                index = self.combo.count() - 1
            self.combo.setCurrentIndex(max(0, index))
        finally:
            self._populating = False
        if self._wanted_path and self.combo.findData(self._wanted_path) >= 0 and self.key is None:
            wanted, self._wanted_path = self._wanted_path, ""
            self.select_path(wanted)

    def _on_remote_changed(self, _entries: list) -> None:
        self._populate(self.context.library)

    def current_path(self) -> str:
        return self.combo.currentData() or ""

    def entry(self) -> LibraryModel | None:
        return self.context.library_entry(self.current_path())

    def kind(self) -> str:
        """'base' / 'instruct' from the loaded model, else from the library, else 'unknown'."""
        if self.model.handle is not None:
            return self.model.handle.info.kind
        entry = self.entry()
        return entry.kind if entry else "unknown"

    def select_path(self, path: str) -> bool:
        """Pick a model by path (restoring state); if the library is not read yet, pick it once it is."""
        index = self.combo.findData(path)
        if index < 0:
            self._wanted_path = path
            return False
        if index == self.combo.currentIndex():
            self._on_index_changed(index)
        else:
            self.combo.setCurrentIndex(index)
        return True

    # --- loading ---------------------------------------------------------------------------------

    def _on_index_changed(self, _index: int) -> None:
        if self._populating:
            return
        path = self.current_path()
        self.model.pick(path)
        self.picked.emit(path)
        if not path:
            self._drop()
            self.context.models.release(self.owner)
            self._show_idle()
            return
        key = self.context.models.acquire(self.owner, path, self.context.load_options())
        if key == self.key and self.model.handle is not None:
            return
        self._drop()
        self.key = key
        self._update_badge(self.kind())
        handle = self.context.models.handle(key)
        if handle is not None:
            self._on_loaded(key, handle)
        else:
            self._on_loading(key)

    def load_again(self) -> None:
        """After a failure or an unload: load the picked model again."""
        if self.current_path():
            self.key = None
            self._on_index_changed(self.combo.currentIndex())

    def unload(self) -> None:
        if self.key is not None:
            self.context.models.unload(self.key)

    def _drop(self) -> None:
        self.key = None
        self.unload_button.setVisible(False)
        self.model.drop()

    def _on_loading(self, key: ModelKey) -> None:
        if key != self.key:
            return
        self.status.setText(f"Connecting to {key.name}…" if key.remote else f"Loading {key.name}…")
        self.status.setStyleSheet("")
        self.model.start_loading()

    def _on_loaded(self, key: ModelKey, handle) -> None:
        if key != self.key:
            return
        info = handle.info
        self._update_badge(info.kind)
        self.status.setText(f"{info.backend} · {info.n_ctx:,} ctx")
        if isinstance(info, LoadInfo):  # a local model: the load's own facts
            self.status.setToolTip(f"{info.path}\nLoaded in {info.load_s:.1f} s on {info.backend}: "
                                   f"{info.architecture}, {info.n_params:,} parameters, {info.n_ctx:,}-token "
                                   f"context, {info.gpu_layers} layers on GPU, {info.threads} threads")
        else:  # any other backend: what the Model interface promises, and what it can't do
            caps = handle.capabilities
            notes = [n for n in (caps.scoring_note, caps.template_note) if n]
            self.status.setToolTip(f"{info.name} on {info.backend}: {info.n_ctx:,}-token context"
                                   + "".join(f"\n{n[0].upper()}{n[1:]}." for n in notes))
        self.status.setStyleSheet("")
        self.unload_button.setVisible(True)
        self.model.set_loaded(handle)

    def _on_failed(self, key: ModelKey, exc: BaseException) -> None:
        if key != self.key:
            return
        self.status.setText(f"Could not load: {exc}")
        self.status.setToolTip(str(exc))
        self.status.setStyleSheet("color: #c0392b;")
        self.model.set_failed(str(exc))

    def _on_unloaded(self, key: ModelKey) -> None:
        if key != self.key:
            return
        self.key = None
        self.unload_button.setVisible(False)
        self.status.setText("Unloaded · pick it again (or press Generate) to load it")
        self.status.setStyleSheet("")
        self.model.set_unloaded()

    def _show_idle(self) -> None:
        self.badge.setVisible(False)
        self.status.setText("")
        self.status.setStyleSheet("")

    def _update_badge(self, kind: str) -> None:
        self.badge.setText(f" {kind.upper()} ")
        self.badge.setToolTip({
            "base": "A base model: it continues text. Best in the Completion pane.",
            "instruct": "An instruct model: it answers requests through its chat template. Best in Chat.",
        }.get(kind, "Kind not known until the model is loaded."))
        self.badge.setStyleSheet(_BADGE_STYLE.get(kind, _BADGE_STYLE["unknown"])
                                 + "border-radius:4px; padding:1px 4px; font-weight:bold;")
        self.badge.setVisible(True)
