"""The chart's crosshair readout fits its pane, never resizes the plot, and goes when the mouse leaves."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QEvent, QPointF

from desktop.domain import Segment
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.ui.chart import IndexChartView
from desktop.ui.theme import DARK
from tests.ui.fakes import make_bars


def _chart(qtbot, width: int) -> IndexChartView:
    chart = IndexChartView(Segment.BANKNIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(width, 360)
    bars = make_bars(120, base=61250)
    chart.update_from(
        SegmentSnapshot(
            Segment.BANKNIFTY, AgentState.RUNNING, bars=bars, bars_version=1,
            fast_ema=tuple(b.close for b in bars), slow_ema=tuple(b.close for b in bars),
        )
    )  # fmt: skip
    chart.show()
    qtbot.waitExposed(chart)
    chart.grab()
    return chart


def test_a_long_readout_wraps_inside_its_pane_and_the_plot_keeps_its_size(qtbot, tmp_path):
    chart = _chart(qtbot, 320)  # a narrow pane: the readout's one line is ~600 px
    plot_before = chart.price_plot.sceneBoundingRect()
    readout_before = chart.readout.sceneBoundingRect()
    inside = chart.price_plot.sceneBoundingRect().center()
    chart._mouse_moved((QPointF(inside.x() + 100, inside.y()),))  # a bar near the right edge
    chart.grab().save(str(tmp_path / "readout.png"))
    assert "O 61," in chart.readout.item.toPlainText()
    assert chart.price_plot.sceneBoundingRect() == plot_before, "hovering never resizes the plot"
    assert chart.readout.sceneBoundingRect() == readout_before
    text_rect = chart.readout.item.mapRectToScene(chart.readout.item.boundingRect())
    assert text_rect.right() <= chart.width() + 1, "the readout wraps at the pane's edge"
    assert text_rect.height() <= chart.readout.sceneBoundingRect().height() + 1, "two lines at most"
    assert chart.v_line.isVisible() and chart.h_line.isVisible()


def test_the_readout_and_crosshair_go_when_the_mouse_leaves(qtbot):
    chart = _chart(qtbot, 700)
    assert not chart.v_line.isVisible(), "no crosshair before the mouse comes"
    inside = chart.price_plot.sceneBoundingRect().center()
    chart._mouse_moved((inside,))
    assert chart.readout.item.toPlainText().strip()
    chart.leaveEvent(QEvent(QEvent.Type.Leave))
    assert "O 61," not in chart.readout.item.toPlainText()  # the bar's values go; the legend stays
    assert not chart.v_line.isVisible() and not chart.h_line.isVisible() and not chart.v_line2.isVisible()
    chart._mouse_moved((QPointF(2, 2),))  # over the readout, outside the plot: nothing shown either
    assert "O 61," not in chart.readout.item.toPlainText()


def test_the_ema_colours_have_a_legend_and_the_option_strip_is_named_with_labelled_levels(qtbot, tmp_path):
    chart = _chart(qtbot, 700)
    legend = chart.readout.item.toHtml()
    assert "fast EMA" in legend and "slow EMA" in legend
    assert DARK.fast_ema.lower() in legend.lower() and DARK.slow_ema.lower() in legend.lower()
    bars = chart.candles.bars
    held = SegmentSnapshot(
        Segment.BANKNIFTY, AgentState.RUNNING, bars=bars, bars_version=1, option_symbol="BANKNIFTY26DEC61200CE",
        quantity=30, entry_price=Decimal("412.35"), stop_price=Decimal("391.70"), option_price=Decimal("415.00"),
        last_tick_time=bars[-1].start, fast_ema=tuple(b.close for b in bars), slow_ema=tuple(b.close for b in bars),
    )  # fmt: skip
    chart.update_from(held)
    qtbot.wait(50)  # the layout gives the strip its row
    chart.grab().save(str(tmp_path / "premium.png"))
    assert chart.premium_plot.isVisible() and chart.premium_plot.geometry().height() > 40
    assert chart.premium_title.item.toPlainText() == "BANKNIFTY26DEC61200CE premium"
    assert chart.entry_line.label.toPlainText() == "entry 412.35"
    assert chart.stop_line.label.toPlainText() == "SL 391.70"
    assert chart.entry_line.label.isVisible() and chart.stop_line.label.isVisible()
    narrow = chart.premium_title_text(150)
    assert "…" in narrow and narrow.startswith("BANK") and narrow.endswith("CE premium")
