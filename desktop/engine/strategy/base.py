"""The strategy plug-in interface: what a segment agent calls, and the actions a strategy answers with.

A strategy trades ONE segment of ONE session. It never talks to a broker, a clock or a file: the
agent feeds it market data and order outcomes (all times are market time from bars and ticks), and
turns its actions into orders after the risk check. So the same class runs live, on the simulator and
in a backtest, without Qt.

Calls the agent makes, on the agent's thread, in this order of life:

1. `Strategy(params, segment)`, then `warm_up(bars)` with closed historical bars (no actions).
2. `on_bar(bar)` for every CLOSED 1-minute bar of the segment's index → signals (EnterPosition,
   ExitPosition).
3. After an EnterPosition: `on_fill(...)` when the entry filled, or `on_entry_rejected(reason)`.
   After `on_fill`, `position.stop` is the stop level for the protective SL order.
4. `on_option_price(price, t)` for every tick of the held option → exits and stop moves.
   `on_clock(t)` when market time passes without option ticks (square-off must still happen).
   `on_stop_moved(level, t)` when the trader moved the stop by hand (optional hook).
5. `on_exit(price, t, reason)` when the position is closed, whoever closed it (the strategy's exit,
   the broker's SL order, the kill switch); `on_exit_rejected(reason)` if an exit order failed.
6. `snapshot()` at any time, for the GUI.

Register a third-party strategy class under the `kitedesk.strategies` entry-point group:
`[project.entry-points."kitedesk.strategies"] my_name = "my_pkg.module:MyStrategy"`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from desktop.domain import Bar, OptionRight, Segment, StrategyParams


@dataclass(frozen=True, slots=True)
class EnterPosition:
    """Buy the ITM option of `right` (the agent resolves strike and quantity)."""

    right: OptionRight
    reason: str


@dataclass(frozen=True, slots=True)
class ExitPosition:
    """Sell the whole held option now (reason: stop_loss, target, trailing_stop, signal_exit, square_off)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Raise the protective stop (the resting SL order in LIVE) to `new_stop`."""

    new_stop: Decimal
    reason: str = "trailing_stop"


Action = EnterPosition | ExitPosition | MoveStop


@dataclass(frozen=True, slots=True)
class PositionState:
    """The option a strategy holds and its exit levels (Decimal rupees, on the 0.05 tick)."""

    right: OptionRight
    tradingsymbol: str
    quantity: int
    entry_price: Decimal
    entered_at: datetime
    stop: Decimal
    target: Decimal | None = None
    high_water: Decimal = Decimal(0)
    last_price: Decimal = Decimal(0)

    @property
    def unrealised_pnl(self) -> Decimal:
        """(last − entry) × quantity, in rupees."""
        return (self.last_price - self.entry_price) * self.quantity


@dataclass(frozen=True, slots=True)
class StrategySnapshot:
    """What the GUI shows for one segment's strategy; values are Decimal (convert to float to draw)."""

    strategy: str
    segment: Segment
    market_time: datetime | None
    indicators: tuple[tuple[str, Decimal | None], ...]
    signal: str | None  # last signal, e.g. "UP 10:31"
    position: PositionState | None
    pending: str | None  # "entry" or "exit" while an order is on its way
    trades_today: int
    note: str = ""

    def indicator(self, name: str) -> Decimal | None:
        """One indicator value by name (e.g. "fast_ema")."""
        return dict(self.indicators).get(name)


class Strategy(ABC):
    """Base class of every strategy plug-in (see the module docstring for the calling protocol)."""

    #: The name the strategy is registered under; shown in the UI.
    name: ClassVar[str] = ""
    #: Option names (StrategyParams.options) this strategy understands, for the parameter form.
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: StrategyParams, segment: Segment) -> None:
        self.params = params
        self.segment = segment

    def warm_up(self, bars: Sequence[Bar]) -> None:  # noqa: B027 - optional hook
        """Feeds closed historical bars to the indicators; never trades."""

    @abstractmethod
    def on_bar(self, bar: Bar) -> list[Action]:
        """One CLOSED 1-minute bar of the segment's index; returns signals."""

    @abstractmethod
    def on_option_price(self, price: Decimal, t: datetime) -> list[Action]:
        """One price of the held option at market time `t`; returns exits and stop moves."""

    def on_clock(self, t: datetime) -> list[Action]:
        """Market time passed with no option tick (e.g. square-off time); default: nothing."""
        return []

    @abstractmethod
    def on_fill(
        self, right: OptionRight, tradingsymbol: str, quantity: int, price: Decimal, t: datetime
    ) -> None:
        """The entry filled completely at average `price` (or a recovered position is adopted): now held."""

    @abstractmethod
    def on_entry_rejected(self, reason: str) -> None:
        """The entry order was refused or failed: the strategy is flat again."""

    @abstractmethod
    def on_exit(self, price: Decimal, t: datetime, reason: str) -> None:
        """The position is closed at `price`, whoever closed it."""

    def on_exit_rejected(self, reason: str) -> None:  # noqa: B027 - optional hook
        """An exit order failed; the position is still held and the next price may exit again."""

    def on_stop_moved(self, level: Decimal, t: datetime) -> str:
        """The trader moved the stop by hand to `level` (the broker's stop order already moved): the strategy's
        own stop follows, so it neither exits above it nor trails it back down. Returns a note for the log ("" when
        none). Default: nothing (a plug-in that trails its own stop may move it again; say so in its docs)."""
        return ""

    @property
    @abstractmethod
    def position(self) -> PositionState | None:
        """The held position with its current stop, or None when flat."""

    @abstractmethod
    def snapshot(self) -> StrategySnapshot:
        """The state to draw: indicators, last signal, position, stop."""

    def describe(self) -> dict[str, Any]:
        """Plain settings for the log's start line."""
        return {"strategy": self.name, "segment": self.segment.value}
