"""Compare's "Evaluate…" button: the two loaded models on lm-evaluation-harness tasks (``EvalDialog``), and a
question the person picks in its browser brought back to Compare's prompt, to look at token by token."""

from __future__ import annotations

from desktop.compare.pair_model import PairModel
from desktop.ui.dialogs.eval_dialog import EvalDialog

SIDES = ("base", "instruct")


class EvaluateController:
    """Owns the dialog (one at a time on these models); built by the pane with what it needs."""

    def __init__(self, models: PairModel, widgets, parent, show_prompt):
        self.models, self.widgets, self.parent = models, widgets, parent
        self.show_prompt = show_prompt  # puts a question's text in Compare's prompt box
        self.dialog: EvalDialog | None = None
        widgets.controls.evaluate_button.clicked.connect(self.open)

    def open(self) -> EvalDialog | None:
        base, instruct = (self.models[s].handle for s in SIDES)
        if base is None or instruct is None:
            self.widgets.notice.show_message("Load a base model and an instruct model first.", "warning")
            return None
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return self.dialog
        if self.dialog is not None:
            self.dialog.deleteLater()
        paths = {s: self.models[s].path or getattr(h.info, "name", s) for s, h in zip(SIDES, (base, instruct))}
        dialog = self.dialog = EvalDialog(base, instruct, str(paths["base"]), str(paths["instruct"]), self.parent)
        dialog.open_in_compare.connect(self.show_prompt)
        dialog.show()
        return dialog

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.close()
