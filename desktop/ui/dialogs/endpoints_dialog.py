"""Settings → Endpoints: the inference servers Tandem may send prompts to (vLLM, SGLang, llama-server, Ollama).

Each endpoint has a name, a base URL and, if the server needs one, an API key. The key goes to the OS
keyring through ``desktop.core.endpoints.EndpointStore`` and is never shown back, written to the settings,
a log, the history or an export; where no keyring backend exists the dialog says so in one line and offers
an environment variable instead (only its *name* is stored). "Test connection" asks the server, off the
GUI thread, what it is and what each of its models can do; every fault is one line under the form.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.core.endpoints import Endpoint, EndpointStore, keyring_status, normalize_base_url
from desktop.core.errors import EndpointError, TandemError
from desktop.engine.backends import describe_endpoint
from desktop.ui.dialogs.endpoints_view import describe_html, endpoint_line
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import run_in_thread

log = logging.getLogger(__name__)
ERROR_STYLE = "color: #c0392b;"


class EndpointsDialog(QDialog):
    def __init__(self, context: AppContext, parent: QWidget | None = None, store: EndpointStore | None = None):
        super().__init__(parent)
        self.setObjectName("endpointsDialog")
        self.setWindowTitle("Endpoints")
        self.context = context
        self.store = store or context.endpoint_store()
        self.editing: Endpoint | None = None  # the saved endpoint the form edits (None: a new one)
        self._test_call = None
        self._refreshing = False  # "Refresh models" waits for the endpoints' answer
        self.keyring_ok, self.keyring_note = keyring_status()
        context.remote.changed.connect(self._on_remote_listed)  # a method: it goes with this dialog

        intro = QLabel("Inference servers (vLLM, SGLang, llama-server, Ollama) whose models appear in every "
                       "model picker. Prompts sent to a model on a server leave this computer.")
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(self._build_list())
        layout.addLayout(self._build_form())
        layout.addLayout(self._build_actions())
        self.message = QLabel()
        self.message.setObjectName("endpointMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        self.result = QTextBrowser()
        self.result.setObjectName("testResult")
        self.result.setPlaceholderText("Test connection lists the server's models and what each can do.")
        layout.addWidget(self.result, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.resize(640, 560)
        self.refresh_list()
        self.new_endpoint()
        self.name.setFocus()  # not the list: focusing it would pick its first endpoint over the empty form

    # --- building --------------------------------------------------------------------------------

    def _build_list(self) -> QHBoxLayout:
        self.list = QListWidget()
        self.list.setObjectName("endpointList")
        self.list.setAccessibleName("Saved endpoints")
        self.list.setMaximumHeight(120)
        self.list.currentItemChanged.connect(lambda item, _prev: item is not None and self.edit(item.data(
            Qt.ItemDataRole.UserRole)))
        self.add_button = QPushButton("Add")
        self.add_button.setObjectName("addEndpointButton")
        self.add_button.clicked.connect(self.new_endpoint)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("removeEndpointButton")
        self.remove_button.clicked.connect(self.remove_current)
        # The pickers list each endpoint's models as they were when last asked; a model loaded on the server
        # since then appears after this (the dialog is where a person manages endpoints).
        self.refresh_button = QPushButton("Refresh models")
        self.refresh_button.setObjectName("refreshModelsButton")
        self.refresh_button.setToolTip("Ask every endpoint again which models it serves; the model pickers "
                                       "update when they answer")
        self.refresh_button.clicked.connect(self.refresh_models)
        buttons = QVBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        return row

    def _build_form(self) -> QFormLayout:
        self.name = QLineEdit()
        self.name.setObjectName("endpointName")
        self.name.setPlaceholderText("gpu-box")
        self.url = QLineEdit()
        self.url.setObjectName("endpointUrl")
        self.url.setPlaceholderText("http://gpu-box:8000")
        self.key = QLineEdit()
        self.key.setObjectName("endpointKey")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_env = QLineEdit()
        self.key_env.setObjectName("endpointKeyEnv")
        self.key_env.setPlaceholderText("or the name of an environment variable that holds it, e.g. VLLM_API_KEY")
        self.keyring_label = QLabel("No OS keyring is available here (headless Linux without a Secret Service), so "
                                    "Tandem can't store API keys: name an environment variable above that holds it.")
        self.keyring_label.setObjectName("keyringNote")
        self.keyring_label.setWordWrap(True)
        self.keyring_label.setVisible(not self.keyring_ok)
        self.key.setEnabled(self.keyring_ok)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Base URL", self.url)
        form.addRow("API key", self.key)
        form.addRow("", self.key_env)
        form.addRow("", self.keyring_label)
        return form

    def _build_actions(self) -> QHBoxLayout:
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("testConnectionButton")
        self.test_button.clicked.connect(self.test_connection)
        self.save_button = QPushButton("Save endpoint")
        self.save_button.setObjectName("saveEndpointButton")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.test_button)
        row.addWidget(self.save_button)
        return row

    # --- the list --------------------------------------------------------------------------------

    def refresh_list(self, select: str = "") -> None:
        self.list.blockSignals(True)
        self.list.clear()
        try:
            endpoints = self.store.list()
        except TandemError as exc:
            self._say(str(exc), error=True)
            endpoints = []
        for ep in endpoints:
            item = QListWidgetItem(endpoint_line(ep.name, ep.url, ep.api_key_env,
                                                 not ep.api_key_env and self.store.has_key(ep)))
            item.setData(Qt.ItemDataRole.UserRole, ep)
            self.list.addItem(item)
            if ep.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.remove_button.setEnabled(bool(endpoints))
        self.refresh_button.setEnabled(bool(endpoints))

    def refresh_models(self) -> None:
        """Ask every endpoint for its models again (off the GUI thread); say what each answered."""
        self._refreshing = True
        self.refresh_button.setEnabled(False)
        self._say("Asking the endpoints which models they serve…")
        self.context.remote.refresh()

    def _on_remote_listed(self, entries: list) -> None:
        if not self._refreshing:
            return
        self._refreshing = False
        self.refresh_button.setEnabled(self.list.count() > 0)
        parts = [f"{e.endpoint}: {e.error}" if e.error else
                 f"{e.endpoint}: {len(e.models)} model{'' if len(e.models) == 1 else 's'}" for e in entries]
        self._say("Refreshed. " + "; ".join(parts) + "." if parts else "No endpoints to ask.",
                  error=any(e.error for e in entries))

    def new_endpoint(self) -> None:
        """An empty form for a new endpoint."""
        self.list.clearSelection()
        self.list.setCurrentRow(-1)
        self._fill(None)

    def edit(self, ep: Endpoint) -> None:
        self._fill(ep)

    def _fill(self, ep: Endpoint | None) -> None:
        self.editing = ep
        self.name.setText(ep.name if ep else "")
        self.url.setText(ep.url if ep else "")
        self.key.clear()
        self.key_env.setText(ep.api_key_env if ep else "")
        stored = ep is not None and not ep.api_key_env and self.store.has_key(ep)
        self.key.setPlaceholderText("a key is stored in the keyring (type a new one to replace it)" if stored
                                    else "none (only if the server asks for one)" if self.keyring_ok
                                    else "no keyring here: use an environment variable below")
        self.result.clear()
        self._say("")

    def remove_current(self) -> None:
        item = self.list.currentItem()
        if item is None:
            self._say("Pick the endpoint to remove in the list.", error=True)
            return
        ep: Endpoint = item.data(Qt.ItemDataRole.UserRole)
        try:
            self.store.remove(ep.name)
        except (TandemError, OSError) as exc:
            self._say(str(exc), error=True)
            return
        self._changed()
        self.refresh_list()
        self.new_endpoint()
        self.name.setFocus()  # not the list: focusing it would pick its first endpoint over the empty form
        self._say(f"Removed {ep.name} (and its stored key).")

    # --- save and test ---------------------------------------------------------------------------

    def _key_for(self, name: str) -> str | None:
        """The key to use: the one typed, else the one stored for the endpoint being edited."""
        typed = self.key.text().strip()
        if typed:
            return typed
        if self.editing is not None and not self.editing.api_key_env and not self.key_env.text().strip():
            return self.store.api_key(self.editing)  # keep the stored key on an edit (or a rename)
        return None

    def save(self) -> bool:
        name, url, env = self.name.text().strip(), self.url.text().strip(), self.key_env.text().strip()
        old = self.editing
        try:
            key = self._key_for(name)
            saved = self.store.add(name, url, api_key=key, api_key_env=env or None)
            if old is not None and old.name != saved.name:
                self.store.remove(old.name)  # a rename: the old name's settings and key go
        except (TandemError, OSError) as exc:
            self._say(str(exc), error=True)
            return False
        self.key.clear()
        self._changed()
        self.refresh_list(select=saved.name)
        self._fill(saved)
        self._say(f"Saved {saved.name}. Its models appear in the model pickers"
                  + (" (the key is in the OS keyring, not in the settings)." if key and not saved.api_key_env
                     else "."))
        return True

    def test_connection(self) -> None:
        """Ask the server (off the GUI thread) what it is and what its models can do."""
        try:
            url = normalize_base_url(self.url.text())
            key = self._env_key() or self._key_for(self.name.text().strip())
        except (ValueError, TandemError) as exc:
            self._say(str(exc), error=True)
            return
        if self._test_call is not None:
            self._test_call.discard()
        self.test_button.setEnabled(False)
        self.result.clear()
        self._say(f"Asking {url}… (checking a model's scores takes a few seconds)")
        self._test_call = run_in_thread(lambda: describe_endpoint(url, key), self._on_tested, self._on_test_failed,
                                        name="tandem-endpoint-test")

    def _env_key(self) -> str | None:
        env = self.key_env.text().strip()
        if not env:
            return None
        value = os.environ.get(env, "").strip()
        if not value:
            raise EndpointError(f"${env} is not set in Tandem's environment, so there is no key to send.")
        return value

    def _on_tested(self, report: dict) -> None:
        self._test_call = None
        self.test_button.setEnabled(True)
        self.result.setHtml(describe_html(report))
        n = len(report.get("models") or [])
        self._say(f"Connected: {n} model{'' if n == 1 else 's'}.")

    def _on_test_failed(self, exc: BaseException) -> None:
        self._test_call = None
        self.test_button.setEnabled(True)
        if not isinstance(exc, TandemError):
            log.warning("testing an endpoint: %r", exc)
        self._say(str(exc) if isinstance(exc, TandemError) else f"The test failed: {exc}", error=True)

    # --- helpers ---------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.context.endpoints_changed()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else "")

    def done(self, result: int) -> None:
        if self._test_call is not None:
            self._test_call.discard()
        super().done(result)
