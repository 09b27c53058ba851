"""The sampling settings panel shared by the Completion and Chat panes (and reusable by Compare).

Every field maps to one ``SamplingParams`` field. The seed is random per run unless pinned: the panel shows
the seed the last run actually used, so a sample worth keeping can be pinned and reproduced exactly.
Each pane keeps its own panel and remembers its values (``state()`` / ``set_state()``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.types import SamplingParams

NO_LIMIT = 2**31 - 1  # "no limit": the engine then stops when the context is full

_TIPS = {
    "temperature": "How random each pick is. 0 always takes the most likely token; 1 samples the model's "
                   "own distribution; higher is wilder.",
    "top_k": "Sample only among the K most likely tokens (0 = no limit).",
    "top_p": "Sample only among the most likely tokens whose probabilities add up to P (1 = off).",
    "min_p": "Drop tokens less likely than this fraction of the top token's probability (0 = off).",
    "repeat_penalty": "Above 1 makes recently used tokens less likely (1 = off).",
    "max_tokens": "Stop after this many new tokens (0 = until the context is full or the model stops).",
    "stop": "Generation stops before any of these strings. Separate several with commas; write \\n for a "
            "new line and \\, for a comma.",
    "seed": "The random seed. Unpinned, each run draws a new one (shown here after the run); pin it to "
            "reproduce a sample exactly.",
}


def parse_stop_strings(text: str) -> tuple[str, ...]:
    """'a, \\n\\n, x\\,y' -> ('a', '\\n\\n', 'x,y'): commas separate, backslash escapes."""
    out, current, i = [], [], 0
    escapes = {"n": "\n", "t": "\t", ",": ",", "\\": "\\"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    # spaces around commas are for reading; a stop string that *is* whitespace is written with escapes
    return tuple(s.strip(" ") for s in out if s.strip(" "))


def format_stop_strings(stops: tuple[str, ...] | list[str]) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(",", "\\,").replace("\n", "\\n").replace("\t", "\\t")

    return ", ".join(esc(s) for s in stops)


SEED_MAX = 2**31 - 1


def line_edit_width(edit: QLineEdit, text: str) -> int:
    """The width ``edit`` needs to show ``text`` whole in its font: text, Qt's 2 px side margins, the
    text and contents margins, the cursor, and the style's frame."""
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QStyle, QStyleOptionFrame

    margins = edit.textMargins()
    contents = edit.contentsMargins()
    inner = (edit.fontMetrics().horizontalAdvance(text) + 2 * 2 + 1 + margins.left() + margins.right()
             + contents.left() + contents.right())
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    size = edit.style().sizeFromContents(QStyle.ContentsType.CT_LineEdit, option,
                                         QSize(inner, edit.fontMetrics().height()), edit)
    return max(size.width(), inner + 2 * edit.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth))


class SamplingPanel(QWidget):
    """Sampling controls. ``params()`` builds validated SamplingParams (raises ValueError, one line)."""

    changed = Signal()

    def __init__(self, defaults: SamplingParams | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("samplingPanel")
        self._defaults = defaults or SamplingParams()
        self._last_seed: int | None = None

        title = QLabel("Sampling")
        title.setObjectName("panelTitle")
        font = title.font()
        font.setBold(True)
        title.setFont(font)

        self._build_boxes()
        self._build_seed()
        form = self._build_form()

        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setObjectName("resetSampling")
        self.reset_button.clicked.connect(self.reset)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.reset()

    def _build_boxes(self) -> None:
        """One box per sampling parameter, the stop strings included."""
        self.temperature = self._double("temperature", 0.0, 5.0, 0.05, 2)
        self.top_k = self._int("topK", 0, 1000)
        self.top_p = self._double("topP", 0.0, 1.0, 0.01, 2)
        self.min_p = self._double("minP", 0.0, 1.0, 0.01, 2)
        self.repeat_penalty = self._double("repeatPenalty", 0.5, 2.5, 0.05, 2)
        self.max_tokens = self._int("maxTokens", 0, 131072)
        self.max_tokens.setSpecialValueText("no limit")
        self.max_tokens.setSingleStep(64)
        self.stop = QLineEdit()
        self.stop.setObjectName("stopStrings")
        self.stop.setPlaceholderText("none")
        self.stop.textChanged.connect(self.changed)

    def _build_seed(self) -> None:
        """The seed box and its Pin."""
        self.seed = QLineEdit()
        self.seed.setObjectName("seedEdit")
        self.seed.setValidator(QIntValidator(0, SEED_MAX, self.seed))
        self.seed.setPlaceholderText("random")
        self.seed_pin = QCheckBox("Pin")
        self.seed_pin.setObjectName("seedPin")
        self.seed_pin.setToolTip("Pinned: every run uses this seed and gives the same text.")
        self.seed_pin.toggled.connect(self._pin_toggled)
        self.seed.textChanged.connect(self.changed)
        self.seed.setMinimumWidth(line_edit_width(self.seed, str(SEED_MAX)))  # a 10-digit seed is never cut

    def _build_form(self) -> QFormLayout:
        """The boxes in a form, each with its tip, the seed last."""
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, widget, tip in (("Temperature", self.temperature, "temperature"), ("Top-k", self.top_k, "top_k"),
                                   ("Top-p", self.top_p, "top_p"), ("Min-p", self.min_p, "min_p"),
                                   ("Repeat penalty", self.repeat_penalty, "repeat_penalty"),
                                   ("Max tokens", self.max_tokens, "max_tokens"), ("Stop at", self.stop, "stop")):
            widget.setToolTip(_TIPS[tip])
            form.addRow(label, widget)
        seed_label = QLabel("Seed")
        seed_label.setToolTip(_TIPS["seed"])
        self.seed.setToolTip(_TIPS["seed"])
        form.addRow(seed_label, self.seed)
        form.addRow("", self.seed_pin)  # under the box: beside it, a 10-digit seed had no room in a narrow panel
        return form

    def _double(self, name: str, lo: float, hi: float, step: float, decimals: int) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setObjectName(name)
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setDecimals(decimals)
        box.valueChanged.connect(self.changed)
        return box

    def _int(self, name: str, lo: int, hi: int) -> QSpinBox:
        box = QSpinBox()
        box.setObjectName(name)
        box.setRange(lo, hi)
        box.valueChanged.connect(self.changed)
        return box

    # --- values ----------------------------------------------------------------------------------

    def reset(self) -> None:
        self.set_params(self._defaults)
        self.seed_pin.setChecked(False)
        self._pin_toggled(False)

    def set_params(self, p: SamplingParams) -> None:
        self.temperature.setValue(p.temperature)
        self.top_k.setValue(p.top_k)
        self.top_p.setValue(p.top_p)
        self.min_p.setValue(p.min_p)
        self.repeat_penalty.setValue(p.repeat_penalty)
        self.max_tokens.setValue(p.max_tokens)
        self.stop.setText(format_stop_strings(p.stop))
        if p.seed is not None:
            self.seed.setText(str(p.seed))
            self.seed_pin.setChecked(True)

    def params(self, logprobs: int = 0) -> SamplingParams:
        seed = None
        if self.seed_pin.isChecked():
            if not self.seed.text().strip():
                raise ValueError("Pinned seed is empty: type a seed or unpin it.")
            seed = int(self.seed.text())
        return SamplingParams(
            temperature=round(self.temperature.value(), 4), top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4), min_p=round(self.min_p.value(), 4),
            repeat_penalty=round(self.repeat_penalty.value(), 4),
            max_tokens=self.max_tokens.value() or NO_LIMIT,
            stop=parse_stop_strings(self.stop.text()), seed=seed, logprobs=logprobs,
        ).validate()

    def set_last_seed(self, seed: int | None) -> None:
        """Show the seed a run used, ready to be pinned (does nothing while a seed is pinned)."""
        self._last_seed = seed
        if not self.seed_pin.isChecked() and seed is not None:
            self.seed.setText(str(seed))

    def _pin_toggled(self, pinned: bool) -> None:
        self.seed.setReadOnly(not pinned)
        self.seed.setEnabled(True)
        if not pinned:
            self.seed.setText("" if self._last_seed is None else str(self._last_seed))
        self.seed.setPlaceholderText("type a seed" if pinned else "random")
        self.changed.emit()

    def state(self) -> dict[str, Any]:
        """JSON values for Settings.ui_state."""
        return {"temperature": self.temperature.value(), "top_k": self.top_k.value(),
                "top_p": self.top_p.value(), "min_p": self.min_p.value(),
                "repeat_penalty": self.repeat_penalty.value(), "max_tokens": self.max_tokens.value(),
                "stop": self.stop.text(), "seed": self.seed.text(), "seed_pinned": self.seed_pin.isChecked()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()`` output; unknown or bad values keep their current value."""
        for key, box in (("temperature", self.temperature), ("top_p", self.top_p), ("min_p", self.min_p),
                         ("repeat_penalty", self.repeat_penalty)):
            if isinstance(state.get(key), (int, float)) and not isinstance(state.get(key), bool):
                box.setValue(float(state[key]))
        for key, box in (("top_k", self.top_k), ("max_tokens", self.max_tokens)):
            if isinstance(state.get(key), int) and not isinstance(state.get(key), bool):
                box.setValue(state[key])
        if isinstance(state.get("stop"), str):
            self.stop.setText(state["stop"])
        pinned = bool(state.get("seed_pinned"))
        self.seed_pin.setChecked(pinned)
        if isinstance(state.get("seed"), str) and state["seed"].isdigit():
            if pinned:
                self.seed.setText(state["seed"])
            else:
                self.set_last_seed(int(state["seed"]))
