"""The protective stop in the form Kite accepts for options (desktop/engine/protection.py): an SL order whose
limit is inside the exchange's gap cap and price protection, trailed with limit and trigger, never placed at
or above the price, chased when it triggers and does not fill."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.broker import exchange_rules as rules
from desktop.broker.errors import InputRejected
from desktop.domain import OptionRight, OrderStatus, OrderType, Side, Tick
from desktop.engine.protection import chase_limit, exit_limit, stop_limit
from desktop.engine.snapshots import AgentState
from desktop.engine.strategy.base import EnterPosition, ExitPosition, MoveStop
from desktop.engine.trader import SegmentTrader
from desktop.store.errors import StoreWriteError
from tests.engine.traders import T0, enter, fill


def option_tick(trader: SegmentTrader, price: str, seconds: float) -> None:
    h = trader.holding
    assert h is not None
    trader.on_ticks([Tick(h.token, Decimal(price), T0 + timedelta(seconds=seconds))])


@pytest.mark.parametrize("exchange", ["NFO", "BFO"])
@pytest.mark.parametrize(
    "trigger", ["0.10", "3.00", "40.00", "50.00", "50.05", "186.00", "999.95", "2400.00"]
)
def test_a_stop_limit_is_below_its_trigger_on_the_tick_within_the_gap_cap_and_price_protection(
    exchange, trigger
):
    t = Decimal(trigger)
    limit = stop_limit(exchange, t)
    assert Decimal("0.05") <= limit < t and rules.on_tick(limit)
    assert rules.sl_gap_refusal(t, limit) is None
    assert rules.lpp_refusal(exchange, limit, t) is None  # checked against the price when it triggers
    assert rules.zerodha_sell_limit_refusal("SELL", limit, t) is None


@pytest.mark.parametrize("ltp", ["0.05", "4.00", "49.95", "120.00", "800.00"])
def test_chase_and_exit_limits_stay_inside_price_protection(ltp) -> None:
    p = Decimal(ltp)
    for exchange in ("NFO", "BFO"):
        prices = [exit_limit(exchange, p)] + [chase_limit(exchange, p, step) for step in (1, 2, 3)]
        for price in prices:
            assert rules.on_tick(price) and price <= max(p, Decimal("0.05"))
            assert rules.lpp_refusal(exchange, price, p) is None
            assert rules.zerodha_sell_limit_refusal("SELL", price, p) is None
        assert prices[1] >= prices[2] >= prices[3], "each chase goes further toward the market"


def test_the_protective_stop_is_an_sl_order_with_its_limit_below_the_trigger(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    stop = gateway.placed[-1]
    assert (stop.side, stop.order_type, stop.quantity) == (Side.SELL, OrderType.SL, 195)
    assert stop.trigger_price == Decimal("186.00") and stop.price == Decimal(
        "167.40"
    )  # 10 % buffer, cap 37.20


def test_every_stop_move_sends_the_limit_with_the_trigger(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    option_tick(trader, "230", 1)
    trader.act([MoveStop(Decimal("214.00"))])
    assert gateway.modified == [("O2", Decimal("214.00"))] and gateway.limits == [Decimal("192.60")]
    assert rules.sl_gap_refusal(Decimal("214.00"), gateway.limits[0]) is None


def test_a_stop_level_at_or_above_the_last_price_is_not_placed_the_position_is_sold_at_once(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.act([ExitPosition("signal_exit")])  # the stop O2 cancelled, the sale O3 sent
    option_tick(trader, "180", 2)  # below the stop (186) while the sale works
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.REJECTED, status_message="RMS: margin"))
    # Protected again? Kite refuses a sell SL at or above the LTP: no stop, the position is sold at once with a
    # marketable limit inside price protection.
    sell = gateway.placed[-1]
    assert [i.order_type for i in gateway.placed] == [OrderType.MARKET, OrderType.SL, OrderType.MARKET,
                                                      OrderType.LIMIT]  # fmt: skip
    assert (sell.side, sell.quantity, sell.reason, sell.price) == (
        Side.SELL,
        195,
        "stop_loss",
        Decimal("171.00"),
    )
    kinds = [
        n.kind for n in store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    ]
    assert "stop_exit_now" in kinds


def test_a_stop_cancelled_by_price_protection_as_it_triggered_is_followed_by_a_protected_market_sale(make):
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    # The premium gapped far below the limit: the exchange cancelled the triggered stop before this segment saw
    # a tick of the new price, so its own last price (200) is no guide: Kite's market protection prices the sale.
    why = "Cancelled by the exchange: the triggered stop-loss order's limit is outside the limit price protection"
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message=why))
    sell = gateway.placed[-1]
    assert (sell.order_type, sell.side, sell.quantity, sell.reason) == (
        OrderType.MARKET,
        Side.SELL,
        195,
        "stop_loss",
    )
    assert gateway.cancelled == []


def test_a_triggered_stop_that_does_not_fill_is_chased_then_sold_with_a_marketable_limit(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "185", 1)  # through the stop (186): the strategy leaves the broker's stop to fill
    assert [i.reason for i in gateway.placed] == ["entry", "protective_stop"] and gateway.cancelled == []
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.OPEN))  # triggered at the broker
    option_tick(trader, "160", 2)  # gapped through its limit 167.40: it rests unfilled
    assert gateway.modified == [], "not chased before it had a few seconds"
    assert trader.snapshot(AgentState.RUNNING).protection == "stop triggered, chasing"
    for second in (4, 6, 8):
        option_tick(trader, "160", second)
    assert len(gateway.modified) == 3
    limits = gateway.limits
    assert limits == sorted(limits, reverse=True) and limits[-1] < Decimal("160")
    for (_, trigger), limit in zip(gateway.modified, limits, strict=True):
        assert trigger is not None and limit is not None and rules.sl_gap_refusal(trigger, limit) is None
        assert rules.lpp_refusal("NFO", limit, Decimal("160")) is None
    option_tick(trader, "160", 10)  # still nothing: cancelled, sold with a marketable limit
    assert gateway.cancelled == ["O2"]
    sell = gateway.placed[-1]
    assert (sell.order_type, sell.quantity, sell.price) == (OrderType.LIMIT, 195, Decimal("152.00"))
    kinds = [
        n.kind for n in store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    ]
    assert kinds.count("stop_chased") == 3 and "stop_triggered" in kinds and "stop_chase_exit" in kinds


def test_a_triggered_stop_that_fills_is_never_chased(make) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    option_tick(trader, "185", 1)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.OPEN))
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.COMPLETE, filled_quantity=195))
    fill(trader, "O2", 195, "185", "F2")
    trader.on_ticks([Tick(trader.segment.spec.index_token, Decimal("25000"), T0 + timedelta(seconds=10))])
    assert trader.holding is None and gateway.modified == [] and gateway.cancelled == []
    assert trader.realised == Decimal("-2925.00")


def test_a_rejected_stop_is_placed_again_with_backoff_and_the_position_shows_unprotected_meanwhile(
    make,
) -> None:
    # Issue 16, defect 2: after "REJECTED with 0 of 195 sold" the position had no stop for 25 market minutes
    # while the panel showed its stop level.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.REJECTED, status_message="RMS: margin"))
    snap = trader.snapshot(AgentState.RUNNING)
    assert snap.protection.startswith("UNPROTECTED: the stop-loss order O2 was rejected: RMS: margin")
    assert snap.note.startswith("UNPROTECTED")
    assert len(gateway.placed) == 2
    option_tick(trader, "199", 2)
    assert len(gateway.placed) == 2, "not at once: a refusal is not answered with a storm"
    option_tick(trader, "199", 3)  # 2 s later: placed again
    assert [i.order_type for i in gateway.placed] == [OrderType.MARKET, OrderType.SL, OrderType.SL]
    assert trader.snapshot(AgentState.RUNNING).protection == ""
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.REJECTED, status_message="RMS: margin"))
    option_tick(trader, "199", 6)
    assert len(gateway.placed) == 3, "the pause doubles: 4 s"
    option_tick(trader, "199", 7)
    assert len(gateway.placed) == 4 and gateway.placed[-1].trigger_price == Decimal("186.00")
    kinds = [
        n.kind for n in store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    ]
    assert kinds.count("unprotected") == 2


def test_a_part_fill_that_is_not_whole_lots_is_protected_and_sold_in_whole_lots_without_a_retry_storm(
    make,
) -> None:
    # Issue 16, defect 9: 45 units (lot 65) made the exit and the stop retry about once a second for 50 minutes.
    trader, gateway, _ = make()
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    fill(trader, "O1", 110, "200")  # 1 lot and 45 units of 195
    trader.on_order(replace(gateway.orders()[0], status=OrderStatus.CANCELLED, filled_quantity=110))
    assert trader.holding is not None and trader.holding.quantity == 110
    stop = gateway.placed[-1]
    assert (stop.order_type, stop.quantity) == (OrderType.SL, 65)
    assert trader.snapshot(AgentState.RUNNING).protection.startswith(
        "UNPROTECTED: 45 of 110 held is not a whole lot"
    )
    for second in range(1, 120):
        option_tick(trader, "199", second)
    assert len(gateway.placed) == 2, "no storm of orders the exchange refuses"
    trader.act([ExitPosition("signal_exit")])
    sell = gateway.placed[-1]
    assert (sell.reason, sell.quantity) == ("signal_exit", 65)
    fill(trader, "O3", 65, "199", "F2")
    assert trader.holding is not None and trader.holding.quantity == 45
    for second in range(120, 240):
        option_tick(trader, "199", second)
    trader.act([ExitPosition("signal_exit")])
    assert len(gateway.placed) == 3, "45 units cannot be sold through the exchange: nothing sent, no storm"
    assert "less than one lot of 65" in trader.snapshot(AgentState.RUNNING).protection


def test_a_stop_kite_refuses_because_the_premium_already_fell_through_it_sells_at_once(make) -> None:
    trader, gateway, _ = make()
    place = gateway.place

    def refusing_stops(intent):
        if intent.order_type is OrderType.SL:
            place(intent)  # recorded, then refused as Kite does
            raise InputRejected(
                "Trigger price 186.00 for a stop-loss sell order must be lower than the last traded price 185.50."
            )
        return place(intent)

    gateway.place = refusing_stops  # type: ignore[method-assign]
    enter(trader, gateway, "200")  # filled at 200; the premium fell below 186 before the stop reached Kite
    sell = gateway.placed[-1]
    assert [i.order_type for i in gateway.placed] == [OrderType.MARKET, OrderType.SL, OrderType.MARKET]
    assert (sell.side, sell.quantity, sell.reason) == (Side.SELL, 195, "stop_loss")


def test_a_chased_stop_cancelled_to_sell_while_the_journal_fails_is_sold_at_once_and_journalled_later(make):
    # Chaos seed 41: a triggered stop was chased, then cancelled to sell at a limit while the disk was full; the
    # sale's intent could not be journalled, so nothing was sent, and nothing ever asked again (the strategy's exit
    # stayed "pending", the protection had no retry): 65 held with no stop for 37 market minutes, until a restart.
    # Seed 51 then showed that waiting for the journal is itself the gap: the sale is sent at once, its intent held
    # and journalled once the store writes again (tests/engine/test_journal_outage.py).
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "185", 1)  # through the stop (186): left to the broker's stop
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.OPEN))  # triggered at the broker
    for second in (2, 4, 6, 8):
        option_tick(trader, "160", second)  # gapped through its limit: chased three times
    assert len(gateway.modified) == 3

    def disk_full(*a: object, **k: object) -> None:
        raise StoreWriteError("database or disk is full")

    store.intents.record_all = disk_full  # type: ignore[method-assign]
    option_tick(trader, "160", 10)  # still unfilled: cancelled and sold at once, its intent held
    assert gateway.cancelled == ["O2"]
    assert [i.reason for i in gateway.placed] == ["entry", "protective_stop", "stop_loss"]
    assert gateway.unjournalled == gateway.placed[-1:]
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED))
    for second in range(11, 20):
        option_tick(trader, "160", second)
    del store.intents.record_all  # the disk writes again
    for second in range(20, 29):
        option_tick(trader, "160", second)
    sales = [i for i in gateway.placed if i.side is Side.SELL and i.reason != "protective_stop"]
    assert len(sales) == 1 and sales[0].quantity == 195, "sold once"
    key = trader.ctx.key
    saved = {
        i.intent_id for i in store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    assert sales[0].intent_id in saved and trader.orders.held == [], "journalled once the disk writes again"
    assert trader.orders.open_exit() is not None, "the sale works at the broker: the position is covered"


def test_a_chased_stop_kite_will_not_cancel_is_asked_again_with_a_growing_pause(make) -> None:
    # A chase run's expired login refused every cancel: "not cancelled" was logged (and the chase's end journalled)
    # every 2 market seconds for as long as it lasted. Asked again at 2, 4, 8, 16, then every 30 s; said the same.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "185", 1)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.OPEN))  # triggered at the broker
    for second in (2, 4, 6, 8):
        option_tick(trader, "160", second)
    assert len(gateway.modified) == 3
    gateway.refuse_cancel = True
    for second in range(10, 131):  # two market minutes, a tick a second
        option_tick(trader, "160", second)
    log = trader.log.path.read_text()
    tries = log.count("not cancelled")
    assert 5 <= tries <= 8, tries  # at 10, 12, 16, 24, 40, 70, 100, 130 s (not 61 times)
    kinds = [
        n.kind for n in store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    ]
    assert kinds.count("stop_chase_exit") == 1, "the chase's end is journalled once, not on every try"
    gateway.refuse_cancel = False
    option_tick(trader, "160", 160)  # Kite takes the cancel: the position is sold
    assert (
        gateway.cancelled == ["O2"]
        and gateway.placed[-1].quantity == 195
        and gateway.placed[-1].side is Side.SELL
    )
