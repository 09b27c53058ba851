"""The Downloads list: one row per download with its progress bar, status line and the buttons that apply
now, over a summary line.

Split from ``models_downloads`` (the ``DownloadCenter`` behind it): this module only shows the center's
``DownloadState`` values and sends the person's clicks back to it.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.fit import human_bytes
from desktop.ui.models.models_common import ERROR_COLOR, format_eta
from desktop.ui.models.models_downloads import ACTIVE, DownloadCenter, DownloadState, display_name
from desktop.ui.widgets.layout import restyle, set_progress


class DownloadRow(QFrame):
    """One download: name, repository, a progress bar, a status line and the buttons that apply now."""

    def __init__(self, center: DownloadCenter, state: DownloadState, on_token: Callable[[], None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("downloadRow")
        self.download_id = state.id
        self.center = center
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#downloadRow { border: 1px solid palette(mid); border-radius: 6px; }")
        self.title = QLabel(f"<b>{escape(display_name(state.filename))}</b>")
        self.title.setObjectName("downloadTitle")
        self.repo = QLabel(state.repo)
        self.repo.setObjectName("downloadRepo")
        self.repo.setStyleSheet("color: palette(placeholder-text);")
        self.bar = QProgressBar()
        self.bar.setObjectName("downloadProgress")
        self.bar.setTextVisible(True)
        self.bar.setFixedHeight(16)
        self.status = QLabel()
        self.status.setObjectName("downloadStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.pause_button = self._button("Pause", "pauseButton", lambda: center.pause(self.download_id))
        self.resume_button = self._button("Resume", "resumeButton", lambda: center.resume(self.download_id))
        self.cancel_button = self._button("Cancel", "cancelButton", lambda: center.cancel(self.download_id))
        self.token_button = self._button("Add a token…", "tokenButton", on_token)
        self.dismiss_button = self._button("Dismiss", "dismissButton", lambda: center.dismiss(self.download_id))

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.repo)
        top.addStretch(1)
        for b in (self.token_button, self.pause_button, self.resume_button, self.cancel_button, self.dismiss_button):
            top.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.update_state(state)

    def _button(self, text: str, name: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.clicked.connect(slot)
        return button

    def update_state(self, s: DownloadState) -> None:
        total = s.total or 0
        if total:
            self.bar.setRange(0, 1000)
            set_progress(self.bar, int(1000 * min(s.bytes, total) / total), f"{100 * s.bytes / total:.0f}%")
        else:
            self.bar.setRange(0, 0 if s.kind in ("started", "progress") else 1000)
            self.bar.setValue(0)
            self.bar.setFormat("")
        amount = f"{human_bytes(s.bytes)} of {human_bytes(total)}" if total else ""
        color = ""
        if s.kind == "queued":
            text = s.message if s.message and s.message != "queued" else "Waiting for a free download slot…"
        elif s.kind == "started":
            text = f"Starting… {amount}".strip()
        elif s.kind == "progress":
            parts = [amount, f"{human_bytes(s.speed)}/s" if s.speed else "", format_eta(s.eta)]
            text = " · ".join(p for p in parts if p)
        elif s.kind == "verifying":
            text = f"Checking the sha256 checksum of {human_bytes(total)}…" if total else "Checking the checksum…"
        elif s.kind == "paused":
            text = f"Paused at {amount}; resume fetches only the rest." if total else "Paused."
        elif s.kind == "interrupted":
            text = (f"Interrupted when Tandem last closed, at {amount}; resume fetches only the rest."
                    if total else "Interrupted when Tandem last closed; resume to continue.")
        elif s.kind == "done":
            text = f"Done: verified and in your library ({human_bytes(total)})." if total else "Done."
            self.bar.setRange(0, 1000)
            self.bar.setValue(1000)
            self.bar.setFormat("100%")
        elif s.kind == "cancelled":
            text = "Cancelled; the partial download was deleted."
        else:  # error
            text = s.message or "The download failed."
            if s.bytes and s.error_kind not in ("checksum", "gated", "not-found") and "kept" not in text:
                text += f" The {human_bytes(s.bytes)} downloaded so far are kept; Retry resumes from there."
            color = ERROR_COLOR
        self.bar.setVisible(bool(total) or s.kind in ("started", "progress", "queued"))
        self.status.setText(text)
        restyle(self.status, f"color: {color};" if color else "")
        self.status.setToolTip(text)
        running = s.kind in ACTIVE
        self.pause_button.setVisible(running and s.kind != "verifying")
        self.resume_button.setVisible(s.kind in ("paused", "interrupted", "error"))
        self.resume_button.setText("Retry" if s.kind == "error" else "Resume")
        leftover = s.kind in ("paused", "interrupted") or (s.kind == "error" and s.bytes > 0)
        self.cancel_button.setVisible(running or leftover)
        self.cancel_button.setText("Discard" if s.kind in ("paused", "interrupted", "error") else "Cancel")
        self.cancel_button.setToolTip("Stop and delete the partial download")
        self.token_button.setVisible(s.kind == "error" and s.error_kind == "gated")
        self.dismiss_button.setVisible(s.kind in ("done", "cancelled") or (s.kind == "error" and not s.bytes))


class DownloadsView(QWidget):
    """Every download this session knows about, newest first, plus the ones left from a previous run."""

    def __init__(self, center: DownloadCenter, on_token: Callable[[], None], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("downloadsView")
        self.center = center
        self.on_token = on_token
        self.rows: dict[str, DownloadRow] = {}
        self.empty = QLabel("No downloads. Pick a pair in the catalog, or a file from a Hugging Face search.")
        self.empty.setObjectName("downloadsEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(placeholder-text); padding: 24px;")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setObjectName("clearFinishedButton")
        self.clear_button.clicked.connect(self.clear_finished)
        self.summary = QLabel()
        self.summary.setObjectName("downloadsSummary")

        self.list_widget = QWidget()
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.setSpacing(6)
        self.list_layout.addWidget(self.empty)
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.list_widget)
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        bar = QHBoxLayout()
        bar.addWidget(self.summary, 1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)
        center.changed.connect(self.on_changed)
        self._update_summary()

    def on_changed(self, state: DownloadState) -> None:
        row = self.rows.get(state.id)
        if state.kind == "dismissed":
            if row is not None:
                self.rows.pop(state.id)
                row.setParent(None)
                row.deleteLater()
        elif row is None:
            row = DownloadRow(self.center, state, self.on_token)
            self.rows[state.id] = row
            self.list_layout.insertWidget(0, row)  # newest on top
        else:
            row.update_state(state)
        self.empty.setVisible(not self.rows)
        self._update_summary()

    def clear_finished(self) -> None:
        for state in list(self.center.states()):
            if state.kind in ("done", "cancelled"):
                self.center.dismiss(state.id)

    def _update_summary(self) -> None:
        states = self.center.states()
        active = [s for s in states if s.active]
        waiting = [s for s in states if s.kind in ("paused", "interrupted", "error")]
        parts = []
        if active:
            speed = sum(s.speed for s in active)
            parts.append(f"{len(active)} downloading" + (f" at {human_bytes(speed)}/s" if speed else ""))
        if waiting:
            parts.append(f"{len(waiting)} paused or failed")
        self.summary.setText(" · ".join(parts) if parts else "")
        self.clear_button.setVisible(any(s.kind in ("done", "cancelled") for s in states))

    def row(self, download_id: str) -> DownloadRow | None:
        return self.rows.get(download_id)
