"""Order gateways: one interface, `LiveGateway` (Kite) and `PaperGateway` (desktop/broker/paper.py).

Both report `desktop.domain.Order` and `Fill` events with exact Decimal prices to their listeners.
`LiveGateway` tags every order with its session's tag, always sends `market_protection=-1` on MARKET
and SL-M (mandatory since April 2026), backs off and retries on a 429 (Kite did nothing), and after
an ambiguous failure (timeout, dropped reply, 5xx) looks its tag up in the order book BEFORE anything
else: it adopts the order it finds and never places an order twice.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from desktop.broker import replies
from desktop.broker.errors import AmbiguousOrderFailure, BrokerError, InputRejected, RateLimited
from desktop.broker.kite_client import kite_clock
from desktop.broker.replies import whole
from desktop.broker.session import EVENT_STREAM_CONNECTED, BrokerEvent, KiteSession
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderStatus, OrderType, SessionKey, Side, rupees

if TYPE_CHECKING:  # the feed (aiohttp, numpy) is imported when the first stream opens
    from desktop.broker.stream import MarketStream

log = logging.getLogger(__name__)

OrderListener = Callable[[Order], None]
FillListener = Callable[[Fill], None]


def check_intent(intent: OrderIntent) -> None:
    """InputRejected with a trader's message when the intent cannot be a valid order."""
    if isinstance(intent.quantity, bool) or not isinstance(intent.quantity, int) or intent.quantity < 1:
        raise InputRejected("quantity must be a whole number ≥ 1")
    needs_price = intent.order_type in (OrderType.LIMIT, OrderType.SL)
    needs_trigger = intent.order_type in (OrderType.SL, OrderType.SL_M)
    if needs_price and (intent.price is None or intent.price <= 0):
        raise InputRejected(f"a {intent.order_type.value} order needs a price above zero")
    if needs_trigger and (intent.trigger_price is None or intent.trigger_price <= 0):
        raise InputRejected(f"a {intent.order_type.value} order needs a trigger price above zero")


class OrderGateway(ABC):
    """Places, modifies and cancels one session's orders and reports their fate as events."""

    def __init__(self, key: SessionKey, mode: Mode) -> None:
        self.key = key
        self.mode = mode
        self._listeners_lock = threading.Lock()
        self._order_listeners: list[OrderListener] = []
        self._fill_listeners: list[FillListener] = []

    def add_listener(
        self, on_order: OrderListener | None = None, on_fill: FillListener | None = None
    ) -> None:
        """Registers callbacks; they run on the caller's or the stream's delivery thread, never the GUI's."""
        with self._listeners_lock:
            if on_order:
                self._order_listeners.append(on_order)
            if on_fill:
                self._fill_listeners.append(on_fill)

    def _emit_order(self, order: Order) -> None:
        with self._listeners_lock:
            listeners = list(self._order_listeners)
        for fn in listeners:
            try:
                fn(order)
            except Exception:
                log.exception("order listener failed")

    def _emit_fill(self, fill: Fill) -> None:
        with self._listeners_lock:
            listeners = list(self._fill_listeners)
        for fn in listeners:
            try:
                fn(fill)
            except Exception:
                log.exception("fill listener failed")

    @abstractmethod
    def place(self, intent: OrderIntent) -> Order:
        """Sends the order; returns it as accepted (its fate follows as events)."""

    @abstractmethod
    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> Order:
        """Changes an open order."""

    @abstractmethod
    def cancel(self, order_id: str) -> Order:
        """Cancels an open order."""

    @abstractmethod
    def orders(self) -> list[Order]:
        """This session's orders as last known."""

    def close(self) -> None:  # noqa: B027 - optional hook, most gateways have nothing to stop
        """Stops listening to the stream."""

    def report_fills(self, order_id: str) -> None:  # noqa: B027 - optional hook: paper fills come at once
        """Reports the order's fills again (those not reported yet): for a fill the broker had not shown yet."""

    def account_net_quantity(self, exchange: str, tradingsymbol: str) -> int | None:
        """The account's net quantity of an instrument at the broker: every session's and every order placed
        outside KiteDesk (Kite web, the mobile app). None where the gateway cannot tell (paper)."""
        return None

    def reconcile(self) -> list[Order]:
        """Reads this session's orders from the broker's book again and reports any change missed on the stream;
        a paper gateway's book is its own: nothing can have been missed."""
        return self.orders()


def broker_net_positions(rows: dict[str, Any]) -> dict[str, int]:
    """Net quantity per tradingsymbol from Kite's positions payload (the account's, all sessions)."""
    out: dict[str, int] = {}
    for row in rows.get("net", []):
        symbol = str(row.get("tradingsymbol", ""))
        out[symbol] = out.get(symbol, 0) + whole(row.get("quantity"), "positions.net.quantity")
    return out


def _older(row: Order, known: Order) -> bool:
    """True when `row` is an earlier state of the order than `known`: orders only fill more and end once."""
    if row.filled_quantity < known.filled_quantity:
        return True
    return known.status.is_final and (not row.status.is_final or row.status is not known.status)


def _shape(intent: OrderIntent) -> tuple[str, str]:
    """What a lost reply's lookup tells orders apart by, besides the quantity: their tradingsymbol and side."""
    return intent.tradingsymbol, intent.side.value


def _ts(value: Any) -> datetime | None:
    """An order's or a trade's time: `datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")`, None when it is none.
    Kite's own format is read without strptime (~6 us a call, an order update's on the stream's thread at a
    minute's close: issue 18); any other text still goes to strptime."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) >= 19:
        try:
            return kite_clock(value) or datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    return None


def _price(value: Any) -> Decimal | None:
    return None if value in (None, "", 0, 0.0) else rupees(value)


def order_from_kite(row: dict[str, Any], key: SessionKey, mode: Mode, intent_id: str = "") -> Order:
    """A Kite order-book row or order-update payload as our Order (exact prices)."""
    return Order(
        order_id=str(row["order_id"]),
        key=key,
        mode=mode,
        exchange=str(row.get("exchange", "")),
        tradingsymbol=str(row.get("tradingsymbol", "")),
        side=Side(row.get("transaction_type", "BUY")),
        quantity=int(row.get("quantity") or 0),
        order_type=OrderType(row.get("order_type", "MARKET")),
        status=OrderStatus.from_kite(str(row.get("status", ""))),
        filled_quantity=int(row.get("filled_quantity") or 0),
        average_price=rupees(row.get("average_price") or 0),
        price=_price(row.get("price")),
        trigger_price=_price(row.get("trigger_price")),
        tag=str(row.get("tag") or ""),
        status_message=str(row.get("status_message") or ""),
        timestamp=_ts(row.get("exchange_update_timestamp") or row.get("order_timestamp")),
        intent_id=intent_id,
    )


class LiveGateway(OrderGateway):
    """Real orders through the session's KiteSession; updates from its MarketStream, routed by tag.

    Threads. `place`, `modify`, `cancel`, `account_net_quantity` and `report_fills` are REST calls made by the
    segment agents' threads (recovery's `reconcile` too). The stream's delivery thread calls `_on_update`, which
    only records the order and tells the listeners: the agent that owns the order then reads its fills
    (`report_fills`) on its own thread. Two exceptions read the order book on the delivery thread: a malformed
    update, and a reconnect (Kite does not replay the updates missed meanwhile). `orders` is any thread.
    """

    def __init__(
        self,
        session: KiteSession,
        stream: MarketStream | None = None,
        rate_limit_retries: int = 6,
        backoff_initial: float = 0.5,
        lookup_attempts: int = 3,
        lookup_pause: float = 0.5,
        variety: str = "regular",
    ) -> None:
        super().__init__(session.key, Mode.LIVE)
        self._session = session
        self._stream = stream
        self._tag = session.key.order_tag
        self._retries = rate_limit_retries
        self._backoff = backoff_initial
        self._lookup_attempts = lookup_attempts
        self._lookup_pause = lookup_pause
        self._variety = variety
        # One placement of an instrument and side at a time (`_placing`); others go at once, beside it.
        self._place_cv = threading.Condition()
        self._placing_now: set[tuple[str, str]] = set()  # (tradingsymbol, side) of the placements in flight
        self._state_lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._intents: dict[str, str] = {}  # order_id -> intent_id
        self._fill_ids: set[str] = set()
        self._fills_reported: dict[str, int] = {}  # order_id -> quantity of its fills reported
        # Orders of this tag that existed before: an ambiguous placement must not adopt one of them.
        self._known_ids: set[str] | None = None
        self._unconfirmed = False  # a placement ended unconfirmed: the book is read again before the next one
        # (tradingsymbol, side) of the placements ever left unconfirmed: their orders may reach Kite's book any time
        # later (after it was read again), and a lost reply of the same shape must not take one for its own.
        self._doubtful: set[tuple[str, str]] = set()
        if stream is not None:
            stream.add_order_listener(self._on_update)
            stream.add_event_listener(self._on_stream_event)

    def _tagged_orders(self) -> list[dict[str, Any]]:
        return [
            o
            for o in self._session.orders()
            if o.get("tag") == self._tag or self._tag in (o.get("tags") or [])
        ]

    def _ensure_known(self) -> None:
        # Read again after an unconfirmed placement: that order may have reached Kite since, and a later
        # placement of the same shape must not take it for its own.
        if self._known_ids is None or self._unconfirmed:
            known = {str(o["order_id"]) for o in self._tagged_orders()}
            self._known_ids = known | (self._known_ids or set())
            self._unconfirmed = False

    def _params(self, intent: OrderIntent) -> dict[str, Any]:
        if intent.key != self.key:
            raise InputRejected("this order belongs to another session")
        check_intent(intent)
        params: dict[str, Any] = dict(
            variety=self._variety,
            exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol,
            transaction_type=intent.side.value,
            quantity=intent.quantity,
            product=intent.product,
            order_type=intent.order_type.value,
            validity="DAY",
            tag=self._tag,
        )
        if intent.order_type in (OrderType.LIMIT, OrderType.SL):
            params["price"] = str(intent.price)
        if intent.order_type in (OrderType.SL, OrderType.SL_M):
            params["trigger_price"] = str(intent.trigger_price)
        if intent.order_type in (OrderType.MARKET, OrderType.SL_M):
            params["market_protection"] = -1  # automatic protection; Kite rejects these orders without it
        return params

    def place(self, intent: OrderIntent) -> Order:
        """Places `intent` exactly once, or raises; an ambiguous failure is resolved by tag lookup."""
        params = self._params(intent)
        with self._placing(intent):
            order_id = self._place_once(intent, params)
            self._know(order_id)
        return self._placed(intent, order_id)

    @contextmanager
    def _placing(self, intent: OrderIntent) -> Iterator[None]:
        """Holds the placement of `intent`'s instrument and side. A reply lost is resolved by looking up an order of
        our tag, the same tradingsymbol and side, that we did not know (`_find_placed`): a placement of the same
        shape in flight beside it could be taken for it, so those wait for each other; any other placement cannot,
        so it goes at once. One lock for the session's placements made the segments of a session send one after the
        other at a minute's close, each waiting for the one before's whole round trip (issue 18: 8-20 ms at p90 from
        the gateway called to the request written at 10 sessions x 3 segments; 0.3 ms without it).

        The orders known before (`_ensure_known`: at the first placement, and again after one left unconfirmed) are
        read with no placement in flight: one in flight could reach the book before its reply, be read as known,
        and its own lookup would not find it."""
        shape = _shape(intent)
        with self._place_cv:
            while True:
                # Asked once a turn: a placement in flight may be left unconfirmed (`_unconfirmed`, set without
                # this condition) at any moment, and asking again below would read the book with it in flight.
                stale = self._known_ids_stale
                if shape not in self._placing_now and not (self._placing_now and stale):
                    break
                self._place_cv.wait()
            if stale:  # then none is in flight
                self._ensure_known()  # a REST read; the next placements wait for it (rare: see the docstring)
            self._placing_now.add(shape)
        try:
            yield
        finally:
            with self._place_cv:
                self._placing_now.discard(shape)
                self._place_cv.notify_all()

    @property
    def _known_ids_stale(self) -> bool:
        return self._known_ids is None or self._unconfirmed

    def _left_unconfirmed(self, intent: OrderIntent) -> None:
        """A placement of `intent` ended without its order id (or, sliced, perhaps without some of its children's):
        its orders may be at Kite, or reach its book later."""
        with self._place_cv:
            self._unconfirmed = True
            self._doubtful.add(_shape(intent))

    def _know(self, *order_ids: str) -> None:
        """Our placements' ids: a later lookup never takes them for another's."""
        with self._place_cv:
            assert self._known_ids is not None
            self._known_ids.update(order_ids)

    def _placed(self, intent: OrderIntent, order_id: str) -> Order:
        with self._state_lock:
            self._intents[order_id] = intent.intent_id
        order = Order(
            order_id=order_id,
            key=self.key,
            mode=Mode.LIVE,
            exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            status=OrderStatus.PENDING,
            price=intent.price,
            trigger_price=intent.trigger_price,
            tag=self._tag,
            intent_id=intent.intent_id,
        )
        with self._state_lock:
            self._orders.setdefault(order_id, order)
        return order

    def place_autoslice(self, intent: OrderIntent) -> list[tuple[str, str]]:
        """Places `intent` (above the freeze quantity) with Kite's autoslice, exactly once: each child as
        (order_id, "") or ("", why Kite refused it). A lost reply is resolved by looking our tag up in the order
        book: the children found are returned; none found raises AmbiguousOrderFailure (never sent again)."""
        params = self._params(intent)
        with self._placing(intent):
            try:
                children = self._autoslice_once(params)
            except AmbiguousOrderFailure as exc:
                found = self._find_placed(intent, any_quantity=True)
                if not found:
                    log.error("%s: autoslice reply lost and no such orders in the book (%s); not sending it again",
                              self.key.broker_id, exc.detail)  # fmt: skip
                    self._left_unconfirmed(intent)
                    raise AmbiguousOrderFailure(
                        "Kite did not confirm the sliced order and it is not in the order book yet. KiteDesk will "
                        "not send it again: check the order book in Kite before doing anything.",
                        exc.detail,
                    ) from None
                log.warning("%s: autoslice reply lost; found orders %s by tag", self.key.broker_id, found)
                children = [(order_id, "") for order_id in found]
                # Kite's book may not show every child yet: one shown later must not be adopted as another's.
                self._left_unconfirmed(intent)
            self._know(*(order_id for order_id, _ in children if order_id))
        for order_id, _ in children:
            if order_id:
                self._placed(intent, order_id)
        return children

    def _autoslice_once(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        """One autoslice request; Kite's 429 (nothing placed) is waited out and sent again, as for one order."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return self._session.place_autoslice_order(**params)
            except RateLimited:
                if attempt >= self._retries:
                    raise
                log.info("%s: rate limited, retrying the sliced order in %.1f s", self.key.broker_id, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _place_once(self, intent: OrderIntent, params: dict[str, Any]) -> str:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return self._session.place_order(**params)
            except RateLimited:
                # Kite's 429 (or our own limiter) means nothing was placed: wait and try again.
                if attempt >= self._retries:
                    raise
                log.info("%s: rate limited, retrying the order in %.1f s", self.key.broker_id, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except AmbiguousOrderFailure as exc:
                found = self._find_placed(intent)
                if found is not None:
                    log.warning("%s: order reply lost; found order %s by tag", self.key.broker_id, found)
                    return found
                # Not in the book (yet): Kite's book can lag an order still in flight, so sending it again
                # could buy twice. Never re-send; the caller keeps watching updates of our tag.
                log.error(
                    "%s: order reply lost and no such order in the book (%s); not sending it again",
                    self.key.broker_id,
                    exc.detail,
                )
                self._left_unconfirmed(intent)
                raise AmbiguousOrderFailure(
                    "Kite did not confirm the order and it is not in the order book yet. KiteDesk will not "
                    "send it again: check the order book in Kite before doing anything.",
                    exc.detail,
                ) from None
        raise AssertionError("unreachable")

    def _find_placed(self, intent: OrderIntent, any_quantity: bool = False) -> Any:
        """The id of an order of our tag matching `intent` that we did not know before, or None. `any_quantity`:
        the ids of all such orders of its instrument and side whatever their quantity (an autoslice's children),
        or an empty list. Raises AmbiguousOrderFailure when the book cannot be read, or when an earlier placement of
        the same instrument and side was left unconfirmed: its order, not this one's, could be the one found."""
        assert self._known_ids is not None
        if _shape(intent) in self._doubtful:
            log.error("%s: order reply lost; an earlier %s %s order was left unconfirmed, so an order of ours found in "
                      "the book could be that one: not looked up", self.key.broker_id, intent.side.value,
                      intent.tradingsymbol)  # fmt: skip
            self._left_unconfirmed(intent)
            raise AmbiguousOrderFailure(
                "Kite did not confirm the order, and an earlier order of the same instrument and side was not "
                "confirmed either: KiteDesk cannot tell them apart in the order book and will not send it again. "
                "Check the order book in Kite before doing anything.",
                "reply lost",
            )
        for lookup in range(self._lookup_attempts):
            try:
                rows = self._tagged_orders()
            except BrokerError as exc:
                self._left_unconfirmed(intent)
                raise AmbiguousOrderFailure(
                    "Kite did not confirm the order and the order book cannot be read: check Kite before "
                    "placing it again.",
                    exc.detail,
                ) from None
            matches = [
                r
                for r in rows
                if str(r["order_id"]) not in self._known_ids
                and r.get("tradingsymbol") == intent.tradingsymbol
                and r.get("transaction_type") == intent.side.value
                and (any_quantity or int(r.get("quantity") or 0) == intent.quantity)
                # not the order type: Kite lists a MARKET order with market protection as a LIMIT
            ]
            if matches and any_quantity:
                return [str(r["order_id"]) for r in matches]
            if matches:
                return str(matches[-1]["order_id"])
            if lookup + 1 < self._lookup_attempts:
                time.sleep(self._lookup_pause)  # Kite's book may lag the order by a moment
        return [] if any_quantity else None

    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> Order:
        """Modifies one of this session's open orders."""
        current = self._own(order_id)
        params: dict[str, Any] = {"variety": self._variety, "order_id": order_id}
        if quantity is not None:
            params["quantity"] = quantity
        if price is not None:
            params["price"] = str(price)
        if trigger_price is not None:
            params["trigger_price"] = str(trigger_price)
        if order_type is not None:
            params["order_type"] = order_type.value
        self._session.modify_order(**params)
        return current

    def cancel(self, order_id: str) -> Order:
        """Cancels one of this session's open orders."""
        current = self._own(order_id)
        self._session.cancel_order(variety=self._variety, order_id=order_id)
        return current

    def _own(self, order_id: str) -> Order:
        with self._state_lock:
            order = self._orders.get(order_id)
        if order is None:
            raise InputRejected(f"order {order_id} was not placed by this session")
        return order

    def orders(self) -> list[Order]:
        """This session's orders as last reported."""
        with self._state_lock:
            return list(self._orders.values())

    def account_net_quantity(self, exchange: str, tradingsymbol: str) -> int | None:
        """Net quantity of the instrument in the account's positions (GET /portfolio/positions); raises
        BrokerError when they cannot be read."""
        return broker_net_positions(self._session.positions()).get(tradingsymbol, 0)

    # Tracking -----------------------------------------------------------------------------------
    def _on_update(self, row: dict[str, Any]) -> None:
        try:
            replies.order_row(row, "order update")
        except replies.ReplyInvalid as e:
            # Counted and logged, never raised on: the order book, read again, holds what the update should have.
            self._session.count_malformed()
            log.warning("%s: an order update does not hold what Kite's API says (%s): reading the order book",
                        self.key.broker_id, e)  # fmt: skip
            try:
                self.reconcile()
            except BrokerError as exc:
                log.warning("%s: order book not read: %s", self.key.broker_id, exc.trader_message)
            return
        order_id = str(row.get("order_id", ""))
        with self._state_lock:
            intent_id = self._intents.get(order_id, "")
        self._apply(row, intent_id)

    def _apply(self, row: dict[str, Any], intent_id: str) -> None:
        order = order_from_kite(row, self.key, Mode.LIVE, intent_id)
        with self._state_lock:
            previous = self._orders.get(order.order_id)
            if previous is not None and _older(order, previous):
                return  # a book read before a later update (a reconcile racing the stream): the later stands
            changed = previous is None or (
                previous.status,
                previous.filled_quantity,
                previous.average_price,
            ) != (
                order.status,
                order.filled_quantity,
                order.average_price,
            )
            if changed:
                self._orders[order.order_id] = order
            # Fills are not read here (the stream's delivery thread makes no REST call): the order's owner reads
            # them (`report_fills`). An update showing fills not reported yet is passed on even when unchanged, so
            # a lagging trade list is asked again with any later update.
            unreported = order.filled_quantity > self._fills_reported.get(order.order_id, 0)
        if changed or unreported:
            self._emit_order(self._orders[order.order_id])

    def report_fills(self, order_id: str) -> None:
        """Reports the order's fills not reported yet (Kite's trade list may lag its order update): a REST call,
        so made by whoever acts on the order, on its own thread (the segment's agent, when an order update shows
        more filled than it has fills of), never by the stream's delivery thread. Nothing is read while every
        fill the order's last update shows was reported."""
        with self._state_lock:
            order = self._orders.get(order_id)
            unreported = order is not None and order.filled_quantity > self._fills_reported.get(order_id, 0)
        if order is not None and unreported:
            self._report_fills(order)

    def know_fills(self, fills: Iterable[Fill]) -> None:
        """Fills of this session's orders already recorded (the store's, read by a restart's recovery): an order whose
        fills all were is not read again. Without this a restarted LIVE segment read the trades of every order of its
        day (one REST call each, on its own thread, before any tick or later update): a chaos soak on a loaded machine
        saw a stop the exchange cancelled right after a restart acted on 9 s later (11 market minutes), the position
        naked meanwhile. Idempotent: each segment's recovery passes the session's fills."""
        with self._state_lock:
            for f in fills:
                if f.fill_id in self._fill_ids:
                    continue
                self._fill_ids.add(f.fill_id)
                self._fills_reported[f.order_id] = self._fills_reported.get(f.order_id, 0) + f.quantity

    def _report_fills(self, order: Order) -> None:
        try:
            trades = self._session.order_trades(order.order_id)
        except BrokerError as exc:
            log.warning(
                "%s: fills of %s not read yet: %s", self.key.broker_id, order.order_id, exc.trader_message
            )
            return
        for t in trades:
            fill_id = str(t.get("trade_id"))
            with self._state_lock:
                if fill_id in self._fill_ids:
                    continue
                self._fill_ids.add(fill_id)
                reported = self._fills_reported.get(order.order_id, 0) + int(t.get("quantity") or 0)
                self._fills_reported[order.order_id] = reported
            self._emit_fill(
                Fill(
                    fill_id=fill_id,
                    order_id=order.order_id,
                    key=self.key,
                    mode=Mode.LIVE,
                    exchange=str(t.get("exchange", order.exchange)),
                    tradingsymbol=str(t.get("tradingsymbol", order.tradingsymbol)),
                    side=Side(t.get("transaction_type", order.side.value)),
                    quantity=int(t.get("quantity") or 0),
                    price=rupees(t.get("average_price") or 0),
                    timestamp=_ts(t.get("fill_timestamp") or t.get("exchange_timestamp")) or datetime.now(),
                )
            )

    def _on_stream_event(self, event: BrokerEvent) -> None:
        # Kite does not replay order updates missed while disconnected: read the book instead.
        if event.kind == EVENT_STREAM_CONNECTED:
            try:
                self.reconcile()
            except BrokerError as exc:
                log.warning(
                    "%s: reconcile after reconnect failed: %s", self.key.broker_id, exc.trader_message
                )

    def reconcile(self) -> list[Order]:
        """Reads this session's orders from Kite's book and reports any change missed on the stream."""
        for row in self._tagged_orders():
            order_id = str(row["order_id"])
            with self._state_lock:
                intent_id = self._intents.get(order_id, "")
            self._apply(row, intent_id)
        return self.orders()

    def close(self) -> None:
        """Stops tracking: the stream itself is owned (and closed) by the session's owner."""
        if self._stream is not None:
            self._stream.remove_order_listener(self._on_update)
            self._stream.remove_event_listener(self._on_stream_event)
