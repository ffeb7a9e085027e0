"""Manual actions on a segment (desktop/engine/manual.py), at unit level: the real trader, strategy, risk and
store with a recording gateway. Exit now, cancel a working order, move the stop; each journalled with who asked."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.broker.errors import InputRejected
from desktop.domain import Mode, OptionRight, OrderRole, OrderType, Side, Tick
from desktop.engine import manual
from desktop.engine.manual import ManualRefused, parse_stop_level
from desktop.engine.protection import stop_limit
from desktop.engine.strategy.base import EnterPosition
from desktop.engine.trader import SegmentTrader
from tests.engine.traders import T0, enter, fill


def option_tick(trader: SegmentTrader, price: str, seconds: int = 1) -> None:
    h = trader.holding
    assert h is not None
    trader.on_ticks([Tick(h.token, Decimal(price), T0 + timedelta(seconds=seconds))])


def journal(store, trader: SegmentTrader, kind: str) -> list[dict]:
    entries = store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    return [e.payload for e in entries if e.kind == kind]


def test_manual_exit_cancels_the_stop_then_sells_at_market_and_is_journalled(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    symbol = trader.holding.tradingsymbol
    outcome = manual.exit_now(trader, symbol, by="window")
    assert gateway.cancelled == ["O2"], "the resting stop is cancelled first"
    sell = gateway.placed[-1]
    assert (sell.side, sell.order_type, sell.quantity, sell.role, sell.reason) == (
        Side.SELL, OrderType.MARKET, 195, OrderRole.EXIT, "manual_exit"
    )  # fmt: skip
    assert "SELL 195" in outcome.text
    intents = store.intents.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    assert sell.intent_id in {i.intent_id for i in intents}, "journalled like the strategy's own orders"
    [note] = journal(store, trader, "manual_exit")
    assert note["by"] == "window" and note["symbol"] == symbol and note["qty"] == 195 and note["sent"] is True
    fill(trader, "O3", 195, "210", "F2")
    assert trader.holding is None and trader.realised == Decimal("1950.00")


def test_a_manual_exit_the_broker_refuses_leaves_the_position_protected(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    place = gateway.place

    def refuse_market_sells(intent):
        if intent.side is Side.SELL and intent.order_type is OrderType.MARKET:
            raise InputRejected("Markets are closed right now")
        return place(intent)

    gateway.place = refuse_market_sells  # type: ignore[method-assign]
    with pytest.raises(ManualRefused, match="not sent: Markets are closed"):
        manual.exit_now(trader, trader.holding.tradingsymbol, by="window")
    h = trader.holding
    assert h is not None and h.quantity == 195
    assert h.stop_order is not None and h.stop_order.resting, "never left naked"
    assert gateway.placed[-1].role is OrderRole.STOP and gateway.placed[-1].trigger_price == Decimal("186.00")
    assert journal(store, trader, "manual_exit")[0]["sent"] is False


def test_a_manual_exit_while_the_stop_cannot_be_cancelled_sends_nothing_and_blames_no_old_refusal(
    make,
) -> None:
    trader, gateway, _ = make()
    enter(trader, gateway, "200")
    trader.last_refusal = "Insufficient funds"  # an entry refused earlier today
    gateway.refuse_cancel = True  # the stop is triggering at the broker: selling too could sell short
    with pytest.raises(ManualRefused) as refused:
        manual.exit_now(trader, trader.holding.tradingsymbol, by="window")
    assert "Insufficient funds" not in str(refused.value) and "stop-loss order" in str(refused.value)
    assert [i.role for i in gateway.placed] == [OrderRole.ENTRY, OrderRole.STOP]


def test_manual_exit_of_what_is_not_held_changes_nothing(make) -> None:
    trader, gateway, _ = make()
    with pytest.raises(ManualRefused, match="is not held"):
        manual.exit_now(trader, "NIFTY2611324850CE", by="window")
    assert gateway.placed == []


def test_manual_stop_move_modifies_the_broker_stop_with_its_limit_and_the_strategy_keeps_it(make) -> None:
    trader, gateway, store = make(trailing_stop=10)
    enter(trader, gateway, "200")  # stop max(186, trail 180) = 186
    option_tick(trader, "200", 1)
    outcome = manual.move_stop(trader, trader.holding.tradingsymbol, "195", by="window")
    assert gateway.modified == [("O2", Decimal("195.00"))]
    assert gateway.limits == [stop_limit("NFO", Decimal("195.00"))]
    assert trader.strategy.position.stop == Decimal("195.00")
    assert "moved to 195.00" in outcome.text
    [note] = journal(store, trader, "manual_stop_move")
    assert (note["by"], note["from"], note["to"], note["done"]) == ("window", "186.00", "195.00", True)
    # The trail (from the high) stays below the manual level: nothing moves it back down.
    option_tick(trader, "205", 2)  # trail 184.50
    option_tick(trader, "215", 3)  # trail 193.50
    assert gateway.modified == [("O2", Decimal("195.00"))]
    assert trader.strategy.position.stop == Decimal("195.00")
    # Once the trail passes the manual level by its step (4.00), it raises it from there.
    option_tick(trader, "225", 4)  # trail 202.50
    assert gateway.modified[-1] == ("O2", Decimal("202.50"))


def test_a_stop_lowered_below_the_trail_pauses_the_trailing_and_says_so(make) -> None:
    trader, gateway, store = make(trailing_stop=10)
    enter(trader, gateway, "200")
    option_tick(trader, "220", 1)  # trail 198.00: moved (step 4.00)
    assert gateway.modified == [("O2", Decimal("198.00"))]
    outcome = manual.move_stop(trader, trader.holding.tradingsymbol, "190", by="window")
    assert "trailing stop paused" in outcome.text
    option_tick(trader, "230", 2)  # would trail to 207.00
    assert gateway.modified == [("O2", Decimal("198.00")), ("O2", Decimal("190.00"))]
    assert trader.strategy.position.stop == Decimal("190.00")
    option_tick(trader, "191", 3)  # above the manual stop: no exit
    assert [i.role for i in gateway.placed] == [OrderRole.ENTRY, OrderRole.STOP]
    assert "paused" in journal(store, trader, "manual_stop_move")[0]["note"]


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("200", "below the last price 200"),
        ("205.5", "below the last price"),
        ("187.03", "0.05 tick"),
        ("-5", "above ₹0"),
        ("abc", "price in rupees"),
    ],
)
def test_a_bad_stop_level_is_refused_in_words_and_changes_nothing(make, typed, why) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    with pytest.raises(ManualRefused, match=why):
        manual.move_stop(trader, trader.holding.tradingsymbol, typed, by="window")
    assert gateway.modified == []
    assert trader.strategy.position.stop == Decimal("186.00")


def test_a_stop_move_the_broker_refuses_keeps_the_old_stop_everywhere(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    gateway.refuse_modify = True
    with pytest.raises(ManualRefused, match="stop not moved \\(still 186.00\\)"):
        manual.move_stop(trader, trader.holding.tradingsymbol, "190", by="window")
    stop = trader.holding.stop_order
    assert stop.trigger == Decimal("186.00") and trader.strategy.position.stop == Decimal("186.00")
    assert journal(store, trader, "manual_stop_move")[0]["done"] is False


def test_a_stop_move_of_an_unprotected_position_places_its_stop_at_that_level(make) -> None:
    trader, gateway, store = make()
    place = gateway.place

    def refuse_stops(intent):
        if intent.role is OrderRole.STOP:
            raise InputRejected("RMS: stop-loss orders are blocked for this instrument now")
        return place(intent)

    gateway.place = refuse_stops  # type: ignore[method-assign]
    enter(trader, gateway, "200")
    assert trader.holding.stop_order is None and "UNPROTECTED" in trader.protection.status()
    gateway.place = place  # type: ignore[method-assign]
    manual.move_stop(trader, trader.holding.tradingsymbol, "190", by="window")
    stop = gateway.placed[-1]
    assert (stop.role, stop.order_type, stop.trigger_price) == (
        OrderRole.STOP,
        OrderType.SL,
        Decimal("190.00"),
    )
    assert trader.holding.stop_order.resting and trader.protection.status() == ""
    assert trader.strategy.position.stop == Decimal("190.00")


def test_parse_stop_level_takes_a_trader_typed_price() -> None:
    assert parse_stop_level("₹1,234.50", Decimal("1300")) == Decimal("1234.50")
    assert parse_stop_level(" 95 ", None) == Decimal("95.00")


def test_manual_cancel_of_a_working_entry_asks_the_broker_and_frees_the_strategy(make) -> None:
    trader, gateway, store = make()
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    outcome = manual.cancel_order(trader, "O1", by="window")
    assert gateway.cancelled == ["O1"] and "O1" in outcome.text
    [note] = journal(store, trader, "manual_cancel")
    assert (note["by"], note["order_id"], note["role"], note["done"]) == ("window", "O1", "entry", True)
    order = gateway._orders["O1"]
    from dataclasses import replace

    from desktop.domain import OrderStatus

    trader.on_order(replace(order, status=OrderStatus.CANCELLED))
    assert trader.flat() and trader.strategy.pending_entry is None


def test_the_protective_stop_cannot_be_cancelled_by_hand(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    with pytest.raises(ManualRefused, match="stop-loss order protecting the position"):
        manual.cancel_order(trader, "O2", by="window")
    assert gateway.cancelled == [] and trader.holding.stop_order.resting
    assert journal(store, trader, "manual_cancel")[0]["done"] is False


def test_cancelling_an_order_that_ended_says_so(make) -> None:
    trader, gateway, _ = make(Mode.LIVE)
    enter(trader, gateway, "200")  # the entry O1 filled
    with pytest.raises(ManualRefused, match="not working any more"):
        manual.cancel_order(trader, "O1", by="window")
    with pytest.raises(ManualRefused, match="not one of this session"):
        manual.cancel_order(trader, "O99", by="window")
    assert gateway.cancelled == []
