"""The broker-side protective stop of a held option, in the form Kite accepts, and what to do when it fails.

Kite refuses SL-M for options (NSE withdrew stop-loss-market for options in 2021, BSE in every segment), so
the stop is an SL (stop-loss limit) order: `trigger_price` at the strategy's stop level and `price` (the limit)
`STOP_BUFFER` below it, on the 0.05 tick, never further than the exchange's trigger-to-limit gap allows (₹10
for a trigger up to ₹50, else 20 % of the trigger) nor outside limit price protection. Every modification
sends the limit with the trigger: moving only the trigger of a trailing stop widens the gap until the
exchange refuses it. A sell SL's trigger must be below the last traded price: a stop level at or above it is
not placed, the position is sold at once instead.

A triggered SL is a plain LIMIT order at the exchange: a premium that gaps through the limit leaves it
unfilled, and one whose limit falls outside price protection when it triggers is cancelled by the exchange.
Either way the position is unprotected, so a stop triggered and not filled within `CHASE_AFTER` of market
time is chased (its limit lowered toward the last price, within the band, `CHASE_STEPS` times at most and
within Kite's 25 modifications per order), then cancelled and the position sold with a marketable limit
inside price protection. A stop the broker rejected is placed again with a growing pause, and the segment's
snapshot says the position is UNPROTECTED meanwhile. Every step is journalled.

PAPER takes the same path at the paper gateway, so a paper day rehearses it. Runs on the agent's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from desktop.broker import exchange_rules as rules
from desktop.broker.errors import BrokerError
from desktop.broker.exchange_rules import MAX_MODIFICATIONS
from desktop.domain import PAISA, TICK_SIZE, Order, OrderRole, OrderStatus, OrderType, Side
from desktop.engine.orders import OrderState, TrackedOrder, sent_note

if TYPE_CHECKING:
    from desktop.engine.context import Holding
    from desktop.engine.trader import SegmentTrader

STOP_BUFFER = Decimal("0.10")  # the limit sits this share of the trigger below it (capped by the gap rule)
EXIT_SLACK = Decimal("0.05")  # a marketable exit limit: this share below the last price (inside LPP)
CHASE_AFTER = timedelta(seconds=3)  # a triggered stop unfilled this long (market time) is chased
CHASE_EVERY = timedelta(seconds=2)  # between two chase steps
CHASE_STEPS = 3  # limit lowered this many times at most, then the stop is cancelled and the position sold
RETRY_FIRST = timedelta(seconds=2)  # a rejected stop is placed again after this, doubling up to RETRY_MAX
RETRY_MAX = timedelta(seconds=60)
CANCEL_RETRY_MAX = timedelta(
    seconds=30
)  # a chased stop's refused cancel is asked again, the pause doubling to this
MOVE_RETRY = timedelta(seconds=5)  # a trail the broker refused is sent again this much later
CHASING = "stop triggered, chasing"
UNPROTECTED = "UNPROTECTED"


def floor_tick(value: Decimal) -> Decimal:
    return ((value / TICK_SIZE).to_integral_value(rounding=ROUND_FLOOR) * TICK_SIZE).quantize(PAISA)


def ceil_tick(value: Decimal) -> Decimal:
    return ((value / TICK_SIZE).to_integral_value(rounding=ROUND_CEILING) * TICK_SIZE).quantize(PAISA)


def lowest_sell_limit(exchange: str, reference: Decimal) -> Decimal:
    """The lowest sell limit the exchange (and Zerodha) accept around `reference`, on the tick, at least one
    tick."""
    low = rules.lpp_band(exchange, reference)[0]
    if reference >= rules.ZERODHA_SELL_LTP_FLOOR:  # Zerodha's own guard: not more than 50 % below the LTP
        low = max(low, reference * rules.ZERODHA_SELL_MAX_BELOW)
    return max(TICK_SIZE, ceil_tick(low))


def stop_limit(exchange: str, trigger: Decimal) -> Decimal:
    """The limit of a sell SL triggered at `trigger`: `STOP_BUFFER` below it, within the gap cap and inside
    price protection around the trigger (what the reference will be when it triggers), on the tick."""
    gap = min(trigger * STOP_BUFFER, rules.sl_gap_cap(trigger))
    limit = ceil_tick(trigger - gap)
    limit = max(limit, lowest_sell_limit(exchange, trigger))
    return min(limit, trigger - TICK_SIZE) if trigger > TICK_SIZE else TICK_SIZE


def chase_limit(exchange: str, last_price: Decimal, step: int) -> Decimal:
    """The limit of the `step`-th chase of a triggered sell stop (1, 2, ...): further below the last price each
    time, never outside price protection."""
    wanted = floor_tick(last_price * (1 - EXIT_SLACK * step / CHASE_STEPS))
    return max(wanted, lowest_sell_limit(exchange, last_price))


def exit_limit(exchange: str, last_price: Decimal) -> Decimal:
    """A marketable sell limit inside price protection."""
    return max(floor_tick(last_price * (1 - EXIT_SLACK)), lowest_sell_limit(exchange, last_price))


@dataclass(slots=True)
class StopState:
    """What the protection knows beyond the tracked order: why a position is unprotected, retries."""

    unprotected: str = ""  # why the position has no working stop ("" when it has, or none is needed)
    retry_at: datetime | None = None
    retry_pause: timedelta = RETRY_FIRST
    move_retry: tuple[datetime, Decimal] | None = None  # (when, level) of a trail the broker refused
    cover_at: datetime | None = None  # a stop selling more than held is resized again no sooner than this
    # (order id, pause): a chased stop whose cancel Kite refused, and the pause before it is asked again.
    chase_cancel_pause: tuple[str, timedelta] | None = None


class Protection:
    """The protective stop of one segment's position (its trader's helper, same thread)."""

    def __init__(self, trader: SegmentTrader) -> None:
        self.t = trader
        self.state = StopState()
        self._exiting = False  # re-entry guard: a stop that cannot be placed sells at once

    # -- placing ---------------------------------------------------------------------------------

    def place(self, level: Decimal | None, quantity: int | None = None) -> None:
        """An SL order for the held position (or `quantity` of it) triggered at `level`; the position is sold
        at once when `level` is at or above the last price (Kite refuses such a stop)."""
        t, h = self.t, self.t.holding
        if h is None or level is None or t.market_time is None:
            return
        qty = h.quantity if quantity is None else quantity
        sellable = self._whole_lots(h, qty)
        if sellable <= 0:
            why = (f"{qty} {h.tradingsymbol} held is less than one lot of {self._lot(h)}: the exchange takes no "
                   "stop-loss order for it; sell it in Kite")  # fmt: skip
            if why != self.state.unprotected:  # said once, not on every attempt
                self._unprotected(why, retry=False)
            return
        if sellable < qty:
            self.state.unprotected = (
                f"{qty - sellable} of {qty} held is not a whole lot: no stop-loss order for it"
            )
            t.log.error("%d %s held is not a whole number of lots of %d: the stop-loss order covers %d, %d left "
                        "unprotected", qty, h.tradingsymbol, self._lot(h), sellable, qty - sellable)  # fmt: skip
        if level >= h.last_price:
            if self._exiting:  # the sale this stop would be is the one that just failed: tried again shortly
                self.retry_later(f"the stop {level} is at or above the last price {h.last_price} and the sale was "
                                 "not sent")  # fmt: skip
                return
            self.exit_now(f"the stop {level} is at or above the last price {h.last_price}")
            return
        limit = stop_limit(h.exchange, level)
        intent = t.intent(
            h.exchange, h.tradingsymbol, Side.SELL, sellable, "protective_stop", OrderRole.STOP,
            order_type=OrderType.SL, trigger_price=level, price=limit,
        )  # fmt: skip
        t.ctx.risk.check(intent, t.market_time)
        earlier, t.orders.last_refusal = t.orders.last_refusal, ""
        tracked = t.orders.send(intent, protective=True)  # sent even when the journal cannot be written
        refusal = t.orders.last_refusal.lower()
        if tracked is not None:
            # Still the broker's last refusal (an exit's, that this stop now protects).
            t.orders.last_refusal = earlier
        if tracked is None and "trigger" in refusal and ("last traded price" in refusal or "ltp" in refusal):
            # The price fell through the stop level between the last tick seen and the order: sold at once, at a
            # price Kite sets from the LTP it knows (this segment's last price is behind it).
            self.exit_now(
                f"the stop {level} is not below the last traded price at the broker", at_market=True
            )
            return
        if tracked is None:
            self._unprotected("the stop-loss order was not placed", retry=True)
            return
        tracked.trigger = level
        tracked.limit = limit
        h.stop_order = tracked
        if sellable == qty:
            self.state.unprotected = ""
        self.state.retry_at = None
        t.log.info("stop-loss %s: trigger %s, limit %s", sent_note(tracked), level, limit)

    def _whole_lots(self, h: Holding, quantity: int) -> int:
        """`quantity` rounded down to whole lots of the held option: what the exchange takes in one order."""
        lot = self._lot(h)
        return quantity - quantity % lot if lot > 1 else quantity

    def _lot(self, h: Holding) -> int:
        return self.t.lot_of(h.exchange, h.tradingsymbol)

    def adopt(self, order: Order) -> None:
        """The broker's resting SL order of a position adopted on recovery (LIVE): ours to modify and cancel."""
        t, h = self.t, self.t.holding
        assert h is not None
        left = order.quantity - order.filled_quantity  # what it still sells: its earlier fills are counted
        intent = t.intent(h.exchange, h.tradingsymbol, Side.SELL, left, "protective_stop", OrderRole.STOP)
        tracked = TrackedOrder(intent, status=order.status, filled_before=order.filled_quantity)
        tracked.place(order.order_id, None)  # adopted, not sent by this run
        tracked.trigger, tracked.limit = order.trigger_price, order.price
        t.orders.track(tracked)
        h.stop_order = tracked
        self.on_update(tracked, order.status)  # adopted triggered: chased like one of this run
        t.log.info(
            "kept the stop-loss order %s at the broker (trigger %s)", order.order_id, order.trigger_price
        )

    def exit_quantity(self, h: Holding, quantity: int, reason: str) -> int:
        """What an exit of `quantity` may sell: whole lots only (the exchange takes nothing else). 0 when less than
        a lot is held: said once, not on every attempt (no storm of orders the exchange refuses)."""
        t = self.t
        lots = self._whole_lots(h, quantity)
        if lots <= 0:
            why = f"{quantity} {h.tradingsymbol} held is less than one lot of {self._lot(h)}: sell it in Kite"
            if not self.state.unprotected.startswith(why):
                self.state.unprotected = why
                t.log.error("exit (%s) not sent: %s", reason, why)
                t.journal(
                    "exit_below_lot", {"symbol": h.tradingsymbol, "held": quantity, "lot_size": self._lot(h)}
                )
        elif lots < quantity:
            t.log.error("exit (%s): %d %s held is not a whole number of lots of %d: selling %d, %d left",
                        reason, quantity, h.tradingsymbol, self._lot(h), lots, quantity - lots)  # fmt: skip
        return lots

    def left_to_stop(self, h: Holding, reason: str, at_once: bool) -> bool:
        """True when an exit is the broker's stop's to make: the stop ended having sold (its fills are asked for),
        or a stop-loss exit comes while the stop rests at or above the price (it is left to fill, and chased if
        it does not: cancelling it would race its own fill). `at_once`: the protection itself sells now."""
        t, stop = self.t, h.stop_order
        if stop is None:
            return False
        if stop.state is OrderState.ENDED and stop.filled < stop.broker_filled:
            t.log.info(
                "the stop-loss order %s sold %d: waiting for its fills", stop.order_id, stop.broker_filled
            )
            t.ctx.gateway.report_fills(stop.order_id)
            return True
        if (
            not at_once
            and reason in ("stop_loss", "trailing_stop")
            and stop.resting
            and stop.order_id
            and stop.trigger is not None
            and h.last_price <= stop.trigger
        ):
            self.expect_fill(stop)
            return True
        return False

    def exit_now(self, why: str, at_market: bool = False) -> None:
        """Sells the position at once with a marketable limit inside price protection (no stop can protect it);
        `at_market`: a MARKET order with market protection instead, which Kite makes a limit around the price it
        knows, for when the last price this segment saw may be behind (a gap it has no tick of yet)."""
        t, h = self.t, self.t.holding
        if h is None or self._exiting:
            return
        t.log.warning("%s: selling the position now", why)
        t.journal("stop_exit_now", {"symbol": h.tradingsymbol, "why": why, "last_price": str(h.last_price)})
        self._exiting = True
        try:
            t.exit(
                "stop_loss", limit=None if at_market else exit_limit(h.exchange, h.last_price), at_once=True
            )
        finally:
            self._exiting = False

    def retry_later(self, why: str) -> None:
        """A sale could not be sent (the journal cannot be written, or it was refused) while no stop rests at the
        broker (cancelled to sell, ended by the exchange): the position is UNPROTECTED, and a stop is placed (or the
        position sold, when the price is below the stop) again shortly (`on_tick`). Said once, not on every try: a
        chaos run saw such a position left naked for 37 market minutes, with nothing asking again."""
        h = self.t.holding
        if (
            h is None
            or (h.stop_order is not None and h.stop_order.resting)
            or self.state.retry_at is not None
        ):
            return
        self._unprotected(why, retry=True)

    def _unprotected(self, why: str, retry: bool) -> None:
        t = self.t
        h = t.holding
        if h is None or t.market_time is None:
            return
        self.state.unprotected = why
        if retry:
            self.state.retry_at = t.market_time + self.state.retry_pause
            self.state.retry_pause = min(self.state.retry_pause * 2, RETRY_MAX)
            t.log.error("%s %s is UNPROTECTED (%s): a stop-loss order is placed again at %s", h.quantity,
                        h.tradingsymbol, why, self.state.retry_at.strftime("%H:%M:%S"))  # fmt: skip
        else:
            self.state.retry_at = None
            t.log.error("%s %s is UNPROTECTED: %s", h.quantity, h.tradingsymbol, why)
        t.journal("unprotected", {"symbol": h.tradingsymbol, "why": why, "retry": retry})

    # -- moving and cancelling ------------------------------------------------------------------------

    def trail(self, level: Decimal, retry: bool = False) -> None:
        """The strategy's `MoveStop`: the resting stop modified to `level` (not once it triggered: it is chased)."""
        t = self.t
        self.state.move_retry = None
        h = t.holding
        if h is None:
            return
        if not retry:
            t.log.info("stop raised to %s", level)
        stop = h.stop_order
        if stop is None or not stop.resting or not stop.order_id or stop.triggered_at is not None:
            return
        try:
            self.move(stop, level)
        except BrokerError as e:
            replaced = self._replace_at_cap(h, stop, level, e)
            if replaced is not None:
                if not replaced and t.market_time is not None:
                    # Its cancel refused: the stop is selling (its fills close the position) or Kite was busy
                    # with it. Asked again a little later, as a refused trail.
                    self.state.move_retry = (t.market_time + MOVE_RETRY, level)
                return
            # The stop at the broker stays lower than the strategy's: asked again a little later, so a dead
            # KiteDesk leaves the position protected at the level it had reached.
            t.log.warning(
                "stop-loss order not modified (%s): trying again in %d s", e, MOVE_RETRY.total_seconds()
            )
            if t.market_time is not None:
                self.state.move_retry = (t.market_time + MOVE_RETRY, level)
            return
        t.journal("stop_moved", {"order_id": stop.order_id, "trigger": str(level), "limit": str(stop.limit)})

    def move_by_hand(self, level: Decimal) -> None:
        """The trader's own stop move: the resting SL order modified to `level` (limit with trigger), or a stop
        placed at `level` when none rests. Raises BrokerError when it cannot; the stop then stays where it was."""
        t = self.t
        h = t.holding
        if h is None:
            raise BrokerError("no position is held")
        if t.orders.open_exit() is not None:
            raise BrokerError(f"an exit of {h.tradingsymbol} is on its way")
        stop = h.stop_order
        if stop is not None and stop.resting:
            if stop.triggered_at is not None:
                raise BrokerError(f"the stop-loss order {stop.order_id} has triggered and is being chased")
            if not stop.order_id:
                raise BrokerError("the stop-loss order is not confirmed by Kite yet")
            try:
                self.move(stop, level)  # raises BrokerError when refused, before anything changed
            except BrokerError as e:
                if not self._replace_at_cap(h, stop, level, e):
                    raise
                placed = h.stop_order
                if placed is None or placed is stop or not placed.resting:
                    raise BrokerError(
                        t.orders.last_refusal or "the stop-loss order was not placed again"
                    ) from e
            self.state.move_retry = None  # a refused trail waiting to be sent again must not undo it
            return
        if level >= h.last_price:  # `place` would sell at once: not what a stop move asks for
            raise BrokerError(f"the stop {level} is not below the last price {h.last_price}")
        t.orders.last_refusal = ""
        self.place(level)
        placed = h.stop_order
        if placed is None or placed is stop or not placed.resting:
            raise BrokerError(t.orders.last_refusal or "the stop-loss order was not placed")

    def _replace_at_cap(
        self, h: Holding, stop: TrackedOrder, level: Decimal, error: BrokerError
    ) -> bool | None:
        """A move of `stop` to `level` that `error` refused because Kite takes no more modifications of it (a retry
        would be refused for ever, the stop left at its old level): replaced at `level` instead (`replace`'s
        answer). None when the refusal is not the cap's (or `level` is not below the price): it stands."""
        if stop.modifications < MAX_MODIFICATIONS or level >= h.last_price:
            return None
        self.t.log.warning(
            "stop-loss order %s not modified (%s): replacing it at %s", stop.order_id, error, level
        )
        return self.replace(h, level)

    def move(self, stop: TrackedOrder, level: Decimal) -> None:
        """Trails the resting stop to `level`, limit with trigger; raises BrokerError when refused."""
        t = self.t
        h = t.holding
        assert h is not None
        if level >= h.last_price:
            raise BrokerError(f"the stop {level} is not below the last price {h.last_price}")
        limit = stop_limit(h.exchange, level)
        self.t.orders.modify(stop, trigger_price=level, price=limit)
        stop.trigger, stop.limit = level, limit

    def cancel(self, h: Holding) -> bool:
        """Cancels the position's stop (`Orders.cancel`); False when it is unconfirmed or the broker refused:
        already triggered or filled, its fill closes the position (never sell twice). Fills it got before the
        cancel still count (`Orders.on_fill`)."""
        t, stop = self.t, h.stop_order
        assert stop is not None
        if not stop.order_id:
            t.log.warning("the stop-loss order is unconfirmed: it cannot be cancelled before Kite shows it")
            return False
        return t.orders.cancel(stop)

    def replace(self, h: Holding, level: Decimal) -> bool:
        """The resting stop cancelled and a new one placed at `level` for what the broker still holds (Kite takes no
        more modifications of it). False when the broker refused the cancel: the old stop still rests (or is
        selling: its fills close the position), and nothing is placed, so two stops never sell one position."""
        t = self.t
        if not self.cancel(h):
            return False
        if t.market_time is None:
            return True
        quantity = t.outside.sellable(h, t.market_time)  # the old stop may have sold before its cancel
        if quantity is not None and t.holding is h:
            self.place(level, quantity)
        t.journal("stop_replaced", {"symbol": h.tradingsymbol, "trigger": str(level)})
        return True

    def resize(self, h: Holding, quantity: int) -> None:
        """Less is held than the stop sells (part sold outside KiteDesk, or a late fill of a stop it replaced): the
        stop resized to `quantity`, or replaced when it cannot be (the broker refuses, or it has had Kite's
        modifications). A refused cancel is tried again on a later tick (`cover`): a stop that sells more than
        is held sells the rest short."""
        t, stop = self.t, h.stop_order
        if stop is None or not stop.resting or not stop.order_id:
            return
        try:
            if quantity <= 0:
                raise BrokerError(f"{h.quantity} held is less than one lot")
            # Kite's modify takes the order's new total: what it sold already (before a restart adopted it too),
            # and what is held.
            t.orders.modify(stop, quantity=stop.filled_before + stop.filled + quantity)
        except BrokerError as e:
            t.log.warning("stop-loss order %s not resized (%s): replacing it", stop.order_id, e)
            if self.cancel(h):
                self.protect_rest()
            elif t.market_time is not None:
                self.state.cover_at = t.market_time + MOVE_RETRY

    def cover(self, h: Holding, now: datetime) -> None:
        """The resting stop sells no more than is held: one that does (a resize or cancel the broker refused, a
        fill of a stop it replaced that came after it) is resized, at most every `MOVE_RETRY`. Not a triggered or
        part-filled stop: its fills are on their way and the chase handles it."""
        stop = h.stop_order
        if (
            stop is None
            or not stop.resting
            or not stop.order_id
            or stop.triggered_at is not None
            or stop.filled
            or stop.intent.quantity <= h.quantity
            or (self.state.cover_at is not None and now < self.state.cover_at)
        ):
            return
        self.state.cover_at = now + MOVE_RETRY
        self.t.log.error("the stop-loss order %s sells %d of the %d %s held: resizing it", stop.order_id,
                         stop.intent.quantity, h.quantity, h.tradingsymbol)  # fmt: skip
        self.resize(h, self._whole_lots(h, h.quantity))

    def protect_rest(self) -> None:
        """The position is still held after an exit failed or sold only part: a stop-loss order for what the
        broker still holds (or the position is let go when it holds none)."""
        t = self.t
        h, position, now = t.holding, t.strategy.position, t.market_time
        if h is None or position is None or now is None:
            return
        if h.stop_order is not None and h.stop_order.resting:
            return
        quantity = t.outside.sellable(h, now)
        if quantity is not None:
            self.place(position.stop, quantity)

    # -- a triggered stop, and one the broker ended -----------------------------------------------

    def on_update(self, stop: TrackedOrder, status: OrderStatus) -> None:
        """An update of our stop: OPEN means it triggered (it is a LIMIT order now)."""
        t = self.t
        if status is OrderStatus.OPEN and stop.triggered_at is None and t.market_time is not None:
            stop.triggered_at = t.market_time
            t.journal("stop_triggered", {"order_id": stop.order_id, "trigger": str(stop.trigger),
                                          "limit": str(stop.limit)})  # fmt: skip

    def expect_fill(self, stop: TrackedOrder) -> None:
        """The strategy's own stop level is crossed while the broker's stop rests at or above the price: it is
        left to fill, and chased as a triggered stop if it does not."""
        if stop.triggered_at is None and self.t.market_time is not None:
            stop.triggered_at = self.t.market_time
            self.t.journal("stop_triggered", {"order_id": stop.order_id, "trigger": str(stop.trigger),
                                               "limit": str(stop.limit), "seen": "price"})  # fmt: skip

    def on_ended(self, stop: TrackedOrder) -> None:
        """The broker ended our stop (not our cancel) with the position still held: what it sold is counted;
        the rest is protected again, or sold at once if the stop had triggered (an LPP cancel)."""
        t, h = self.t, self.t.holding
        if h is None:
            return
        triggered = (
            stop.triggered_at is not None
            or (stop.trigger is not None and h.last_price <= stop.trigger)
            or "price protection"
            in stop.why.lower()  # cancelled by LPP as it triggered (before its tick came)
        )
        if triggered:
            t.journal("stop_cancelled_triggered", {"order_id": stop.order_id, "why": stop.why,
                                                    "sold": stop.filled})  # fmt: skip
            self.exit_now(f"the triggered stop-loss order {stop.order_id} was {stop.status.value.lower()} "
                          f"({stop.why}) with {stop.filled} sold", at_market=True)  # fmt: skip
            return
        if stop.status is OrderStatus.REJECTED:
            self._unprotected(f"the stop-loss order {stop.order_id} was rejected: {stop.why}", retry=True)
            return
        self.protect_rest()

    def on_tick(self, now: datetime) -> None:
        """Retries a stop that could not be placed, and chases one triggered and not filled."""
        t, h = self.t, self.t.holding
        if h is None:
            self.state = StopState()
            return
        if self.state.move_retry is not None and now >= self.state.move_retry[0]:
            self.trail(self.state.move_retry[1], retry=True)
        self.cover(h, now)
        if self.t.holding is not h:
            return
        if self.state.retry_at is not None and now >= self.state.retry_at:
            self.state.retry_at = None
            if h.stop_order is None or not h.stop_order.resting:
                position = t.strategy.position
                if t.orders.open_exit() is None and position is not None:
                    self.place(position.stop)
        stop = h.stop_order
        if stop is None or not stop.resting or stop.triggered_at is None or not stop.order_id:
            return
        if now - stop.triggered_at < CHASE_AFTER or (stop.chase_at is not None and now < stop.chase_at):
            return
        if stop.chases < CHASE_STEPS and stop.modifications < MAX_MODIFICATIONS and stop.trigger is not None:
            stop.chases += 1
            limit = min(chase_limit(h.exchange, h.last_price, stop.chases), stop.trigger - TICK_SIZE)
            # The gap rule binds the limit to the trigger on every modification: the trigger (spent once the stop
            # triggered) comes down with the limit, two ticks above it.
            trigger = min(stop.trigger, limit + 2 * TICK_SIZE)
            try:
                t.orders.modify(stop, trigger_price=trigger, price=limit)
            except BrokerError as e:
                t.log.warning("triggered stop-loss order %s not chased (%s)", stop.order_id, e)
                stop.chases = CHASE_STEPS
            else:
                stop.limit, stop.trigger = limit, trigger
                t.log.warning("stop-loss order %s triggered and unfilled: limit lowered to %s (last %s), chase "
                              "%d of %d", stop.order_id, limit, h.last_price, stop.chases, CHASE_STEPS)  # fmt: skip
                t.journal("stop_chased", {"order_id": stop.order_id, "limit": str(limit), "trigger": str(trigger),
                                           "last_price": str(h.last_price), "step": stop.chases})  # fmt: skip
            stop.chase_at = now + CHASE_EVERY
            return
        refused = self.state.chase_cancel_pause
        pause = refused[1] if refused is not None and refused[0] == stop.order_id else None
        if (
            pause is None
        ):  # the chase's end: said and journalled once, however many times Kite refuses the cancel
            pause = CHASE_EVERY
            t.log.warning("stop-loss order %s still unfilled after %d chases: cancelling it and selling at a limit",
                          stop.order_id, stop.chases)  # fmt: skip
            t.journal("stop_chase_exit", {"order_id": stop.order_id, "last_price": str(h.last_price)})
        if self.cancel(h):
            self.state.chase_cancel_pause = None
            self.exit_now(f"the stop-loss order {stop.order_id} did not fill")
            return
        # Refused (an expired login, the order being processed): asked again with a growing pause, not every 2 s.
        stop.chase_at = now + pause
        self.state.chase_cancel_pause = (stop.order_id, min(pause * 2, CANCEL_RETRY_MAX))

    def status(self) -> str:
        """The stop's state for the panel: "" (protected, or nothing held), chasing, or UNPROTECTED: why."""
        h = self.t.holding
        if h is None:
            return ""
        stop = h.stop_order
        if stop is not None and stop.resting and stop.triggered_at is not None:
            return CHASING
        if self.state.unprotected:
            return f"{UNPROTECTED}: {self.state.unprotected}"
        return ""
