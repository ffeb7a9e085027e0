"""`TickTimeGuard`: the feed drops a tick whose exchange time cannot be the market's, before any engine sees it.

The engine's clock is market time taken from the ticks: a segment moves its clock to a tick's exchange
timestamp when it is later than what it has seen, and never back. So a single tick stamped in 2106 (the
largest time the protocol's 32-bit epoch holds, what a corrupt packet decodes to) froze every session that
received it (issue 16): the clock stuck in 2106, the day's counters reset as for a new day, journal rows dated
2106, and no trade for as long as the session ran. A tick is dropped, counted and logged when its exchange
time is
- further ahead of the market clock than `FAR_AHEAD` (a tick is stamped before it arrives: ahead means the
  stamp or the machine's clock is wrong), or further behind it than `FAR_BEHIND` (generous: at 120× a
  second of delay is two market minutes);
- more than `GOING_BACK` before the last accepted tick of the same instrument (an exchange's time per
  instrument only moves forward; a thin option's ticks may be minutes apart, so this is per instrument).
Without a clock (a feed built on its own, in tests) only the second rule applies. Ticks without an exchange
time (LTP and quote packets) pass: they never move a clock.

Runs on the feed's thread only (no lock); `dropped` may be read from any thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from desktop.broker.ticks import QuoteTick

log = logging.getLogger(__name__)

FAR_AHEAD = timedelta(minutes=5)
FAR_BEHIND = timedelta(minutes=30)
GOING_BACK = timedelta(seconds=5)
WARN_EVERY = 10.0  # real seconds between two log lines about dropped ticks (each line gives the total)


class TickTimeGuard:
    """Screens one feed's ticks by their exchange time (see the module docstring)."""

    def __init__(self, name: str, clock: Callable[[], datetime] | None = None) -> None:
        self.name = name  # the account, for the log
        self._clock = clock
        self._last: dict[int, datetime] = {}  # instrument token -> exchange time of its last accepted tick
        self.dropped = 0
        self.note = ""  # the log line of the last logged refusal, for the sessions' own logs (`take_note`)
        self._warned_at: float | None = None
        self._now: datetime | None = None
        self._bounds = (datetime.min, datetime.max)

    def market_time(self) -> datetime | None:
        """The market clock now (read once per frame), or None without a clock."""
        return self._clock() if self._clock is not None else None

    def accept(self, tick: QuoteTick, now: datetime | None) -> bool:
        """True when `tick` may reach the streams; a refused one is counted and, now and then, logged."""
        t = tick.exchange_timestamp
        if t is None:
            return True
        last = self._last.get(tick.instrument_token)
        if now is not None:
            if now is not self._now:  # one clock reading per frame: its bounds are worked out once
                self._now, self._bounds = now, (now - FAR_BEHIND, now + FAR_AHEAD)
            low, high = self._bounds
            if low <= t <= high and (last is None or t >= last):  # the usual tick: in time, not going back
                if last is None or t > last:
                    self._last[tick.instrument_token] = t
                return True
        why = ""
        if now is not None and t > now + FAR_AHEAD:
            why = f"{_gap(t - now)} ahead of the market clock ({now:%Y-%m-%d %H:%M:%S})"
        elif now is not None and t < now - FAR_BEHIND:
            why = f"{_gap(now - t)} behind the market clock ({now:%Y-%m-%d %H:%M:%S})"
        elif last is not None and t < last - GOING_BACK:
            why = f"{_gap(last - t)} before the instrument's previous tick ({last:%H:%M:%S})"
        if not why:
            if last is None or t > last:
                self._last[tick.instrument_token] = t
            return True
        self.dropped += 1
        mono = time.monotonic()
        if self._warned_at is None or mono - self._warned_at >= WARN_EVERY:
            self._warned_at = mono
            self.note = (
                f"a tick of instrument {tick.instrument_token} stamped {t:%Y-%m-%d %H:%M:%S} was dropped, {why}: "
                f"{self.dropped} such tick(s) dropped so far"
            )
            log.warning("feed %s: %s", self.name, self.note)
        return False

    def take_note(self) -> str:
        """The line the last refusal was logged with, once (empty when it was not logged: too soon)."""
        note, self.note = self.note, ""
        return note


def _gap(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} s"
