"""Small factories for the engine's unit tests: parameters, bars and ticks at chosen market times."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from desktop.domain import Bar, StrategyParams, Tick
from desktop.engine.params import parse_params

DAY = datetime(2026, 1, 8)
NIFTY_TOKEN = 256265


def at(hh: int, mm: int, ss: int = 0, day: datetime = DAY) -> datetime:
    """A market time on the test day."""
    return day.replace(hour=hh, minute=mm, second=ss)


def make_params(**overrides: Any) -> StrategyParams:
    """Valid NIFTY parameters, with any field overridden."""
    raw: dict[str, Any] = {"segments": ["NIFTY"], "lots": 1, "stop_loss": 5, "itm_offset": 100}
    raw.update(overrides)
    return parse_params(raw)


def flat_bar(start: datetime, close: Any) -> Bar:
    """A bar whose OHLC are all `close` (the strategy only reads the close)."""
    c = Decimal(str(close))
    return Bar(start, c, c, c, c)


def tick(t: datetime, price: Any, volume: int = 0, token: int = NIFTY_TOKEN) -> Tick:
    """A tick of the index at exchange time `t`."""
    return Tick(token, Decimal(str(price)), t, volume)
