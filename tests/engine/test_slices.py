"""Slicing orders above the freeze quantity (desktop/engine/slices.py), at unit level: a fake session gateway
records the calls; the simulator tests (tests/e2e/test_freeze_slices.py) run the same code against Kite's API."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from desktop.broker.errors import AmbiguousOrderFailure, BrokerError, InputRejected
from desktop.domain import Mode, Order, OrderIntent, OrderStatus, OrderType, Segment, SessionKey, Side
from desktop.engine.slices import GROUP_PREFIX, SlicingGateway, lots_per_order, split

KEY = SessionKey("UK9394", "s1")
SYMBOL = "NIFTY2611325650CE"


class FakeGateway:
    """The session's gateway: numbered orders, a scripted refusal or lost reply per placement."""

    def __init__(
        self, script: list[str] | None = None, autoslice: list[tuple[str, str]] | None = None
    ) -> None:
        self.script = list(script or [])
        self.autoslice_reply = autoslice
        self.placed: list[OrderIntent] = []
        self.cancelled: list[str] = []
        self.modified: list[tuple[str, dict[str, Any]]] = []
        self.refuse_cancel: set[str] = set()
        self.emitted: list[Order] = []
        self.ids = itertools.count(101)

    def place(self, intent: OrderIntent) -> Order:
        what = self.script.pop(0) if self.script else "ok"
        if what == "refuse":
            raise InputRejected("Insufficient funds")
        if what == "lost":
            raise AmbiguousOrderFailure("not confirmed")
        self.placed.append(intent)
        return _order(str(next(self.ids)), intent.quantity, OrderStatus.PENDING)

    def cancel(self, order_id: str) -> Order:
        if order_id in self.refuse_cancel:
            raise InputRejected("Order cannot be cancelled as it is being processed or is complete.")
        self.cancelled.append(order_id)
        return _order(order_id, 0, OrderStatus.PENDING)

    def modify(self, order_id: str, **kw: Any) -> Order:
        self.modified.append((order_id, {k: v for k, v in kw.items() if v is not None}))
        return _order(order_id, 0, OrderStatus.PENDING)

    def report_fills(self, order_id: str) -> None:
        pass

    def _emit_order(self, order: Order) -> None:
        self.emitted.append(order)


class AutoslicingGateway(FakeGateway):
    def place_autoslice(self, intent: OrderIntent) -> list[tuple[str, str]]:
        self.placed.append(intent)
        assert self.autoslice_reply is not None
        return self.autoslice_reply


def _order(order_id: str, quantity: int, status: OrderStatus, filled: int = 0, price: str = "100") -> Order:
    return Order(order_id, KEY, Mode.LIVE, "NFO", SYMBOL, Side.BUY, quantity, OrderType.MARKET, status,
                 filled_quantity=filled, average_price=Decimal(price) if filled else Decimal(0))  # fmt: skip


def _intent(quantity: int, **kw: Any) -> OrderIntent:
    return OrderIntent(KEY, Segment.NIFTY, Mode.LIVE, "NFO", SYMBOL, Side.BUY, quantity, reason="entry", **kw)


def _slicer(inner: FakeGateway, overrides: dict[str, int] | None = None) -> SlicingGateway:
    return SlicingGateway(inner, lambda exchange, symbol: 65, overrides)  # type: ignore[arg-type]


def test_split_gives_whole_lots_each_within_the_freeze_biggest_first() -> None:
    assert split(3900, 1800, 65) == [1755, 1755, 390]  # 60 NIFTY lots: 27 + 27 + 6
    assert split(750, 600, 30) == [600, 150]  # 25 BANKNIFTY lots: 20 + 5
    assert split(1755, 1800, 65) == [1755]
    assert split(500, None, 65) == [500]
    with pytest.raises(ValueError, match="less than one lot"):
        split(130, 50, 65)
    assert lots_per_order("NIFTY", 65) == 27
    assert lots_per_order("NIFTY", 65, {"NIFTY": 1300}) == 20
    assert lots_per_order("BANKNIFTY", 30) == 20


def test_an_order_within_the_freeze_goes_through_unchanged() -> None:
    inner = FakeGateway()
    order = _slicer(inner).place(_intent(1755))
    assert order.order_id == "101" and [i.quantity for i in inner.placed] == [1755]


def test_an_order_above_the_freeze_is_placed_in_slices_of_one_intent_and_seen_as_one_order() -> None:
    inner = FakeGateway()
    slicer = _slicer(inner)
    intent = _intent(3900)
    order = slicer.place(intent)
    assert order.order_id.startswith(GROUP_PREFIX) and order.quantity == 3900
    assert [i.quantity for i in inner.placed] == [1755, 1755, 390]
    assert {i.intent_id for i in inner.placed} == {intent.intent_id}, (
        "the slices share the intent (and the tag)"
    )
    assert slicer.children(order.order_id) == ["101", "102", "103"]
    whole = slicer.fold(_order("101", 1755, OrderStatus.COMPLETE, 1755, "100"))
    assert (whole.order_id, whole.status, whole.filled_quantity) == (
        order.order_id,
        OrderStatus.PENDING,
        1755,
    )
    slicer.fold(_order("102", 1755, OrderStatus.COMPLETE, 1755, "101"))
    whole = slicer.fold(_order("103", 390, OrderStatus.COMPLETE, 390, "102"))
    assert (whole.status, whole.filled_quantity, whole.quantity) == (OrderStatus.COMPLETE, 3900, 3900)
    assert whole.average_price == (Decimal(100) * 1755 + Decimal(101) * 1755 + Decimal(102) * 390) / 3900


def test_a_refused_and_a_part_filled_slice_leave_the_order_with_what_filled() -> None:
    inner = FakeGateway(script=["ok", "refuse", "ok"])
    slicer = _slicer(inner)
    order = slicer.place(_intent(3900))
    assert slicer.children(order.order_id) == ["101", "102"]
    slicer.fold(_order("101", 1755, OrderStatus.COMPLETE, 1755))
    whole = slicer.fold(_order("102", 390, OrderStatus.CANCELLED, 130))
    assert (whole.status, whole.filled_quantity) == (OrderStatus.CANCELLED, 1885)
    assert "Insufficient funds" in whole.status_message


def test_every_slice_refused_raises_the_refusal() -> None:
    with pytest.raises(BrokerError, match="Insufficient funds"):
        _slicer(FakeGateway(script=["refuse"] * 3)).place(_intent(3900))


def test_a_slice_whose_reply_was_lost_is_claimed_by_its_first_update_or_given_up_on_cancel() -> None:
    inner = FakeGateway(script=["ok", "lost", "lost"])
    slicer = _slicer(inner)
    order = slicer.place(_intent(3900))
    assert slicer.children(order.order_id) == ["101"]
    assert slicer.claim(_order("555", 1755, OrderStatus.OPEN)) == order.order_id, (
        "same symbol, side, quantity"
    )
    assert slicer.claim(_order("556", 1300, OrderStatus.OPEN)) is None, "no unconfirmed slice of that size"
    assert slicer.group_of("555") == order.order_id
    slicer.fold(_order("101", 1755, OrderStatus.COMPLETE, 1755))
    slicer.fold(_order("555", 1755, OrderStatus.COMPLETE, 1755))
    slicer.cancel(order.order_id)  # the 390 never showed: given up, nothing sent to cancel it
    assert inner.cancelled == []
    assert [o.order_id for o in inner.emitted] == ["555"], "no update is to come: the last one told again"
    whole = slicer.fold(inner.emitted[0])
    assert (whole.status, whole.filled_quantity) == (OrderStatus.CANCELLED, 3510)


def test_autoslice_is_used_when_it_fits_and_its_refused_child_counts_as_rejected() -> None:
    inner = AutoslicingGateway(autoslice=[("201", ""), ("", "Insufficient funds"), ("203", "")])
    slicer = _slicer(inner)
    order = slicer.place(_intent(3900))
    assert len(inner.placed) == 1 and inner.placed[0].quantity == 3900, "one autoslice request"
    assert slicer.children(order.order_id) == ["201", "203"]
    slicer.fold(_order("201", 1755, OrderStatus.COMPLETE, 1755))
    whole = slicer.fold(_order("203", 390, OrderStatus.COMPLETE, 390))
    assert (whole.status, whole.filled_quantity) == (OrderStatus.CANCELLED, 2145)


def test_more_than_ten_slices_are_placed_one_by_one() -> None:
    inner = AutoslicingGateway(autoslice=[])
    slicer = _slicer(inner, {"NIFTY": 130})  # 2 lots per order: 60 lots are 30 slices
    order = slicer.place(_intent(3900))
    assert len(inner.placed) == 30 and all(i.quantity == 130 for i in inner.placed)
    assert len(slicer.children(order.order_id)) == 30


def _stop(quantity: int) -> OrderIntent:
    return replace(_intent(quantity), side=Side.SELL, order_type=OrderType.SL, trigger_price=Decimal("90"),
                   price=Decimal("81"), reason="protective_stop")  # fmt: skip


def test_a_stop_with_a_slice_refused_is_cancelled_whole_and_refused() -> None:
    inner = FakeGateway(script=["ok", "ok", "refuse"])
    with pytest.raises(BrokerError, match="Insufficient funds"):
        _slicer(inner).place(_stop(3900))
    assert inner.cancelled == ["101", "102"], "never a stop covering part of the position silently"


def test_a_stop_slice_ended_by_the_broker_cancels_the_others_so_the_stop_is_placed_again_whole() -> None:
    inner = FakeGateway()
    slicer = _slicer(inner)
    order = slicer.place(_stop(3900))
    whole = slicer.fold(replace(_order("102", 1755, OrderStatus.REJECTED), status_message="RMS: blocked"))
    assert inner.cancelled == ["101", "103"]
    slicer.fold(_order("101", 1755, OrderStatus.CANCELLED))
    whole = slicer.fold(_order("103", 390, OrderStatus.CANCELLED))
    assert (whole.order_id, whole.status, whole.filled_quantity) == (order.order_id, OrderStatus.REJECTED, 0)


def test_a_stop_modified_moves_every_slice_and_a_new_quantity_is_spread_within_the_freeze() -> None:
    inner = FakeGateway()
    slicer = _slicer(inner)
    order = slicer.place(_stop(3900))
    slicer.modify(order.order_id, trigger_price=Decimal("95"), price=Decimal("85.5"))
    assert [oid for oid, _ in inner.modified] == ["101", "102", "103"]
    assert all(kw == {"trigger_price": Decimal("95"), "price": Decimal("85.5")} for _, kw in inner.modified)
    inner.modified.clear()
    slicer.modify(order.order_id, quantity=1950)  # 30 lots left held: 1755 + 195, the 390 slice cancelled
    assert inner.modified == [("102", {"quantity": 195})]
    assert inner.cancelled == ["103"]
    with pytest.raises(BrokerError, match="left over"):
        slicer.modify(order.order_id, quantity=3900)  # more than the slices can carry: the caller replaces it


def test_a_slice_that_cannot_be_cancelled_is_reported_after_the_others_are() -> None:
    inner = FakeGateway()
    slicer = _slicer(inner)
    order = slicer.place(_stop(3900))
    inner.refuse_cancel = {"102"}
    with pytest.raises(BrokerError, match="cannot be cancelled"):
        slicer.cancel(order.order_id)
    assert inner.cancelled == ["101", "103"]


def test_a_sliced_order_none_of_whose_slices_ever_showed_ends_when_cancelled() -> None:
    inner = AutoslicingGateway(autoslice=[])

    def lost(intent: OrderIntent) -> list[tuple[str, str]]:
        raise AmbiguousOrderFailure("not confirmed and not in the book")

    inner.place_autoslice = lost  # type: ignore[method-assign]
    slicer = _slicer(inner)
    order = slicer.place(_intent(3900))  # may be at Kite: watched for, never sent again
    assert slicer.children(order.order_id) == [] and inner.placed == []
    slicer.cancel(order.order_id)
    assert [(o.order_id, o.status, o.filled_quantity) for o in inner.emitted] == [
        (order.order_id, OrderStatus.CANCELLED, 0)
    ], "the trader hears that the order ended"


def test_every_slice_beyond_the_first_is_counted_as_one_more_order_sent() -> None:
    counted: list[int] = []
    inner = FakeGateway()
    slicer = SlicingGateway(inner, lambda e, s: 65, None, count=lambda: counted.append(1))  # type: ignore[arg-type]
    order = slicer.place(_stop(3900))  # the trader's risk counted this one: 2 more
    assert len(counted) == 2
    slicer.modify(order.order_id, trigger_price=Decimal("95"), price=Decimal("85.5"))
    assert len(counted) == 4
    slicer.cancel(order.order_id)
    assert len(counted) == 6
    auto = AutoslicingGateway(autoslice=[("201", ""), ("202", ""), ("203", "")])
    counted.clear()
    SlicingGateway(auto, lambda e, s: 65, None, count=lambda: counted.append(1)).place(_intent(3900))  # type: ignore[arg-type]
    assert len(counted) == 2, "autoslice: one request, three orders at the exchange"


def test_an_autoslice_request_kite_refuses_outright_is_sent_as_one_order_per_slice() -> None:
    inner = AutoslicingGateway(autoslice=[])

    def refused(intent: OrderIntent) -> list[tuple[str, str]]:
        raise InputRejected("autoslice is not allowed for this order type")

    inner.place_autoslice = refused  # type: ignore[method-assign]
    slicer = _slicer(inner)
    order = slicer.place(_stop(3900))
    assert [i.quantity for i in inner.placed] == [1755, 1755, 390]
    assert slicer.children(order.order_id) == ["101", "102", "103"]
