"""Orders above the exchange's freeze quantity: sent as several orders (slices), tracked as one.

The exchange refuses an option order above its freeze quantity (desktop/broker/exchange_rules.py holds the
table). `SlicingGateway` sits between a segment trader and its session's gateway: an order at or below the
freeze goes through unchanged; a bigger one is split into slices of whole lots, each at most the freeze (the
biggest first), placed one after the other through the session's gateway (so each carries the session's tag,
waits on the account's rate limiter, and has a lost reply looked up by tag before anything is sent again).

The trader sees ONE order: `place` returns it under a group id, and `fold` turns every slice's update into the
group's: its quantity is the sum of the slices', its filled quantity the sum of theirs, and it ends when every
slice has ended (COMPLETE when all completed). A slice the broker refused, one that fills in part, or one whose
reply was lost and never shows in Kite's updates simply ends with what it filled, and the group counts what its
slices filled: an entry becomes the position that was bought, an exit sells what it sold. `cancel` and
`modify` act on every slice still working; a quantity given to `modify` is spread over the slices again (each
at most the freeze), so a sliced stop-loss always covers exactly the quantity asked for.

Fills keep their slice's order id (the store and Kite's trade book agree); the trader maps every slice id to
the group's tracked order (`children`). Runs on the segment agent's thread only, like the trader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from desktop.broker import exchange_rules as rules
from desktop.broker.errors import AmbiguousOrderFailure, BrokerError, InputRejected
from desktop.broker.gateway import OrderGateway
from desktop.domain import Order, OrderIntent, OrderRole, OrderStatus, OrderType, Side

if TYPE_CHECKING:
    from desktop.engine.trader import SegmentTrader

GROUP_PREFIX = "SLICED-"  # a group's id: never one of Kite's (all digits) nor the paper gateway's
MAX_AUTOSLICE = 10  # Kite's autoslice splits an order into at most this many


def per_order(freeze: int | None, lot_size: int) -> int | None:
    """The most one order may carry: the freeze rounded down to whole lots (None: no freeze known)."""
    if freeze is None:
        return None
    lot = max(lot_size, 1)
    return freeze - freeze % lot


def split(quantity: int, freeze: int | None, lot_size: int) -> list[int]:
    """`quantity` as slices of whole lots, each at most the freeze, the biggest first; [quantity] when it fits
    in one order. Raises ValueError when the freeze is below one lot (no order could carry it)."""
    cap = per_order(freeze, lot_size)
    if cap is None or quantity <= cap:
        return [quantity]
    if cap <= 0:
        raise ValueError(f"the freeze quantity {freeze} is less than one lot of {lot_size}")
    full, rest = divmod(quantity, cap)
    return [cap] * full + ([rest] if rest else [])


def lots_per_order(underlying: str, lot_size: int, overrides: dict[str, int] | None = None) -> int | None:
    """How many lots one order of the underlying's options may carry (the form's note); None: no freeze known."""
    cap = per_order(rules.freeze_quantity(underlying, overrides), lot_size)
    return None if cap is None or lot_size <= 0 else cap // lot_size


def slicing_note(underlyings: list[str], overrides: dict[str, int] | None = None) -> str:
    """The form's note beside Lots: how many lots one order of each index carries before it is sliced
    ("NIFTY: 27 lots per order; larger entries are sent in slices"), from the usual lot sizes."""
    parts = []
    for name in underlyings:
        lots = lots_per_order(name, rules.USUAL_LOT_SIZES.get(name.upper(), 0), overrides)
        if lots:
            parts.append(f"{name.upper()}: {lots} lots per order")
    return "; ".join(parts) + "; larger entries are sent in slices" if parts else ""


@dataclass(slots=True)
class Slice:
    """One order of a group, as its updates report it."""

    quantity: int
    order_id: str = ""  # "" while unconfirmed (its reply was lost and no update showed it yet)
    status: OrderStatus = OrderStatus.PENDING
    filled: int = 0
    average: Decimal = Decimal(0)
    why: str = ""
    last: Order | None = None

    @property
    def final(self) -> bool:
        return self.status.is_final


@dataclass(slots=True)
class Group:
    """The slices of one order the trader sees as one."""

    group_id: str
    intent: OrderIntent
    slices: list[Slice] = field(default_factory=list)
    cancelling: bool = False  # this run asked the broker to cancel it (all of it)

    @property
    def final(self) -> bool:
        return all(s.final for s in self.slices)

    def whole(self) -> Order:
        """The group as one order: summed quantities, the status of all its slices together."""
        statuses = [s.status for s in self.slices]
        filled = sum(s.filled for s in self.slices)
        if all(s.is_final for s in statuses):
            if all(s is OrderStatus.COMPLETE for s in statuses):
                status = OrderStatus.COMPLETE
            elif filled == 0 and OrderStatus.REJECTED in statuses:  # a refused stop is retried with a pause
                status = OrderStatus.REJECTED
            else:
                status = OrderStatus.CANCELLED
        elif OrderStatus.OPEN in statuses:
            status = OrderStatus.OPEN  # a stop with a triggered slice is a triggered stop
        elif OrderStatus.TRIGGER_PENDING in statuses:
            status = OrderStatus.TRIGGER_PENDING
        else:
            status = OrderStatus.PENDING
        value = sum((s.average * s.filled for s in self.slices), Decimal(0))
        why = "; ".join(
            dict.fromkeys(s.why for s in self.slices if s.why and s.status is not OrderStatus.COMPLETE)
        )
        last = next((s.last for s in reversed(self.slices) if s.last is not None), None)
        i = self.intent
        return Order(
            order_id=self.group_id,
            key=i.key,
            mode=i.mode,
            exchange=i.exchange,
            tradingsymbol=i.tradingsymbol,
            side=i.side,
            quantity=sum(s.quantity for s in self.slices),
            order_type=i.order_type,
            status=status,
            filled_quantity=filled,
            average_price=(value / filled) if filled else Decimal(0),
            price=i.price,
            trigger_price=i.trigger_price,
            tag=last.tag if last is not None else "",
            status_message=why,
            timestamp=last.timestamp if last is not None else None,
            intent_id=i.intent_id,
        )


class SlicingGateway:
    """The session's gateway as a segment trader uses it, with orders above the freeze sent in slices."""

    def __init__(
        self,
        inner: OrderGateway,
        lot_size: Callable[[str, str], int],
        overrides: dict[str, int] | None = None,
        warn: Callable[..., None] | None = None,
        count: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self._count_order = count or (lambda: None)  # counts one more order sent (the session's risk manager)
        self._calls = 0
        self._warn = warn or (lambda *args: None)  # the segment's log (its warning method)
        self._lot_size = lot_size  # (exchange, tradingsymbol) -> lot size
        self.overrides = dict(overrides or {})
        self.groups: dict[str, Group] = {}
        self._of_slice: dict[str, str] = {}  # slice order id -> group id
        self._count = 0

    def _slice_call(self, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """One request about one slice. The trader's risk counts one order per placement, cancel or modification
        it asks for; every slice's request beyond the first is counted here (max orders per minute)."""
        self._calls += 1
        if self._calls > 1:
            self._count_order()
        return call(*args, **kw)

    def _begin(self) -> None:
        self._calls = 0

    def __getattr__(self, name: str) -> Any:  # everything else is the session's gateway's
        return getattr(self.inner, name)

    # -- what the trader asks ---------------------------------------------------------------------

    def plan(self, intent: OrderIntent) -> list[int]:
        """The slices `intent` is sent as ([its quantity] when it fits in one order)."""
        freeze = rules.freeze_quantity(intent.segment.spec.name, self.overrides)
        return split(intent.quantity, freeze, self._lot_size(intent.exchange, intent.tradingsymbol))

    def place(self, intent: OrderIntent) -> Order:
        """Places `intent`, in slices when it is above the freeze; the returned order stands for all of them.
        Raises like the session's gateway when no slice reached the broker."""
        try:
            sizes = self.plan(intent)
        except ValueError as e:
            raise BrokerError(f"order not sent: {e}") from None
        if len(sizes) == 1:
            return self.inner.place(intent)
        self._begin()
        self._count += 1
        group = Group(f"{GROUP_PREFIX}{intent.intent_id[:12]}-{self._count}", intent)
        refusal: BrokerError | None = None
        autoslice = getattr(self.inner, "place_autoslice", None)
        children: list[tuple[str, str]] | None = None
        if autoslice is not None and len(sizes) <= MAX_AUTOSLICE:
            try:
                children = autoslice(intent)
                for _ in children[1:]:  # each child is an order at the exchange: counted like one
                    self._count_order()
            except AmbiguousOrderFailure as e:
                children = []  # may be at Kite: the first update of each makes it this group's (`claim`)
                group.slices = [Slice(size, why=str(e)) for size in sizes]
            except InputRejected as e:
                # Nothing was placed (Kite refused the autoslice request itself, say for this order type): the
                # slices go one order each instead, so a stop is never left unplaced for want of autoslice.
                self._warn(
                    "Kite refused the autoslice request (%s): sending %d orders instead", e, len(sizes)
                )
                children = None
        if children is not None:
            for n, (order_id, why) in enumerate(children):
                piece = Slice(sizes[n] if n < len(sizes) else 0, order_id)
                if order_id:
                    self._of_slice[order_id] = group.group_id
                else:
                    piece.status, piece.why = OrderStatus.REJECTED, why
                    refusal = refusal or BrokerError(why)
                group.slices.append(piece)
            group.slices += [Slice(size) for size in sizes[len(children) :]] if children else []
        else:
            self._begin()
            for size in sizes:
                piece = Slice(size)
                try:
                    order = self._slice_call(self.inner.place, replace(intent, quantity=size))
                except AmbiguousOrderFailure as e:
                    piece.why = str(e)  # may be at Kite: its first update makes it this group's (`claim`)
                except BrokerError as e:
                    refusal = refusal or e
                    piece.status, piece.why = OrderStatus.REJECTED, str(e)
                else:
                    piece.order_id = order.order_id
                    self._of_slice[order.order_id] = group.group_id
                group.slices.append(piece)
        if all(s.status is OrderStatus.REJECTED for s in group.slices):
            assert refusal is not None
            raise refusal
        self.groups[group.group_id] = group
        refused = [s for s in group.slices if s.status is OrderStatus.REJECTED]
        if refused:
            self._warn("%d of the %d slices of the %s order for %d %s were refused (%s)", len(refused),
                       len(group.slices), intent.reason, intent.quantity, intent.tradingsymbol, refused[0].why)  # fmt: skip
            if intent.order_type in (OrderType.SL, OrderType.SL_M):
                # A stop must cover all that is held: the slices placed are cancelled and the refusal raised, so
                # the protection places the whole stop again (with its growing pause) and says UNPROTECTED.
                self._cancel_quietly(group)
                assert refusal is not None
                raise refusal
        return Order(
            order_id=group.group_id, key=intent.key, mode=intent.mode, exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol, side=intent.side, quantity=intent.quantity,
            order_type=intent.order_type, status=OrderStatus.PENDING, price=intent.price,
            trigger_price=intent.trigger_price, intent_id=intent.intent_id,
        )  # fmt: skip

    def adopt(self, intent: OrderIntent, orders: list[Order]) -> Group:
        """Orders already at the broker (a previous run's slices, none filled) made one group of `intent`."""
        self._count += 1
        group = Group(f"{GROUP_PREFIX}{intent.intent_id[:12]}-{self._count}", intent)
        for o in orders:
            group.slices.append(Slice(o.quantity - o.filled_quantity, o.order_id, o.status, last=o))
            self._of_slice[o.order_id] = group.group_id
        self.groups[group.group_id] = group
        return group

    def children(self, order_id: str) -> list[str]:
        """The order ids of a group's slices known so far ([] for an order that is not a group)."""
        group = self.groups.get(order_id)
        return [s.order_id for s in group.slices if s.order_id] if group else []

    def group_of(self, order_id: str) -> str | None:
        return self._of_slice.get(order_id)

    def claim(self, order: Order) -> str | None:
        """An update of an order nobody knows: the unconfirmed slice of a group of the same instrument, side and
        quantity, now known by its id (its group's id is returned), or None."""
        for group in self.groups.values():
            i = group.intent
            if (order.tradingsymbol, order.side) != (i.tradingsymbol, i.side):
                continue
            for piece in group.slices:
                if not piece.order_id and not piece.final and piece.quantity == order.quantity:
                    piece.order_id = order.order_id
                    self._of_slice[order.order_id] = group.group_id
                    return group.group_id
        return None

    def fold(self, order: Order) -> Order:
        """A slice's update as its group's whole order; any other order's update unchanged."""
        group_id = self._of_slice.get(order.order_id)
        group = self.groups.get(group_id) if group_id else None
        if group is None:
            return order
        for piece in group.slices:
            if piece.order_id == order.order_id:
                piece.status, piece.last, piece.quantity = order.status, order, order.quantity
                piece.filled = (
                    order.quantity if order.status is OrderStatus.COMPLETE else order.filled_quantity
                )
                piece.average = order.average_price
                piece.why = order.status_message or (
                    order.status.value.lower() if order.status.is_final else ""
                )
                if self._broken_stop(group, piece):
                    self._warn("stop-loss slice %s of %s %s by the broker (%s) with the other slices resting: "
                               "cancelling them, the stop is placed again whole", piece.order_id, group.group_id,
                               piece.status.value, piece.why)  # fmt: skip
                    self._calls = 1  # cancels the trader did not ask for: every one counted
                    self._cancel_quietly(group)
        return group.whole()

    @staticmethod
    def _broken_stop(group: Group, piece: Slice) -> bool:
        """A slice of a stop ended by the broker, not filled and not by our cancel, while others still rest: the
        stop no longer covers what is held."""
        return (
            group.intent.order_type in (OrderType.SL, OrderType.SL_M)
            and not group.cancelling
            and piece.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED)
            and piece.filled < piece.quantity
            and not group.final
        )

    def _cancel_quietly(self, group: Group) -> None:
        """Cancels every working slice (a failure is logged: that slice may be selling, its fills still count)."""
        for order_id, e in self._cancel_slices(group):
            self._warn("slice %s of %s not cancelled: %s", order_id, group.group_id, e)

    def _cancel_slices(self, group: Group) -> list[tuple[str, BrokerError]]:
        """Asks every working slice to cancel (one never confirmed is given up as not placed); returns the
        slices Kite refused to cancel, with why, after trying them all."""
        group.cancelling = True
        refused: list[tuple[str, BrokerError]] = []
        for piece in group.slices:
            if piece.final:
                continue
            if not piece.order_id:
                piece.status, piece.why = OrderStatus.CANCELLED, "never confirmed by Kite"
                continue
            try:
                self._slice_call(self.inner.cancel, piece.order_id)
            except BrokerError as e:
                refused.append((piece.order_id, e))
        return refused

    # -- acting on a group ---------------------------------------------------------------------

    def cancel(self, order_id: str) -> Order:
        """Cancels the order, or every working slice of a group. A slice never confirmed is given up (taken as not
        placed). Raises BrokerError when a slice could not be cancelled (it may be selling) after trying all."""
        group = self.groups.get(order_id)
        if group is None:
            return self.inner.cancel(order_id)
        self._begin()
        refused = self._cancel_slices(group)
        if refused:
            raise refused[0][1]
        if group.final:
            self._settled(group)
        return group.whole()

    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> Order:
        """Modifies the order, or every working slice of a group alike. A new `quantity` (what the whole order
        should still sell) is spread over its working slices, each at most the freeze; slices not needed any more
        are cancelled. Raises BrokerError on the first slice refused (the caller replaces the order)."""
        group = self.groups.get(order_id)
        if group is None:
            return self.inner.modify(
                order_id, quantity=quantity, price=price, trigger_price=trigger_price, order_type=order_type
            )
        self._begin()
        working = [s for s in group.slices if not s.final and s.order_id]
        if quantity is not None:
            self._resize(group, working, quantity)
        if price is not None or trigger_price is not None or order_type is not None:
            for piece in working:
                if not piece.final:
                    self._slice_call(
                        self.inner.modify,
                        piece.order_id,
                        price=price,
                        trigger_price=trigger_price,
                        order_type=order_type,
                    )
        return group.whole()

    def _resize(self, group: Group, working: list[Slice], quantity: int) -> None:
        """`quantity` left to sell, over the working slices: each keeps its fills and sells at most the freeze."""
        cap = per_order(
            rules.freeze_quantity(group.intent.segment.spec.name, self.overrides),
            self._lot_size(group.intent.exchange, group.intent.tradingsymbol),
        )
        left = quantity
        for piece in working:
            room = piece.quantity - piece.filled
            want = min(room if cap is None else min(cap - piece.filled, room), left)
            if want <= 0:
                self._slice_call(
                    self.inner.cancel, piece.order_id
                )  # not needed any more: cancelled, its fills still count
                continue
            if want != room:
                self._slice_call(
                    self.inner.modify, piece.order_id, quantity=piece.filled + want
                )  # Kite's quantity: the total
                piece.quantity = piece.filled + want
            left -= want
        if left > 0:
            raise BrokerError(f"the stop-loss orders cannot be made to sell {quantity}: {left} left over")

    def report_fills(self, order_id: str) -> None:
        group = self.groups.get(order_id)
        for child in [s.order_id for s in group.slices if s.order_id] if group else [order_id]:
            self.inner.report_fills(child)

    def _settled(self, group: Group) -> None:
        """Every slice ended with no update still to come (one was given up): the last slice's report again, so
        the trader hears that the group ended."""
        last = next((s.last for s in reversed(group.slices) if s.last is not None), None)
        # No slice ever reported (all given up): the group's own ending is told, or its order would wait for ever.
        self.inner._emit_order(last if last is not None else group.whole())


def adopt_stop_slices(trader: SegmentTrader, orders: list[Order]) -> None:
    """The broker's resting stop-loss orders of an adopted LIVE position sliced above the freeze (recovery): ours
    as one stop, modified and cancelled together."""
    from desktop.engine.orders import TrackedOrder  # the trader's own types (no import cycle at load)

    h = trader.holding
    assert h is not None
    left = sum(o.quantity - o.filled_quantity for o in orders)
    intent = trader.intent(h.exchange, h.tradingsymbol, Side.SELL, left, "protective_stop", OrderRole.STOP)
    first = orders[0]
    intent = replace(intent, order_type=OrderType.SL, trigger_price=first.trigger_price, price=first.price)
    group = trader.slices.adopt(intent, orders)
    whole = group.whole()
    tracked = TrackedOrder(intent, status=whole.status)
    tracked.place(group.group_id, None)  # adopted, not sent by this run
    tracked.trigger, tracked.limit = first.trigger_price, first.price
    trader.orders.track(tracked, [o.order_id for o in orders])
    h.stop_order = tracked
    trader.protection.on_update(tracked, whole.status)
    trader.log.info("kept the %d stop-loss orders %s at the broker (trigger %s), selling %d in all", len(orders),
                    ", ".join(o.order_id for o in orders), first.trigger_price, left)  # fmt: skip
