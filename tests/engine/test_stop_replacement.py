"""Adversarial checks of the protective stop's modifications and replacement (desktop/engine/protection.py,
`Orders.modify`/`Orders.cancel`): Kite's 25 modifications per order, a broker that refuses a cancel for a moment,
a cancelled stop whose fill comes after its replacement, and our own order-rate limit (never a stop's)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.broker.exchange_rules import MAX_MODIFICATIONS
from desktop.domain import OrderType, Tick
from desktop.engine.orders import OrderState
from desktop.engine.strategy.base import MoveStop
from desktop.engine.trader import SegmentTrader
from tests.engine.traders import T0, enter, fill


def option_tick(trader: SegmentTrader, price: str, seconds: float) -> None:
    h = trader.holding
    assert h is not None
    trader.on_ticks([Tick(h.token, Decimal(price), T0 + timedelta(seconds=seconds))])


def broker_check(trader: SegmentTrader, seconds: int) -> None:
    """An index tick with the periodic check of the broker's positions due (it runs every 30 real seconds)."""
    trader.outside.next_check = 0.0
    price = trader.index_price
    assert price is not None
    trader.on_ticks([Tick(trader.segment.spec.index_token, price, T0 + timedelta(seconds=seconds))])


def trail(trader: SegmentTrader, level: str) -> None:
    """The strategy's trail: its own stop raised to `level`, then its MoveStop (as `ExitRules.on_price` does)."""
    from dataclasses import replace

    exits = trader.strategy.exits
    exits.state = replace(exits.state, stop=Decimal(level))
    trader.act([MoveStop(Decimal(level))])


def stops_at_broker(gateway) -> list[tuple[str, Decimal | None, int]]:
    """The SL orders placed and never cancelled: (id, trigger, quantity as last resized)."""
    resized = dict(gateway.resized)
    return [
        (o.order_id, o.trigger_price, resized.get(o.order_id, o.quantity))
        for o in gateway.orders()
        if o.order_type is OrderType.SL and o.order_id not in gateway.cancelled
    ]


def test_a_trail_at_kites_modification_cap_replaces_the_stop_at_the_new_level(make) -> None:
    # A stop trailed all day reaches Kite's 25 modifications: the 26th trail must not leave it at its old level
    # (retried every 5 s for ever, refused each time): it is replaced at the new level.
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    stop = trader.holding.stop_order
    assert stop is not None
    stop.modifications = MAX_MODIFICATIONS
    option_tick(trader, "230", 1)
    trader.act([MoveStop(Decimal("214.00"))])
    option_tick(trader, "231", 10)  # any retry due
    assert gateway.modified == [], "a 26th modification was sent"
    assert stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)]
    assert trader.holding.stop_order is not None and trader.holding.stop_order.order_id == "O3"
    assert trader.protection.status() == ""


def test_a_stop_the_broker_says_is_at_the_cap_after_a_restart_is_replaced(make) -> None:
    # An adopted stop's count starts at 0 here; Kite's own refusal of the 26th says it is at the cap.
    from desktop.broker.errors import ModificationCapReached

    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    modify = gateway.modify

    def at_cap(order_id, **kw):
        if order_id == "O2":
            raise ModificationCapReached(
                f"Maximum allowed order modifications exceeded: Kite allows {MAX_MODIFICATIONS} per order."
            )
        return modify(order_id, **kw)

    gateway.modify = at_cap  # type: ignore[method-assign]
    option_tick(trader, "230", 1)
    trader.act([MoveStop(Decimal("214.00"))])
    option_tick(trader, "231", 10)
    assert stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)]


def test_a_stop_moved_by_hand_at_the_cap_is_replaced_and_one_above_the_price_sells_nothing(make) -> None:
    from desktop.broker.errors import BrokerError

    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    option_tick(trader, "230", 1)
    with pytest.raises(BrokerError, match="not below the last price"):
        trader.move_stop(Decimal("231.00"))
    assert stops_at_broker(gateway) == [("O2", Decimal("186.00"), 195)] and len(gateway.placed) == 2
    trader.move_stop(Decimal("214.00"))
    assert gateway.modified == [] and stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)]


def test_a_resize_whose_cancel_the_broker_refused_for_a_moment_is_tried_again(make) -> None:
    # Part sold outside; the stop at the cap cannot be resized, and Kite refuses its cancel for a moment ("being
    # processed"): the stop still sells 195 of the 65 held, 130 short when it triggers. It must be tried again.
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    gateway.net = 65
    gateway.refuse_cancel = True
    broker_check(trader, 1)
    broker_check(trader, 31)
    assert trader.holding is not None and trader.holding.quantity == 65
    gateway.refuse_cancel = False
    broker_check(trader, 61)
    broker_check(trader, 91)
    option_tick(trader, "201", 100)
    assert stops_at_broker(gateway) == [("O3", Decimal("186.00"), 65)], "a stop sells more than is held"


def test_the_old_stops_late_fill_after_its_replacement_leaves_no_stop_selling_more_than_held(make) -> None:
    # The old stop sold a lot before Kite took its cancel; that fill is read after the replacement rests. The
    # replacement must not sell more than is still held.
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    gateway.net = 130
    broker_check(trader, 1)
    broker_check(trader, 31)
    assert stops_at_broker(gateway) == [("O3", Decimal("186.00"), 130)]
    assert trader.orders.tracked["O2"].state is OrderState.CANCELLING
    fill(trader, "O2", 65, "186", fill_id="F2", at=T0 + timedelta(seconds=32))
    gateway.net = 65
    assert trader.holding is not None and trader.holding.quantity == 65
    broker_check(trader, 61)
    broker_check(trader, 91)
    option_tick(trader, "201", 100)
    held = trader.holding.quantity
    assert all(qty <= held for _, _, qty in stops_at_broker(gateway)), stops_at_broker(gateway)


def test_the_old_stops_full_late_fill_cancels_its_replacement(make) -> None:
    # The old stop sold everything though Kite took its cancel: the replacement would sell a position not held.
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    gateway.net = 130
    broker_check(trader, 1)
    broker_check(trader, 31)
    fill(trader, "O2", 130, "186", fill_id="F2", at=T0 + timedelta(seconds=32))
    assert trader.holding is None
    assert stops_at_broker(gateway) == [], "the replacement still rests with nothing held"


def test_our_order_rate_limit_full_of_cancels_never_refuses_a_stop(make) -> None:
    trader, gateway, _ = make(max_orders_per_minute=5)
    enter(trader, gateway, "200")
    for _ in range(10):
        trader.ctx.risk.record_order(T0)  # cancels and modifications of the minute
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    gateway.net = 130
    broker_check(trader, 1)
    broker_check(trader, 31)
    assert stops_at_broker(gateway) == [("O3", Decimal("186.00"), 130)]


def test_an_entry_that_part_fills_while_a_kill_cancels_it_is_held_protected_and_sold(make) -> None:
    from dataclasses import replace

    from desktop.domain import OptionRight, OrderStatus
    from desktop.engine.strategy.base import EnterPosition

    trader, gateway, _ = make()
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    trader.cancel_open_entries(then_exit="kill")
    assert trader.orders.tracked["O1"].state is OrderState.CANCELLING
    fill(trader, "O1", 65, "200")  # it sold 65 before the cancel reached the exchange
    trader.on_order(replace(gateway.orders()[0], status=OrderStatus.CANCELLED, filled_quantity=65))
    assert trader.realised == 0 and trader.orders.tracked["O1"].done
    sells = [(i.reason, i.order_type, i.quantity) for i in gateway.placed[1:]]
    assert sells[0] == ("protective_stop", OrderType.SL, 65), "the fill was not protected"
    assert sells[-1][0] == "kill" and sells[-1][2] == 65, "the kill did not sell what filled"


def test_an_entry_whose_cancel_is_refused_because_it_filled_is_held_and_sold(make) -> None:
    from dataclasses import replace

    from desktop.domain import OptionRight, OrderStatus
    from desktop.engine.strategy.base import EnterPosition

    trader, gateway, _ = make()
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    gateway.refuse_cancel = True
    trader.cancel_open_entries(then_exit="kill")
    assert trader.orders.tracked["O1"].state is OrderState.WORKING
    gateway.refuse_cancel = False
    trader.on_order(replace(gateway.orders()[0], status=OrderStatus.COMPLETE, filled_quantity=195))
    fill(trader, "O1", 195, "200")
    assert [(i.reason, i.quantity) for i in gateway.placed[1:]][-1] == ("kill", 195)


def test_a_replacement_stop_the_broker_refuses_shows_unprotected_and_is_placed_again_at_the_new_level(
    make,
) -> None:
    from desktop.broker.errors import InputRejected

    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    place = gateway.place
    refusals = [InputRejected("RMS: margin exceeds")]

    def refusing(intent):
        if refusals:
            raise refusals.pop()
        return place(intent)

    gateway.place = refusing  # type: ignore[method-assign]
    option_tick(trader, "230", 1)
    trail(trader, "214.00")
    assert stops_at_broker(gateway) == [] and trader.protection.status().startswith("UNPROTECTED")
    option_tick(trader, "230", 4)  # the retry's pause (2 s) is over
    assert stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)] and trader.protection.status() == ""


def test_a_replacements_cancel_whose_reply_was_lost_is_followed_by_a_stop_when_kite_says_it_is_cancelled(
    make,
) -> None:
    from dataclasses import replace

    from desktop.broker.errors import AmbiguousOrderFailure
    from desktop.domain import OrderStatus

    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    cancel = gateway.cancel

    def lost_reply(order_id):
        cancel(order_id)  # Kite cancelled it; its answer never came back
        raise AmbiguousOrderFailure("Kite did not answer the cancel.", "ReadTimeout")

    gateway.cancel = lost_reply  # type: ignore[method-assign]
    option_tick(trader, "230", 1)
    trail(trader, "214.00")
    assert stops_at_broker(gateway) == []  # naked for a moment: nothing placed while the old one may rest
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED))
    assert stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)]


def test_a_part_filled_stop_is_resized_to_its_fills_plus_what_is_held(make) -> None:
    # Kite's modify takes the order's new total quantity: a stop that sold 65 and must sell the 65 held is 130.
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    fill(trader, "O2", 65, "186", fill_id="F2", at=T0 + timedelta(seconds=1))
    assert trader.holding.quantity == 130
    gateway.net = 65
    broker_check(trader, 2)
    broker_check(trader, 32)
    assert trader.holding.quantity == 65 and gateway.resized == [("O2", 130)]


def test_a_trail_at_the_cap_whose_cancel_kite_refused_for_a_moment_is_tried_again(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.holding.stop_order.modifications = MAX_MODIFICATIONS
    gateway.refuse_cancel = True  # "being processed": the old stop still rests at 186
    option_tick(trader, "230", 1)
    trail(trader, "214.00")
    assert stops_at_broker(gateway) == [("O2", Decimal("186.00"), 195)]
    gateway.refuse_cancel = False
    trader.strategy.on_option_price = lambda price, t: []  # type: ignore[method-assign]  # no new trail
    option_tick(trader, "230", 7)  # the trail's retry (5 s)
    assert stops_at_broker(gateway) == [("O3", Decimal("214.00"), 195)]
