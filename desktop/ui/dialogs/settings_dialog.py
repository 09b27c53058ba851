"""The settings dialog: models folder, threads, GPU layers, default context, offline mode, HF token, theme,
and the button to Settings → Endpoints (inference servers).

Values are checked by ``Settings.validated()`` and saved atomically by the context; a bad value shows its
one-line reason in the dialog and nothing is lost. The Hugging Face token never goes into the settings file:
it is handed to the hub's own token store.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
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

log = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.context = context
        s = context.settings

        form = self._build_form(s)
        note = QLabel("Threads, GPU layers and context apply to models loaded from now on.")
        note.setObjectName("settingsNote")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(placeholder-text);")

        self.error = QLabel()
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addWidget(buttons, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(560, self.sizeHint().height())

    def _build_form(self, s) -> QFormLayout:
        """Every setting's field, in one form."""
        folder_row, gpu_row = self._machine_fields(s)
        token_row = self._token_fields()
        self.theme = QComboBox()
        self.theme.setObjectName("themeCombo")
        for label, value in (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark")):
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(s.theme)))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Models folder", folder_row)
        form.addRow("Threads", self.threads)
        form.addRow("GPU layers", gpu_row)
        form.addRow("Default context", self.default_ctx)
        form.addRow("", self.offline)
        form.addRow("Hugging Face token", token_row)
        form.addRow("", self.token_status)
        form.addRow("Theme", self.theme)
        self.endpoints_button = QPushButton("Endpoints…")
        self.endpoints_button.setObjectName("endpointsButton")
        self.endpoints_button.setToolTip("Inference servers (vLLM, SGLang, llama-server, Ollama) to run models on")
        self.endpoints_button.clicked.connect(self.open_endpoints)
        endpoints_row = QHBoxLayout()
        endpoints_row.addWidget(self.endpoints_button)
        endpoints_row.addStretch(1)
        form.addRow("Inference servers", endpoints_row)
        return form

    def open_endpoints(self):
        """Settings → Endpoints: its own dialog (saved as you go, apart from this form's Save)."""
        from desktop.ui.dialogs.endpoints_dialog import EndpointsDialog

        dialog = EndpointsDialog(self.context, self)
        dialog.open()
        return dialog

    def _machine_fields(self, s) -> tuple[QHBoxLayout, QHBoxLayout]:
        """Where models live and how they run: folder, threads, GPU layers, context, offline."""
        self.models_dir = QLineEdit(s.models_dir)
        self.models_dir.setObjectName("modelsDirEdit")
        self.models_dir.setPlaceholderText(str(self.context.models_dir()) if not s.models_dir else "")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.models_dir, 1)
        folder_row.addWidget(browse)

        self.threads = QSpinBox()
        self.threads.setObjectName("threadsSpin")
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText(f"automatic ({os.cpu_count() or '?'} cores)")
        self.threads.setValue(s.threads)

        self.gpu_auto = QCheckBox("automatic (all layers when a GPU backend is available)")
        self.gpu_auto.setObjectName("gpuAuto")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setObjectName("gpuLayersSpin")
        self.gpu_layers.setRange(0, 999)
        self.gpu_auto.toggled.connect(lambda on: self.gpu_layers.setEnabled(not on))
        if s.gpu_layers == "auto":
            self.gpu_auto.setChecked(True)
            self.gpu_layers.setEnabled(False)
        else:
            self.gpu_layers.setValue(int(s.gpu_layers))
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_layers)
        gpu_row.addWidget(self.gpu_auto, 1)

        self.default_ctx = QSpinBox()
        self.default_ctx.setObjectName("defaultCtxSpin")
        self.default_ctx.setRange(128, 1_048_576)
        self.default_ctx.setSingleStep(1024)
        self.default_ctx.setSuffix(" tokens")
        self.default_ctx.setValue(s.default_ctx)
        self.default_ctx.setToolTip("4096 means: the model's trained context, at most 4096 tokens.")

        self.offline = QCheckBox("Work offline (no request leaves this computer)")
        self.offline.setObjectName("offlineCheck")
        self.offline.setChecked(s.offline)
        return folder_row, gpu_row

    def _token_fields(self) -> QHBoxLayout:
        """The Hugging Face token (stored by the hub's own store) and its status."""
        self.token = QLineEdit()
        self.token.setObjectName("hfTokenEdit")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        from desktop.hub import auth  # the hub's own token store; imported when the dialog opens

        self.auth = auth
        self.token_status = QLabel()
        self.token_status.setObjectName("hfTokenStatus")
        self.token_status.setWordWrap(True)
        self.forget_token = QPushButton("Forget token")
        self.forget_token.setObjectName("forgetTokenButton")
        self.forget_token.clicked.connect(self._forget_token)
        self._refresh_token_status()
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.forget_token)
        return token_row

    def _browse(self) -> None:
        start = self.models_dir.text() or str(self.context.models_dir())
        chosen = QFileDialog.getExistingDirectory(self, "Models folder", start)
        if chosen:
            self.models_dir.setText(chosen)

    def _refresh_token_status(self) -> None:
        try:
            status = self.auth.token_status()
            present, source = status.present, status.source
        except Exception as exc:  # an unreadable token file: offer to replace it
            log.warning("could not read the stored Hugging Face token: %s", exc)
            present, source = False, None
        self.token.setPlaceholderText("a token is stored (type a new one to replace it)" if present
                                      else "hf_… (needed for gated models only)")
        self.forget_token.setEnabled(present and source != "environment")
        where = {"environment": "The token comes from the HF_TOKEN environment variable.",
                 "token store": "A token is stored in Hugging Face's own token file (shared with the hf CLI)."}
        self.token_status.setText(where.get(source or "", "No token: public models need none.")
                                  + " Tandem never writes it into its settings.")

    def _forget_token(self) -> None:
        try:
            self.auth.clear_token()
        except (TandemError, OSError) as exc:
            self._show_error(str(exc))
            return
        self._refresh_token_status()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(True)

    def values(self) -> dict:
        return {
            "models_dir": self.models_dir.text().strip(),
            "threads": self.threads.value(),
            "gpu_layers": "auto" if self.gpu_auto.isChecked() else str(self.gpu_layers.value()),
            "default_ctx": self.default_ctx.value(),
            "offline": self.offline.isChecked(),
            "theme": self.theme.currentData(),
        }

    def save(self) -> bool:
        """Validate and save; a new token is checked with the hub off the GUI thread, then stored."""
        values = self.values()
        if values["models_dir"]:
            try:
                os.makedirs(os.path.expanduser(values["models_dir"]), exist_ok=True)
            except OSError as exc:
                self._show_error(f"Can't use {values['models_dir']} as the models folder: {exc.strerror or exc}.")
                return False
        try:
            self.context.update_settings(**values)
        except TandemError as exc:
            self._show_error(str(exc))
            return False
        except OSError as exc:
            self._show_error(f"Could not save the settings: {exc.strerror or exc}.")
            return False
        token = self.token.text().strip()
        if token:
            self._save_token(token)
            return True
        self.accept()
        return True

    def _save_token(self, token: str) -> None:
        from desktop.ui.runtime.workers import run_in_thread

        self.buttons.setEnabled(False)
        self.token_status.setText("Checking the token with Hugging Face…")
        self.error.setVisible(False)

        def done(_status) -> None:
            self.buttons.setEnabled(True)
            self.token.clear()
            self._refresh_token_status()
            self.accept()

        def failed(exc: BaseException) -> None:
            self.buttons.setEnabled(True)
            self._refresh_token_status()
            self._show_error(f"The other settings were saved, but not the token: {exc}"
                             if isinstance(exc, TandemError) else f"Could not store the token: {exc}")

        self._token_call = run_in_thread(lambda: self.auth.set_token(token), done, failed,
                                         name="tandem-token")
