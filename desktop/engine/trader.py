"""`SegmentTrader`: one segment of one session, in plain Python (no Qt), run by its agent's thread only.

Flow: index ticks → 1-minute bars (exchange time) → strategy → risk → journal → order gateway; order
updates and fills come back through `on_order` / `on_fill` and are written to the store BEFORE the
strategy hears of them (write-ahead: a crash never loses a fill the engine acted on).
After the entry fills, a protective SL (stop-loss limit) order rests at the broker, or at the paper gateway
in PAPER (so a dead KiteDesk still has its position protected), is modified on `MoveStop`, and is cancelled
before any other exit is sent; desktop/engine/protection.py places, trails, retries and chases it.
An entry or exit still working `ORDER_PATIENCE` after it was sent has its rest cancelled; an exit or the
broker's stop that ends part-filled leaves the rest held, protected again and exitable. A LIVE exit sells at
most what the account's positions show, so a position closed in Kite web never becomes a short one; while
holding, the positions are read every `BROKER_CHECK_EVERY` seconds, and a position gone from the broker is
let go with its stop cancelled (or the stop resized when part of it went).
Everything here runs on one thread, so it needs no locks; `snapshot()` returns immutable objects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, cast

from desktop.broker.errors import AmbiguousOrderFailure, BrokerError
from desktop.broker.instruments import InstrumentBook, OptionContract
from desktop.domain import (
    Fill,
    Mode,
    OptionRight,
    Order,
    OrderIntent,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
    Segment,
    Side,
    Tick,
    rupees,
)
from desktop.engine.chart import IndexChart
from desktop.engine.context import Holding, TrackedOrder, TraderContext
from desktop.engine.logs import AgentLog
from desktop.engine.params import effective_itm_offset, itm_offset_note, order_quantity
from desktop.engine.protection import Protection
from desktop.engine.slices import SlicingGateway
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.engine.strategy.base import Action, EnterPosition, ExitPosition, MoveStop, Strategy
from desktop.store.errors import StoreError, StoreWriteError

_ONE_MINUTE = timedelta(minutes=1)
# An entry or exit still working this long after it was sent (a thin option, a market order held at its
# protection price) has the rest cancelled: a part-filled entry becomes the position, with its stop; an exit
# is asked for again. Market orders normally fill within a second.
ORDER_PATIENCE = timedelta(seconds=30)
# LIVE, while holding: how often (real seconds: it is a REST call, under Kite's rate limits) the account's
# positions are read to see whether the position was closed outside KiteDesk.
BROKER_CHECK_EVERY = 30.0
STOP_RETRY = timedelta(
    seconds=5
)  # an exit whose intent could not be journalled is asked again this much later


class SegmentTrader:
    """The trading logic of one segment; every method is called from the agent's thread only."""

    def __init__(self, ctx: TraderContext, segment: Segment, strategy: Strategy, log: AgentLog) -> None:
        # Orders above the exchange's freeze quantity go out in slices, tracked as one (desktop/engine/slices.py).
        self.slices = SlicingGateway(
            ctx.gateway, self._lot_of, ctx.params.freeze_overrides, log.warning,
            count=lambda: self.ctx.risk.record_order(self.market_time or datetime.now()),
        )  # fmt: skip
        self.ctx = replace(ctx, gateway=cast(Any, self.slices))
        self.segment = segment
        self.strategy = strategy
        self.log = log
        self.mode: Mode = ctx.params.mode
        self.book: InstrumentBook | None = None
        self.chart = IndexChart(segment.spec.index_token, ctx.params.fast_ema, ctx.params.slow_ema)
        self.offset = effective_itm_offset(ctx.params.itm_offset, segment)
        self.note = itm_offset_note(ctx.params.itm_offset, segment)
        self.market_time: datetime | None = None
        self.index_price: Decimal | None = None
        self.holding: Holding | None = None
        self.let_go: Holding | None = None
        self.last_refusal = ""  # the broker's words when it last refused an order (`_send`)
        self._journal_down_until: datetime | None = (
            None  # an intent could not be journalled: exits wait till  # the last position let go (gone from the broker), see `_late_sale`
        )
        self.orders: dict[str, TrackedOrder] = {}  # order_id -> tracked
        self._working: list[TrackedOrder] = []  # entries and exits sent and not done yet (see ORDER_PATIENCE)
        self.seen_fills: set[str] = set()
        # Fills the store refused (disk full, database locked): recorded again, in order, on the next ticks.
        self._unsaved_fills: list[Fill] = []
        self._unsaved_said = ""  # the fill whose wait was last logged
        self._journal_halt: str | None = None  # the session's halt this segment set when the journal failed
        self.order_rows: dict[str, Order] = {}  # latest report of each of our orders, for the GUI
        self.fill_rows: list[Fill] = []
        self.realised = Decimal(0)  # today's (see `_roll_day`)
        self._pnl_day: date | None = None
        self.halted_entries = False  # stop/kill: no new entries from this segment
        # Kill or square-off: the reason an entry that fills anyway is sold with, at once.
        self.exit_if_filled: str | None = None
        self._exit_again_at: datetime | None = None  # market time to ask a failed kill/square-off exit again
        self._next_broker_check = 0.0  # time.monotonic() of the next check that the broker still holds it
        self._broker_short_seen: tuple[str, int, int] | None = None  # (symbol, held, at broker) seen once
        # Tick-to-intent latency (bench): when the batch being handled was posted, and a list to fill.
        self.batch_posted = 0.0
        self.batch_handed = 0.0  # when the batch was put in this agent's inbox
        self.batch_picked = 0.0  # when this thread took the batch from its inbox (latency probes)
        # Each entry's (tick-to-intent, of it until the agent took the batch, of it until the batch was
        # handed to the agent), seconds from the frame's arrival.
        self.latency_probe: list[tuple[float, float, float]] | None = None
        # Each entry's tick-to-order-sent (the intent journaled durably, then accepted by the gateway), seconds.
        self.sent_probe: list[float] | None = None
        self.risk_note: tuple[date, str] | None = None  # (market day, why) of the last entry risk refused
        self.protection = Protection(self)
        self.changed = True

    # -- start ------------------------------------------------------------------------------------

    def load(self, book: InstrumentBook, candles: Iterable[Any], now: datetime | None) -> None:
        """Instruments of the day, then warm-up from historical 1-minute candles (no trading)."""
        self.book = book
        bars = self.chart.warm_up(candles, now)
        self.strategy.warm_up(bars)
        if bars:
            self.index_price = bars[-1].close
        self.log.info(
            "%s %s started: lots %d, stop loss %s%%, ITM offset %d points, %d warm-up bars",
            self.segment.value,
            self.mode.value,
            self.ctx.params.lots,
            self.ctx.params.stop_loss,
            self.offset,
            len(bars),
            at=now,
        )
        if self.note:
            self.log.info(self.note, at=now)

    def adopt(
        self,
        contract_symbol: str,
        exchange: str,
        quantity: int,
        price: Decimal,
        t: datetime,
        cost: Decimal | None = None,
    ) -> None:
        """Takes over a position left by a previous run of this session (recovery), bought at `price` on average
        (`cost` in all, unrounded, when known)."""
        assert self.book is not None
        ins = self.book.by_symbol(exchange, contract_symbol)
        if ins is None or ins.instrument_type not in ("CE", "PE"):
            self.log.error("cannot adopt %s:%s: not in today's instruments", exchange, contract_symbol)
            return
        right = OptionRight(ins.instrument_type)
        self.holding = Holding(
            exchange, contract_symbol, ins.instrument_token, right, quantity, price, price, cost=cost
        )
        self.ctx.watch_option(ins.instrument_token, self.segment)
        self.strategy.on_fill(right, contract_symbol, quantity, price, t)
        self.ctx.risk.on_entry_filled(self.segment)
        self.log.warning(
            "recovered an open position from the previous run: %d %s bought at %s",
            quantity,
            contract_symbol,
            price,
        )
        self.changed = True

    def adopt_stop_order(self, order: Order) -> None:
        """The broker's resting SL order of an adopted LIVE position: ours to modify and cancel."""
        assert self.holding is not None
        # What it still sells: its fills before this run are already counted.
        left = order.quantity - order.filled_quantity
        intent = self._intent(
            self.holding.exchange,
            self.holding.tradingsymbol,
            Side.SELL,
            left,
            "protective_stop",
            OrderRole.STOP,
        )
        tracked = TrackedOrder(intent, order.order_id, order.status)
        tracked.trigger, tracked.limit = order.trigger_price, order.price
        self.orders[order.order_id] = tracked
        self.holding.stop_order = tracked
        self.protection.on_update(tracked, order.status)  # adopted triggered: chased like one of this run
        self.log.info(
            "kept the stop-loss order %s at the broker (trigger %s)", order.order_id, order.trigger_price
        )

    # -- market data ------------------------------------------------------------------------------

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        """A batch of this segment's ticks (index and held option)."""
        if self._unsaved_fills:
            self._save_fills()
        index_token = self.segment.spec.index_token
        for tick in ticks:
            t = tick.exchange_timestamp
            if t is not None and (self.market_time is None or t > self.market_time):
                self._roll_day(t)
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
        if self._working and self.market_time is not None:
            self._cancel_overdue(self.market_time)
        if self.market_time is not None:
            self.protection.on_tick(self.market_time)
        if (
            self.mode is Mode.LIVE
            and self.holding is not None
            and self.market_time is not None
            and self._open_exit() is None
            and time.monotonic() >= self._next_broker_check
        ):
            self._next_broker_check = time.monotonic() + BROKER_CHECK_EVERY
            self._check_broker_position(self.market_time)
        if (
            self._exit_again_at is not None
            and self.market_time is not None
            and self.market_time >= self._exit_again_at
        ):
            self._exit_again_at = None
            if self.exit_if_filled is not None and self.holding is not None:
                self.exit(self.exit_if_filled)  # a kill's or square-off's exit failed: asked again
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
                self._move_stop(action.new_stop)

    def _intent(
        self, exchange: str, symbol: str, side: Side, qty: int, reason: str, role: OrderRole, **kw: Any
    ) -> OrderIntent:
        """An intent of this segment: `role` is what risk reads; `reason` only words it (journal, log)."""
        return OrderIntent(
            self.ctx.key, self.segment, self.mode, exchange, symbol, side, qty, reason=reason, role=role, **kw
        )

    def _enter(self, action: EnterPosition) -> None:
        now = self.market_time
        assert now is not None and self.book is not None
        if self.halted_entries or self.holding is not None or self._open_entry() is not None:
            self.strategy.on_entry_rejected("an entry or position is already on its way")
            return
        if self._journal_halt is not None and not self._journal_back(now):
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
        intent = self._intent(
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
        if self.latency_probe is not None:
            self.latency_probe.append(
                (
                    time.perf_counter() - self.batch_posted,
                    self.batch_picked - self.batch_posted,
                    self.batch_handed - self.batch_posted,
                )
            )
        self._pending_contract = contract
        # The order goes out first (its intent journaled durably before): the journal note, the log line and the
        # option's subscription come after, so they hold up neither this order nor the other agents deciding
        # on the same tick (one interpreter lock for all of them). The option's ticks start within the
        # millisecond.
        sent = self._send(intent)
        if sent and self.sent_probe is not None:
            self.sent_probe.append(time.perf_counter() - self.batch_posted)
        self._journal(
            "entry_sent",
            {"intent_id": intent.intent_id, "symbol": contract.tradingsymbol, "qty": qty, "lot_size": contract.lot_size,
             "spot": str(self.index_price), "strike": str(contract.strike), "right": action.right.value,
             "itm_offset": self.offset, "reason": action.reason, "placed": bool(sent)},
        )  # fmt: skip
        self.log.info(
            "Entry signal (%s): BUY %d %s (spot %s, strike %s, ITM offset %d): %s",
            action.reason,
            qty,
            contract.tradingsymbol,
            self.index_price,
            contract.strike,
            self.offset,
            _sent_note(sent),
        )
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
        h = self.holding
        now = self.market_time
        if h is None or now is None:
            return False
        if self._open_exit() is not None:
            return False
        stop = h.stop_order
        if stop is not None and not stop.done and stop.final and stop.filled < stop.broker_filled:
            self.log.info(
                "the stop-loss order %s sold %d: waiting for its fills", stop.order_id, stop.broker_filled
            )
            self.ctx.gateway.report_fills(stop.order_id)
            return True
        if (
            not at_once
            and reason in ("stop_loss", "trailing_stop")
            and stop is not None
            and stop.resting
            and stop.order_id
            and stop.trigger is not None
            and h.last_price <= stop.trigger
        ):
            self.protection.expect_fill(stop)
            return True
        if self._journal_down_until is not None and now < self._journal_down_until:
            return False  # the journal failed a moment ago: the stop keeps protecting; asked again later
        quantity = self._sellable(h, now, stop_first=True)
        if quantity is None:
            return False
        quantity = self.protection.exit_quantity(h, quantity, reason)
        if quantity <= 0:
            return False
        kind = {} if limit is None else {"order_type": OrderType.LIMIT, "price": limit}
        intent = self._intent(
            h.exchange, h.tradingsymbol, Side.SELL, quantity, reason, OrderRole.EXIT, **kind
        )
        # The intent is durable BEFORE the stop is cancelled: an exit that could not be journalled must not leave
        # the position with no stop and no exit (a full disk, a database locked for seconds).
        if not self._record_intent(intent):
            self.strategy.on_exit_rejected("the journal cannot be written")
            self._protect_rest()  # a stop `_sellable` cancelled (the broker showed less held) is placed again
            if self.exit_if_filled is not None:
                self._exit_again_at = now + ORDER_PATIENCE
            return False
        if h.stop_order is not None and h.stop_order.resting and not self._cancel_stop(h):
            self.strategy.on_exit_rejected("the stop-loss order could not be cancelled")
            return False
        self.ctx.risk.check(intent, now)  # exits are never refused; this counts the order
        h.exit_reason = reason
        sent = self._send(intent, recorded=True)  # the order first, then the log line (see _enter)
        self.log.info(
            "Exit (%s): SELL %d %s at %s %s: %s",
            reason, quantity, h.tradingsymbol, "a limit of" if limit else "about", limit or h.last_price,
            _sent_note(sent),
        )  # fmt: skip
        if not sent:
            self.strategy.on_exit_rejected("the exit order failed")
            self._protect_rest()
            if self.exit_if_filled is not None:
                self._exit_again_at = now + ORDER_PATIENCE
            return False
        return True

    def _sellable(self, h: Holding, now: datetime, stop_first: bool = False) -> int | None:
        """How much a LIVE sell of the held option may sell: what this segment holds, but never more than the
        account holds at the broker. A position closed in Kite web or the app must not become a short option
        position. None when the broker shows none: the position is let go (nothing to sell). `stop_first`: when
        the broker shows less than held, our resting stop is cancelled first; a refused cancel means the stop is
        what sold it (None: its fills close the position and count)."""
        try:
            net = self.ctx.gateway.account_net_quantity(h.exchange, h.tradingsymbol)
        except BrokerError as e:
            self.log.warning("positions not read before selling %s (%s): selling the %d held", h.tradingsymbol, e,
                             h.quantity)  # fmt: skip
            return h.quantity
        if net is None or net >= h.quantity:
            return h.quantity
        stop = h.stop_order
        if stop_first and stop is not None and stop.resting and not self._cancel_stop(h):
            self.log.info("the broker shows %d of the %d %s held and the stop-loss order %s could not be cancelled: "
                          "it is selling; waiting for its fills", max(net, 0), h.quantity, h.tradingsymbol,
                          stop.order_id)  # fmt: skip
            self.strategy.on_exit_rejected("the stop-loss order is selling")
            return None
        self._journal("broker_holds_less", {"symbol": h.tradingsymbol, "held": h.quantity, "at_broker": net})
        if net > 0:
            self.log.error(
                "the broker shows only %d of the %d %s held (sold outside KiteDesk, or fills not reported yet): "
                "selling %d",
                net, h.quantity, h.tradingsymbol, net,
            )  # fmt: skip
            return net
        self.log.error(
            "the broker shows no %s position (closed outside KiteDesk?): nothing sold, the position is let go; "
            "its P&L is not counted here",
            h.tradingsymbol,
        )
        self._let_go(h, now)
        return None

    def _let_go(self, h: Holding, now: datetime) -> None:
        """The position is no longer at the broker: its stop cancelled (triggered, it would sell short), flat."""
        if h.stop_order is not None and h.stop_order.resting:
            self._cancel_stop(h)
        self.holding = None
        self.let_go = h  # a fill of our own sale still on its way is counted against it (`_sold`)
        self._save_flat(h.exchange, h.tradingsymbol)
        self.strategy.on_exit(h.last_price, now, "closed_outside")
        self.ctx.risk.on_position_closed(self.segment)
        self.ctx.risk.update_pnl(self.segment, self.realised, Decimal(0), now)
        self.changed = True

    def _check_broker_position(self, now: datetime) -> None:
        """LIVE, while holding: does the account still hold it? A position sold in Kite web or the app leaves our
        stop-loss order resting, and triggered it would sell short. Acts only when two checks in a row (a
        `BROKER_CHECK_EVERY` apart) see less than held, so a stop's fills on their way are not taken for it."""
        h = self.holding
        assert h is not None
        try:
            net = self.ctx.gateway.account_net_quantity(h.exchange, h.tradingsymbol)
        except BrokerError as e:
            self.log.debug("positions not read (%s): checked again later", e)
            return
        account = net
        if net is not None:
            net = self._account_share(h, net)
        if net is None or net >= h.quantity:
            self._broker_short_seen = None
            return
        shared = "" if net == account else f" (the account holds {account}, held first by its other sessions)"
        if self._broker_short_seen != (h.tradingsymbol, h.quantity, net):
            self._broker_short_seen = (h.tradingsymbol, h.quantity, net)
            return  # seen once: maybe our own stop's fills not reported yet
        self._broker_short_seen = None
        self._journal(
            "broker_holds_less",
            {"symbol": h.tradingsymbol, "held": h.quantity, "at_broker": net, "account": account},
        )
        if net <= 0:
            self.log.error(
                "the broker shows no %s position any more for this session%s (closed outside KiteDesk?): the "
                "position is let go and its stop-loss order cancelled; its P&L is not counted here",
                h.tradingsymbol, shared,
            )  # fmt: skip
            self._let_go(h, now)
            return
        self.log.error(
            "the broker shows only %d of the %d %s held for this session%s (sold outside KiteDesk?): holding %d, "
            "stop-loss order resized; the P&L of the rest is not counted here",
            net, h.quantity, h.tradingsymbol, shared, net,
        )  # fmt: skip
        h.keep_only(net)
        self._save_position(now)
        stop = h.stop_order
        if stop is not None and stop.resting and stop.order_id:
            try:
                self.ctx.gateway.modify(stop.order_id, quantity=net)
                stop.modifications += 1  # Kite counts every modification of an order (25 at most)
                self.ctx.risk.record_order(now)
            except BrokerError as e:
                self.log.warning("stop-loss order %s not resized (%s): replacing it", stop.order_id, e)
                if self._cancel_stop(h):
                    self._protect_rest()

    def _account_share(self, h: Holding, net: int) -> int:
        """What of the account's `net` at the broker this session may count as its own. Sessions of one account
        holding the same option take it in the order of their session ids, so that together their stops never
        cover more than the account holds (a sale in Kite web of a jointly held option is anybody's)."""
        me = self.ctx.key.session_id
        before = sum(qty for sid, qty in self.ctx.others_holding(h.exchange, h.tradingsymbol) if sid < me)
        return max(0, net - before)

    def _protect_rest(self) -> None:
        """The position is still held after an exit failed or sold only part: a stop-loss order for what the
        broker still holds (or the position is let go when it holds none)."""
        h, position, now = self.holding, self.strategy.position, self.market_time
        if h is None or position is None or now is None:
            return
        if h.stop_order is not None and h.stop_order.resting:
            return
        quantity = self._sellable(h, now)
        if quantity is not None:
            self._place_stop(position.stop, quantity)

    def _cancel_stop(self, h: Holding) -> bool:
        return self.protection.cancel(h)

    def _move_stop(self, new_stop: Decimal, retry: bool = False) -> None:
        self.protection.trail(new_stop, retry)

    def _place_stop(self, level: Decimal | None, quantity: int | None = None) -> None:
        self.protection.place(level, quantity)

    def whole_lots(self, h: Holding, quantity: int) -> int:
        """`quantity` rounded down to whole lots of the held option: what the exchange takes in one order."""
        lot = self.lot_size(h)
        return quantity - quantity % lot if lot > 1 else quantity

    def lot_size(self, h: Holding) -> int:
        ins = self.book.by_symbol(h.exchange, h.tradingsymbol) if self.book is not None else None
        return ins.lot_size if ins is not None else 1

    def _record_intent(self, intent: OrderIntent) -> bool:
        """The intent made durable; False when the store cannot write it: then the session takes no new entries
        (nothing may be sent that the journal does not hold) and exits are asked again a little later."""
        assert self.market_time is not None
        try:
            self.ctx.store.intents.record(intent, at=self.market_time)
        except StoreError as e:
            self._journal_down_until = self.market_time + STOP_RETRY
            self._journal_halt = f"the journal cannot be written ({e})"
            self.ctx.risk.kill(self._journal_halt)
            self.log.error(
                "the %s order to %s %d %s cannot be journalled (%s): not sent; any stop-loss order is kept; this "
                "session takes no new entries until the journal can be written",
                intent.reason, intent.side.value, intent.quantity, intent.tradingsymbol, e,
            )  # fmt: skip
            return False
        self._journal_down_until = None
        return True

    def _journal_back(self, now: datetime) -> bool:
        """After an intent could not be journalled: True once the journal writes again (a note written now, tried
        every STOP_RETRY), and the session's halt this segment set is lifted. A disk full for a few seconds must
        not end the day; while it lasts, no entry (nothing may be sent that the journal does not hold)."""
        halt = self._journal_halt
        assert halt is not None
        if self._journal_down_until is not None and now < self._journal_down_until:
            return False
        try:
            self.ctx.store.journal.append(
                self.ctx.key, segment=self.segment, kind="journal_writable", payload={}, market_time=now
            )
        except StoreError:
            self._journal_down_until = now + STOP_RETRY
            return False
        self._journal_halt = self._journal_down_until = None
        if self.ctx.risk.lift(halt):
            self.log.warning("the journal is written again: the session takes new entries again")
        return True

    def _send(self, intent: OrderIntent, recorded: bool = False) -> TrackedOrder | None:
        """Journal first (durable), then send; None when the gateway refused it or the journal failed."""
        assert self.market_time is not None
        if not recorded and not self._record_intent(intent):
            return None
        role = intent.role
        tracked = TrackedOrder(intent)
        try:
            order = self.ctx.gateway.place(intent)
        except AmbiguousOrderFailure as e:
            # Kite may have it, so it is neither sent again nor taken as refused: its first order update makes it
            # ours (`_bind`); `_cancel_overdue` gives it up after ORDER_PATIENCE if none comes.
            self.log.error("%s order unconfirmed: %s Watching Kite's order updates for it.", role, e)
            self._journal(
                "order_unconfirmed", {"intent_id": intent.intent_id, "reason": str(e), "role": role}
            )
            tracked.sent_at = self.market_time
            self._working.append(tracked)
            return tracked
        except BrokerError as e:
            self.log.error("%s order not placed: %s", role, e)
            self.last_refusal = str(e)
            self._journal("order_failed", {"intent_id": intent.intent_id, "reason": str(e)})
            return None
        # A note of what was sent, after the send: queued for the store writer, whose wake-up and write must not
        # come between the durable intent and the order.
        self._journal(
            "order_sent",
            {
                "intent_id": intent.intent_id,
                "order_id": order.order_id,
                "reason": intent.reason,
                "role": role,
            },
        )
        tracked.order_id = order.order_id
        tracked.sent_at = self.market_time
        self.orders[order.order_id] = tracked
        for slice_id in self.slices.children(order.order_id):  # an order sent in slices: each is this one
            self.orders[slice_id] = tracked
        if role is not OrderRole.STOP:
            self._working.append(tracked)
        return tracked

    def _cancel_overdue(self, now: datetime) -> None:
        """An entry or exit still working `ORDER_PATIENCE` after it was sent (or after the last cancel asked
        for) has the rest cancelled; its CANCELLED update then settles it (`on_order`). One that ended at the
        broker but whose fills have not all come has them asked for again."""
        working = [t for t in self._working if not t.done]
        self._working = working
        for tracked in working:
            since = tracked.cancel_asked_at or tracked.sent_at
            if since is None or now - since < ORDER_PATIENCE:
                continue
            tracked.cancel_asked_at = now
            if not tracked.order_id:
                self._give_up(tracked)
                continue
            if tracked.final:
                self.log.warning(
                    "%s order %s ended %s with %d filled, but %d fills came: asking for them again",
                    tracked.role, tracked.order_id, tracked.status.value, tracked.broker_filled, tracked.filled,
                )  # fmt: skip
                self.ctx.gateway.report_fills(tracked.order_id)
                continue
            self.log.warning(
                "%s order %s still open after %d s (%d of %d filled): cancelling the rest",
                tracked.role, tracked.order_id, (now - tracked.sent_at).total_seconds() if tracked.sent_at else 0,
                tracked.filled, tracked.intent.quantity,
            )  # fmt: skip
            try:
                self.ctx.gateway.cancel(tracked.order_id)
            except BrokerError as e:
                self.log.warning("%s order %s not cancelled: %s", tracked.role, tracked.order_id, e)
            else:
                self.ctx.risk.record_order(now)

    def _give_up(self, tracked: TrackedOrder) -> None:
        """An unconfirmed order that no update ever showed: taken as not placed (the trader is told to check)."""
        self.log.error(
            "%s order never showed in Kite's order updates after %d s: taken as not placed; check the order book "
            "in Kite",
            tracked.role, ORDER_PATIENCE.total_seconds(),
        )  # fmt: skip
        tracked.final = True
        tracked.why = "never confirmed by Kite"
        self._settle(tracked, self.market_time)
        h = self.holding
        if tracked.role is OrderRole.STOP and h is not None and h.stop_order is tracked:
            self._protect_rest()

    def _claim_slice(self, order: Order) -> TrackedOrder | None:
        """The unconfirmed slice of one of our sliced orders this update is about (see `_bind`), or None."""
        group_id = self.slices.claim(order)
        tracked = self.orders.get(group_id) if group_id else None
        if tracked is not None:
            self.orders[order.order_id] = tracked
            self.log.warning(
                "a slice of order %s found in Kite's order updates: %s", group_id, order.order_id
            )
        return tracked

    def _lot_of(self, exchange: str, tradingsymbol: str) -> int:
        ins = self.book.by_symbol(exchange, tradingsymbol) if self.book is not None else None
        return ins.lot_size if ins is not None else 1

    def _bind(self, order: Order) -> TrackedOrder | None:
        """The unconfirmed order of ours this update is about (same instrument, side and quantity), now
        known by its id; None if none."""
        for tracked in self._working:
            i = tracked.intent
            if (
                not tracked.order_id
                and not tracked.done
                # not by order type: Kite lists a MARKET order with protection as a LIMIT
                and (order.tradingsymbol, order.side, order.quantity) == (i.tradingsymbol, i.side, i.quantity)
            ):
                tracked.order_id = order.order_id
                self.orders[order.order_id] = tracked
                # A stop rests by design: no patience for it once Kite shows it.
                if tracked.role is OrderRole.STOP:
                    self._working.remove(tracked)
                self.log.warning(
                    "%s order %s found in Kite's order updates: it is ours", tracked.role, order.order_id
                )
                return tracked
        return None

    # -- order outcomes --------------------------------------------------------------------------
    #
    # An order is settled when the broker says it ended (COMPLETE, CANCELLED, REJECTED) and its fills have come
    # up to the quantity it says filled, in whichever order the two arrive. Sales (exits, the stop) reduce the
    # position fill by fill, so a stop that sold part before it was cancelled still counts.

    def on_order(self, order: Order) -> None:
        """An order update of ours: stored, then acted on (a rejected entry frees the strategy)."""
        tracked = self.orders.get(order.order_id) or self._claim_slice(order) or self._bind(order)
        if tracked is not None and not order.intent_id:
            order = replace(order, intent_id=tracked.intent.intent_id)
        self.ctx.write_later(partial(self.ctx.store.orders.record, order))
        self.order_rows[order.order_id] = order
        self.changed = True
        if order.filled_quantity:  # its fills, read on this thread (LIVE: a REST call; none when all came)
            self.ctx.gateway.report_fills(order.order_id)
        if tracked is None or tracked.final:
            return
        order = self.slices.fold(order)  # a slice's update as its whole order's
        tracked.status = order.status
        if tracked.role is OrderRole.STOP:
            self.protection.on_update(tracked, order.status)
        if order.status.is_final:
            tracked.final = True
            complete = order.status is OrderStatus.COMPLETE
            tracked.broker_filled = tracked.intent.quantity if complete else order.filled_quantity
            tracked.why = order.status_message or order.status.value.lower()
            self._settle(tracked, order.timestamp or self.market_time)

    def on_fill(self, fill: Fill) -> None:
        """A fill: durable in the store first, then the position and the strategy learn of it."""
        if fill.fill_id in self.seen_fills or any(f.fill_id == fill.fill_id for f in self._unsaved_fills):
            return
        self._unsaved_fills.append(fill)
        self._save_fills()

    def _save_fills(self) -> None:
        """Records the fills not durable yet, in the order they came, each acted on once recorded. One the store
        refuses (disk full, database locked) waits, with those behind it, and is recorded on the next ticks:
        never dropped, so its P&L is counted once the store writes again."""
        while self._unsaved_fills:
            fill = self._unsaved_fills[0]
            try:
                self.ctx.store.fills.record(fill)
            except StoreWriteError as e:
                if self._unsaved_said != fill.fill_id:  # once per fill, not once per tick
                    self._unsaved_said = fill.fill_id
                    self.log.error("fill %s of order %s not recorded yet (%s): tried again on the next ticks",
                                   fill.fill_id, fill.order_id, e)  # fmt: skip
                return
            del self._unsaved_fills[0]
            self._on_recorded_fill(fill)

    def _on_recorded_fill(self, fill: Fill) -> None:
        self.seen_fills.add(fill.fill_id)
        self.fill_rows.append(fill)
        self.changed = True
        tracked = self.orders.get(fill.order_id)
        if tracked is None:
            self.log.warning("fill %s of an order this run did not place (%s)", fill.fill_id, fill.order_id)
            return
        tracked.filled += fill.quantity
        tracked.value += fill.price * fill.quantity
        if tracked.role is not OrderRole.ENTRY:
            self._sold(tracked, fill)
        self._settle(tracked, fill.timestamp)

    def _settle(self, tracked: TrackedOrder, t: datetime | None) -> None:
        """Acts on an order once all of it is known: filled in full, or ended with all its fills in."""
        if tracked.done:
            return
        if tracked.filled < tracked.intent.quantity and not (
            tracked.final and tracked.filled >= tracked.broker_filled
        ):
            return
        tracked.done = True
        t = t or self.market_time or datetime.now()
        h = self.holding
        if tracked.role is OrderRole.ENTRY:
            if tracked.filled:
                self._entry_filled(tracked, rupees(tracked.value / tracked.filled), t)
                return
            self.log.warning("entry order %s %s: %s", tracked.order_id, tracked.status.value, tracked.why)
            self.ctx.risk.on_entry_failed(self.segment)
            self.strategy.on_entry_rejected(tracked.why)
        elif h is None or h.tradingsymbol != tracked.intent.tradingsymbol:
            return  # the sale closed the position (`_sold`)
        elif tracked.role is OrderRole.EXIT:
            if tracked.filled:
                self.log.warning(
                    "%s exit order %s ended with %d of %d sold: %d %s still held",
                    h.exit_reason or tracked.intent.reason, tracked.order_id, tracked.filled, tracked.intent.quantity,
                    h.quantity, h.tradingsymbol,
                )  # fmt: skip
                self._journal("exit_partial", {"order_id": tracked.order_id, "symbol": h.tradingsymbol,
                                               "sold": tracked.filled, "held": h.quantity})  # fmt: skip
            else:
                self.log.error("exit order %s %s: %s", tracked.order_id, tracked.status.value, tracked.why)
            self.strategy.on_exit_rejected(tracked.why)
            self._protect_rest()
            if self.exit_if_filled is not None:  # halted by a kill or a square-off: it must not stay open
                self._exit_again_at = t + ORDER_PATIENCE
        elif not tracked.cancelled_by_us:  # the broker ended our stop with the position still held
            self.log.warning(
                "stop-loss order %s %s with %d of %d sold (%s): %d %s still held",
                tracked.order_id, tracked.status.value, tracked.filled, tracked.intent.quantity, tracked.why,
                h.quantity, h.tradingsymbol,
            )  # fmt: skip
            if h.stop_order is tracked:
                self.protection.on_ended(tracked)

    def _entry_filled(self, tracked: TrackedOrder, price: Decimal, t: datetime) -> None:
        i = tracked.intent
        contract: OptionContract | None = getattr(self, "_pending_contract", None)
        assert self.book is not None
        ins = self.book.by_symbol(i.exchange, i.tradingsymbol)
        token = ins.instrument_token if ins else (contract.instrument_token if contract else 0)
        right = OptionRight(ins.instrument_type) if ins else OptionRight.CE
        self.holding = Holding(
            i.exchange, i.tradingsymbol, token, right, tracked.filled, price, price, cost=tracked.value
        )
        self.strategy.on_fill(right, i.tradingsymbol, tracked.filled, price, t)
        self.ctx.risk.on_entry_filled(self.segment)
        self._save_position(t)
        stop = self.strategy.position.stop if self.strategy.position else None
        self.log.info("Entry filled: %d %s at %s, stop %s", tracked.filled, i.tradingsymbol, price, stop)
        self._journal(
            "entry_filled",
            {"symbol": i.tradingsymbol, "qty": tracked.filled, "price": str(price), "stop": str(stop)},
        )
        self._place_stop(stop)  # LIVE at Kite, PAPER at the paper gateway: one protection path
        if self.exit_if_filled is not None:
            self.log.warning("the entry filled after its cancel (%s): selling it", self.exit_if_filled)
            self.exit(self.exit_if_filled)

    def _sold(self, tracked: TrackedOrder, fill: Fill) -> None:
        """A fill of an exit or of the stop: realised P&L and a smaller position, flat when none is left."""
        h = self.holding
        if h is None or h.tradingsymbol != fill.tradingsymbol:
            self._late_sale(tracked, fill)
            return
        pnl = h.sell(fill.quantity, fill.price)
        self._roll_day(fill.timestamp)
        self.realised += pnl
        tracked.pnl += pnl
        if h.quantity > 0:
            self._save_position(fill.timestamp)
            self.ctx.risk.update_pnl(self.segment, self.realised, self.unrealised, fill.timestamp)
            return
        reason = "stop_loss" if tracked.role is OrderRole.STOP else (h.exit_reason or tracked.intent.reason)
        if h.stop_order is not None and h.stop_order.resting and h.stop_order is not tracked:
            self._cancel_stop(h)
        self.holding = None
        # Durable first: the store knows the position is flat before risk lets a new entry in.
        self._save_flat(h.exchange, h.tradingsymbol)
        price = rupees(tracked.value / tracked.filled)
        self._journal(
            "exit_filled", {"symbol": h.tradingsymbol, "price": str(price), "pnl": str(tracked.pnl)}
        )
        self.log.info("Exit filled (%s): %s at %s, P&L %s", reason, h.tradingsymbol, price, tracked.pnl)
        self.strategy.on_exit(price, fill.timestamp, reason)
        self.ctx.risk.on_position_closed(self.segment)
        self.ctx.risk.update_pnl(self.segment, self.realised, Decimal(0), fill.timestamp)
        if self.index_price is not None:
            self.chart.mark(fill.timestamp, self.index_price, "exit", f"{reason} {price}")

    def _late_sale(self, tracked: TrackedOrder, fill: Fill) -> None:
        """A fill of our own sale (the stop, an exit) after its position was let go (the broker's positions showed
        it gone before this fill came): it is what sold it, so its P&L is counted, whatever the order of events."""
        gone = self.let_go
        if gone is None or gone.tradingsymbol != fill.tradingsymbol or gone.quantity <= 0:
            self.log.warning("a sale of %d %s with no position held (order %s)", fill.quantity, fill.tradingsymbol,
                             tracked.order_id)  # fmt: skip
            return
        pnl = gone.sell(fill.quantity, fill.price)
        self._roll_day(fill.timestamp)
        self.realised += pnl
        tracked.pnl += pnl
        self.log.warning("%s order %s sold %d %s at %s after the position was let go: P&L %s counted",
                         tracked.role, tracked.order_id, fill.quantity, fill.tradingsymbol, fill.price, pnl)  # fmt: skip
        self._journal("late_fill_counted", {"order_id": tracked.order_id, "symbol": fill.tradingsymbol,
                                            "qty": fill.quantity, "price": str(fill.price), "pnl": str(pnl)})  # fmt: skip
        self._save_flat(gone.exchange, gone.tradingsymbol)
        self.ctx.risk.update_pnl(self.segment, self.realised, self.unrealised, fill.timestamp)

    def _roll_day(self, t: datetime) -> None:
        """A new market day: the day's realised P&L (what the daily loss limit counts) starts again."""
        if self._pnl_day is None or t.date() > self._pnl_day:
            if self._pnl_day is not None:
                self.realised = Decimal(0)
            self._pnl_day = t.date()

    # -- commands -----------------------------------------------------------------------------------

    def cancel_open_entries(self, then_exit: str | None = None) -> None:
        """Cancels an entry still on its way (kill switch, stop); no entries after. `then_exit`: the exit's reason
        should the entry fill anyway (its cancel came too late), so a kill or square-off leaves nothing open."""
        self.halted_entries = True
        self.exit_if_filled = then_exit
        tracked = self._open_entry()
        if tracked is not None and tracked.order_id:
            try:
                self.ctx.gateway.cancel(tracked.order_id)
            except BrokerError as e:
                self.log.warning("entry order %s not cancelled: %s", tracked.order_id, e)

    def owes_recovery(self) -> bool:
        """Something this segment knows of is not counted durably: a fill the store refused (disk full, database
        locked) still waiting to be recorded, or a position let go (the broker showed it gone) whose own sale's
        fill has not come. Its session must then be taken over on the next start, whose recovery counts them."""
        return bool(self._unsaved_fills) or (self.let_go is not None and self.let_go.quantity > 0)

    def flat(self) -> bool:
        """True when no position is held and no order of ours is still working."""
        return self.holding is None and self._open_entry() is None

    def orders_in_flight(self) -> bool:
        """An entry or exit of ours sent and not settled yet (a stop rests by design: not one of them)."""
        return self._open_entry() is not None or self._open_exit() is not None

    def protected_at_broker(self) -> bool:
        """LIVE: a position held under its stop-loss order resting at the broker, with no entry or exit of ours
        working. What a square-off that could not complete leaves: its exit refused, or cancelled after its
        patience, and the rest protected again."""
        h = self.holding
        return (
            self.mode is Mode.LIVE
            and h is not None
            and h.stop_order is not None
            and h.stop_order.resting
            and bool(h.stop_order.order_id)  # an unconfirmed one may not be at the broker at all
            and self._open_exit() is None
            and self._open_entry() is None
        )

    def _open_entry(self) -> TrackedOrder | None:
        return next((o for o in self._working if o.role is OrderRole.ENTRY and not o.done), None)

    def _open_exit(self) -> TrackedOrder | None:
        return next((o for o in self._working if o.role is OrderRole.EXIT and not o.done), None)

    # -- store and snapshot ---------------------------------------------------------------------------

    def _journal(self, kind: str, payload: dict[str, Any]) -> None:
        append = self.ctx.store.journal.append
        when = self.market_time or datetime.now()
        self.ctx.write_later(
            partial(append, self.ctx.key, segment=self.segment, kind=kind, payload=payload, market_time=when)
        )

    def _save_position(self, t: datetime) -> None:
        h = self.holding
        assert h is not None
        row = Position(self.ctx.key, self.mode, h.exchange, h.tradingsymbol, h.quantity, h.entry_price,
                       h.last_price, self.realised)  # fmt: skip
        self.ctx.write_later(partial(self.ctx.store.positions.upsert, row))

    def _save_flat(self, exchange: str, tradingsymbol: str) -> None:
        row = Position(
            self.ctx.key, self.mode, exchange, tradingsymbol, 0, Decimal(0), Decimal(0), self.realised
        )
        self.ctx.write_later(partial(self.ctx.store.positions.upsert, row))

    @property
    def bar_ends(self) -> datetime | None:
        """When the forming index bar closes (exchange time), or None before the first tick."""
        forming = self.chart.forming
        return forming.start + _ONE_MINUTE if forming is not None else None

    @property
    def unrealised(self) -> Decimal:
        """Open P&L of the held option at its last price."""
        h = self.holding
        return Decimal(0) if h is None else h.unrealised

    def snapshot(self, state: AgentState, failure: str | None = None) -> SegmentSnapshot:
        """The segment as the GUI draws it (immutable; bars shared until one closes)."""
        s = self.strategy.snapshot()
        pos = s.position
        h = self.holding
        return SegmentSnapshot(
            segment=self.segment,
            state=state,
            failure=failure,
            last_tick_time=self.market_time,
            bars=self.chart.bars,
            bars_version=self.chart.version,
            forming_bar=self.chart.forming,
            fast_ema=self.chart.fast_ema,
            slow_ema=self.chart.slow_ema,
            signal=s.signal,
            markers=tuple(self.chart.markers),
            option_symbol=h.tradingsymbol if h else None,
            quantity=h.quantity if h else 0,
            entry_price=h.entry_price if h else None,
            stop_price=pos.stop if pos else None,
            target_price=pos.target if pos else None,
            option_price=h.last_price if h else None,
            realised_pnl=self.realised,
            unrealised_pnl=self.unrealised,
            trades_today=self.ctx.risk.trades_today(self.segment, self.market_time),
            note="; ".join(n for n in (self.protection.status(), self.note) if n),
            risk_note=_note_of_day(self.risk_note, self.market_time),
            protection=self.protection.status(),
        )


def _sent_note(sent: TrackedOrder | None) -> str:
    if sent is None:
        return "not placed"
    return f"order {sent.order_id} sent" if sent.order_id else "unconfirmed by Kite (watching for it)"


def _note_of_day(note: tuple[date, str] | None, now: datetime | None) -> str:
    """Risk's last refusal while it is about today (a new day lifts the trade cap and the daily loss limit)."""
    return note[1] if note is not None and now is not None and note[0] == now.date() else ""
