"""The index chart draws incrementally: a new bar costs one picture, never a redraw of the history."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from desktop.domain import Segment
from desktop.engine.snapshots import AgentState, SegmentSnapshot, TradeMarker
from desktop.ui.candles import CandlestickItem
from desktop.ui.chart import IndexChart
from desktop.ui.theme import DARK, LIGHT
from tests.ui.fakes import make_bars


def _seg(bars, version, forming=None, **kw) -> SegmentSnapshot:
    n = len(bars)
    ema = tuple(b.close for b in bars)
    return SegmentSnapshot(
        Segment.NIFTY, AgentState.RUNNING, bars=bars, bars_version=version, forming_bar=forming,
        fast_ema=ema, slow_ema=(None,) * min(n, 3) + ema[3:], **kw,
    )  # fmt: skip


def test_a_closed_bar_records_one_picture_not_the_history(qtbot):
    item = CandlestickItem(DARK)
    bars = make_bars(301)
    item.set_bars(bars[:300], 1, bars[300])
    assert item.bars_drawn == 1  # only the forming bar: closed bars wait until they are painted
    item.ensure_drawn(0, 300)
    assert item.bars_drawn == 301
    item.set_bars(bars[:301], 2, None)
    item.ensure_drawn(0, 301)
    assert item.bars_drawn == 302  # only the newly closed bar
    assert len(item.bars) == 301


def test_painting_records_only_the_bars_in_view(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    chart.update_from(_seg(make_bars(600), 1))
    chart.grab()  # paints
    drawn = chart.candles.bars_drawn
    assert 0 < drawn <= 100  # the last ~90 bars in view, not the 600 of history
    chart.price_plot.getViewBox().setXRange(0, 50, padding=0)
    chart.grab()
    assert chart.candles.bars_drawn - drawn >= 45


def test_forming_bar_updates_redraw_only_that_bar(qtbot):
    item = CandlestickItem(DARK)
    bars = make_bars(100)
    item.set_bars(bars, 1, None)
    item.ensure_drawn(0, 100)
    drawn = item.bars_drawn
    forming = make_bars(101)[100]
    for k in range(5):
        item.set_bars(bars, 1, replace(forming, close=forming.close + k))
    assert item.bars_drawn == drawn + 5


def test_sliding_window_keeps_cached_bars(qtbot):
    item = CandlestickItem(DARK)
    bars = make_bars(120)
    item.set_bars(bars[:100], 1, None)
    item.ensure_drawn(0, 100)
    item.set_bars(bars[10:110], 2, None)  # ten dropped at the front, ten new at the end
    item.ensure_drawn(0, 100)
    assert item.bars_drawn == 110
    assert item.bars[0] == bars[10]


def test_replaced_history_is_redrawn(qtbot):
    item = CandlestickItem(DARK)
    item.set_bars(make_bars(50), 1, None)
    item.ensure_drawn(0, 50)
    item.set_bars(make_bars(50, base=30000), 2, None)
    item.ensure_drawn(0, 50)
    assert item.bars_drawn == 100


def test_price_range_follows_only_the_visible_bars(qtbot):
    item = CandlestickItem(DARK)
    low = make_bars(10, base=100)
    high = make_bars(10, start=low[-1].start + timedelta(minutes=1), base=200)
    item.set_bars(low + high, 1, None)
    lo, hi = item.dataBounds(1, orthoRange=(0, 9))
    assert hi < 150 and lo > 80
    lo, hi = item.dataBounds(1, orthoRange=(10, 19))
    assert lo > 180
    assert item.dataBounds(0) == (-0.5, 19.5)


def test_crosshair_readout_shows_the_bar_and_both_emas(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(40)
    chart.update_from(_seg(bars, 1))
    text = chart.readout_text(5, 25901.5)
    b = bars[5]
    assert f"O {b.open:,.2f}" in text and f"C {b.close:,.2f}" in text and b.start.strftime("%H:%M") in text
    assert "fast" in text and "slow" in text
    assert "slow" not in chart.readout_text(1, 25900.0)  # no slow EMA yet during its warm-up


def test_markers_sit_on_their_bars_and_stop_line_shows_while_holding(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(40)
    entry = TradeMarker(bars[12].start + timedelta(seconds=20), Decimal("25910"), "entry", "BUY CE")
    exit_ = TradeMarker(bars[30].start, Decimal("25930"), "exit", "SL 172.10")
    seg = _seg(
        bars, 1, markers=(entry, exit_), option_symbol="NIFTY2611325900CE", quantity=65,
        entry_price=Decimal("182.35"), stop_price=Decimal("173.25"), option_price=Decimal("183"),
        last_tick_time=bars[-1].start + timedelta(seconds=70),
    )  # fmt: skip
    chart.update_from(seg)
    xs, ys = chart.entries.getData()
    assert list(xs) == [12.0] and list(ys) == [25910.0]
    assert list(chart.exits.getData()[0]) == [30.0]
    assert chart.stop_line.isVisible() and chart.stop_line.value() == 173.25
    chart.update_from(replace(seg, quantity=0, option_symbol=None))
    assert not chart.stop_line.isVisible()


def test_new_bar_scrolls_the_view_when_watching_the_latest(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(200)
    chart.update_from(_seg(bars[:150], 1))
    x0, x1 = chart.price_plot.getViewBox().viewRange()[0]
    assert x1 >= 149
    chart.update_from(_seg(bars[:151], 2))
    y0, y1 = chart.price_plot.getViewBox().viewRange()[0]
    assert round(y1 - x1) == 1 and round(y0 - x0) == 1


def test_theme_switch_recolours_every_cached_bar(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.update_from(_seg(make_bars(20), 1))
    chart.candles.ensure_drawn(0, 20)
    before = chart.candles.bars_drawn
    chart.set_theme(LIGHT)
    chart.candles.ensure_drawn(0, 20)
    assert chart.candles.bars_drawn == before + 20


def test_premium_kept_in_the_background_is_drawn_at_its_own_bars(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(40)
    held = dict(option_symbol="NIFTY2611325900CE", quantity=65, entry_price=Decimal("182.35"))
    chart.update_from(_seg(bars[:10], 1))
    # In the background (no drawing): samples during bars 20 and 30, which the chart has not seen yet.
    for i, price in ((20, "181"), (30, "190")):
        t = bars[i].start + timedelta(seconds=30)
        chart.record_premium(_seg(bars[:10], 1, last_tick_time=t, option_price=Decimal(price), **held))
    chart.update_from(_seg(bars, 2, **held))  # brought to front: bars caught up, samples drawn
    xs, ys = chart.premium_curve.getData()
    assert list(xs) == [20.5, 30.5] and list(ys) == [181.0, 190.0]
    assert chart.premium_plot.isVisible()


def test_a_closed_bar_is_recorded_when_it_arrives_so_showing_the_chart_records_nothing(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    bars = make_bars(120)
    chart.update_from(_seg(bars[:100], 1))
    chart.update_from(_seg(bars[:110], 2))  # ten bars closed while the tab was in the background
    drawn = chart.candles.bars_drawn
    chart.grab()  # the frame that brings the chart forward
    assert chart.candles.bars_drawn == drawn


def test_a_deferred_chart_paints_its_background_first_and_the_chart_later(qtbot):
    chart = IndexChart(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    chart.update_from(_seg(make_bars(100), 1))
    chart.defer_paint(30)
    first = chart.grab().toImage()  # the first frame: the background only
    background = first.pixelColor(2, 2)
    grid = [(x, y) for x in range(0, 800, 7) for y in range(0, 400, 7)]
    assert chart._paint_deferred and all(first.pixelColor(x, y) == background for x, y in grid)
    qtbot.waitUntil(lambda: not chart._paint_deferred, timeout=2000)
    later = chart.grab().toImage()
    assert any(later.pixelColor(x, y) != background for x, y in grid)  # then the chart itself
