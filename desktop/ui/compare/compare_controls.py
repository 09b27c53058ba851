"""The top of the Compare pane: the prompt, Run/Stop, the presets, the options and the hint line.

Only widgets here; the pane connects them. Kept apart so the pane's module reads as behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.compare.presets import DEFAULT_FEW_SHOT_TEMPLATE, GENERAL_HINT, PRESETS
from desktop.ui.compare.tab import Tab, Toggle
from desktop.ui.widgets.theme import is_dark
from desktop.ui.widgets.token_view import probability_color

COLOUR_MODES = (("own", "each model's own probability"), ("cross", "the other model's view"), ("off", "off"))


def _muted(label: QLabel) -> QLabel:
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


class PromptControls(QWidget):
    """Prompt editor, Run/Stop, one button per preset, few-shot and colour options, and a toggle for each
    details tab that has one (``tab_buttons``, by tab key, in the order of ``tabs``)."""

    def __init__(self, tabs: Sequence[Tab], parent: QWidget | None = None):
        super().__init__(parent)
        self.tab_buttons = {tab.key: self._toggle(tab.toggle) for tab in tabs if tab.toggle is not None}
        prompt_row = self._prompt_row()
        presets_row = self._presets_row()
        options_row, colours_row = self._options_rows()
        self.hint = QLabel(GENERAL_HINT)
        self.hint.setObjectName("compareHint")
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.hint.setStyleSheet("QLabel#compareHint { background: palette(alternate-base); border-radius: 4px;"
                                " padding: 5px 8px; }")


        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(prompt_row)
        layout.addLayout(presets_row)
        layout.addLayout(options_row)
        layout.addLayout(colours_row)
        layout.addWidget(self.hint)

    def _prompt_row(self) -> QHBoxLayout:
        """The prompt editor with Run both / Stop beside it."""
        self.prompt_input = QPlainTextEdit()
        self.prompt_input.setObjectName("promptInput")
        self.prompt_input.setAccessibleName("Prompt")
        self.prompt_input.setPlaceholderText("A prompt for both models — or pick one of the presets below. "
                                             "Run with Ctrl+Enter.")
        self.prompt_input.setTabChangesFocus(True)
        self.prompt_input.setFixedHeight(self.prompt_input.fontMetrics().lineSpacing() * 3 + 16)

        self.run_button = QPushButton("Run both")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Send the prompt to both models at once (Ctrl+Enter)")
        self.run_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop both models; what they wrote so far is kept (Esc)")
        self.stop_button.setEnabled(False)
        run_box = QVBoxLayout()
        run_box.addWidget(self.run_button)
        run_box.addWidget(self.stop_button)
        run_box.addStretch(1)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt_input, 1)
        prompt_row.addLayout(run_box)
        return prompt_row

    def _presets_row(self) -> QHBoxLayout:
        """One button per preset prompt."""
        presets_row = QHBoxLayout()
        presets_row.setSpacing(4)
        presets_row.addWidget(_muted(QLabel("Try:")))
        self.preset_buttons: dict[str, QToolButton] = {}
        for p in PRESETS:
            button = QToolButton()
            button.setObjectName(f"preset_{p.key}")
            button.setText(p.label)
            button.setToolTip(f"<p><b>{p.prompt}</b></p><p>{p.look_for}</p>")
            presets_row.addWidget(button)
            self.preset_buttons[p.key] = button
        presets_row.addStretch(1)
        return presets_row

    def _options_rows(self) -> tuple[QHBoxLayout, QHBoxLayout]:
        """Few-shot, the template, in-context alignment and the details toggles; then the colour mode, its
        legend and the prompt set. Two rows: on one, Compare's middle column needed ~1,000 px and squeezed the
        sampling column to a clipped strip in a 1,400-px window."""
        self.few_shot = QCheckBox("Few-shot the base model")
        self.few_shot.setObjectName("fewShotToggle")
        self.few_shot.setToolTip("Wrap the prompt for the base model in a Q:/A: template with a few examples, "
                                 "to see how far prompting alone takes a base model toward answering.")
        self.template_button = QToolButton()
        self.template_button.setObjectName("editTemplateButton")
        self.template_button.setText("Edit template…")
        self.colour_mode = QComboBox()
        self.colour_mode.setObjectName("colourMode")
        for key, text in COLOUR_MODES:
            self.colour_mode.addItem(text, key)
        self.colour_mode.setToolTip("Colour each token by how likely a model found it. “The other model's "
                                    "view” colours each column by the other model's probabilities: where "
                                    "its text surprises the other model. Hover a token for details.")
        self.legend = QLabel()
        self.legend.setObjectName("colourLegend")
        self.legend.setToolTip("Token colours: how probable the model found each token")
        self.update_legend()
        self._lens_options()
        options_row = QHBoxLayout()
        options_row.addWidget(self.few_shot)
        options_row.addWidget(self.template_button)
        options_row.addWidget(self.icl_toggle)
        options_row.addStretch(1)
        for toggle in self.tab_buttons.values():
            options_row.addWidget(toggle)
        colours_row = QHBoxLayout()
        colours_row.addWidget(QLabel("Colours:"))
        colours_row.addWidget(self.colour_mode)
        colours_row.addWidget(self.legend)
        colours_row.addStretch(1)
        colours_row.addWidget(self.prompt_set_button)
        colours_row.addWidget(self.evaluate_button)
        return options_row, colours_row

    def _lens_options(self) -> None:
        """The alignment lens: the in-context alignment preset, its view, and a whole prompt set."""
        self.icl_toggle = QCheckBox("In-context alignment")
        self.icl_toggle.setObjectName("iclToggle")
        self.icl_toggle.setToolTip("Give the base model a preamble and three stylistic example answers in "
                                   "'# Query:' / '# Answer:' form (URIAL): how close does prompting alone bring "
                                   "it to its instruct sibling? It stops at the next '# Query:'.")
        self.prompt_set_button = QToolButton()
        self.prompt_set_button.setObjectName("promptSetButton")
        self.prompt_set_button.setText("Run a prompt set…")
        self.prompt_set_button.setToolTip("Token shift over many prompts on these two models, with a report")
        self.evaluate_button = QToolButton()
        self.evaluate_button.setObjectName("evaluateButton")
        self.evaluate_button.setText("Evaluate…")
        self.evaluate_button.setToolTip("Both models on benchmark tasks (lm-evaluation-harness), side by side, "
                                        "question by question")

    @staticmethod
    def _toggle(toggle: Toggle) -> QToolButton:
        button = QToolButton()
        button.setObjectName(toggle.name)
        button.setText(toggle.text)
        button.setToolTip(toggle.tip)
        button.setCheckable(True)
        return button

    def update_legend(self) -> None:
        dark = is_dark(self)
        swatches = []
        for p, word in ((0.9, "sure"), (0.3, "hesitant"), (0.02, "surprising")):
            c = probability_color(p, dark)
            swatches.append(f"<span style='background: rgba({c.red()},{c.green()},{c.blue()},{c.alpha()});'>"
                            f"&nbsp;{word}&nbsp;</span>")
        self.legend.setText("&nbsp;".join(swatches))


class FewShotTemplateView(QWidget):
    """The editable few-shot template, with a note on what it does and a way back to the default."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QPlainTextEdit()
        self.edit.setObjectName("fewShotTemplate")
        self.edit.setPlainText(DEFAULT_FEW_SHOT_TEMPLATE)
        reset = QPushButton("Reset template")
        reset.setObjectName("resetTemplateButton")
        reset.clicked.connect(lambda: self.edit.setPlainText(DEFAULT_FEW_SHOT_TEMPLATE))
        note = QLabel("In few-shot mode the base model gets this text, with your prompt in place of {prompt}. "
                      "The example questions and answers make answering the natural way to continue; the run "
                      "stops where the model starts the next “Q:”. Try it with the directive presets.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(_muted(note))
        layout.addWidget(self.edit, 1)
        layout.addWidget(reset, 0, Qt.AlignmentFlag.AlignLeft)


TEMPLATE_TAB = Tab("template", "Few-shot template", FewShotTemplateView)  # opened by "Edit template…"
