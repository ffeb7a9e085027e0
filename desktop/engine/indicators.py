"""Incremental indicators for the strategies: EMA and a crossover detector.

The EMA is computed in `Decimal` so that backtests, replays and live runs agree to the last digit and a
crossover never flips on float noise. Inputs may be Decimal, int or float (floats are read through
`repr`, so 101.1 means 101.1). Values are for signals and drawing; prices sent to a broker come from
the market, not from here.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class EMA:
    """Exponential moving average with α = 2 / (period + 1), seeded the standard (TA-Lib) way.

    The first value is the simple average of the first `period` inputs; from then on
    ema = ema_prev + α × (x − ema_prev). `value` is None until `period` inputs were seen.
    """

    def __init__(self, period: int) -> None:
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"EMA period must be a whole number ≥ 1, not {period!r}")
        self.period = period
        self.alpha = Decimal(2) / Decimal(period + 1)
        self.count = 0
        self._seed_sum = Decimal(0)
        self._value: Decimal | None = None

    @property
    def value(self) -> Decimal | None:
        """The current average, or None while still seeding."""
        return self._value

    @property
    def ready(self) -> bool:
        """True once `period` inputs were seen."""
        return self._value is not None

    def update(self, x: Any) -> Decimal | None:
        """Feeds one value (a closed bar's close); returns the new average or None while seeding."""
        d = _to_decimal(x)
        self.count += 1
        if self._value is None:
            self._seed_sum += d
            if self.count == self.period:
                self._value = self._seed_sum / self.period
        else:
            self._value = self._value + self.alpha * (d - self._value)
        return self._value


class Cross(enum.StrEnum):
    """Which way the fast line crossed the slow one."""

    UP = "UP"
    DOWN = "DOWN"


class CrossDetector:
    """Reports when `fast − slow` changes sign.

    Equality is not a side: the line must go from strictly below to strictly above (possibly
    touching on the way) to count as a cross. The first ready value only sets the side, so a session
    started in the middle of a trend does not enter on its first bar.
    """

    def __init__(self) -> None:
        self.side: int = 0  # +1 fast above, −1 below, 0 unknown yet

    def update(self, fast: Decimal | None, slow: Decimal | None) -> Cross | None:
        """The cross that happened with these values, if any."""
        if fast is None or slow is None or fast == slow:
            return None
        side = 1 if fast > slow else -1
        previous, self.side = self.side, side
        if previous == 0 or previous == side:
            return None
        return Cross.UP if side > 0 else Cross.DOWN
