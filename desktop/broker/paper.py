"""`PaperGateway`: simulated fills at the session's live prices, and NO call at all to Kite's order API.

It owns no Kite client, only the session's `MarketStream` (prices) and a token lookup. A PAPER day
rehearses the LIVE day, so it refuses and works orders by the same rules Kite and the exchanges apply
(`desktop.broker.exchange_rules`, the module the simulator reads too): SL-M is refused for options, an SL's
trigger-to-limit gap is capped, a sell stop at or above the LTP is refused, limits outside limit price
protection are refused, quantities above the freeze are refused. A MARKET order becomes a LIMIT at the
protected price (as Kite converts it) and fills at the last price plus slippage (against the trader: buys
higher, sells lower), on the tick, never beyond that limit; it is refused in a contract not traded today.
An SL order waits for its trigger, then works as a LIMIT at its own price (a premium that gaps through
leaves it open), or is cancelled when its limit is outside limit price protection at that moment.
Events are the same `Order`/`Fill` types as live.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from desktop.broker import exchange_rules as rules
from desktop.broker.errors import InputRejected
from desktop.broker.gateway import OrderGateway, check_intent
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderStatus, OrderType, SessionKey, Side, to_tick

if TYPE_CHECKING:  # the feed (aiohttp, numpy) is imported when the first stream opens
    from desktop.broker.stream import MarketStream
    from desktop.broker.ticks import QuoteTick

TokenLookup = Callable[[str, str], int | None]  # (exchange, tradingsymbol) -> instrument_token
AUTO_PROTECTION = -1  # LiveGateway sends market_protection=-1 on every MARKET order; PAPER does the same


def _traded_today(tick: QuoteTick | None) -> bool:
    """False when the tick shows no trade yet today (no last price, or no volume in quote/full mode)."""
    if tick is None:
        return True  # nothing known yet: decided on the first tick
    if tick.last_price <= 0:
        return False
    from desktop.broker.ticks import MODE_LTP  # loaded by then: the tick came through it

    return tick.mode == MODE_LTP or tick.volume_traded > 0


def _reference(tick: QuoteTick | None) -> Decimal | None:
    return tick.last_price if tick is not None and tick.last_price > 0 else None


class PaperGateway(OrderGateway):
    """Paper trading for one session: fills from its own stream's ticks; thread-safe."""

    def __init__(
        self,
        key: SessionKey,
        stream: MarketStream,
        token_of: TokenLookup,
        slippage: Decimal = Decimal(0),
        clock: Callable[[], datetime] = datetime.now,
        freeze_overrides: Mapping[str, int] | None = None,
        listen: bool = True,
    ) -> None:
        """`listen`: the gateway takes its prices from the stream's delivery thread; without it, its owner hands
        it each batch of ticks (`match_ticks`) on a thread of its own (a session: its account feed's thread, so no
        thread is woken per frame only for the paper fills)."""
        super().__init__(key, Mode.PAPER)
        if slippage < 0:
            raise InputRejected("slippage must be zero or more rupees")
        self._stream = stream
        self._token_of = token_of
        self._slippage = Decimal(slippage)
        self._clock = clock
        self._freeze_overrides = dict(freeze_overrides or {})
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        # A resumed session (same key, new run) must not reuse the ids of its earlier run's paper orders.
        self._run = uuid.uuid4().hex[:6]
        self._orders: dict[str, Order] = {}
        self._tokens: dict[str, int] = {}  # order_id -> instrument token, for open orders
        self._modifications: dict[str, int] = {}  # order_id -> modifications accepted (Kite allows 25)
        if listen:
            stream.add_tick_listener(self._on_ticks)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{self.key.session_id[:6]}{self._run}{next(self._ids):06d}"

    def place(self, intent: OrderIntent) -> Order:
        """Accepts the order at once; fills now (MARKET with a price) or on a later tick."""
        if intent.key != self.key:
            raise InputRejected("this order belongs to another session")
        check_intent(intent)
        token = self._token_of(intent.exchange, intent.tradingsymbol)
        if token is None:
            raise InputRejected(f"{intent.exchange}:{intent.tradingsymbol} is not in today's instruments")
        if token not in self._stream.subscriptions():
            self._stream.subscribe([token])  # paper fills need its live price
        refusal = rules.freeze_refusal(intent.segment.spec.name, intent.quantity, self._freeze_overrides)
        tick = self._stream.last_tick(token)
        refusal = refusal or self._rule_refusal(
            intent.exchange, intent.side, intent.order_type, intent.price, intent.trigger_price, tick
        )
        if refusal:
            raise InputRejected(refusal)
        order_type, price = intent.order_type, intent.price
        reference = _reference(tick)
        if order_type is OrderType.MARKET and reference is not None:
            order_type, price = OrderType.LIMIT, self._protected(intent.exchange, intent.side, reference)
        initial = (
            OrderStatus.TRIGGER_PENDING if order_type in (OrderType.SL, OrderType.SL_M) else OrderStatus.OPEN
        )
        order = Order(
            order_id=self._next_id("P"),
            key=self.key,
            mode=Mode.PAPER,
            exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=order_type,
            status=initial,
            price=price,
            trigger_price=intent.trigger_price,
            tag=intent.tag,
            timestamp=self._clock(),
            intent_id=intent.intent_id,
        )
        with self._lock:
            self._orders[order.order_id] = order
            self._tokens[order.order_id] = token
        self._emit_order(order)
        if tick is not None:
            self._work(order.order_id, tick)
        return self._orders[order.order_id]

    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> Order:
        """Changes an open paper order (e.g. trails a stop), checked by the same rules as a new one."""
        with self._lock:
            order = self._open(order_id)
            refusal = rules.modification_refusal(self._modifications.get(order_id, 0))
            if refusal:
                raise InputRejected(refusal)
            token = self._tokens.get(order_id)
            tick = self._stream.last_tick(token) if token is not None else None
            changes: dict[str, object] = {}
            if quantity is not None:
                if quantity < 1:
                    raise InputRejected("quantity must be a whole number ≥ 1")
                changes["quantity"] = quantity
            new_type = order_type or order.order_type
            new_price = price if price is not None else order.price
            new_trigger = trigger_price if trigger_price is not None else order.trigger_price
            # A stop that has triggered is a live limit: its trigger is history, its limit meets LPP.
            triggered = order.order_type is OrderType.SL and order.status is OrderStatus.OPEN
            refusal = self._rule_refusal(
                order.exchange, order.side, new_type, new_price, new_trigger, tick,
                triggered=triggered and new_type is OrderType.SL,
            )  # fmt: skip
            if refusal:
                raise InputRejected(refusal)
            reference = _reference(tick)
            if new_type is OrderType.MARKET and reference is not None:
                new_type, new_price = OrderType.LIMIT, self._protected(order.exchange, order.side, reference)
            changes.update(order_type=new_type, price=new_price, trigger_price=new_trigger)
            if new_type in (OrderType.MARKET, OrderType.LIMIT):  # no trigger left to wait for
                changes["status"] = OrderStatus.OPEN
            elif not triggered and order.order_type not in (OrderType.SL, OrderType.SL_M):
                changes["status"] = OrderStatus.TRIGGER_PENDING  # a limit made a stop waits for its trigger
            order = _replace(order, **changes)
            self._orders[order_id] = order
            self._modifications[order_id] = self._modifications.get(order_id, 0) + 1
        self._emit_order(order)
        if tick is not None:
            self._work(order_id, tick)
        with self._lock:
            return self._orders[order_id]

    def _rule_refusal(
        self,
        exchange: str,
        side: Side,
        order_type: OrderType,
        price: Decimal | None,
        trigger: Decimal | None,
        tick: QuoteTick | None,
        triggered: bool = False,
    ) -> str | None:
        order = rules.OptionOrder(exchange, side.value, order_type.value, price, trigger)
        return rules.order_refusal(
            order, _reference(tick), triggered=triggered, traded_today=_traded_today(tick)
        )

    @staticmethod
    def _protected(exchange: str, side: Side, reference: Decimal) -> Decimal:
        return rules.protected_price(exchange, side.value, reference, AUTO_PROTECTION)

    def cancel(self, order_id: str) -> Order:
        """Cancels an open paper order."""
        with self._lock:
            order = _replace(self._open(order_id), status=OrderStatus.CANCELLED)
            self._orders[order_id] = order
            self._tokens.pop(order_id, None)
        self._emit_order(order)
        return order

    def _open(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise InputRejected(f"order {order_id} was not placed by this session")
        if order.status.is_final:
            raise InputRejected(f"order {order_id} is already {order.status.value.lower()}")
        return order

    def orders(self) -> list[Order]:
        """This session's paper orders."""
        with self._lock:
            return list(self._orders.values())

    def close(self) -> None:
        """Stops watching ticks."""
        self._stream.remove_tick_listener(self._on_ticks)

    # Matching ------------------------------------------------------------------------------------
    def match_ticks(self, ticks: list[QuoteTick]) -> None:
        """Works the open paper orders against a batch of the stream's ticks (fills, triggers); any one thread."""
        if self._tokens:  # read without the lock: an order placed meanwhile meets its first tick on placing
            self._on_ticks(ticks)

    def _on_ticks(self, ticks: list[QuoteTick]) -> None:
        if not self._tokens:  # no order waits for a price (read without the lock, as the snapshot below is)
            return
        latest = {t.instrument_token: t for t in ticks}
        with self._lock:
            waiting = [(oid, tok) for oid, tok in self._tokens.items() if tok in latest]
        for order_id, token in waiting:
            self._work(order_id, latest[token])

    def _work(self, order_id: str, tick: QuoteTick) -> None:
        fill: Fill | None = None
        updates: list[Order] = []
        with self._lock:
            order = self._orders.get(order_id)
            if order is not None and not order.status.is_final:
                working = self._working(order, tick, updates)
                if working is not None:
                    fill = self._fill(working, tick, updates)
        # Emitted outside the lock, in order: a listener may place the next order from its callback.
        for update in updates:
            self._emit_order(update)
        if fill is not None:
            self._emit_fill(fill)

    def _working(self, order: Order, tick: QuoteTick, updates: list[Order]) -> Order | None:
        """The order as a working limit on this tick, or None (still waiting for its trigger, or ended)."""
        ltp = tick.last_price
        if order.order_type is OrderType.MARKET:
            # Placed before any price was known: Kite's check and conversion apply on the first price.
            if not _traded_today(tick):
                self._end(order, OrderStatus.REJECTED, rules.UNTRADED_MARKET_REFUSED, updates)
                return None
            price = self._protected(order.exchange, order.side, ltp)
            order = self._store(_replace(order, order_type=OrderType.LIMIT, price=price))
        if order.status is not OrderStatus.TRIGGER_PENDING:
            return order
        assert order.trigger_price is not None
        buy = order.side is Side.BUY
        if not (ltp >= order.trigger_price if buy else ltp <= order.trigger_price):
            return None
        if order.order_type is OrderType.SL and order.price is not None and ltp > 0:
            # The triggered stop reaches the book as a limit: LPP is checked now, and a limit outside it
            # is cancelled by the exchange, leaving the position unprotected.
            cancelled = rules.is_option_exchange(order.exchange) and rules.lpp_cancel_message(
                order.exchange, order.price, ltp
            )
            if cancelled:
                self._end(order, OrderStatus.CANCELLED, cancelled, updates)
                return None
        order = self._store(_replace(order, status=OrderStatus.OPEN))
        updates.append(order)
        return order

    def _fill(self, order: Order, tick: QuoteTick, updates: list[Order]) -> Fill | None:
        price = self._fill_price(order, tick.last_price, order.side is Side.BUY)
        if price is None:
            return None
        when = tick.exchange_timestamp or self._clock()
        order = self._store(
            _replace(
                order,
                status=OrderStatus.COMPLETE,
                filled_quantity=order.quantity,
                average_price=price,
                timestamp=when,
            )
        )
        self._tokens.pop(order.order_id, None)
        updates.append(order)
        return Fill(
            fill_id=self._next_id("PF"),
            order_id=order.order_id,
            key=self.key,
            mode=Mode.PAPER,
            exchange=order.exchange,
            tradingsymbol=order.tradingsymbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            timestamp=when,
        )

    def _store(self, order: Order) -> Order:
        self._orders[order.order_id] = order
        return order

    def _end(self, order: Order, status: OrderStatus, message: str, updates: list[Order]) -> None:
        """The order ends unfilled (REJECTED or CANCELLED by the exchange) with the reason in words."""
        updates.append(self._store(_replace(order, status=status, status_message=message)))
        self._tokens.pop(order.order_id, None)

    def _fill_price(self, order: Order, ltp: Decimal, buy: bool) -> Decimal | None:
        """The price this order fills at on a tick of `ltp`, or None when it does not fill yet."""
        # Never at 0 (an option with no trade yet): the 0.05 tick is the least any order fills at.
        slipped = to_tick(max(ltp + self._slippage if buy else ltp - self._slippage, Decimal("0.05")))
        if order.order_type in (OrderType.MARKET, OrderType.SL_M):
            return slipped
        assert order.price is not None  # LIMIT and triggered SL
        if buy:
            return min(order.price, slipped) if ltp <= order.price else None
        return max(order.price, slipped) if ltp >= order.price else None


def _replace(order: Order, **changes: object) -> Order:
    from dataclasses import replace

    return replace(order, **changes)  # type: ignore[arg-type]
