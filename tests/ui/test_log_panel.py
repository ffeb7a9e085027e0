"""The log panel: lines are seen from their start; only the trader scrolls it sideways."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractSlider

from desktop.engine.snapshots import LogLine
from desktop.ui.log_panel import LogPanel

LONG = "2026-01-08 09:43:00 - LiveAgent-BANKNIFTY - WARNING - entry refused by risk: " + "x" * 300


def test_lines_added_while_hidden_are_shown_from_their_start(qtbot):
    panel = LogPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 200)
    # A page behind the Positions tab: the lines arrive before the panel is ever shown.
    panel.add_lines([LogLine("BANKNIFTY", "INFO", "short line"), LogLine("BANKNIFTY", "WARNING", LONG)])
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(20)
    sideways = panel.view.horizontalScrollBar()
    assert sideways.maximum() > 0  # the long line does not fit
    assert sideways.value() == 0


def test_the_trader_can_still_scroll_sideways(qtbot):
    panel = LogPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 200)
    panel.show()
    qtbot.waitExposed(panel)
    panel.add_lines([LogLine("BANKNIFTY", "WARNING", LONG)])
    sideways = panel.view.horizontalScrollBar()
    sideways.triggerAction(QAbstractSlider.SliderAction.SliderPageStepAdd)  # a click on the bar
    moved = sideways.value()
    panel.add_lines([LogLine("BANKNIFTY", "INFO", LONG)])
    assert moved > 0 and sideways.value() == moved
