"""One-minute bars from ticks, by exchange time (never the wall clock), plus warm-up from Kite candles.

Rules, chosen so that live, simulator and replay runs give the same bars:
- A tick belongs to the minute of its `exchange_timestamp`. A tick without one cannot be placed in
  time and is refused (counted in `untimed_ticks`): subscribe the index in full mode, which carries it.
- A bar closes when a tick of a later minute arrives, or when `flush(until)` says market time has
  passed the bar's end. Minutes without any tick produce no bar (no synthetic flat bars).
- A tick older than the open bar's minute (or of a minute already closed) is late and dropped (counted
  in `late_ticks`): a closed bar never changes. Inside the open minute, an out-of-order tick still
  widens high/low but does not become the close, which is the latest tick by exchange time.
- `volume` is the rise of Kite's cumulative day volume during the bar (0 for indices), so duplicate
  ticks do not inflate it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from desktop.domain import Bar, Tick, rupees

ONE_MINUTE = timedelta(minutes=1)
IST = timezone(timedelta(hours=5, minutes=30))


def minute_of(t: datetime) -> datetime:
    """The start of the minute holding `t`."""
    return t.replace(second=0, microsecond=0)


def to_market_time(t: datetime) -> datetime:
    """A naive IST datetime (the domain's market time) from an aware or naive datetime."""
    if t.tzinfo is not None:
        return t.astimezone(IST).replace(tzinfo=None)
    return t


def _parse_candle_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return to_market_time(value)
    text = str(value)
    # Kite sends "2017-12-15T09:15:00+0530"; fromisoformat accepts "+0530" from Python 3.11.
    return to_market_time(datetime.fromisoformat(text))


def candle_to_bar(row: Sequence[Any] | Mapping[str, Any]) -> Bar:
    """A Bar from one Kite historical candle: a raw row [ts, o, h, l, c, v(, oi)] or the client's dict."""
    if isinstance(row, Mapping):
        ts, o, h, lo, c, v = (
            row["date"],
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            row.get("volume", 0),
        )
    else:
        ts, o, h, lo, c = row[0], row[1], row[2], row[3], row[4]
        v = row[5] if len(row) > 5 else 0
    return Bar(
        start=minute_of(_parse_candle_time(ts)),
        open=rupees(o),
        high=rupees(h),
        low=rupees(lo),
        close=rupees(c),
        volume=int(v or 0),
    )


class BarBuilder:
    """Builds 1-minute bars of one instrument from its ticks; keeps the last `history` closed bars."""

    def __init__(self, instrument_token: int | None = None, history: int = 500) -> None:
        self.instrument_token = instrument_token
        self.bars: deque[Bar] = deque(maxlen=history)
        self.late_ticks = 0
        self.untimed_ticks = 0
        self.foreign_ticks = 0
        self._closed_until: datetime | None = None  # every minute before this is closed
        self._start: datetime | None = None
        self._ends = datetime.min  # the open bar's end (start + one minute), when there is one
        self._open = self._high = self._low = self._close = Decimal(0)
        self._last_time: datetime | None = None
        self._volume_at_start: int | None = None
        self._volume_now = 0

    @property
    def current(self) -> Bar | None:
        """The bar still being built (not closed), for drawing; None before the first tick."""
        if self._start is None:
            return None
        return Bar(self._start, self._open, self._high, self._low, self._close, self._bar_volume())

    @property
    def current_ends(self) -> datetime | None:
        """When the bar still being built closes (its start plus a minute), None before the first tick: `current`'s
        end without building the bar (asked after every batch of ticks)."""
        return self._ends if self._start is not None else None

    @property
    def last_tick_time(self) -> datetime | None:
        """Exchange time of the latest tick accepted."""
        return self._last_time

    def warm_up(
        self, candles: Iterable[Sequence[Any] | Mapping[str, Any]], now: datetime | None = None
    ) -> list[Bar]:
        """Closed bars from Kite historical candles (sorted, de-duplicated), kept in the history.

        Candles of the minute holding `now` (or later) are still forming and are left out. Live ticks of
        a minute covered here are late and dropped, so a bar is never counted twice.
        """
        cutoff = minute_of(to_market_time(now)) if now is not None else None
        by_minute: dict[datetime, Bar] = {}
        for row in candles:
            bar = candle_to_bar(row)
            if cutoff is not None and bar.start >= cutoff:
                continue
            if self._closed_until is not None and bar.start < self._closed_until:
                continue
            by_minute[bar.start] = bar  # a repeated minute: the later row wins
        bars = [by_minute[k] for k in sorted(by_minute)]
        if bars:
            if self._start is not None and bars[-1].start >= self._start:
                bars = [b for b in bars if b.start < self._start]
            self.bars.extend(bars)
            if bars:
                self._closed_until = bars[-1].start + ONE_MINUTE
        return bars

    def add_tick(self, tick: Tick) -> Bar | None:
        """Adds one tick; returns the bar it closed (a tick of a later minute), else None."""
        if self.instrument_token is not None and tick.instrument_token != self.instrument_token:
            self.foreign_ticks += 1
            return None
        t = tick.exchange_timestamp
        if t is None:
            self.untimed_ticks += 1
            return None
        if t.tzinfo is not None:
            t = to_market_time(t)
        start = self._start
        if start is not None and start <= t < self._ends:
            # The open bar's minute (most ticks): what the general path below does for it, without working
            # out the minute (a replay's throughput, issue 24).
            price = tick.last_price
            if price > self._high:
                self._high = price
            if price < self._low:
                self._low = price
            if self._last_time is None or t >= self._last_time:
                self._close = price
                self._last_time = t
            if tick.volume:
                if self._volume_at_start is None:
                    self._volume_at_start = tick.volume
                if tick.volume > self._volume_now:
                    self._volume_now = tick.volume
            return None
        minute = minute_of(t)
        if self._closed_until is not None and minute < self._closed_until:
            self.late_ticks += 1
            return None
        closed: Bar | None = None
        if self._start is not None and minute > self._start:
            closed = self._close_current()
        elif self._start is not None and minute < self._start:
            self.late_ticks += 1
            return None
        price = tick.last_price
        if self._start is None:
            if self._last_time is not None and self._last_time.date() != t.date():
                self._volume_now = 0  # Kite's cumulative volume restarts each day
                self._volume_at_start = None
            self._start = minute
            self._ends = minute + ONE_MINUTE
            self._open = self._high = self._low = self._close = price
            self._last_time = t
            self._volume_at_start = self._volume_now if self._volume_now else None
        else:
            self._high = max(self._high, price)
            self._low = min(self._low, price)
            if self._last_time is None or t >= self._last_time:
                self._close = price
                self._last_time = t
        if tick.volume:
            if self._volume_at_start is None:
                self._volume_at_start = tick.volume
            self._volume_now = max(self._volume_now, tick.volume)
        return closed

    def flush(self, until: datetime) -> Bar | None:
        """Closes the open bar if market time `until` is at or past its end (time passing without ticks)."""
        until = to_market_time(until)
        if self._start is not None and until >= self._start + ONE_MINUTE:
            return self._close_current()
        return None

    def _bar_volume(self) -> int:
        if self._volume_at_start is None:
            return 0
        return max(0, self._volume_now - self._volume_at_start)

    def _close_current(self) -> Bar:
        assert self._start is not None
        bar = Bar(self._start, self._open, self._high, self._low, self._close, self._bar_volume())
        self.bars.append(bar)
        self._closed_until = self._start + ONE_MINUTE
        self._start = None
        # The next bar's volume counts from this bar's last cumulative volume.
        self._volume_at_start = self._volume_now if self._volume_now else None
        return bar
