"""The Server page: serve the loaded models on an OpenAI-compatible API, and watch the requests come in.

It is a page of its own, not a Settings tab: the request log is something a person watches while a script or
lm-eval runs, the served models follow what the panes load, and Settings is a dialog that closes. The page
shows and edits; ``ServerController`` (ui/runtime/server.py, owned by the main window) runs the server. Every
refusal (a port in use, a non-loopback host without a key) is one line under the switch.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import TandemError
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.server import ServerController
from desktop.ui.server.request_log import RequestLogModel, RequestLogView
from desktop.ui.server.served_models import ServedModels
from desktop.ui.widgets.layout import make_timer
from desktop.ui.widgets.page import Page

EXPLAIN = ("Serve the models loaded in Completion, Chat and Compare on an OpenAI-compatible API, for scripts, "
           "notebooks, the <i>openai</i> SDK and lm-evaluation-harness. It runs while Tandem is open; a model "
           "is served while a pane has it loaded. Prompts are scored exactly (<code>echo</code> + "
           "<code>logprobs</code>), with the model's own tokenizer at <code>/tokenize</code>.")
ERROR_CSS = "color: #c0392b;"
MUTED_CSS = "color: palette(placeholder-text);"
NO_MODELS = "No model is loaded: pick one in Completion, Chat or Compare and it is served here."


class ServerPage(Page):
    def __init__(self, context: AppContext, server: ServerController, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.setObjectName("serverPage")
        self.server = server
        self._key_checked = False
        self._refresh_timer = make_timer(self, 0, self._refresh_models)

        title = QLabel("<span style='font-size:16pt; font-weight:600'>Server</span>")
        explain = QLabel(EXPLAIN)
        explain.setObjectName("serverExplain")
        explain.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 8)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(explain)
        layout.addLayout(self._build_switch_row())
        layout.addWidget(self.message)
        layout.addLayout(self._build_form())
        layout.addWidget(self._section("Models served"))
        self.models = ServedModels(server)
        self.models.copied.connect(lambda url: self._say(f"Copied {url}"))
        self.no_models = QLabel(NO_MODELS)
        self.no_models.setObjectName("serverNoModels")
        self.no_models.setWordWrap(True)
        self.no_models.setStyleSheet(MUTED_CSS)
        layout.addWidget(self.models)
        layout.addWidget(self.no_models)
        log_row = QHBoxLayout()
        log_row.addWidget(self._section("Requests"), 1)
        self.clear_log = QPushButton("Clear")
        self.clear_log.setObjectName("clearRequestLog")
        log_row.addWidget(self.clear_log)
        layout.addLayout(log_row)
        self.log_model = RequestLogModel(parent=self)
        self.log_view = RequestLogView(self.log_model)
        layout.addWidget(self.log_view, 1)
        self.clear_log.clicked.connect(self.log_model.clear)

        server.stateChanged.connect(self._update_state)
        server.servedChanged.connect(self._refresh_timer.start)
        server.requestsLogged.connect(self.log_model.append)
        self._update_state()
        self._refresh_models()
        self._page_ready()

    # --- building --------------------------------------------------------------------------------

    def _build_switch_row(self) -> QHBoxLayout:
        self.toggle = QPushButton("Start server")
        self.toggle.setObjectName("serverToggle")
        self.toggle.setCheckable(True)
        self.toggle.setMinimumWidth(120)
        self.toggle.clicked.connect(self._on_toggle)
        self.status = QLabel()
        self.status.setObjectName("serverStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setMinimumWidth(1)  # a long URL must not widen the window
        self.copy_url = QPushButton("Copy URL")
        self.copy_url.setObjectName("copyServerUrl")
        self.copy_url.setToolTip("Copy the server's base URL (with one model served, its /v1 is that model's)")
        self.copy_url.clicked.connect(self._copy_url)
        self.message = QLabel()  # the one line a refusal or failure gets
        self.message.setObjectName("serverMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.toggle)
        row.addSpacing(6)
        row.addWidget(self.status)
        row.addWidget(self.copy_url)
        row.addStretch(1)
        return row

    def _build_form(self) -> QFormLayout:
        s = self.context.settings
        self.host = QLineEdit(s.server_host)
        self.host.setObjectName("serverHost")
        self.host.setPlaceholderText("127.0.0.1")
        self.host.setToolTip("127.0.0.1: this computer only. 0.0.0.0 or another address opens it to the network, "
                             "which needs an API key.")
        self.host.setMaximumWidth(260)
        self.port = QSpinBox()
        self.port.setObjectName("serverPort")
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setValue(s.server_port)
        self.port.setMinimumWidth(110)
        where = QHBoxLayout()
        where.addWidget(self.host, 1)
        where.addWidget(QLabel("Port"))
        where.addWidget(self.port)
        where.addStretch(1)

        self.key = QLineEdit()
        self.key.setObjectName("serverKey")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setMaximumWidth(260)
        self.key.returnPressed.connect(self._save_key)
        self.save_key = QPushButton("Save key")
        self.save_key.setObjectName("saveServerKey")
        self.save_key.clicked.connect(self._save_key)
        self.forget_key = QPushButton("Forget key")
        self.forget_key.setObjectName("forgetServerKey")
        self.forget_key.clicked.connect(self._forget_key)
        self.key.setToolTip("Clients send it as “Authorization: Bearer <key>”. A host other than 127.0.0.1 "
                            "needs one.")
        self.key_status = QLabel()  # one line beside the buttons (a wrapped label in a form row gets a gap)
        self.key_status.setObjectName("serverKeyStatus")
        self.key_status.setStyleSheet(MUTED_CSS)
        self.key_status.setMinimumWidth(1)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.save_key)
        key_row.addWidget(self.forget_key)
        key_row.addSpacing(6)
        key_row.addWidget(self.key_status, 1)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Host", where)
        form.addRow("API key", key_row)
        return form

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(f"<b>{text}</b>")
        label.setContentsMargins(0, 6, 0, 0)
        return label

    # --- actions ---------------------------------------------------------------------------------

    def _on_toggle(self, on: bool) -> None:
        if on:
            self.server.set_enabled(True, self.host.text(), self.port.value())
        else:
            self.server.set_enabled(False)
        self._update_state()

    def _copy_url(self) -> None:
        if self.server.url:
            QGuiApplication.clipboard().setText(self.server.url)
            self._say(f"Copied {self.server.url}")

    def _save_key(self) -> None:
        key = self.key.text().strip()
        if not key:
            self._say("Type a key first: clients then send it as “Authorization: Bearer <key>”.", error=True)
            return
        try:
            where = self.server.set_api_key(key)
        except TandemError as exc:
            self._say(str(exc), error=True)
            return
        self.key.clear()
        restart = " It applies when the server starts again." if self.server.running else ""
        self._say(f"The key is kept {where}.{restart}")
        self._update_key_status()

    def _forget_key(self) -> None:
        self.server.forget_api_key()
        restart = " The running server keeps it until it starts again." if self.server.running else ""
        self._say(f"The key is forgotten.{restart}")
        self._update_key_status()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_CSS if error else MUTED_CSS)
        self.message.setVisible(bool(text))

    # --- showing ---------------------------------------------------------------------------------

    def _update_state(self) -> None:
        server = self.server
        busy, running = server.busy, server.running
        self.toggle.setChecked(running or busy == "starting")
        self.toggle.setText({"starting": "Starting…", "stopping": "Stopping…"}.get(
            busy, "Stop server" if running else "Start server"))
        self.toggle.setEnabled(busy != "stopping")
        for widget in (self.host, self.port):  # where it listens changes while it is off
            widget.setEnabled(not running and not busy)
        if running:
            self.status.setText(f"Serving on <b>{server.url}</b>")
            self.status.setToolTip(f"Serving on {server.url}")
        else:
            self.status.setText({"starting": "Starting…", "stopping": "Stopping…"}.get(busy, "Off"))
            self.status.setToolTip("")
        self.copy_url.setEnabled(running)
        if server.error:
            self._say(server.error, error=True)
        elif busy == "starting" or self.message.styleSheet() == ERROR_CSS:  # the refusal no longer holds
            self._say("")
        self._refresh_timer.start()

    def _refresh_models(self) -> None:
        self.models.refresh()
        empty = self.models.topLevelItemCount() == 0
        self.models.setVisible(not empty)
        self.no_models.setVisible(empty)

    def _update_key_status(self) -> None:
        ok, _note = self.server.keyring_available()
        has_key = bool(self.server.api_key())
        self.forget_key.setEnabled(has_key)
        self.key.setPlaceholderText("a key is set: type one to replace it" if has_key else "none")
        where = "in the OS keyring" if ok else "for this session only (no OS keyring here)"
        self.key_status.setText(f"A key is set, {where}: clients must send it." if has_key
                                else "No key: any program on this computer may connect.")
        self.key_status.setToolTip(self.key.toolTip())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._key_checked:  # the keyring is asked when the page is first seen, not at start-up
            self._key_checked = True
            self._update_key_status()
