"""The index chart's time axis follows the candles through a whole trading day (issue 25: the axis read
12:39 … 13:39 at 14:17 and at 15:30 while new candles kept arriving at the right edge)."""

from __future__ import annotations

from datetime import datetime, timedelta

from PySide6.QtCore import QPointF
from PySide6.QtGui import QFont, QFontMetricsF

from desktop.domain import Segment
from desktop.engine.chart import MAX_BARS_SHOWN
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.ui.chart import IndexChartView
from desktop.ui.theme import DARK
from tests.ui.fakes import make_bars

YESTERDAY = datetime(2026, 1, 7, 9, 15)
TODAY = datetime(2026, 1, 8, 9, 15)


def _labels_match_their_bars(chart: IndexChartView) -> list[tuple[int, str]]:
    """The labels the time axis last drew, each with the index it stands under; asserts each is its bar's time."""
    axis = chart.price_plot.getAxis("bottom")
    bars = chart.candles.bars
    drawn = []
    for value, text in axis.drawn_labels:
        i = round(value)
        if not text:
            continue
        start = bars[i].start
        expected = start.strftime("%H:%M" if start.date() == bars[-1].start.date() else "%d %b %H:%M")
        assert text == expected, f"the label under bar {i} reads {text} but that bar is {expected}"
        drawn.append((i, text))
    return drawn


def test_the_time_axis_follows_the_candles_through_a_whole_day(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(900, 420)
    history = make_bars(375, start=YESTERDAY)  # yesterday's session as warm-up
    day = make_bars(375, start=TODAY, base=26100)  # 09:15 … 15:29
    seen_last = []
    for minute in range(0, 375):
        closed = (history + day[:minute])[-MAX_BARS_SHOWN:]  # the engine keeps the latest 400 closed bars
        seg = SegmentSnapshot(
            Segment.NIFTY, AgentState.RUNNING, bars=closed, bars_version=minute + 1, forming_bar=day[minute],
            last_tick_time=day[minute].start + timedelta(seconds=30),
        )  # fmt: skip
        chart.update_from(seg)
        if minute % 15 == 0 or minute == 374:
            chart.grab()  # paints: the axis draws its labels (or replays its cached picture)
            drawn = _labels_match_their_bars(chart)
            assert drawn, "the time axis shows labels"
            x0, x1 = chart.price_plot.getViewBox().viewRange()[0]
            assert x0 <= len(closed) <= x1, "the forming candle is in view"
            seen_last.append(drawn[-1][1])
    # The last closed candle (15:28) is at the right edge; its own minute is what the axis reads there.
    last = chart.candles.bars[-1]
    assert last.start.strftime("%H:%M") == "15:28"
    axis = chart.price_plot.getAxis("bottom")
    assert axis.tickStrings([float(len(chart.candles.bars) - 1)], 1, 1) == ["15:28"]
    assert seen_last[-1] >= "15:0", f"the axis's newest label at 15:29 reads {seen_last[-1]}"


def test_time_labels_fall_on_round_times_and_never_overlap(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    history = make_bars(120, start=YESTERDAY.replace(hour=13, minute=30))
    day = make_bars(200, start=TODAY, base=26100)
    for width in (320, 600, 1200):
        chart.resize(width, 360)
        chart.update_from(
            SegmentSnapshot(Segment.NIFTY, AgentState.RUNNING, bars=history + day, bars_version=width)
        )
        chart.grab()
        axis = chart.price_plot.getAxis("bottom")
        drawn = [(v, t) for v, t in axis.drawn_labels if t]
        assert len(drawn) >= 2, f"at {width} px the axis shows times"
        for value, text in drawn:
            start = chart.candles.bars[round(value)].start
            day_start = round(value) > 0 and chart.candles.bars[round(value) - 1].start.date() != start.date()
            assert start.minute % 5 == 0 or day_start, f"{text} is not a round time"
        metrics = QFontMetricsF(axis.style["tickFont"] or QFont())
        vb = chart.price_plot.getViewBox()
        xs = [vb.mapViewToScene(QPointF(v, 0)).x() for v, _ in drawn]
        widths = [metrics.horizontalAdvance(t) for _, t in drawn]
        for k in range(1, len(xs)):
            assert xs[k] - xs[k - 1] >= (widths[k] + widths[k - 1]) / 2 + 4, f"labels overlap at {width} px"
