"""What one segment holds and what it made: the holding opened by an entry's fills (or adopted on recovery), sold
fill by fill by exits and the stop, its day's realised P&L (what the daily loss limit counts) and its rows in the
store. A sale's fill is booked against the holding its order sells (`TrackedOrder.sells`: by the fill's order id,
slices included), never against another held in the same option: one that comes after its position was let go
(gone from the broker: desktop/engine/outside.py) is still counted in the day's P&L, against that position.
Runs on the segment agent's thread only, as its trader's helper.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from desktop.domain import Fill, OptionRight, OrderRole, Position, rupees
from desktop.engine.context import Holding
from desktop.engine.writer import LatestRow

if TYPE_CHECKING:
    from desktop.broker.instruments import OptionContract
    from desktop.engine.orders import TrackedOrder
    from desktop.engine.trader import SegmentTrader


class HoldingKeeper:
    """The holding of one segment, its P&L and its stored position rows."""

    def __init__(self, trader: SegmentTrader) -> None:
        self.t = trader
        self.holding: Holding | None = None
        self.let_go: Holding | None = None  # the last position let go (gone from the broker), see `late_sale`
        self.realised = Decimal(0)  # today's (see `roll_day`)
        self._pnl_day: date | None = None
        self.contract: OptionContract | None = None  # the option of the entry on its way

    def open(
        self, exchange: str, symbol: str, quantity: int, price: Decimal, t: datetime, cost: Decimal | None
    ) -> Holding:
        """Holds `quantity` of the option bought at `price` on average (`cost` in all, unrounded); the strategy
        and risk are told. An option missing from today's instruments is the entry's own (`contract`)."""
        tr = self.t
        assert tr.book is not None
        ins, contract = tr.book.by_symbol(exchange, symbol), self.contract
        token = ins.instrument_token if ins else (contract.instrument_token if contract else 0)
        right = OptionRight(ins.instrument_type) if ins else OptionRight.CE
        self.holding = Holding(exchange, symbol, token, right, quantity, price, price, cost=cost)
        tr.strategy.on_fill(right, symbol, quantity, price, t)
        tr.ctx.risk.on_entry_filled(tr.segment)
        tr.changed = True
        return self.holding

    def sold(self, tracked: TrackedOrder, fill: Fill) -> None:
        """A fill of an exit or of the stop: realised P&L and a smaller position, flat when none is left. Only a sale
        of this holding reduces it: a late fill of the stop of a position let go, with the next entry holding the
        same option, must not sell the new position here while the broker still holds it (nor cancel its stop)."""
        tr, h = self.t, self.holding
        if h is None or tracked.sells is not h:
            self.late_sale(tracked, fill)
            return
        self._book(h, tracked, fill)
        if h.quantity > 0:
            self.save(fill.timestamp)
            tr.ctx.risk.update_pnl(tr.segment, self.realised, self.unrealised, fill.timestamp)
            return
        reason = "stop_loss" if tracked.role is OrderRole.STOP else (h.exit_reason or tracked.intent.reason)
        if h.stop_order is not None and h.stop_order.resting and h.stop_order is not tracked:
            tr.protection.cancel(h)
        self.holding = None
        # Durable first: the store knows the position is flat before risk lets a new entry in.
        self.save_flat(h.exchange, h.tradingsymbol)
        price = rupees(tracked.value / tracked.filled)
        tr.journal("exit_filled", {"symbol": h.tradingsymbol, "price": str(price), "pnl": str(tracked.pnl)})
        tr.log.info("Exit filled (%s): %s at %s, P&L %s", reason, h.tradingsymbol, price, tracked.pnl)
        tr.strategy.on_exit(price, fill.timestamp, reason)
        tr.ctx.risk.on_position_closed(tr.segment)
        tr.ctx.risk.update_pnl(tr.segment, self.realised, Decimal(0), fill.timestamp)
        if tr.index_price is not None:
            tr.chart.mark(fill.timestamp, tr.index_price, "exit", f"{reason} {price}")

    def late_sale(self, tracked: TrackedOrder, fill: Fill) -> None:
        """A fill of our own sale (the stop, an exit) after its position was let go (the broker's positions showed
        it gone before this fill came): it is what sold it, so its P&L is counted against that position, whatever
        the order of events, and never against a newer one held in the same option."""
        tr, gone = self.t, tracked.sells
        if gone is None or gone.quantity <= 0:
            tr.log.warning("a sale of %d %s with no position held (order %s)", fill.quantity, fill.tradingsymbol,
                           tracked.order_id)  # fmt: skip
            return
        pnl = self._book(gone, tracked, fill)
        tr.log.warning("%s order %s sold %d %s at %s after the position was let go: P&L %s counted",
                       tracked.role, tracked.order_id, fill.quantity, fill.tradingsymbol, fill.price, pnl)  # fmt: skip
        tr.journal("late_fill_counted", {"order_id": tracked.order_id, "symbol": fill.tradingsymbol,
                                         "qty": fill.quantity, "price": str(fill.price), "pnl": str(pnl)})  # fmt: skip
        h = self.holding
        if h is not None and (h.exchange, h.tradingsymbol) == (gone.exchange, gone.tradingsymbol):
            self.save(fill.timestamp)  # one row per option: it is the position held now's, never flattened
        else:
            self.save_flat(gone.exchange, gone.tradingsymbol)
        tr.ctx.risk.update_pnl(tr.segment, self.realised, self.unrealised, fill.timestamp)

    def _book(self, held: Holding, tracked: TrackedOrder, fill: Fill) -> Decimal:
        """`fill` sells part of `held`: its P&L, counted in the day's realised P&L and in its order's."""
        pnl = held.sell(fill.quantity, fill.price)
        self.roll_day(fill.timestamp)
        self.realised += pnl
        tracked.pnl += pnl
        return pnl

    def gone(self, h: Holding, now: datetime) -> None:
        """The position is no longer at the broker: flat here, with nothing sold (its P&L is not counted); a fill
        of our own sale still on its way is counted against it (`late_sale`)."""
        tr = self.t
        self.holding = None
        self.let_go = h
        self.save_flat(h.exchange, h.tradingsymbol)
        tr.strategy.on_exit(h.last_price, now, "closed_outside")
        tr.ctx.risk.on_position_closed(tr.segment)
        tr.ctx.risk.update_pnl(tr.segment, self.realised, Decimal(0), now)
        tr.changed = True

    def restore_realised(self, realised: Decimal) -> None:
        """The day's realised P&L, rebuilt by recovery from the earlier runs' orders or fills."""
        self.realised = realised
        self.t.changed = True

    def roll_day(self, t: datetime) -> None:
        """A new market day: the day's realised P&L (what the daily loss limit counts) starts again."""
        if self._pnl_day is None or t.date() > self._pnl_day:
            if self._pnl_day is not None:
                self.realised = Decimal(0)
            self._pnl_day = t.date()

    def save(self, t: datetime) -> None:
        tr, h = self.t, self.holding
        assert h is not None
        row = Position(tr.ctx.key, tr.mode, h.exchange, h.tradingsymbol, h.quantity, h.entry_price,
                       h.last_price, self.realised)  # fmt: skip
        self._write(row)

    def save_flat(self, exchange: str, tradingsymbol: str) -> None:
        tr = self.t
        row = Position(tr.ctx.key, tr.mode, exchange, tradingsymbol, 0, Decimal(0), Decimal(0), self.realised)
        self._write(row)

    def _write(self, row: Position) -> None:
        """The option's row, with the day's realised P&L (what the store says the session made), queued for the
        store writer: refused by the store (a full disk), it is written once the store writes again, unless a later
        row of the option comes first (`LatestRow`)."""
        tr = self.t
        key = ("position", row.key.broker_id, row.key.session_id, row.exchange, row.tradingsymbol)
        tr.ctx.write_later(LatestRow(key, partial(tr.ctx.store.positions.upsert, row)))

    @property
    def unrealised(self) -> Decimal:
        """Open P&L of the held option at its last price."""
        h = self.holding
        return Decimal(0) if h is None else h.unrealised
