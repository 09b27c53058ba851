"""The main window: navigation between the pages, the menus and shortcuts, and the status bar.

Every page is a ``desktop.ui.widgets.page.Page``, built with ``Page(context, parent)``. The window calls its
hooks on the visible page: ``primary_action()`` (Ctrl+Enter: generate / send / run), ``stop()`` (Esc),
``new_item()`` (Ctrl+N), and ``shutdown()`` on every page when it closes (stop work, save). A page that has no
use for a hook keeps the base class's, which does nothing.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QWidget,
)

from desktop import __version__
from desktop.ui.chat.chat_pane import ChatPane
from desktop.ui.compare.compare_pane import ComparePane
from desktop.ui.completion.completion_pane import CompletionPane
from desktop.ui.models.models_page import ModelsPage
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.server import ServerController
from desktop.ui.server.page import ServerPage
from desktop.ui.widgets.page import Page
from desktop.ui.widgets.theme import apply_theme, compare_icon

log = logging.getLogger(__name__)

STATE_KEY = "window"
PAGES = (  # (key, title, tooltip)
    ("models", "Models", "Download, import and manage models"),
    ("completion", "Completion", "A base model continues your text"),
    ("chat", "Chat", "Talk with an instruct model"),
    ("compare", "Compare", "The same prompt through a base model and its instruct sibling"),
    ("server", "Server", "Serve the loaded models on an OpenAI-compatible API (scripts, lm-eval)"),
)
NAV_CSS = ("QListWidget#navigation { border: none; background: palette(alternate-base); padding-top: 6px; }"
           "QListWidget#navigation::item { padding: 4px 8px; border-radius: 6px; margin: 1px 6px; }"
           "QListWidget#navigation::item:selected { background: palette(highlight);"
           " color: palette(highlighted-text); }")


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Tandem")
        self.context = context
        self._rates: dict[str, float] = {}
        self._usage: dict[str, tuple[int, int]] = {}

        self.models_page = ModelsPage(context)
        self.completion_pane = CompletionPane(context)
        self.chat_pane = ChatPane(context)
        self.compare_pane = ComparePane(context)
        self.server = ServerController(context, self)  # runs while the window is open (see runtime/server.py)
        self.server_page = ServerPage(context, self.server)
        self.pages: dict[str, Page] = {"models": self.models_page, "completion": self.completion_pane, "chat": self.chat_pane,
                      "compare": self.compare_pane, "server": self.server_page}

        self.stack = QStackedWidget()
        self.stack.setObjectName("pages")
        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setAccessibleName("Navigation")
        self.nav.setFixedWidth(150)
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setSpacing(2)
        icons = (QStyle.StandardPixmap.SP_DriveHDIcon, QStyle.StandardPixmap.SP_FileDialogDetailedView,
                 QStyle.StandardPixmap.SP_MessageBoxQuestion, QStyle.StandardPixmap.SP_ToolBarHorizontalExtensionButton,
                 QStyle.StandardPixmap.SP_DriveNetIcon)
        for i, ((key, title, tip), icon) in enumerate(zip(PAGES, icons, strict=True)):
            item = QListWidgetItem(compare_icon(self.palette()) if key == "compare" else self.style().standardIcon(icon),
                                   title)
            item.setToolTip(f"{tip} (Ctrl+{i + 1})")
            item.setSizeHint(QSize(138, 40))
            self.nav.addItem(item)
            self.stack.addWidget(self.pages[key])
        self.nav.currentRowChanged.connect(self._on_page_changed)
        self.nav.setStyleSheet(NAV_CSS)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._build_status_bar()
        self._build_menus()
        self._build_shortcuts()

        context.models.changed.connect(self._update_models_status)
        context.generationRate.connect(self._on_rate)
        context.contextUsage.connect(self._on_usage)
        context.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 8000))
        context.settingsChanged.connect(lambda s: apply_theme(s.theme))
        self.server.stateChanged.connect(self._update_server_status)
        self._update_models_status()
        self._restore_state()
        QTimer.singleShot(0, self.server.resume)  # it was on when Tandem closed: on again, after the window shows

    # --- building --------------------------------------------------------------------------------

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setObjectName("statusBar")
        self.backend_label = QLabel()
        self.backend_label.setObjectName("backendLabel")
        self.loaded_label = QLabel()
        self.loaded_label.setObjectName("loadedModelsLabel")
        self.rate_label = QLabel()
        self.rate_label.setObjectName("rateLabel")
        self.context_label = QLabel()
        self.context_label.setObjectName("contextLabel")
        self.server_label = QLabel()
        self.server_label.setObjectName("serverStatusLabel")
        self.server_label.setMinimumWidth(1)  # its URL must not widen the window
        for label in (self.server_label, self.loaded_label, self.rate_label, self.context_label, self.backend_label):
            label.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(label)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.new_action = QAction("&New", self)
        self.new_action.setShortcut(QKeySequence.StandardKey.New)
        self.new_action.setToolTip("A new document, chat or run in the current pane")
        self.new_action.triggered.connect(self.new_item)
        file_menu.addAction(self.new_action)
        file_menu.addSeparator()
        settings_action = QAction("&Settings…", self)
        settings_action.setShortcut(QKeySequence("Ctrl+,"))  # Cmd+, on macOS
        settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        settings_action.triggered.connect(self.open_settings)
        file_menu.addAction(settings_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = menu.addMenu("&View")
        for i, (_key, title, _tip) in enumerate(PAGES):
            action = QAction(title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, row=i: self.nav.setCurrentRow(row))
            view_menu.addAction(action)

        help_menu = menu.addMenu("&Help")
        about = QAction("&About Tandem", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _build_shortcuts(self) -> None:
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self.primary_action)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.stop)

    # --- actions ---------------------------------------------------------------------------------

    def current_page(self) -> Page:
        return self.pages[PAGES[self.stack.currentIndex()][0]]

    def show_page(self, key: str) -> None:
        self.nav.setCurrentRow([k for k, _t, _tip in PAGES].index(key))

    def primary_action(self) -> None:
        self.current_page().primary_action()

    def stop(self) -> None:
        self.current_page().stop()

    def new_item(self) -> None:
        self.current_page().new_item()

    def open_settings(self):
        from desktop.ui.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.context, self)
        dialog.open()
        return dialog

    def _about(self) -> None:
        QMessageBox.about(self, "About Tandem",
                          f"<h3>Tandem {__version__}</h3><p>Run base and instruction-tuned GGUF models side by "
                          "side on your own computer: the base model <i>continues</i> text, the instruct model "
                          "<i>answers</i> it.</p><p>Models run locally with llama.cpp.</p>")

    def _on_page_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        self._update_context_label()

    # --- status bar ------------------------------------------------------------------------------

    def _update_models_status(self) -> None:
        loaded = self.context.models.loaded_models()
        loading = self.context.models.loading_models()
        names = [key.name for key, _h in loaded]
        text = "Loaded: " + ", ".join(names) if names else "No model loaded"
        if loading:
            text += " · loading " + ", ".join(k.name for k in loading) + "…"
        self.loaded_label.setText(text)
        backends = sorted({h.info.backend for _k, h in loaded})
        remote = sorted({f"{h.info.backend} ({key.name})" for key, h in loaded if h.capabilities.remote})
        self.backend_label.setText("Backend: " + (" / ".join(backends) if backends else "—"))
        self.backend_label.setToolTip("Where the loaded models run (CPU, CUDA, Metal, Vulkan)" + (
            ". Prompts to these go over the network: " + ", ".join(remote) if remote else ""))

    def _update_server_status(self) -> None:
        self.server_label.setText(f"Serving on {self.server.url}" if self.server.running else "")
        self.server_label.setToolTip("The Server page has its URLs and request log" if self.server.running else "")

    def _on_rate(self, source: str, rate: float) -> None:
        if rate > 0:
            self._rates[source] = rate
        else:
            self._rates.pop(source, None)
        parts = [f"{source.title()} {r:.1f} tok/s" for source, r in sorted(self._rates.items())]
        self.rate_label.setText(" · ".join(parts))

    def _on_usage(self, source: str, used: int, size: int) -> None:
        self._usage[source] = (used, size)
        self._update_context_label()

    def _update_context_label(self) -> None:
        key = PAGES[self.stack.currentIndex()][0] if self.stack.currentIndex() >= 0 else ""
        used, size = self._usage.get(key, (0, 0))
        if size:
            self.context_label.setText(f"Context {used:,} / {size:,}")
            self.context_label.setToolTip("Tokens of the model's context window this pane uses")
        else:
            self.context_label.setText("")

    # --- state -----------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        state = self.context.ui_state(STATE_KEY)
        geometry = state.get("geometry")
        restored = False
        if isinstance(geometry, str):
            restored = self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        if not restored:
            self.resize(1280, 800)
        page = state.get("page")
        keys = [k for k, _t, _tip in PAGES]
        if not isinstance(page, str) or page not in keys:  # first start: show where to get a model when the
            if self.context.library_has_files():           # library is empty (known now when no file exists
                page = "completion"                        # at all, or once the scan finds none usable)
                self.context.libraryChanged.connect(self._first_start_page)
            else:  # switching pages after the window shows would stall its first seconds (~50 ms)
                page = "models"
        self.show_page(page)

    def _first_start_page(self, entries: list) -> None:
        self.context.libraryChanged.disconnect(self._first_start_page)
        if not entries:
            self.show_page("models")

    def state(self) -> dict:
        return {"geometry": bytes(self.saveGeometry().toBase64()).decode("ascii"),
                "page": PAGES[self.stack.currentIndex()][0]}

    def save_state(self) -> None:
        try:
            self.context.set_ui_state(STATE_KEY, self.state())
        except Exception as exc:  # an unwritable settings file must not stop the app from closing
            log.warning("could not save the window's state: %s", exc)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # a theme switch: the navigation's style sheet took
            self.nav.setStyleSheet("")                # its palette() colours when it was applied; again
            self.nav.setStyleSheet(NAV_CSS)
            self.nav.item([k for k, _, _ in PAGES].index("compare")).setIcon(compare_icon(self.palette()))  # drawn in its colours

    def closeEvent(self, event) -> None:
        for key, page in self.pages.items():
            try:
                page.shutdown()
            except Exception:  # one page's failure must not keep the others from saving, or the app open
                log.exception("the %s page failed to shut down cleanly", key)
        self.save_state()
        self.server.shutdown()  # before the models it serves are closed
        self.context.shutdown()
        super().closeEvent(event)
