"""The order lifecycle (desktop/engine/orders.py): the state machine's transitions on their own, then through a
trader with the recording gateway (the `make` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.domain import Mode, OptionRight, OrderIntent, OrderRole, OrderStatus, Segment, SessionKey, Side
from desktop.engine.orders import ORDER_PATIENCE, IllegalTransition, OrderState, TrackedOrder
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from tests.engine.traders import T0, enter, fill

S = OrderState


def _order(quantity: int = 130, role: OrderRole = OrderRole.EXIT) -> TrackedOrder:
    intent = OrderIntent(SessionKey.new("UK9394"), Segment.NIFTY, Mode.LIVE, "NFO", "NIFTY2611325000CE",
                         Side.SELL, quantity, reason="test", role=role)  # fmt: skip
    return TrackedOrder(intent)


def _working(quantity: int = 130, role: OrderRole = OrderRole.EXIT) -> TrackedOrder:
    o = _order(quantity, role)
    o.place("O1", T0)
    return o


def test_an_order_placed_filled_in_part_ended_and_settled_goes_through_each_state() -> None:
    o = _order()
    assert o.state is S.NEW and not o.resting and not o.final and not o.done
    o.place("O1", T0)
    assert (o.state, o.order_id, o.sent_at) == (S.WORKING, "O1", T0) and o.resting
    o.fill(65, Decimal("180"))
    assert o.state is S.PART_FILLED and o.resting and not o.complete
    o.end(OrderStatus.CANCELLED, 100, "cancelled")
    assert o.state is S.ENDED and o.final and not o.done and not o.resting
    assert not o.complete  # the broker says 100 filled: 35 are still on their way
    o.fill(35, Decimal("179"))
    assert o.complete and (o.filled, o.value) == (100, Decimal("180") * 65 + Decimal("179") * 35)
    o.settle()
    assert o.state is S.SETTLED and o.done and o.final
    assert o.path == [S.NEW, S.WORKING, S.PART_FILLED, S.ENDED]


def test_an_order_filled_in_full_settles_before_the_broker_says_it_ended() -> None:
    o = _working(130)
    o.fill(130, Decimal("200"))
    assert o.complete
    o.settle()
    assert o.done and not o.cancelled_by_us


def test_an_unconfirmed_order_is_bound_by_its_first_update_or_given_up() -> None:
    bound, lost = _order(), _order()
    for o in (bound, lost):
        o.unconfirmed(T0)
        assert o.state is S.UNCONFIRMED and o.resting and o.order_id == "" and o.sent_at == T0
    bound.bind("O7")
    assert (bound.state, bound.order_id) == (S.WORKING, "O7")
    lost.give_up("never confirmed by Kite")
    assert lost.state is S.GIVEN_UP and lost.done and lost.final and lost.why == "never confirmed by Kite"


def test_a_stop_cancelled_by_us_is_not_resting_and_stays_ours_to_have_cancelled_after_it_ends() -> None:
    stop = _working(role=OrderRole.STOP)
    stop.fill(65, Decimal("150"))  # sold part before the cancel: still counted
    stop.cancelling()
    assert stop.state is S.CANCELLING and not stop.resting and stop.cancelled_by_us
    stop.end(OrderStatus.CANCELLED, 65, "cancelled")
    stop.settle()
    assert stop.cancelled_by_us and stop.filled == 65


def test_a_late_fill_of_a_settled_order_is_still_counted() -> None:
    o = _working(130)
    o.end(OrderStatus.CANCELLED, 0, "cancelled")
    o.settle()
    o.fill(65, Decimal("100"))  # the broker said none filled; a fill came after all
    assert o.state is S.SETTLED and o.filled == 65


def _in(state: OrderState) -> TrackedOrder:
    """An order brought to `state` by legal transitions."""
    o = _order()
    steps: dict[OrderState, list[Callable[[TrackedOrder], None]]] = {
        S.NEW: [],
        S.UNCONFIRMED: [lambda o: o.unconfirmed(T0)],
        S.WORKING: [lambda o: o.place("O1", T0)],
        S.PART_FILLED: [lambda o: o.place("O1", T0), lambda o: o.fill(1, Decimal(1))],
        S.CANCELLING: [lambda o: o.place("O1", T0), lambda o: o.cancelling()],
        S.ENDED: [lambda o: o.place("O1", T0), lambda o: o.end(OrderStatus.REJECTED, 0, "rejected")],
        S.SETTLED: [lambda o: o.place("O1", T0), lambda o: o.end(OrderStatus.REJECTED, 0, "x"), lambda o: o.settle()],
        S.GIVEN_UP: [lambda o: o.unconfirmed(T0), lambda o: o.give_up("lost")],
    }  # fmt: skip
    for step in steps[state]:
        step(o)
    assert o.state is state
    return o


ILLEGAL: list[tuple[OrderState, str, Callable[[TrackedOrder], None]]] = [
    (S.NEW, "fill", lambda o: o.fill(1, Decimal(1))),
    (S.NEW, "bind", lambda o: o.bind("O2")),
    (S.NEW, "settle", lambda o: o.settle()),
    (S.NEW, "end", lambda o: o.end(OrderStatus.COMPLETE, 1, "")),
    (S.UNCONFIRMED, "fill", lambda o: o.fill(1, Decimal(1))),
    (S.UNCONFIRMED, "cancelling", lambda o: o.cancelling()),
    (S.UNCONFIRMED, "place", lambda o: o.place("O2", T0)),
    (S.WORKING, "place", lambda o: o.place("O2", T0)),
    (S.WORKING, "bind", lambda o: o.bind("O2")),
    (S.WORKING, "give_up", lambda o: o.give_up("lost")),
    (S.ENDED, "cancelling", lambda o: o.cancelling()),
    (S.ENDED, "end", lambda o: o.end(OrderStatus.COMPLETE, 1, "")),
    (S.SETTLED, "settle", lambda o: o.settle()),
    (S.SETTLED, "end", lambda o: o.end(OrderStatus.COMPLETE, 1, "")),
    (S.SETTLED, "cancelling", lambda o: o.cancelling()),
    (S.GIVEN_UP, "bind", lambda o: o.bind("O2")),
    (S.GIVEN_UP, "fill", lambda o: o.fill(1, Decimal(1))),
    (S.GIVEN_UP, "settle", lambda o: o.settle()),
]


@pytest.mark.parametrize(
    ("state", "name", "transition"), ILLEGAL, ids=[f"{s.value}-{n}" for s, n, _ in ILLEGAL]
)
def test_an_illegal_transition_is_refused_loudly_and_changes_nothing(
    state: OrderState, name: str, transition: Callable[[TrackedOrder], None]
) -> None:
    o = _in(state)
    before = (o.state, o.order_id, o.filled, list(o.path))
    with pytest.raises(IllegalTransition, match=f"cannot {name} when {state.value}"):
        transition(o)
    assert (o.state, o.order_id, o.filled, list(o.path)) == before


# -- through a trader --------------------------------------------------------------------------------------


def test_an_entry_and_its_stop_through_the_trader_take_their_states(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway)  # O1 filled in full: the stop O2 is placed
    entry, stop = trader.orders.tracked["O1"], trader.orders.tracked["O2"]
    assert entry.state is S.SETTLED and entry.path == [S.NEW, S.WORKING, S.PART_FILLED]
    assert stop.role is OrderRole.STOP and stop.state is S.WORKING and trader.holding.stop_order is stop
    trader.act([ExitPosition("target")])  # the stop is cancelled first, then the exit O3 sent
    assert stop.state is S.CANCELLING and gateway.cancelled == ["O2"]
    exit_order = trader.orders.tracked["O3"]
    assert exit_order.state is S.WORKING and trader.orders_in_flight()
    fill(trader, "O3", exit_order.intent.quantity, "210", fill_id="F2")
    assert exit_order.state is S.SETTLED and trader.holding is None and not trader.orders_in_flight()


def test_an_unconfirmed_entry_is_given_up_after_its_patience(make) -> None:
    trader, gateway, _ = make()
    gateway.ambiguous_next = True  # the order reached Kite; its reply was lost
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    (tracked,) = trader.orders.working
    assert tracked.state is S.UNCONFIRMED and trader.orders_in_flight()
    trader.orders.cancel_overdue(T0 + ORDER_PATIENCE + timedelta(seconds=1))
    assert tracked.state is S.GIVEN_UP and not trader.orders_in_flight()
    assert trader.strategy.pending_entry is None  # the strategy is free to enter again


def test_the_manual_commands_cancel_the_stop_and_move_it(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway)
    stop = trader.holding.stop_order
    assert stop is not None and stop.trigger is not None
    higher = stop.trigger + Decimal("5")
    trader.move_stop(higher)
    assert gateway.modified[-1] == (stop.order_id, higher) and stop.trigger == higher
    assert trader.cancel_order("NOPE") is False  # not one of ours
    assert trader.cancel_order(stop.order_id) is True
    assert stop.state is S.CANCELLING and gateway.cancelled == [stop.order_id]
    assert trader.cancel_order(stop.order_id) is False  # not working any more: not sent again
    assert gateway.cancelled == [stop.order_id]
