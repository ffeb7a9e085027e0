"""Ticks become 1-minute bars by exchange time; warm-up from Kite candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from desktop.domain import Bar, Tick
from desktop.engine.bars import BarBuilder, candle_to_bar

from .builders import NIFTY_TOKEN, at, tick

D = Decimal


def test_a_tick_of_the_next_minute_closes_the_bar_with_exact_ohlc():
    b = BarBuilder(NIFTY_TOKEN)
    for t, p in [
        (at(10, 0, 1), "100.05"),
        (at(10, 0, 20), "101.5"),
        (at(10, 0, 40), "99.95"),
        (at(10, 0, 59), "100.4"),
    ]:
        assert b.add_tick(tick(t, p)) is None
    closed = b.add_tick(tick(at(10, 1, 0), "100.6"))
    assert closed == Bar(at(10, 0), D("100.05"), D("101.5"), D("99.95"), D("100.4"), 0)
    assert b.current is not None and b.current.start == at(10, 1)
    assert list(b.bars) == [closed]


def test_bars_follow_exchange_time_even_when_ticks_arrive_out_of_order_within_the_minute():
    b = BarBuilder()
    b.add_tick(tick(at(10, 0, 10), "100"))
    b.add_tick(tick(at(10, 0, 50), "102"))  # the latest by exchange time
    b.add_tick(tick(at(10, 0, 30), "98"))  # arrives late but inside the open minute
    closed = b.add_tick(tick(at(10, 1, 5), "101"))
    assert closed is not None
    assert (closed.high, closed.low, closed.close) == (D("102"), D("98"), D("102"))


def test_a_tick_of_an_already_closed_minute_is_dropped_and_counted():
    b = BarBuilder()
    b.add_tick(tick(at(10, 0, 10), "100"))
    first = b.add_tick(tick(at(10, 1, 0), "101"))
    assert b.add_tick(tick(at(10, 0, 59), "150")) is None
    assert b.late_ticks == 1
    assert first is not None and first.high == D("100")  # a closed bar never changes
    assert b.current is not None and b.current.high == D("101")


def test_flush_closes_the_bar_once_market_time_passes_its_end():
    b = BarBuilder()
    b.add_tick(tick(at(10, 0, 10), "100"))
    assert b.flush(at(10, 0, 59)) is None
    closed = b.flush(at(10, 1, 0))
    assert closed is not None and closed.start == at(10, 0)
    assert b.flush(at(10, 5)) is None  # nothing open any more
    assert b.add_tick(tick(at(10, 0, 30), "99")) is None and b.late_ticks == 1


def test_a_gap_without_ticks_makes_no_synthetic_bars():
    b = BarBuilder()
    b.add_tick(tick(at(10, 0, 10), "100"))
    closed = b.add_tick(tick(at(10, 7, 0), "105"))
    assert closed is not None and closed.start == at(10, 0)
    assert [bar.start for bar in b.bars] == [at(10, 0)]


def test_ticks_without_exchange_time_or_of_another_instrument_are_refused():
    b = BarBuilder(NIFTY_TOKEN)
    assert b.add_tick(Tick(NIFTY_TOKEN, D("100"), None)) is None
    assert b.add_tick(tick(at(10, 0), "100", token=265)) is None
    assert (b.untimed_ticks, b.foreign_ticks, b.current) == (1, 1, None)


def test_bar_volume_is_the_rise_of_cumulative_volume_so_duplicates_do_not_count():
    b = BarBuilder()
    b.add_tick(tick(at(10, 0, 1), "100", volume=1000))
    b.add_tick(tick(at(10, 0, 30), "100", volume=1300))
    b.add_tick(tick(at(10, 0, 30), "100", volume=1300))  # duplicate
    b.add_tick(tick(at(10, 0, 50), "100", volume=1450))
    first = b.add_tick(tick(at(10, 1, 10), "100", volume=1500))
    second = b.flush(at(10, 2))
    assert first is not None and first.volume == 450
    assert second is not None and second.volume == 50


def test_timezone_aware_ticks_are_placed_in_ist_minutes():
    b = BarBuilder()
    utc_time = datetime(2026, 1, 8, 4, 30, 15, tzinfo=UTC)  # 10:00:15 IST
    b.add_tick(Tick(1, D("100"), utc_time))
    assert b.current is not None and b.current.start == at(10, 0)


KITE_ROWS = [
    ["2026-01-08T09:15:00+0530", 1704.5, 1705, 1699.25, 1702.8, 2499],
    ["2026-01-08T09:16:00+0530", 1702, 1702, 1698.15, 1698.15, 1271],
    ["2026-01-08T09:17:00+0530", 1698.15, 1700.25, 1698, 1699.25, 831],
]


def test_warm_up_reads_kite_candle_rows_exactly_and_skips_the_forming_minute():
    b = BarBuilder()
    bars = b.warm_up(KITE_ROWS, now=at(9, 17, 30))
    assert [x.start for x in bars] == [at(9, 15), at(9, 16)]
    assert bars[0] == Bar(at(9, 15), D("1704.50"), D("1705.00"), D("1699.25"), D("1702.80"), 2499)
    # A live tick of a warmed-up minute is late; the forming minute is built from ticks.
    assert b.add_tick(tick(at(9, 16, 59), "1698")) is None and b.late_ticks == 1
    b.add_tick(tick(at(9, 17, 40), "1699"))
    assert b.current is not None and b.current.start == at(9, 17)


def test_warm_up_accepts_the_clients_dict_rows_with_aware_times_unsorted_and_repeated():
    ist = timezone(timedelta(hours=5, minutes=30))
    rows = [
        {
            "date": datetime(2026, 1, 8, 9, 16, tzinfo=ist),
            "open": 2,
            "high": 3,
            "low": 1,
            "close": 2.5,
            "volume": 5,
        },
        {
            "date": datetime(2026, 1, 8, 9, 15, tzinfo=ist),
            "open": 1,
            "high": 2,
            "low": 1,
            "close": 1.5,
            "volume": 5,
        },
        {
            "date": datetime(2026, 1, 8, 9, 16, tzinfo=ist),
            "open": 2,
            "high": 4,
            "low": 1,
            "close": 3.5,
            "volume": 9,
        },
    ]
    bars = BarBuilder().warm_up(rows)
    assert [(x.start, x.close) for x in bars] == [(at(9, 15), D("1.50")), (at(9, 16), D("3.50"))]


def test_candle_with_oi_column_is_read():
    bar = candle_to_bar(["2026-01-08T10:00:00+0530", 10, 11, 9, 10.5, 100, 12345])
    assert (bar.start, bar.close, bar.volume) == (at(10, 0), D("10.50"), 100)
