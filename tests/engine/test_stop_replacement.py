"""Adversarial checks of the protective stop's modifications and replacement (desktop/engine/protection.py,
`Orders.modify`/`Orders.cancel`): Kite's 25 modifications per order, a broker that refuses a cancel for a moment,
a cancelled stop whose fill comes after its replacement, and our own order-rate limit (never a stop's)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.broker.exchange_rules import MAX_MODIFICATIONS
from desktop.domain import OrderType, Tick
from desktop.engine.strategy.base import MoveStop
from desktop.engine.trader import SegmentTrader
from tests.engine.traders import T0, enter


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
    from desktop.broker.errors import InputRejected

    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    modify = gateway.modify

    def at_cap(order_id, **kw):
        if order_id == "O2":
            raise InputRejected(
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
