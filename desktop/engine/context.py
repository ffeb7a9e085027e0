"""What a segment trader works with: its session's services (`TraderContext`) and the option it holds (the
orders it tracks are `orders.TrackedOrder`). Plain data, and the exact P&L arithmetic of a holding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from desktop.broker.gateway import OrderGateway
from desktop.domain import (
    OptionRight,
    Segment,
    SessionKey,
    StrategyParams,
    rupees,
)
from desktop.engine.orders import TrackedOrder
from desktop.engine.risk import RiskManager
from desktop.store import Store

if TYPE_CHECKING:
    from desktop.engine.writer import SendGate


@dataclass(slots=True)
class Holding:
    """The option this segment holds."""

    exchange: str
    tradingsymbol: str
    token: int
    right: OptionRight
    quantity: int
    entry_price: (
        Decimal  # the average cost, rounded to the paisa: what is shown and what the stop is set from
    )
    last_price: Decimal
    stop_order: TrackedOrder | None = None
    exit_reason: str = ""
    # P&L is exact, as the trades table's net cash flow: the unrounded cost of what is still held (None: the
    # entry price × quantity), and the unrounded P&L of what was sold of it with the part already counted.
    cost: Decimal | None = None
    sold_pnl: Decimal = Decimal(0)
    counted_pnl: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.cost is None:
            self.cost = self.entry_price * self.quantity

    def sell(self, quantity: int, price: Decimal) -> Decimal:
        """Sells `quantity` (at most what is held) at `price`; returns the P&L to count now, to the paisa, so that
        the sum over the round trip is its exact P&L rounded once."""
        assert self.cost is not None
        sold = min(quantity, self.quantity)
        share = self.cost if sold == self.quantity else self.cost * sold / self.quantity
        self.cost -= share
        self.quantity -= sold
        self.sold_pnl += price * sold - share
        pnl = rupees(self.sold_pnl) - self.counted_pnl
        self.counted_pnl += pnl
        return pnl

    def keep_only(self, quantity: int) -> None:
        """Less is held than this holding says (sold outside KiteDesk): the rest keeps its average cost."""
        assert self.cost is not None and 0 < quantity <= self.quantity
        self.cost = self.cost * quantity / self.quantity
        self.quantity = quantity

    @property
    def unrealised(self) -> Decimal:
        """What the quantity held would make at the last price, to the paisa."""
        assert self.cost is not None
        return rupees(self.last_price * self.quantity - self.cost)


@dataclass(slots=True)
class TraderContext:
    """What a segment needs from its session: identity, parameters and the session's shared services."""

    key: SessionKey
    label: str
    params: StrategyParams
    store: Store
    gateway: OrderGateway
    risk: RiskManager
    watch_option: Callable[[int, Segment], None]  # route (and subscribe) an option's ticks to us
    # Writes that need not block trading (orders, positions, journal notes): by default done at once.
    write_later: Callable[[Callable[[], object]], None] = field(default=lambda job: job())
    # Group commits that agents wait for (a frame's intents: engine/decisions.py's FrameCommit), run by a thread with
    # nothing else to do (the store writer's leader); None: the first agent waiting for one commits it.
    commit_soon: Callable[[Callable[[], object]], None] | None = None
    # Told how many entries of a frame are on their way and when each is sent (the store writer's `SendGate`).
    sending: SendGate | None = None
    # LIVE: what the account's other sessions hold of (exchange, tradingsymbol) as (session id, quantity), from
    # their published snapshots: the broker's positions are the account's, not one session's.
    others_holding: Callable[[str, str], list[tuple[str, int]]] = field(default=lambda exchange, symbol: [])
    # LIVE: options whose price the feed keeps (not delivered) for risk's margin check of an entry (entries.py)
    watch_prices: Callable[[list[int]], None] = field(default=lambda tokens: None)
