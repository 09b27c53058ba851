"""The seed box shows the widest seed whole, even in Compare's narrow sampling column."""

from __future__ import annotations

from PySide6.QtWidgets import QScrollArea

from desktop.engine.types import SamplingParams
from desktop.ui.widgets.sampling_panel import SEED_MAX, SamplingPanel


def test_a_ten_digit_seed_fits_the_box_in_its_font_in_a_narrow_panel(qtbot):
    panel = SamplingPanel(SamplingParams(temperature=0.7, max_tokens=160))
    panel.set_params(SamplingParams(temperature=0.7, max_tokens=160, seed=SEED_MAX))
    scroll = QScrollArea()  # as the panes hold it (desktop/ui/widgets/layout.py)
    scroll.setWidgetResizable(True)
    scroll.setWidget(panel)
    qtbot.addWidget(scroll)
    scroll.resize(210, 600)  # Compare's sampling column
    scroll.show()
    qtbot.waitExposed(scroll)
    seed = panel.seed
    assert seed.text() == str(SEED_MAX) and panel.seed_pin.isChecked()
    # the room the text has inside the box: its contents, less the text margins and Qt's 2 px each side
    margins = seed.textMargins()
    room = seed.contentsRect().width() - margins.left() - margins.right() - 4
    assert seed.fontMetrics().horizontalAdvance(seed.text()) <= room
    assert seed.geometry().right() <= panel.width()  # and the box itself is not cut by the column
    assert panel.width() <= scroll.viewport().width()
