"""The settings dialog: models folder, threads, GPU layers, default context, offline mode, HF token, theme.

Values are checked by ``Settings.validated()`` and saved atomically by the context; a bad value shows its
one-line reason in the dialog and nothing is lost. The Hugging Face token never goes into the settings file:
it is handed to the hub's own token store.
"""

from __future__ import annotations

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
from desktop.ui.context import AppContext


def _hub_auth():
    """The hub's token store (desktop.hub.auth), or None if this build has none."""
    try:
        from desktop.hub import auth
    except ImportError:
        return None
    return auth if hasattr(auth, "set_token") else None


class SettingsDialog(QDialog):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.context = context
        s = context.settings

        self.models_dir = QLineEdit(s.models_dir)
        self.models_dir.setObjectName("modelsDirEdit")
        self.models_dir.setPlaceholderText(str(context.models_dir()) if not s.models_dir else "")
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

        self.token = QLineEdit()
        self.token.setObjectName("hfTokenEdit")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.auth = _hub_auth()
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

    def _browse(self) -> None:
        start = self.models_dir.text() or str(self.context.models_dir())
        chosen = QFileDialog.getExistingDirectory(self, "Models folder", start)
        if chosen:
            self.models_dir.setText(chosen)

    def _refresh_token_status(self) -> None:
        if self.auth is None:
            # TODO(models helper): desktop.hub.auth.set_token is not in this build yet; the token can't be saved.
            self.token.setEnabled(False)
            self.forget_token.setEnabled(False)
            self.token_status.setText("Token storage is not available in this build.")
            return
        has = False
        try:
            has = bool(self.auth.get_token()) if hasattr(self.auth, "get_token") else False
        except Exception:
            has = False
        self.token.setPlaceholderText("a token is stored (type to replace it)" if has else "hf_… (for gated models)")
        self.forget_token.setEnabled(has)
        self.token_status.setText("Stored in Hugging Face's own token file, not in Tandem's settings.")

    def _forget_token(self) -> None:
        try:
            if hasattr(self.auth, "delete_token"):
                self.auth.delete_token()
            else:
                self.auth.set_token(None)
        except TandemError as exc:
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
        values = self.values()
        if values["models_dir"]:
            try:
                os.makedirs(os.path.expanduser(values["models_dir"]), exist_ok=True)
            except OSError as exc:
                self._show_error(f"Can't use {values['models_dir']} as the models folder: {exc.strerror or exc}.")
                return False
        token = self.token.text().strip()
        try:
            if token and self.auth is not None:
                self.auth.set_token(token)
            self.context.update_settings(**values)
        except TandemError as exc:
            self._show_error(str(exc))
            return False
        except OSError as exc:
            self._show_error(f"Could not save the settings: {exc.strerror or exc}.")
            return False
        self.accept()
        return True
