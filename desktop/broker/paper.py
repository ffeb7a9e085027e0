"""`PaperGateway`: simulated fills at the session's live prices, and NO call at all to Kite's order API.

It owns no Kite client, only the session's `MarketStream` (prices) and a token lookup. MARKET orders
fill at the last traded price plus slippage (against the trader: buys higher, sells lower), rounded to
the tick; LIMIT orders fill when the price reaches them; SL / SL-M orders wait for their trigger on
ticks (the stop-loss and target exits of a strategy). Events are the same `Order`/`Fill` types as live.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from desktop.broker.errors import InputRejected
from desktop.broker.gateway import OrderGateway, check_intent
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderStatus, OrderType, SessionKey, Side, to_tick

if TYPE_CHECKING:  # the feed (aiohttp, numpy) is imported when the first stream opens
    from desktop.broker.stream import MarketStream
    from desktop.broker.ticks import QuoteTick

TokenLookup = Callable[[str, str], int | None]  # (exchange, tradingsymbol) -> instrument_token


class PaperGateway(OrderGateway):
    """Paper trading for one session: fills from its own stream's ticks; thread-safe."""

    def __init__(
        self,
        key: SessionKey,
        stream: MarketStream,
        token_of: TokenLookup,
        slippage: Decimal = Decimal(0),
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        super().__init__(key, Mode.PAPER)
        if slippage < 0:
            raise InputRejected("slippage must be zero or more rupees")
        self._stream = stream
        self._token_of = token_of
        self._slippage = Decimal(slippage)
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        # A resumed session (same key, new run) must not reuse the ids of its earlier run's paper orders.
        self._run = uuid.uuid4().hex[:6]
        self._orders: dict[str, Order] = {}
        self._tokens: dict[str, int] = {}  # order_id -> instrument token, for open orders
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
        initial = (
            OrderStatus.TRIGGER_PENDING
            if intent.order_type in (OrderType.SL, OrderType.SL_M)
            else OrderStatus.OPEN
        )
        order = Order(
            order_id=self._next_id("P"),
            key=self.key,
            mode=Mode.PAPER,
            exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            status=initial,
            price=intent.price,
            trigger_price=intent.trigger_price,
            tag=intent.tag,
            timestamp=self._clock(),
            intent_id=intent.intent_id,
        )
        with self._lock:
            self._orders[order.order_id] = order
            self._tokens[order.order_id] = token
        self._emit_order(order)
        tick = self._stream.last_tick(token)
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
        """Changes an open paper order (e.g. trails a stop)."""
        with self._lock:
            order = self._open(order_id)
            changes: dict[str, object] = {}
            if quantity is not None:
                if quantity < 1:
                    raise InputRejected("quantity must be a whole number ≥ 1")
                changes["quantity"] = quantity
            if price is not None:
                changes["price"] = price
            if trigger_price is not None:
                changes["trigger_price"] = trigger_price
            if order_type is not None:
                changes["order_type"] = order_type
                if order_type in (OrderType.MARKET, OrderType.LIMIT):  # no trigger left to wait for
                    changes["status"] = OrderStatus.OPEN
            order = _replace(order, **changes)
            self._orders[order_id] = order
            token = self._tokens.get(order_id)
        self._emit_order(order)
        tick = self._stream.last_tick(token) if token is not None else None
        if tick is not None:
            self._work(order_id, tick)
        with self._lock:
            return self._orders[order_id]

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
    def _on_ticks(self, ticks: list[QuoteTick]) -> None:
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
            if order is None or order.status.is_final:
                return
            ltp = tick.last_price
            buy = order.side is Side.BUY
            if order.status is OrderStatus.TRIGGER_PENDING:
                assert order.trigger_price is not None
                triggered = ltp >= order.trigger_price if buy else ltp <= order.trigger_price
                if not triggered:
                    return
                order = _replace(order, status=OrderStatus.OPEN)
                self._orders[order_id] = order
                updates.append(order)
            price = self._fill_price(order, ltp, buy)
            if price is not None:
                when = tick.exchange_timestamp or self._clock()
                order = _replace(
                    order,
                    status=OrderStatus.COMPLETE,
                    filled_quantity=order.quantity,
                    average_price=price,
                    timestamp=when,
                )
                self._orders[order_id] = order
                self._tokens.pop(order_id, None)
                updates.append(order)
                fill = Fill(
                    fill_id=self._next_id("PF"),
                    order_id=order_id,
                    key=self.key,
                    mode=Mode.PAPER,
                    exchange=order.exchange,
                    tradingsymbol=order.tradingsymbol,
                    side=order.side,
                    quantity=order.quantity,
                    price=price,
                    timestamp=when,
                )
        # Emitted outside the lock, in order: a listener may place the next order from its callback.
        for update in updates:
            self._emit_order(update)
        if fill is not None:
            self._emit_fill(fill)

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
