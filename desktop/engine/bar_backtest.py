"""A strategy plug-in over closed one-minute bars of the instrument it trades: the bar-level backtest.

KiteDesk's backtest of record is the replay (replay.py): ticks through the whole engine, the strategy trading
options on the index's signals. A bar-based backtester (backtrader, for one) sees only OHLC bars of one
instrument, so to compare like with like (bench/replay_bench.py) this drives the same strategy object
(`Strategy.on_bar`, `on_fill`, `on_option_price`, `on_exit`: its indicators, entry window, stop rule and
square-off unchanged) over bars, trading the bars' own instrument, long only:

- each bar is handed to the strategy when it closes; an `EnterPosition` for a call (CE) is a market buy, an
  `ExitPosition` a market sell, both filled at the next bar's open (as a bar backtester fills market orders);
  an entry for a put (PE: a long put is not this instrument) is refused (`on_entry_rejected`);
- the stop: from the bar after the entry's (a stop order is placed once the entry's fill is known), a bar
  whose low reaches the strategy's stop sells at the stop, or at the open when the bar opened below it;
- a position still open after the last bar is closed at the last close ("end of data").
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from desktop.domain import Bar, OptionRight
from desktop.engine.strategy.base import EnterPosition, ExitPosition, Strategy

_BAR = timedelta(minutes=1)
OHLC_COLUMNS = ("datetime", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class BarTrade:
    """One round trip: bought at the open of `entry_bar`, sold at `exit_price` during `exit_bar`."""

    entry_bar: datetime
    entry_price: Decimal
    exit_bar: datetime
    exit_price: Decimal
    reason: str  # signal_exit, stop_loss, square_off, end_of_data, ...
    quantity: int = 1

    @property
    def pnl(self) -> Decimal:
        """(exit − entry) × quantity."""
        return (self.exit_price - self.entry_price) * self.quantity


def run_bars(
    strategy: Strategy, bars: Iterable[Bar], quantity: int = 1, symbol: str = "BARS"
) -> list[BarTrade]:
    """Runs `strategy` over `bars` (oldest first) under the rules of the module docstring; its round trips."""
    trades: list[BarTrade] = []
    pending: EnterPosition | ExitPosition | None = None
    entry: tuple[datetime, Decimal] | None = None  # (bar, price) of the open position
    stop_from: datetime | None = None  # the first bar the stop is checked in
    last: Bar | None = None

    def close(bar: Bar, price: Decimal, t: datetime, reason: str) -> None:
        nonlocal entry
        assert entry is not None
        trades.append(BarTrade(entry[0], entry[1], bar.start, price, reason, quantity))
        entry = None
        strategy.on_exit(price, t, reason)

    for bar in bars:
        last = bar
        if pending is not None:  # the market order of the previous bar's close fills at this open
            order, pending = pending, None
            if isinstance(order, EnterPosition) and entry is None:
                entry, stop_from = (bar.start, bar.open), bar.start + _BAR
                strategy.on_fill(order.right, symbol, quantity, bar.open, bar.start)
            elif isinstance(order, ExitPosition) and entry is not None:
                close(bar, bar.open, bar.start, order.reason)
        position = strategy.position
        if entry is not None and position is not None and stop_from is not None and bar.start >= stop_from:
            stop = position.stop
            if bar.low <= stop:
                price = bar.open if bar.open <= stop else stop
                for action in strategy.on_option_price(price, bar.start):
                    if isinstance(action, ExitPosition):
                        close(bar, price, bar.start, action.reason)
                        break
        for action in strategy.on_bar(bar):
            if isinstance(action, EnterPosition):
                if action.right is not OptionRight.CE or entry is not None or pending is not None:
                    strategy.on_entry_rejected("long only: the bars' own instrument is bought, never a put")
                else:
                    pending = action
            elif isinstance(action, ExitPosition) and entry is not None and pending is None:
                pending = action
    if entry is not None and last is not None:
        close(last, last.close, last.start + _BAR, "end_of_data")
    return trades


def write_ohlc_csv(path: Path, bars: Sequence[Bar]) -> None:
    """Bars as an OHLC CSV (`datetime,open,high,low,close,volume`, the time as YYYY-MM-DD HH:MM:SS)."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(OHLC_COLUMNS)
        for b in bars:
            w.writerow([b.start.strftime("%Y-%m-%d %H:%M:%S"), b.open, b.high, b.low, b.close, b.volume])


def read_ohlc_csv(path: Path) -> list[Bar]:
    """The bars of an OHLC CSV as `write_ohlc_csv` writes it; ValueError in words for another file."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or tuple(header[:5]) != OHLC_COLUMNS[:5]:
            raise ValueError(f"{path} is not an OHLC CSV: its first line must be {','.join(OHLC_COLUMNS)}")
        parse: Callable[[str], datetime] = datetime.fromisoformat
        return [
            Bar(parse(r[0]), Decimal(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), int(r[5] or 0))
            for r in rows
        ]
