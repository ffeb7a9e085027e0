"""`IndexChart`: one segment's index bars by exchange time with the EMA lines drawn over them, kept as
immutable tuples that are rebuilt only when a bar closes (so a snapshot shares them until then)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from desktop.domain import Bar, Tick
from desktop.engine.bars import BarBuilder
from desktop.engine.indicators import EMA
from desktop.engine.snapshots import TradeMarker

MAX_BARS_SHOWN = 400  # closed bars kept for drawing


class IndexChart:
    """Closed and forming 1-minute bars of one index, EMA values aligned with them, trade markers."""

    def __init__(self, index_token: int, fast: int, slow: int) -> None:
        self.builder = BarBuilder(index_token, history=MAX_BARS_SHOWN)
        self._fast, self._slow = EMA(fast), EMA(slow)
        self._fast_values: list[Decimal | None] = []
        self._slow_values: list[Decimal | None] = []
        self.bars: tuple[Bar, ...] = ()
        self.fast_ema: tuple[Decimal | None, ...] = ()
        self.slow_ema: tuple[Decimal | None, ...] = ()
        self.version = 0
        self.markers: list[TradeMarker] = []

    def warm_up(self, candles: Iterable[Any], now: datetime | None) -> list[Bar]:
        """Closed bars from historical candles (the forming minute left out)."""
        bars = self.builder.warm_up(candles, now=now)
        for bar in bars:
            self._track(bar.close)
        self._publish()
        return bars

    def add_tick(self, tick: Tick) -> Bar | None:
        """Adds an index tick; returns the bar it closed, if any."""
        closed = self.builder.add_tick(tick)
        if closed is not None:
            self._track(closed.close)
            self._publish()
        return closed

    @property
    def forming(self) -> Bar | None:
        """The bar still being built."""
        return self.builder.current

    def mark(self, t: datetime, index_price: Decimal, kind: str, label: str) -> None:
        """An entry or exit drawn at the index price of that moment."""
        self.markers.append(TradeMarker(t, index_price, kind, label))

    def _track(self, close: Decimal) -> None:
        self._fast_values.append(self._fast.update(close))
        self._slow_values.append(self._slow.update(close))
        del self._fast_values[:-MAX_BARS_SHOWN], self._slow_values[:-MAX_BARS_SHOWN]

    def _publish(self) -> None:
        self.bars = tuple(self.builder.bars)
        n = len(self.bars)
        self.fast_ema = tuple(self._fast_values[-n:]) if n else ()
        self.slow_ema = tuple(self._slow_values[-n:]) if n else ()
        self.version += 1
