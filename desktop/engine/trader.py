"""`SegmentTrader`: one segment of one session, in plain Python (no Qt), run by one thread at a time.

It orchestrates index ticks → 1-minute bars (exchange time) → strategy → risk → entries and exits; its helpers,
on the same thread, do the rest: `Entries` (entries.py) an entry from the strategy's signal through risk to its
order and its fill; `Orders` (orders.py) the order lifecycle, write-ahead journal and fills;
`Protection` (protection.py) the stop-loss order placed at the broker (LIVE) or the paper gateway (PAPER) as
soon as an entry fills; `OutsideClose` (outside.py) a position closed in Kite web; `HoldingKeeper`
(holding.py) what is held and its P&L. One thread at a time, so no locks of its own: its agent's thread, or its
account's dispatcher (engine/dispatch.py) running `decide` (no I/O) on the feed's thread while it holds the agent's
`lane` lock; `snapshot()` returns immutable objects (built in snapshots.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, cast

from desktop.broker.errors import BrokerError
from desktop.broker.instruments import InstrumentBook
from desktop.broker.order_lane import when_written
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderRole, OrderType, Segment, Side, Tick
from desktop.engine.chart import IndexChart
from desktop.engine.context import Holding, TraderContext
from desktop.engine.decisions import Decision, ReadyEntry
from desktop.engine.entries import Entries
from desktop.engine.holding import HoldingKeeper
from desktop.engine.logs import AgentLog
from desktop.engine.orders import ORDER_PATIENCE, Orders, TrackedOrder, sent_note
from desktop.engine.outside import OutsideClose
from desktop.engine.params import effective_itm_offset, itm_offset_note
from desktop.engine.protection import Protection
from desktop.engine.slices import SlicingGateway
from desktop.engine.snapshots import AgentState, SegmentSnapshot, segment_snapshot
from desktop.engine.strategy.base import Action, EnterPosition, ExitPosition, MoveStop, Strategy

# Exits of a position whose stop has been (or is being) crossed, or that must not stay open past the day's end:
# sent even when the journal cannot be written (`SegmentTrader.protective_exit`).
PROTECTIVE_EXITS = frozenset({"stop_loss", "trailing_stop", "square_off"})


@dataclass(frozen=True, slots=True)
class Closing:
    """A kill or a square-off under way: what is held, or an entry that fills after its cancel, is sold with
    `reason`; an exit of it that failed is asked again at `again_at` (it must not stay open)."""

    reason: str
    again_at: datetime | None = None


class _Once:
    """Runs `fn` the first time it is called only (an entry said sent at its request's write, then on return)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn: Callable[[], None] | None = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


class SegmentTrader:
    """The trading logic of one segment; called from its agent's thread, or (`decide`) from its account's
    dispatcher holding the agent's lane."""

    def __init__(self, ctx: TraderContext, segment: Segment, strategy: Strategy, log: AgentLog) -> None:
        # Orders above the exchange's freeze quantity go out in slices, tracked as one (desktop/engine/slices.py).
        self.slices = SlicingGateway(
            ctx.gateway, self.lot_of, ctx.params.freeze_overrides, log.warning,
            count=lambda: self.ctx.risk.record_order(self.market_time or datetime.now()),
        )  # fmt: skip
        self.ctx = replace(ctx, gateway=cast(Any, self.slices))
        self.segment, self.strategy, self.log = segment, strategy, log
        self._index_token = segment.spec.index_token  # read for every batch of ticks
        self.mode: Mode = ctx.params.mode
        self.book: InstrumentBook | None = None
        self.chart = IndexChart(segment.spec.index_token, ctx.params.fast_ema, ctx.params.slow_ema)
        self.offset = effective_itm_offset(ctx.params.itm_offset, segment)
        self.note = itm_offset_note(ctx.params.itm_offset, segment)
        self.market_time: datetime | None = None
        self.index_price: Decimal | None = None
        self.halted_entries = False  # stop/kill: no new entries from this segment
        self.closing: Closing | None = None  # kill or square-off: whatever is held or fills later is sold
        # Latency probes (bench): when the batch was posted, handed to the agent and taken by it (`probes.py`).
        self.batch_posted = self.batch_handed = self.batch_picked = 0.0
        self.entries = Entries(self)
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
        self.protection.place(self.strategy.position.stop if self.strategy.position else None)

    # -- market data ------------------------------------------------------------------------------

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        """A batch of this segment's ticks (index and held option)."""
        if self.orders.unsaved_fills:
            self.orders.save_fills()
        for actions in self.tick_steps(ticks):
            self.act(actions)
        self.entries.watch_candidates()
        self.after_ticks()

    def tick_steps(self, ticks: Sequence[Tick]) -> Iterator[list[Action]]:
        """The clock, bars and strategy over `ticks`, yielding the strategy's actions where they are to be run
        before the next step (`on_ticks` runs them at once; the dispatcher hands them to the agent with the rest
        of this generator). No I/O here: log lines of the dispatcher's steps are queued (`AgentLog.held`)."""
        self.changed = True
        index_token = self._index_token
        for tick in ticks:
            t = tick.exchange_timestamp
            if t is not None and (self.market_time is None or t > self.market_time):
                self.keeper.roll_day(t)
                self.market_time = t
                self.log.set_market_time(t)
            if tick.instrument_token == index_token:
                self.index_price = tick.last_price
                closed = self.chart.add_tick(tick)
                if closed is not None and (actions := self.strategy.on_bar(closed)):
                    yield actions
                if t is not None and self.holding is not None and (actions := self.strategy.on_clock(t)):
                    yield actions
            elif self.holding is not None and tick.instrument_token == self.holding.token:
                self.holding.last_price = tick.last_price
                when = t or self.market_time
                if when is not None:
                    if actions := self.strategy.on_option_price(tick.last_price, when):
                        yield actions
                    self.ctx.risk.update_pnl(self.segment, self.realised, self.unrealised, when)

    def after_ticks(self) -> None:
        """What follows a batch of ticks (the agent's thread: it may call the broker): overdue orders cancelled,
        the stop retried or chased, the broker's positions checked, a failed kill's exit asked again, fills owed
        asked for again."""
        now = self.market_time
        if self.orders.fills_maybe_owed:
            self.orders.ask_owed_fills()
        if now is not None:
            if self.orders.outage is not None:
                self.orders.journal_back(
                    now
                )  # intents held journalled, the halt lifted, once the store writes
            if self.orders.working:
                self.orders.cancel_overdue(now)
            if self.orders.lost_entry_until is not None:  # once its patience passed: the book read again
                self.orders.lost_entry_waits(now)
            self.protection.on_tick(now)
            if self.outside.due():
                self.outside.check(now)
            closing = self.closing
            if closing is not None and closing.again_at is not None and now >= closing.again_at:
                self.closing = replace(closing, again_at=None)
                if self.holding is not None:
                    self.exit(closing.reason)  # a kill's or square-off's exit failed: asked again
        self.changed = True

    # -- the dispatcher's part (engine/dispatch.py: the account feed's thread, under the agent's lane) ----------

    def chores_due(self) -> bool:
        """True when the agent's own thread has work on this segment around its ticks (the store, the broker):
        unsaved fills, fills owed to ask for again, orders working, a journal to try again, a stop to retry or chase,
        the broker's positions to read, an exit to ask again. Errs on the side of True: the agent then handles the ticks itself."""
        h = self.holding
        stop = h.stop_order if h is not None else None
        state = self.protection.state
        closing = self.closing
        return bool(
            self.orders.unsaved_fills
            or self.orders.working
            or self.orders.fills_ask_due()
            or self.orders.outage is not None
            or (closing is not None and closing.again_at is not None)
            or state.move_retry is not None
            or state.retry_at is not None
            or state.unprotected
            or (h is not None and (stop is None or not stop.resting or stop.triggered_at is not None))
            or (h is not None and self.mode is Mode.LIVE and time.monotonic() >= self.outside.next_check)
        )

    def decide(self, ticks: Sequence[Tick]) -> Decision | None:
        """The decision-only part of `on_ticks`, for the account's dispatcher (no I/O): bars, strategy, and an
        entry's option, intent and risk check. Stops at the first tick that leads to actions and hands them, with
        the rest of the batch, to the agent (`Decision`); None when the agent has nothing to do."""
        steps = self.tick_steps(ticks)
        self.entries.watch_candidates()  # before the steps' entries: their price read as streamed
        for actions in steps:
            if len(actions) == 1 and isinstance(actions[0], EnterPosition):
                ready = self.entries.ready(actions[0], on_dispatcher=True)
                if ready is None:
                    continue  # refused here (said, the strategy told): nothing for the agent
                return Decision([ready], steps)
            return Decision(list(actions), steps)
        return Decision() if self.chores_due() else None

    # -- actions ------------------------------------------------------------------------------------

    def act(self, actions: Sequence[Action | ReadyEntry]) -> None:
        """Runs strategy actions: entries through risk, exits always, stop moves to the broker."""
        for action in actions:
            if isinstance(action, EnterPosition | ReadyEntry):
                self._enter(action)
            elif isinstance(action, ExitPosition):
                self.exit(action.reason)
            elif isinstance(action, MoveStop):
                self.protection.trail(action.new_stop)

    def _enter(self, action: EnterPosition | ReadyEntry) -> None:
        """An entry decided here (`EnterPosition`) or on the dispatcher (`ReadyEntry`) goes out. It is on its way
        (the other agents' work of the moment lets it go first: `SendGate`) until its HTTP request is written, not
        until Kite answered it; at the latest until `send` returns (paper, refused, failed). One of its frame's
        group commit is counted there already (`ReadyEntry.sent`); any other (decided here, or checked here: its
        intent committed alone) is counted now."""
        sent = action.sent if isinstance(action, ReadyEntry) else None
        gate = self.ctx.sending
        if sent is None and gate is not None:
            sent = _Once(partial(gate.closed, gate.opened(1)))
        when_written(sent)
        try:
            if isinstance(action, ReadyEntry):
                self.entries.send(action)
            else:
                self.entries.enter(action)
        finally:
            when_written(None)
            if sent is not None:
                sent()

    def intent(
        self, exchange: str, symbol: str, side: Side, qty: int, reason: str, role: OrderRole, **kw: Any
    ) -> OrderIntent:
        """An intent of this segment: `role` is what risk reads; `reason` only words it (journal, log)."""
        return OrderIntent(
            self.ctx.key, self.segment, self.mode, exchange, symbol, side, qty, reason=reason, role=role, **kw
        )

    def exit(self, reason: str, limit: Decimal | None = None, at_once: bool = False) -> bool:
        """Sells the held option now (at `limit`, else at market), the resting SL order cancelled first; False
        if not sent. A stop-loss exit while the broker's stop rests at or above the price leaves that stop to
        fill (chased if it does not): cancelling it races its own fill. `at_once`: the protection sells now."""
        h, now = self.holding, self.market_time
        if h is None or now is None or self.orders.open_exit() is not None:
            return False
        if self.protection.left_to_stop(h, reason, at_once):
            return True
        protective = self.protective_exit(h, reason, at_once)
        if not protective and self.orders.journal_down(now):
            # The journal failed a moment ago: nothing is sent. The strategy may ask again (its exit is no longer
            # pending), a kill's or square-off's exit is asked again, and a position whose stop no longer rests gets
            # one (or is sold) again once the journal writes (a resting stop keeps protecting meanwhile).
            self.strategy.on_exit_rejected("the journal cannot be written")
            self.protection.retry_later("the journal cannot be written: the sale was not sent")
            self.exit_failed(now)
            return False
        quantity = self.outside.sellable(h, now, stop_first=True)
        if quantity is None:
            return False
        quantity = self.protection.exit_quantity(h, quantity, reason)
        if quantity <= 0:
            return False
        kind = {} if limit is None else {"order_type": OrderType.LIMIT, "price": limit}
        intent = self.intent(h.exchange, h.tradingsymbol, Side.SELL, quantity, reason, OrderRole.EXIT, **kind)
        # The intent is durable BEFORE the stop is cancelled: an exit that could not be journalled must not leave
        # the position with no stop and no exit (a full disk, a database locked for seconds). A protective one is
        # sent anyway, its intent held until the journal writes again (`Orders.record_intent`).
        if not self.orders.record_intent(intent, protective=protective):
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
        sent = self.orders.send(
            intent, recorded=True
        )  # the order first, then the log line (see Entries.send)
        self.log.info("Exit (%s): SELL %d %s at %s %s: %s", reason, quantity, h.tradingsymbol,
                      "a limit of" if limit else "about", limit or h.last_price, sent_note(sent))  # fmt: skip
        if not sent:
            self.strategy.on_exit_rejected("the exit order failed")
            self.protection.protect_rest()
            self.exit_failed(now)
            return False
        return True

    def protective_exit(self, h: Holding, reason: str, at_once: bool) -> bool:
        """A sale that protects the position, sent even when the journal cannot be written (its intent held): the
        protection's own (a stop that cannot be placed, one ended or chased), a stop-loss or square-off exit, a
        kill's, or any sale while no confirmed stop rests untriggered at the broker. Not a signal's or target's
        exit under a resting stop: that stop keeps protecting until the journal writes again."""
        stop = h.stop_order
        return (
            at_once
            or self.closing is not None
            or reason in PROTECTIVE_EXITS
            or stop is None
            or not stop.resting
            or not stop.order_id
            or stop.triggered_at is not None
        )

    def exit_failed(self, now: datetime) -> None:
        """An exit failed or ended unsold: a kill's or square-off's is asked again after `ORDER_PATIENCE`."""
        if self.closing is not None:
            self.closing = replace(self.closing, again_at=now + ORDER_PATIENCE)

    # -- order updates and commands ---------------------------------------------------------------------------

    def on_order(self, order: Order) -> None:
        """An order update of ours: stored, then acted on (`Orders.on_order`)."""
        self.orders.on_order(order)

    def on_fill(self, fill: Fill) -> None:
        """A fill: durable in the store first, then the position and the strategy learn of it."""
        self.orders.on_fill(fill)

    def cancel_open_entries(self, then_exit: str | None = None) -> None:
        """Cancels an entry still on its way (kill switch, stop); no entries after. `then_exit`: the exit's reason
        should the entry fill anyway (its cancel came too late), so a kill or square-off leaves nothing open."""
        self.halted_entries = True
        again = self.closing.again_at if self.closing is not None else None
        self.closing = None if then_exit is None else Closing(then_exit, again)
        tracked = self.orders.open_entry()
        if tracked is not None:
            self.orders.cancel(tracked)  # counted in the order rate; its CANCELLED update settles it

    def move_stop(self, level: Decimal) -> str:
        """The stop moved to `level` by hand (`Protection.move_by_hand`; raises BrokerError when it cannot), and the
        strategy's own stop follows: returns its note on its trailing (`Strategy.on_stop_moved`, "" when none)."""
        if self.market_time is None:
            raise BrokerError("no price has been seen yet")
        self.protection.move_by_hand(level)
        self.changed = True
        return self.strategy.on_stop_moved(level, self.market_time)

    def cancel_order(self, order_id: str) -> TrackedOrder:
        """Cancels a working entry or exit by hand (`Orders.cancel_by_hand`; never the stop); raises BrokerError."""
        return self.orders.cancel_by_hand(order_id)

    def stopping(self) -> None:
        """The segment's agent is ending: the orders sent while the journal could not be written are journalled if
        the store writes now (`Orders.last_flush`), else said (the next start adopts them by the session's tag)."""
        self.orders.last_flush()

    def owes_recovery(self) -> bool:
        """Something this segment knows of is not counted durably: a fill the store refused (disk full, database
        locked) still waiting to be recorded, a fill the broker shows of one of our orders that never came (LIVE:
        its trade list could not be read), a position let go (the broker showed it gone) whose own sale's fill has
        not come, or an order sent while the journal could not be written and not journalled yet. Its session must
        then be taken over on the next start, whose recovery counts them (from the broker's orders of its tag)."""
        gone = self.keeper.let_go
        return (
            bool(self.orders.unsaved_fills)
            or bool(self.orders.held)
            or (gone is not None and gone.quantity > 0)
            or bool(self.orders.fills_owed())
        )

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

    # -- store ---------------------------------------------------------------------------

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
        return self.chart.builder.current_ends

    @property
    def unrealised(self) -> Decimal:
        """Open P&L of the held option at its last price."""
        return self.keeper.unrealised

    def snapshot(self, state: AgentState, failure: str | None = None) -> SegmentSnapshot:
        """The segment as the GUI draws it (`snapshots.segment_snapshot`: immutable; bars shared until one closes)."""
        return segment_snapshot(self, state, failure)
