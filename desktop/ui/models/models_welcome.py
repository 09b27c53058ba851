"""The Models page's welcome card: with an empty library, the one obvious first step in one button (the
smallest base/instruct pair that fits this machine), with its progress once started.

Split from ``models_page``, which decides what the card says (``ModelsPage._update_welcome``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)


class WelcomeCard(QFrame):
    """First start: what to do with an empty library, in one button."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("welcomeCard")
        self.setStyleSheet("#welcomeCard { background: rgba(61, 95, 184, 0.10); border: 1px solid "
                           "rgba(61, 95, 184, 0.45); border-radius: 8px; }")
        self.title = QLabel("<b style='font-size:13pt'>Your library is empty — start with a pair</b>")
        self.title.setObjectName("welcomeTitle")
        self.text = QLabel("Looking for the smallest pair that fits this machine…")
        self.text.setObjectName("welcomeText")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.fit = QLabel()
        self.fit.setObjectName("welcomeFit")
        self.button = QPushButton("Download the smallest pair that fits")
        self.button.setObjectName("smallestPairButton")
        self.button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("welcomeProgress")
        self.progress.setRange(0, 1000)
        self.progress.setFixedHeight(14)
        self.progress.setVisible(False)
        self.hint = QLabel("Or choose another pair in the <b>Catalog</b>, search <b>Hugging Face</b>, or use "
                           "<b>My models → Import…</b> for a .gguf file you already have.")
        self.hint.setObjectName("welcomeHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(placeholder-text);")
        self.fit.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.fit, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.progress, 1)
        row.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addLayout(row)
        layout.addWidget(self.hint)
