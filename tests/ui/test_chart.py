"""The index chart draws incrementally: a new bar costs one picture, never a redraw of the history."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from PySide6.QtCore import QPointF

from desktop.domain import Segment
from desktop.engine.snapshots import AgentState, SegmentSnapshot, TradeMarker
from desktop.ui import candles
from desktop.ui.candles import BLOCK_BARS, CandlestickItem
from desktop.ui.chart import FOLLOW_MARGIN_BARS, IndexChartView
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
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    chart.update_from(_seg(make_bars(600), 1))
    chart.grab()  # paints
    drawn = chart.candles.bars_drawn
    # The ~90 bars in view (and the rest of the block at the view's left edge), not the 600 of history.
    assert 0 < drawn <= 100 + BLOCK_BARS
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


def test_complete_blocks_become_one_picture_and_survive_the_sliding_window(qtbot):
    item = CandlestickItem(DARK)
    bars = make_bars(140)
    item.set_bars(bars[:100], 1, None)
    item.ensure_drawn(0, 100)
    assert sorted(item._blocks) == list(range(100 // BLOCK_BARS))  # the last 100 % 16 bars stay single
    assert item.bars_drawn == 100  # each bar recorded once, in its block or alone
    kept = item._blocks[2]
    item.set_bars(bars[20:120], 2, None)  # twenty dropped at the front: block 0 gone, block 1 lost four
    item.ensure_drawn(0, 100)
    assert 0 not in item._blocks and item._blocks[2] is kept and 1 in item._blocks
    assert 112 // BLOCK_BARS - 1 in item._blocks
    # Block 6 (bars 96-111) recorded once complete (96-99 had been single so far), 112-119 single.
    assert item.bars_drawn == 100 + 16 + 8


def test_bars_dropped_by_the_sliding_window_never_show_left_of_the_first_bar(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    bars = make_bars(200)
    chart.update_from(_seg(bars[:100], 1))
    chart.candles.ensure_drawn(0, 100)  # block 0 recorded with bars 0-15
    chart.update_from(_seg(bars[10:110], 2))  # bars 0-9 dropped: block 0 keeps them in its picture
    vb = chart.price_plot.getViewBox()
    vb.setXRange(-12, 20, padding=0)
    chart.v_line.setPos(30)  # the crosshair out of the way
    image = chart.grab().toImage()
    y0, y1 = vb.viewRange()[1]
    top_left = vb.mapViewToScene(QPointF(-11, y1)).toPoint()
    bottom_right = vb.mapViewToScene(QPointF(-1, y0)).toPoint()
    background = image.pixelColor(top_left.x(), top_left.y() + 1)
    assert all(
        image.pixelColor(x, y) == background
        for x in range(top_left.x(), bottom_right.x())
        for y in range(top_left.y() + 1, bottom_right.y() - 8, 3)  # above the time axis ticks
    )
    assert chart.candles._blocks.get(0) is not None  # still drawn from its block, clipped


def test_block_pictures_paint_exactly_what_single_bars_paint(qtbot, monkeypatch):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    bars = make_bars(200)
    chart.update_from(_seg(bars[:150], 1))
    chart.update_from(_seg(bars[5:155], 2))  # a sliding window: blocks no longer start at position 0
    with_blocks = chart.grab().toImage()
    assert chart.candles._blocks
    monkeypatch.setattr(chart.candles, "_blocks", {})
    monkeypatch.setattr(candles, "BLOCK_BARS", 10**9)  # every bar on its own
    single = chart.grab().toImage()
    w, h = single.width(), single.height()
    differ = sum(single.pixel(x, y) != with_blocks.pixel(x, y) for x in range(0, w, 2) for y in range(h))
    # Sub-pixel rounding moves an edge here and there (~40 of these 160,000 pixels); a block drawn one bar
    # off changes ~10,000.
    assert differ < 400


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
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(40)
    chart.update_from(_seg(bars, 1))
    text = chart.readout_text(5, 25901.5)
    b = bars[5]
    assert f"O {b.open:,.2f}" in text and f"C {b.close:,.2f}" in text and b.start.strftime("%H:%M") in text
    assert "fast" in text and "slow" in text
    assert "slow" not in chart.readout_text(1, 25900.0)  # no slow EMA yet during its warm-up


def test_markers_sit_on_their_bars_and_stop_line_shows_while_holding(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
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


def test_view_jumps_ahead_only_when_the_forming_bar_reaches_its_right_edge(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    vb = chart.price_plot.getViewBox()
    bars = make_bars(200)
    chart.update_from(_seg(bars[:150], 1))
    x0, x1 = vb.viewRange()[0]
    assert x1 == 150 + FOLLOW_MARGIN_BARS  # room for the forming bar and the next ones
    for n in range(151, 150 + FOLLOW_MARGIN_BARS):
        chart.update_from(_seg(bars[:n], n))
        assert vb.viewRange()[0] == [x0, x1]  # closed bars inside the room: no move, no axis redraw
    n = 150 + FOLLOW_MARGIN_BARS
    chart.update_from(_seg(bars[:n], n))
    y0, y1 = vb.viewRange()[0]
    assert y1 == n + FOLLOW_MARGIN_BARS and y1 - y0 == x1 - x0  # jumped, same width


def test_view_stays_put_while_the_trader_looks_at_older_bars(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    vb = chart.price_plot.getViewBox()
    bars = make_bars(200)
    chart.update_from(_seg(bars[:150], 1))
    vb.setXRange(20, 80, padding=0)
    for n in range(151, 180):
        chart.update_from(_seg(bars[:n], n))
    assert [round(v) for v in vb.viewRange()[0]] == [20, 80]


def test_theme_switch_recolours_every_cached_bar(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.update_from(_seg(make_bars(20), 1))
    chart.candles.ensure_drawn(0, 20)
    before = chart.candles.bars_drawn
    chart.set_theme(LIGHT)
    chart.candles.ensure_drawn(0, 20)
    assert chart.candles.bars_drawn == before + 20


def test_premium_kept_in_the_background_is_drawn_at_its_own_bars(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
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
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    bars = make_bars(120)
    chart.update_from(_seg(bars[:100], 1))
    chart.update_from(_seg(bars[:110], 2))  # ten bars closed while the tab was in the background
    drawn = chart.candles.bars_drawn
    chart.grab()  # the frame that brings the chart forward
    assert chart.candles.bars_drawn == drawn


def test_a_deferred_chart_paints_its_background_first_and_the_chart_later(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    chart.update_from(_seg(make_bars(100), 1))
    chart.defer_paint()
    first = chart.grab().toImage()  # the first frame: the background only
    background = first.pixelColor(2, 2)
    grid = [(x, y) for x in range(0, 800, 7) for y in range(0, 400, 7)]
    assert chart._paint_deferred and all(first.pixelColor(x, y) == background for x, y in grid)
    chart.release_paint()
    later = chart.grab().toImage()
    assert any(later.pixelColor(x, y) != background for x, y in grid)  # then the chart itself


def test_a_deferred_chart_paints_by_itself_when_nobody_releases_it(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.update_from(_seg(make_bars(100), 1))
    chart.defer_paint(fallback_ms=30)
    qtbot.waitUntil(lambda: not chart._paint_deferred, timeout=2000)


def test_the_next_chart_is_released_only_after_this_one_painted(qtbot):
    first, second = IndexChartView(Segment.NIFTY, DARK), IndexChartView(Segment.BANKNIFTY, DARK)
    for chart in (first, second):
        qtbot.addWidget(chart)
        chart.resize(400, 300)
        chart.update_from(_seg(make_bars(100), 1))
    first.defer_paint(then=second.release_paint)
    second.defer_paint()
    first.release_paint()
    qtbot.wait(100)
    assert second._paint_deferred  # the first one has not painted yet (never shown): the chain waits
    first.grab()  # its first real paint
    qtbot.waitUntil(lambda: not second._paint_deferred, timeout=2000)


def test_axes_made_stale_in_the_background_are_regenerated_ahead_of_the_paint(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(800, 400)
    chart.update_from(_seg(make_bars(100), 1))
    chart.grab()
    left = chart.price_plot.getAxis("left")
    chart.price_plot.getViewBox().setYRange(25000, 26000, padding=0)
    assert left.picture is None  # stale: the next paint would regenerate it
    while chart.prerender_axes(budget=1):
        pass
    assert left.picture is not None
    specs = []
    original = left.generateDrawSpecs
    left.generateDrawSpecs = lambda p: specs.append(1) or original(p)
    chart.grab()
    assert specs == []  # the paint only replayed the picture


def _colours(chart: IndexChartView) -> set[int]:
    image = chart.grab().toImage()
    return {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}


def test_a_staged_chart_is_built_in_steps_and_paints_only_its_background_until_its_first_bars(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK, staged=True)
    qtbot.addWidget(chart)
    chart.resize(600, 400)
    steps = 0
    while chart.build_step():
        steps += 1
    assert chart.ready and steps == 3  # four steps in all
    chart.update_from(_seg((), 1))  # a snapshot before the warm-up: no bars yet
    assert len(_colours(chart)) == 1  # the background only: no axes, no labels
    chart.update_from(_seg(make_bars(120), 2))
    assert len(_colours(chart)) > 3  # candles, axes and their labels


def test_a_chart_built_at_once_paints_its_axes_without_waiting_for_bars(qtbot):
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    chart.resize(600, 400)
    assert chart.ready and len(_colours(chart)) > 1


def test_premium_strip_keeps_its_range_while_the_premium_stays_inside_and_grows_at_once(qtbot, monkeypatch):
    monkeypatch.setattr("desktop.ui.chart.PREMIUM_REDRAW_S", 0)  # every update redraws the strip
    chart = IndexChartView(Segment.NIFTY, DARK)
    qtbot.addWidget(chart)
    bars = make_bars(40)
    held = dict(
        option_symbol="NIFTY2611325900CE",
        quantity=65,
        entry_price=Decimal("182.35"),
        stop_price=Decimal("173.25"),
    )

    def premium(price: str, second: int) -> None:
        t = bars[30].start + timedelta(seconds=second)
        chart.update_from(_seg(bars, 1, last_tick_time=t, option_price=Decimal(price), **held))

    vb = chart.premium_plot.getViewBox()
    premium("182.35", 1)
    y0, y1 = vb.viewRange()[1]
    assert y0 < 173.25 and y1 > 182.35  # the stop line is in view with the entry
    premium("178.10", 2)
    premium("180.00", 3)
    assert vb.viewRange()[1] == [y0, y1]  # inside: the axis is left as it was
    premium("195.00", 4)
    assert vb.viewRange()[1][1] > 195  # beyond: grown in the same update
