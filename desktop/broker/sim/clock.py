"""The simulator's market clock: IST wall-clock time that runs at a chosen speed and stops at the close.

A demo can run at any hour of the real day because market time is decoupled from real time: it starts
at `--start` and advances `speed` simulated seconds per real second, measured on a monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from desktop.domain import MARKET_CLOSE, MARKET_OPEN


class MarketClock:
    """Simulated IST market time: starts at `start`, runs `speed` times real time; thread-safe."""

    def __init__(
        self, start: datetime, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if start.tzinfo is not None:
            raise ValueError("the market clock's start must be a naive IST wall-clock time")
        if start.weekday() >= 5:
            raise ValueError(
                f"{start:%Y-%m-%d} is a {start:%A}: the market is closed on weekends, start on a weekday"
            )
        _check_speed(speed)
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._speed = float(speed)
        self._trading_day = start.date()
        close = datetime.combine(self._trading_day, MARKET_CLOSE)
        # A start after the close freezes time at the start rather than jumping back to 15:30.
        self._frozen_at = max(close, start)
        # now() = base + (monotonic() - base_mono) * speed; rebased on every speed change or advance.
        self._base = start
        self._base_mono = monotonic()

    def now(self) -> datetime:
        """Naive IST wall clock; frozen at 15:30:00 of the start day once reached."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        elapsed = (self._monotonic() - self._base_mono) * self._speed
        if elapsed < 0:  # a monotonic source never goes back; guard against a test double that does
            elapsed = 0.0
        t = self._base + timedelta(seconds=elapsed)
        return min(t, self._frozen_at)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def set_speed(self, speed: float) -> None:
        """Changes the speed from now on; now() is continuous across the change."""
        _check_speed(speed)
        with self._lock:
            self._rebase_locked()
            self._speed = float(speed)

    def advance(self, seconds: float) -> None:
        """Jumps market time forward by `seconds` (tests, replay); it still stops at the close."""
        if seconds < 0:
            raise ValueError("the market clock only moves forward: seconds must be >= 0")
        with self._lock:
            self._rebase_locked()
            self._base = min(self._base + timedelta(seconds=seconds), self._frozen_at)

    def _rebase_locked(self) -> None:
        self._base = self._now_locked()
        self._base_mono = self._monotonic()

    def is_open(self, t: datetime | None = None) -> bool:
        """True when 09:15 <= t < 15:30 on the trading day (t defaults to now())."""
        if t is None:
            t = self.now()
        return t.date() == self._trading_day and MARKET_OPEN <= t.time() < MARKET_CLOSE

    @property
    def trading_day(self) -> date:
        """The day this clock's market trades."""
        return self._trading_day


def _check_speed(speed: float) -> None:
    if not speed > 0 or speed != speed or speed == float("inf"):
        raise ValueError(f"clock speed must be a finite number > 0, not {speed!r}")
