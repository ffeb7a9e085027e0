"""The bar-level backtest: the default strategy over OHLC bars, market orders at the next open, its stop rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.domain import Bar, Segment, StrategyParams
from desktop.engine.bar_backtest import read_ohlc_csv, run_bars, write_ohlc_csv
from desktop.engine.indicators import EMA, Cross, CrossDetector
from desktop.engine.strategy.exits import stop_level
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy

START = datetime(2026, 1, 5, 9, 30)
PARAMS = StrategyParams(segments=(Segment.NIFTY,), lots=1, stop_loss=Decimal(1), itm_offset=0, fast_ema=3,
                        slow_ema=6)  # fmt: skip


def bars_of(
    closes: list[str], lows: dict[int, str] | None = None, opens: dict[int, str] | None = None
) -> list[Bar]:
    """One bar a minute from 09:30: open = the previous close (or `opens`), low = min(open, close) (or `lows`)."""
    out, previous = [], Decimal(closes[0])
    for i, c in enumerate(closes):
        close = Decimal(c)
        o = Decimal(opens[i]) if opens and i in opens else previous
        low = Decimal(lows[i]) if lows and i in lows else min(o, close)
        out.append(Bar(START + timedelta(minutes=i), o, max(o, close), low, close))
        previous = close
    return out


def crosses(bars: list[Bar]) -> list[tuple[int, Cross]]:
    fast, slow, detector = EMA(3), EMA(6), CrossDetector()
    found = []
    for i, b in enumerate(bars):
        c = detector.update(fast.update(b.close), slow.update(b.close))
        if c is not None:
            found.append((i, c))
    return found


FALL_RISE_FALL = ["100", "99", "98", "97", "96", "95", "94", "93", "95", "98", "101", "104", "106", "107", "107",
                  "105", "102", "99", "96", "94"]  # fmt: skip


def test_a_cross_up_buys_at_the_next_open_and_the_cross_down_sells_at_the_open_after_it() -> None:
    bars = bars_of(FALL_RISE_FALL)
    (up, u), (down, d) = crosses(bars)
    assert (u, d) == (Cross.UP, Cross.DOWN)
    [trade] = run_bars(ItmMomentumStrategy(PARAMS, Segment.NIFTY), bars)
    assert (trade.entry_bar, trade.entry_price) == (bars[up + 1].start, bars[up + 1].open)
    assert (trade.exit_bar, trade.exit_price, trade.reason) == (bars[down + 1].start, bars[down + 1].open,
                                                                "signal_exit")  # fmt: skip
    assert trade.pnl == bars[down + 1].open - bars[up + 1].open


def test_the_stop_is_the_strategys_rule_checked_from_the_bar_after_the_entry_at_the_stop_or_a_lower_open() -> (
    None
):
    plain = bars_of(FALL_RISE_FALL)
    (up, _), _ = crosses(plain)
    entry = plain[up + 1].open
    stop = stop_level(entry, PARAMS.stop_loss)  # 1 % below, rounded up to the tick
    # The entry bar itself dips below the stop (not checked yet); the next bar's low touches it.
    bars = bars_of(FALL_RISE_FALL, lows={up + 1: str(stop - 5), up + 2: str(stop)})
    [trade] = run_bars(ItmMomentumStrategy(PARAMS, Segment.NIFTY), bars)
    assert (trade.exit_bar, trade.exit_price, trade.reason) == (bars[up + 2].start, stop, "stop_loss")
    # A bar that opens below the stop sells at its open.
    gap = bars_of(FALL_RISE_FALL, opens={up + 3: str(stop - 2)})
    [trade] = run_bars(ItmMomentumStrategy(PARAMS, Segment.NIFTY), gap)
    assert (trade.exit_bar, trade.exit_price, trade.reason) == (gap[up + 3].start, stop - 2, "stop_loss")


def test_a_put_is_never_bought_and_a_position_open_at_the_end_is_closed_at_the_last_close() -> None:
    falling = bars_of([str(100 + i) for i in range(10)] + [str(109 - 2 * i) for i in range(10)])
    assert [c for _, c in crosses(falling)] == [Cross.DOWN]
    assert run_bars(ItmMomentumStrategy(PARAMS, Segment.NIFTY), falling) == []
    rising = bars_of(FALL_RISE_FALL[:14])
    [trade] = run_bars(ItmMomentumStrategy(PARAMS, Segment.NIFTY), rising)
    assert (trade.exit_bar, trade.exit_price, trade.reason) == (
        rising[-1].start,
        rising[-1].close,
        "end_of_data",
    )


def test_bars_written_as_ohlc_csv_read_back_the_same_and_another_file_is_refused(tmp_path: Path) -> None:
    bars = bars_of(FALL_RISE_FALL)
    path = tmp_path / "bars.csv"
    write_ohlc_csv(path, bars)
    assert read_ohlc_csv(path) == bars
    (tmp_path / "other.csv").write_text("symbol,price\nX,1\n")
    with pytest.raises(ValueError, match="not an OHLC CSV"):
        read_ohlc_csv(tmp_path / "other.csv")
