"""The Models page: get a base/instruct pair, search Hugging Face, follow downloads, manage the library.

Four tabs over one state: *My models* (desktop/ui/models/models_library.py), *Catalog* (models_catalog.py),
*Search Hugging Face* (models_search.py) and *Downloads* (models_downloads.py, its rows in
models_downloads_view.py). The page owns what they share: the catalog and this machine's free memory (read
off the GUI thread; VRAM from the engine's hardware report once the page is first shown), the offline
state, and the download center. With an empty library a card on top offers the one obvious first step: the
smallest pair that fits this machine.

huggingface_hub is only imported (on a worker thread) when the page is first shown or a download is asked
for, so starting the app stays quick.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.fit import human_bytes
from desktop.core.settings import Settings
from desktop.ui.models.models_catalog import CatalogView, pair_files, pair_fit
from desktop.ui.models.models_common import (
    BASE_VS_INSTRUCT,
    FIT_STYLE,
    MachineMemory,
    badge_css,
    error_text,
    offline_reason,
    read_free_ram,
    read_machine_memory,
)
from desktop.ui.models.models_downloads import DownloadCenter, DownloadState
from desktop.ui.models.models_downloads_view import DownloadsView
from desktop.ui.models.models_library import LibraryView
from desktop.ui.models.models_search import SearchView
from desktop.ui.models.models_welcome import WelcomeCard
from desktop.ui.runtime.workers import run_in_thread
from desktop.ui.widgets.layout import restyle, set_progress
from desktop.ui.widgets.notice import Notice
from desktop.ui.widgets.page import Page

TAB_LIBRARY, TAB_CATALOG, TAB_SEARCH, TAB_DOWNLOADS = range(4)
AFTER_FIRST_PAINT_MS = 300


class ModelsPage(Page):
    """The Models page. ``context`` is the app's AppContext (desktop/ui/runtime/context.py)."""

    def __init__(self, context, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.setObjectName("modelsPage")
        self.catalog = None
        self.memory: MachineMemory | None = None
        self.smallest = None  # the Family the welcome card offers
        self.library_empty: bool | None = None  # None until the first scan
        self._hardware_probed = False
        self.hardware_known = False  # the engine's hardware report (VRAM) has been read
        self._first_scan = True
        self._calls: list = []

        title, explain = self._build_header()
        self._build_views()
        self._lay_out(title, explain)
        self._connect()

        self._apply_settings(self.context.settings)
        self.library_view.rescan()
        self._run(self._load_catalog_and_ram, self._on_catalog, "tandem-catalog")

    def _build_header(self) -> tuple[QLabel, QLabel]:
        """The title, what base and instruct mean, the welcome card and the notice with its action button."""
        title = QLabel("<span style='font-size:16pt; font-weight:600'>Models</span>")
        explain = QLabel(BASE_VS_INSTRUCT)
        explain.setObjectName("baseVsInstruct")
        explain.setWordWrap(True)
        explain.setTextFormat(Qt.TextFormat.RichText)
        explain.setStyleSheet("color: palette(text);")
        self.welcome = WelcomeCard()
        self.welcome.setVisible(False)
        self.welcome.button.clicked.connect(self.download_smallest_pair)
        self.notice = Notice("modelsNotice")
        self.notice_button = QPushButton()  # the next step a message suggests (e.g. open Settings)
        self.notice_button.setObjectName("noticeActionButton")
        self.notice_button.setVisible(False)
        self.notice_button.clicked.connect(self._notice_action)
        self._notice_callback = None
        self.notice.findChild(QToolButton).clicked.connect(lambda: self.notice_button.setVisible(False))
        return title, explain

    def _build_views(self) -> None:
        """The download center and the four tabs' views."""
        self.center = DownloadCenter(self.context.models_dir, self)
        self.library_view = LibraryView(self.context.models_dir)
        self.catalog_view = CatalogView()
        self.search_view = SearchView()
        self.downloads_view = DownloadsView(self.center, self.open_token_settings)
        busy = self.center.is_busy
        self.catalog_view.busy = busy
        self.search_view.busy = busy

        self.tabs = QTabWidget()
        self.tabs.setObjectName("modelsTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.library_view, "My models")
        self.tabs.addTab(self.catalog_view, "Catalog")
        self.tabs.addTab(self.search_view, "Search Hugging Face")
        self.tabs.addTab(self.downloads_view, "Downloads")
        self.tabs.setTabToolTip(TAB_CATALOG, "Base/instruct pairs Tandem knows, with the fit for this machine")

    def _lay_out(self, title: QLabel, explain: QLabel) -> None:
        notice_row = QHBoxLayout()
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.notice_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 8)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(explain)
        layout.addWidget(self.welcome)
        layout.addLayout(notice_row)
        layout.addWidget(self.tabs, 1)

    def _connect(self) -> None:
        self.catalog_view.downloadRequested.connect(self.download_pair)
        self.search_view.downloadRequested.connect(lambda repo, name: self.download_files([(repo, name)]))
        self.search_view.tokenRequested.connect(self.open_token_settings)
        self.library_view.changed.connect(self.context.refresh_library)
        self.library_view.message.connect(self.show_message)
        self.library_view.scanned.connect(self._on_library_scanned)
        self.center.changed.connect(self._on_download_changed)
        self.center.finished.connect(self._on_download_finished)
        self.center.failed.connect(lambda text: self.show_message(text, "error"))
        self.context.libraryChanged.connect(self._on_library_changed)
        self.context.settingsChanged.connect(self._on_settings)

    # --- background reads ------------------------------------------------------------------------

    def _run(self, fn, on_done, name: str) -> None:
        holder: list = []

        def done(value):
            self._calls.remove(holder[0])
            on_done(value)

        def failed(exc):
            self._calls.remove(holder[0])
            self.show_message(error_text(exc), "error")

        holder.append(run_in_thread(fn, done, failed, name=name))
        self._calls.append(holder[0])

    @staticmethod
    def _load_catalog_and_ram():
        from desktop.core.catalog import load_catalog

        return load_catalog(), read_free_ram()

    def _on_catalog(self, result) -> None:
        self.catalog, memory = result
        self.catalog_view.memory = self.memory or memory  # the rows are filled once, with their verdicts
        self.catalog_view.set_catalog(self.catalog)
        if self.memory is None:  # the hardware report may have answered first
            self.set_memory(memory)
        else:
            self.set_memory(self.memory)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        # After the window has painted: importing the hub (for the download list) and the hardware probe
        # (a worker process) would otherwise compete with the first paint of a cold start.
        QTimer.singleShot(AFTER_FIRST_PAINT_MS, self._on_shown)

    def _on_shown(self) -> None:
        if not self.isVisible():
            return
        if not self.center.is_ready:
            self.center.start()
        gpu_layers = self.context.settings.gpu_layers
        if not self._hardware_probed:
            self._hardware_probed = True
            self._run(lambda: read_machine_memory(gpu_layers), self._on_hardware, "tandem-hardware")
        elif self.memory is not None:  # free RAM changes as models load: refresh it (the GPU part is kept)
            previous = self.memory

            def reread():
                ram = read_free_ram()
                return MachineMemory(ram.free_ram, previous.free_vram, ram.total_ram, previous.backend,
                                     previous.gpu_names)

            self._run(reread, self.set_memory, "tandem-free-ram")

    def _on_hardware(self, memory: MachineMemory) -> None:
        self.hardware_known = True
        self.set_memory(memory)

    def set_memory(self, memory: MachineMemory) -> None:
        """This machine's free memory (the tests set it to make verdicts predictable)."""
        self.memory = memory
        self.catalog_view.set_memory(memory)
        self._push_context()
        self._update_welcome()

    # --- settings, library, downloads ------------------------------------------------------------

    def _on_settings(self, settings: Settings) -> None:
        self.center.folder_changed()
        self._apply_settings(settings)

    def _apply_settings(self, settings: Settings) -> None:
        self.offline = offline_reason(settings)
        self.n_ctx = settings.default_ctx
        self._push_context()
        self._update_welcome()
        if self.offline:
            self.show_message(self.offline, "info", "Settings…", self.open_settings)
        elif self.notice.level == "info" and "offline" in self.notice.text().lower():
            self.show_message("", None)

    def _installed(self) -> set[str]:
        return {e.path.name.lower() for e in self.library_view.entries if not e.broken}

    def _push_context(self) -> None:
        installed = self._installed()
        self.catalog_view.set_context(self.n_ctx, installed, self.offline)
        self.search_view.set_context(self.memory, self.n_ctx, installed, self.offline)

    def _on_library_changed(self, _entries: list) -> None:
        self.library_view.rescan()

    def _on_library_scanned(self, entries: list) -> None:
        usable = [e for e in entries if not e.broken]
        self.library_empty = not usable
        self._tab_text(TAB_LIBRARY, f"My models ({len(usable)})" if usable else "My models")
        if self._first_scan:
            self._first_scan = False
            if self.library_empty:
                self.tabs.setCurrentIndex(TAB_CATALOG)
        self._push_context()
        self._update_welcome()

    def _on_download_changed(self, state: DownloadState) -> None:
        active = self.center.active_count()
        self._tab_text(TAB_DOWNLOADS, f"Downloads ({active})" if active else "Downloads")
        if state.kind in ("queued", "done", "cancelled", "error", "dismissed", "paused"):
            self._push_context()  # the Download buttons follow (Downloading… / In library)
        if state.kind == "error":
            self.context.statusMessage.emit(f"Download failed: {state.message}")
        self._update_welcome()

    def _tab_text(self, index: int, text: str) -> None:
        if self.tabs.tabText(index) != text:  # QTabBar re-lays out the page on every setTabText, same text or not
            self.tabs.setTabText(index, text)

    def _on_download_finished(self, state: DownloadState) -> None:
        self.context.statusMessage.emit(f"Downloaded {state.filename.rsplit('/', 1)[-1]}")
        self.context.refresh_library()

    # --- actions ---------------------------------------------------------------------------------

    def download_files(self, files: list) -> list[str]:
        """Queue (repo, file) downloads; returns their ids."""
        if self.offline:
            self.show_message(self.offline, "info", "Settings…", self.open_settings)
            return []
        ids = [self.center.download(repo, name) for repo, name in files]
        if ids:
            names = " and ".join(name.rsplit("/", 1)[-1] for _r, name in files)
            self.context.statusMessage.emit(f"Downloading {names}")
        self._push_context()
        self._update_welcome()
        return ids

    def download_pair(self, family_id: str, files: list) -> list[str]:
        """A catalog pair's missing files; a pair that won't fit is still downloaded, with a warning."""
        ids = self.download_files(files)
        if ids and self.catalog is not None and self.memory is not None:
            fam = self.catalog.get(family_id)
            fit = pair_fit(fam, self.memory, self.n_ctx, self.catalog_view.current_quant(family_id))
            if fit.verdict == "won't fit":
                self.show_message(f"{fam.title} won't fit this machine's free memory right now: {fit.explanation} "
                                  "It will download, but loading both at once may fail or be very slow.",
                                  "warning")
        return ids

    def download_smallest_pair(self) -> list[str]:
        if self.smallest is None:
            return []
        files = pair_files(self.smallest, None)
        return self.download_files([(f.repo, f.file) for f in files])

    def open_settings(self):
        """The app's Settings dialog (the window's, so it saves through the same context)."""
        window = self.window()
        opener = getattr(window, "open_settings", None) if window is not self else None
        if callable(opener):
            return opener()
        from desktop.ui.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.context, self)
        dialog.open()
        return dialog

    def open_token_settings(self):
        """The Settings dialog with its Hugging Face token field focused."""
        dialog = self.open_settings()
        field = dialog.findChild(QLineEdit, "hfTokenEdit") if dialog is not None else None
        if field is not None:
            field.setFocus()
        return dialog

    def show_message(self, text: str, level: str | None = "info", action: str = "", callback=None) -> None:
        """One line above the tabs (``level`` None clears it), with an optional button for the next step."""
        if level is None or not text:
            self.notice.clear()
        else:
            self.notice.show_message(text, level)  # type: ignore[arg-type]
        self._notice_callback = callback if level and text else None
        self.notice_button.setText(action)
        self.notice_button.setVisible(bool(action and self._notice_callback))

    def _notice_action(self) -> None:
        if self._notice_callback is not None:
            self._notice_callback()

    # --- the welcome card ------------------------------------------------------------------------

    def _update_welcome(self) -> None:
        card = self.welcome
        if not self.library_empty or self.catalog is None:
            card.setVisible(False)
            return
        card.setVisible(True)
        memory = self.memory
        free_ram = memory.free_ram if memory else None
        free_vram = memory.free_vram if memory else None
        fam = self.catalog.smallest_pair_that_fits(free_ram, self.n_ctx, free_vram)
        fallback = fam is None
        if fam is None:  # nothing fits comfortably: offer the smallest anyway, with the honest verdict
            fam = self.catalog.pairs_by_size()[0]
        self.smallest = fam
        files = pair_files(fam, None)
        size = sum(f.size for f in files)
        fit = pair_fit(fam, memory, self.n_ctx, None)
        quant = fam.base.default_quant
        lead = ("No pair fits comfortably in this machine's free memory; the smallest is"
                if fallback else "The smallest pair that fits this machine is")
        card.text.setText(f"{lead} <b>{fam.title}</b>: the base model and its instruct sibling at {quant}, "
                          f"{human_bytes(size)} to download in all ({fam.license} licence).")
        card.fit.setText(fit.verdict)
        restyle(card.fit, badge_css(*FIT_STYLE[fit.verdict]))
        card.fit.setToolTip(fit.explanation)
        states = [self.center.state(f"{f.repo}:{f.file}") for f in files]
        running = [s for s in states if s is not None and s.kind not in ("cancelled", "dismissed")]
        # each text set once per update: a button whose text changes re-lays out the page around it
        card.button.setText("Downloading… (see Downloads)" if running and not self.offline
                            else f"Download {fam.title} (base + instruct)")
        if self.offline:
            card.button.setEnabled(False)
            card.button.setToolTip(self.offline)
            card.progress.setVisible(False)
        elif running:
            card.button.setEnabled(False)
            card.button.setToolTip("")
            total = sum((s.total or 0) for s in running)
            have = sum(s.bytes for s in running)
            card.progress.setVisible(bool(total))
            if total:
                set_progress(card.progress, int(1000 * have / total), f"{human_bytes(have)} of {human_bytes(total)}")
        else:
            card.button.setEnabled(True)
            card.button.setToolTip("Queues " + " and ".join(f.file for f in files))
            card.progress.setVisible(False)

    # --- window hooks ----------------------------------------------------------------------------

    def primary_action(self) -> None:
        """Ctrl+Enter: search when the search tab is open."""
        if self.tabs.currentIndex() == TAB_SEARCH:
            self.search_view.search()

    def shutdown(self) -> None:
        """The window is closing: pause running downloads so they resume next time."""
        self.center.shutdown()
