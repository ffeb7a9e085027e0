"""`SegmentTrader`: one segment of one session, in plain Python (no Qt), run by its agent's thread only.

It orchestrates index ticks → 1-minute bars (exchange time) → strategy → risk → entries and exits; its helpers,
on the same thread, do the rest: `Orders` (orders.py) the order lifecycle, write-ahead journal and fills;
`Protection` (protection.py) the stop-loss order placed at the broker (LIVE) or the paper gateway (PAPER) as
soon as an entry fills; `OutsideClose` (outside.py) a position closed in Kite web; `HoldingKeeper`
(holding.py) what is held and its P&L. One thread, so no locks; `snapshot()` returns immutable objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, cast

from desktop.broker.errors import BrokerError
from desktop.broker.instruments import InstrumentBook
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderRole, OrderType, Segment, Side, Tick
from desktop.engine.chart import IndexChart
from desktop.engine.context import Holding, TraderContext
from desktop.engine.holding import HoldingKeeper
from desktop.engine.logs import AgentLog
from desktop.engine.orders import ORDER_PATIENCE, Orders, TrackedOrder, sent_note
from desktop.engine.outside import OutsideClose
from desktop.engine.params import effective_itm_offset, itm_offset_note, order_quantity
from desktop.engine.probes import EntryObserver
from desktop.engine.protection import Protection
from desktop.engine.slices import SlicingGateway
from desktop.engine.snapshots import AgentState, SegmentSnapshot, note_of_day
from desktop.engine.strategy.base import Action, EnterPosition, ExitPosition, MoveStop, Strategy

_ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Closing:
    """A kill or a square-off under way: what is held, or an entry that fills after its cancel, is sold with
    `reason`; an exit of it that failed is asked again at `again_at` (it must not stay open)."""

    reason: str
    again_at: datetime | None = None


class SegmentTrader:
    """The trading logic of one segment; every method is called from the agent's thread only."""

    def __init__(self, ctx: TraderContext, segment: Segment, strategy: Strategy, log: AgentLog) -> None:
        # Orders above the exchange's freeze quantity go out in slices, tracked as one (desktop/engine/slices.py).
        self.slices = SlicingGateway(
            ctx.gateway, self.lot_of, ctx.params.freeze_overrides, log.warning,
            count=lambda: self.ctx.risk.record_order(self.market_time or datetime.now()),
        )  # fmt: skip
        self.ctx = replace(ctx, gateway=cast(Any, self.slices))
        self.segment, self.strategy, self.log = segment, strategy, log
        self.mode: Mode = ctx.params.mode
        self.book: InstrumentBook | None = None
        self.chart = IndexChart(segment.spec.index_token, ctx.params.fast_ema, ctx.params.slow_ema)
        self.offset = effective_itm_offset(ctx.params.itm_offset, segment)
        self.note = itm_offset_note(ctx.params.itm_offset, segment)
        self.market_time: datetime | None = None
        self.index_price: Decimal | None = None
        self.halted_entries = False  # stop/kill: no new entries from this segment
        self.closing: Closing | None = None  # kill or square-off: whatever is held or fills later is sold
        self.risk_note: tuple[date, str] | None = None  # (market day, why) of the last entry risk refused
        # Latency probes (bench): when the batch was posted, handed to the agent and taken by it (`probes.py`).
        self.batch_posted = self.batch_handed = self.batch_picked = 0.0
        self.observer: EntryObserver | None = None
        self.orders = Orders(self)
        self.keeper = HoldingKeeper(self)
        self.protection = Protection(self)
        self.outside = OutsideClose(self)
        self.changed = True

    @property
    def holding(self) -> Holding | None:
        return self.keeper.holding

    @property
    def realised(self) -> Decimal:
        return self.keeper.realised

    @property
    def order_rows(self) -> dict[str, Order]:
        return self.orders.order_rows

    @property
    def fill_rows(self) -> list[Fill]:
        return self.orders.fill_rows

    # -- start ------------------------------------------------------------------------------------

    def load(self, book: InstrumentBook, candles: Iterable[Any], now: datetime | None) -> None:
        """Instruments of the day, then warm-up from historical 1-minute candles (no trading)."""
        self.book = book
        bars = self.chart.warm_up(candles, now)
        self.strategy.warm_up(bars)
        if bars:
            self.index_price = bars[-1].close
        p = self.ctx.params
        self.log.info("%s %s started: lots %d, stop loss %s%%, ITM offset %d points, %d warm-up bars",
                      self.segment.value, self.mode.value, p.lots, p.stop_loss, self.offset, len(bars), at=now)  # fmt: skip
        if self.note:
            self.log.info(self.note, at=now)

    def adopt(self, contract_symbol: str, exchange: str, quantity: int, price: Decimal, t: datetime,
              cost: Decimal | None = None) -> None:  # fmt: skip
        """Takes over a position left by a previous run of this session (recovery), bought at `price` on average
        (`cost` in all, unrounded, when known)."""
        assert self.book is not None
        ins = self.book.by_symbol(exchange, contract_symbol)
        if ins is None or ins.instrument_type not in ("CE", "PE"):
            self.log.error("cannot adopt %s:%s: not in today's instruments", exchange, contract_symbol)
            return
        h = self.keeper.open(exchange, contract_symbol, quantity, price, t, cost)
        self.ctx.watch_option(h.token, self.segment)
        self.log.warning("recovered an open position from the previous run: %d %s bought at %s", quantity,
                         contract_symbol, price)  # fmt: skip

    def adopt_stop_order(self, order: Order) -> None:
        """The broker's resting SL order of an adopted LIVE position: ours to modify and cancel."""
        self.protection.adopt(order)

    def protect(self) -> None:
        """The held position (adopted on recovery) gets a stop-loss order at the strategy's stop level."""
        position = self.strategy.position
        self.protection.place(position.stop if position else None)

    # -- market data ------------------------------------------------------------------------------

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        """A batch of this segment's ticks (index and held option)."""
        if self.orders.unsaved_fills:
            self.orders.save_fills()
        index_token = self.segment.spec.index_token
        for tick in ticks:
            t = tick.exchange_timestamp
            if t is not None and (self.market_time is None or t > self.market_time):
                self.keeper.roll_day(t)
                self.market_time = t
                self.log.set_market_time(t)
            if tick.instrument_token == index_token:
                self.index_price = tick.last_price
                closed = self.chart.add_tick(tick)
                if closed is not None:
                    self.act(self.strategy.on_bar(closed))
                if t is not None and self.holding is not None:
                    self.act(self.strategy.on_clock(t))
            elif self.holding is not None and tick.instrument_token == self.holding.token:
                self.holding.last_price = tick.last_price
                when = t or self.market_time
                if when is not None:
                    self.act(self.strategy.on_option_price(tick.last_price, when))
                    self.ctx.risk.update_pnl(self.segment, self.realised, self.unrealised, when)
        now = self.market_time
        if now is not None:
            if self.orders.working:
                self.orders.cancel_overdue(now)
            self.protection.on_tick(now)
            if self.outside.due():
                self.outside.check(now)
            closing = self.closing
            if closing is not None and closing.again_at is not None and now >= closing.again_at:
                self.closing = replace(closing, again_at=None)
                if self.holding is not None:
                    self.exit(closing.reason)  # a kill's or square-off's exit failed: asked again
        self.changed = True

    # -- actions ------------------------------------------------------------------------------------

    def act(self, actions: list[Action]) -> None:
        """Runs strategy actions: entries through risk, exits always, stop moves to the broker."""
        for action in actions:
            if isinstance(action, EnterPosition):
                self._enter(action)
            elif isinstance(action, ExitPosition):
                self.exit(action.reason)
            elif isinstance(action, MoveStop):
                self.move_stop(action.new_stop)

    def intent(
        self, exchange: str, symbol: str, side: Side, qty: int, reason: str, role: OrderRole, **kw: Any
    ) -> OrderIntent:
        """An intent of this segment: `role` is what risk reads; `reason` only words it (journal, log)."""
        return OrderIntent(
            self.ctx.key, self.segment, self.mode, exchange, symbol, side, qty, reason=reason, role=role, **kw
        )

    def _enter(self, action: EnterPosition) -> None:
        now = self.market_time
        assert now is not None and self.book is not None
        if self.halted_entries or self.holding is not None or self.orders.open_entry() is not None:
            self.strategy.on_entry_rejected("an entry or position is already on its way")
            return
        if not self.orders.journal_back(now):
            self.strategy.on_entry_rejected("the journal cannot be written")
            return
        if self.index_price is None:
            self.strategy.on_entry_rejected("no index price yet")
            return
        try:
            contract = self.book.resolve_itm_option(
                self.segment, self.index_price, action.right, self.offset, now.date()
            )
            qty = order_quantity(self.ctx.params.lots, contract.lot_size)
        except (BrokerError, ValueError) as e:
            self.log.warning("entry skipped: %s", e)
            self.strategy.on_entry_rejected(str(e))
            return
        intent = self.intent(
            contract.exchange, contract.tradingsymbol, Side.BUY, qty, "entry", OrderRole.ENTRY
        )
        decision = self.ctx.risk.check(intent, now)
        if not decision:
            # One line a refusal, and the panel's note until an entry passes again (a limit hit in silence
            # left the trader guessing why nothing traded).
            self.log.info("entry refused by risk: %s", decision.reason)
            self.risk_note = (now.date(), decision.reason)
            self.strategy.on_entry_rejected(decision.reason)
            return
        self.risk_note = None
        if self.observer is not None:
            self.observer.entry_decided(self.batch_posted, self.batch_handed, self.batch_picked)
        self.keeper.contract = contract
        # The order goes out first (its intent journaled durably before): the note, the log line and the option's
        # subscription come after, holding up neither it nor the other agents deciding on the same tick.
        sent = self.orders.send(intent)
        if sent and self.observer is not None:
            self.observer.entry_sent(self.batch_posted)
        self.journal(
            "entry_sent",
            {"intent_id": intent.intent_id, "symbol": contract.tradingsymbol, "qty": qty, "lot_size": contract.lot_size,
             "spot": str(self.index_price), "strike": str(contract.strike), "right": action.right.value,
             "itm_offset": self.offset, "reason": action.reason, "placed": bool(sent)},
        )  # fmt: skip
        self.log.info("Entry signal (%s): BUY %d %s (spot %s, strike %s, ITM offset %d): %s", action.reason, qty,
                      contract.tradingsymbol, self.index_price, contract.strike, self.offset, sent_note(sent))  # fmt: skip
        if not sent:
            self.ctx.risk.on_entry_failed(self.segment)
            self.strategy.on_entry_rejected("the entry order failed")
            return
        self.ctx.watch_option(contract.instrument_token, self.segment)
        self.chart.mark(now, self.index_price, "entry", f"BUY {contract.tradingsymbol}")

    def exit(self, reason: str, limit: Decimal | None = None, at_once: bool = False) -> bool:
        """Sells the held option now (at `limit`, else at market), the resting SL order cancelled first; False
        if not sent. A stop-loss exit while the broker's stop rests at or above the price leaves that stop to
        fill (chased if it does not): cancelling it races its own fill. `at_once`: the protection sells now."""
        h, now = self.holding, self.market_time
        if h is None or now is None or self.orders.open_exit() is not None:
            return False
        if self.protection.left_to_stop(h, reason, at_once):
            return True
        if self.orders.journal_down(now):
            self.exit_failed(now)  # a kill's or square-off's exit is asked again (the strategy's asks again)
            return False  # the journal failed a moment ago: the stop keeps protecting
        quantity = self.outside.sellable(h, now, stop_first=True)
        if quantity is None:
            return False
        quantity = self.protection.exit_quantity(h, quantity, reason)
        if quantity <= 0:
            return False
        kind = {} if limit is None else {"order_type": OrderType.LIMIT, "price": limit}
        intent = self.intent(h.exchange, h.tradingsymbol, Side.SELL, quantity, reason, OrderRole.EXIT, **kind)
        # The intent is durable BEFORE the stop is cancelled: an exit that could not be journalled must not leave
        # the position with no stop and no exit (a full disk, a database locked for seconds).
        if not self.orders.record_intent(intent):
            self.strategy.on_exit_rejected("the journal cannot be written")
            self.protection.protect_rest()  # a stop `sellable` cancelled (the broker showed less) is placed again
            self.exit_failed(now)
            return False
        if h.stop_order is not None and h.stop_order.resting and not self.protection.cancel(h):
            self.strategy.on_exit_rejected("the stop-loss order could not be cancelled")
            self.exit_failed(now)  # selling, its fills close the position; a transient refusal: asked again
            return False
        self.ctx.risk.check(intent, now)  # exits are never refused; this counts the order
        h.exit_reason = reason
        sent = self.orders.send(intent, recorded=True)  # the order first, then the log line (see _enter)
        self.log.info("Exit (%s): SELL %d %s at %s %s: %s", reason, quantity, h.tradingsymbol,
                      "a limit of" if limit else "about", limit or h.last_price, sent_note(sent))  # fmt: skip
        if not sent:
            self.strategy.on_exit_rejected("the exit order failed")
            self.protection.protect_rest()
            self.exit_failed(now)
            return False
        return True

    def exit_failed(self, now: datetime) -> None:
        """An exit failed or ended unsold: a kill's or square-off's is asked again after `ORDER_PATIENCE`."""
        if self.closing is not None:
            self.closing = replace(self.closing, again_at=now + ORDER_PATIENCE)

    def entry_filled(self, tracked: TrackedOrder, price: Decimal, t: datetime) -> None:
        """The entry settled with fills: the position, its stop at once (LIVE at Kite, PAPER at the paper gateway:
        one protection path), and sold at once when a kill or square-off came first."""
        i = tracked.intent
        self.keeper.open(i.exchange, i.tradingsymbol, tracked.filled, price, t, tracked.value)
        self.keeper.save(t)
        stop = self.strategy.position.stop if self.strategy.position else None
        self.log.info("Entry filled: %d %s at %s, stop %s", tracked.filled, i.tradingsymbol, price, stop)
        self.journal("entry_filled", {"symbol": i.tradingsymbol, "qty": tracked.filled, "price": str(price),
                                      "stop": str(stop)})  # fmt: skip
        self.protection.place(stop)
        if self.closing is not None:
            self.log.warning("the entry filled after its cancel (%s): selling it", self.closing.reason)
            self.exit(self.closing.reason)

    # -- order updates and commands ---------------------------------------------------------------------------

    def on_order(self, order: Order) -> None:
        """An order update of ours: stored, then acted on (`Orders.on_order`)."""
        self.orders.on_order(order)

    def on_fill(self, fill: Fill) -> None:
        """A fill: durable in the store first, then the position and the strategy learn of it."""
        self.orders.on_fill(fill)

    def move_stop(self, level: Decimal) -> None:
        """The resting stop-loss order moved to trigger at `level` (a strategy's `MoveStop`, or by hand)."""
        self.protection.trail(level)

    def cancel_order(self, order_id: str) -> bool:
        """Cancels one of this segment's working orders by hand (`Orders.cancel_by_hand`); False if not done."""
        return self.orders.cancel_by_hand(order_id)

    def cancel_open_entries(self, then_exit: str | None = None) -> None:
        """Cancels an entry still on its way (kill switch, stop); no entries after. `then_exit`: the exit's reason
        should the entry fill anyway (its cancel came too late), so a kill or square-off leaves nothing open."""
        self.halted_entries = True
        again = self.closing.again_at if self.closing is not None else None
        self.closing = None if then_exit is None else Closing(then_exit, again)
        tracked = self.orders.open_entry()
        if tracked is not None and tracked.order_id:
            try:
                self.ctx.gateway.cancel(tracked.order_id)
            except BrokerError as e:
                self.log.warning("entry order %s not cancelled: %s", tracked.order_id, e)

    def flat(self) -> bool:
        """True when no position is held and no order of ours is still working."""
        return self.holding is None and self.orders.open_entry() is None

    def orders_in_flight(self) -> bool:
        """An entry or exit of ours sent and not settled yet (a stop rests by design: not one of them)."""
        return self.orders.open_entry() is not None or self.orders.open_exit() is not None

    def protected_at_broker(self) -> bool:
        """LIVE: a position held under its stop-loss order resting at the broker (confirmed: an unconfirmed one may
        not be there at all), no entry or exit of ours working: what a square-off that could not complete leaves
        (its exit refused, or cancelled after its patience, and the rest protected again)."""
        h = self.holding
        stop = h.stop_order if h is not None else None
        live = self.mode is Mode.LIVE and not self.orders_in_flight()
        return live and stop is not None and stop.resting and bool(stop.order_id)

    # -- store and snapshot ---------------------------------------------------------------------------

    def journal(self, kind: str, payload: dict[str, Any]) -> None:
        """A note in the session's journal, queued for the store writer (market time)."""
        append, when = self.ctx.store.journal.append, self.market_time or datetime.now()
        self.ctx.write_later(
            partial(append, self.ctx.key, segment=self.segment, kind=kind, payload=payload, market_time=when)
        )

    def lot_of(self, exchange: str, tradingsymbol: str) -> int:
        ins = self.book.by_symbol(exchange, tradingsymbol) if self.book is not None else None
        return ins.lot_size if ins is not None else 1

    @property
    def bar_ends(self) -> datetime | None:
        """When the forming index bar closes (exchange time), or None before the first tick."""
        forming = self.chart.forming
        return forming.start + _ONE_MINUTE if forming is not None else None

    @property
    def unrealised(self) -> Decimal:
        """Open P&L of the held option at its last price."""
        return self.keeper.unrealised

    def snapshot(self, state: AgentState, failure: str | None = None) -> SegmentSnapshot:
        """The segment as the GUI draws it (immutable; bars shared until one closes)."""
        s, h, chart = self.strategy.snapshot(), self.holding, self.chart
        pos = s.position
        return SegmentSnapshot(
            segment=self.segment, state=state, failure=failure, last_tick_time=self.market_time,
            bars=chart.bars, bars_version=chart.version, forming_bar=chart.forming, fast_ema=chart.fast_ema,
            slow_ema=chart.slow_ema, signal=s.signal, markers=tuple(chart.markers),
            option_symbol=h.tradingsymbol if h else None, quantity=h.quantity if h else 0,
            entry_price=h.entry_price if h else None, stop_price=pos.stop if pos else None,
            target_price=pos.target if pos else None, option_price=h.last_price if h else None,
            realised_pnl=self.realised, unrealised_pnl=self.unrealised,
            trades_today=self.ctx.risk.trades_today(self.segment, self.market_time),
            note="; ".join(n for n in (self.protection.status(), self.note) if n),
            risk_note=note_of_day(self.risk_note, self.market_time), protection=self.protection.status(),
        )  # fmt: skip
