"""Orders, trades, positions and margins on the simulator, through the official client."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from kiteconnect import exceptions as kex

from tests.simkit import advance, login, start_sim


@pytest.fixture
def sim():
    s = start_sim()
    yield s
    s.stop()


@pytest.fixture
def kite(sim):
    return login(sim, "UK9394")


def atm_option(kite, right: str = "CE") -> dict:
    spot = kite.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]
    rows = [r for r in kite.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == right]
    nearest = min(r["expiry"] for r in rows)
    return min((r for r in rows if r["expiry"] == nearest), key=lambda r: abs(r["strike"] - spot))


def resting_buy_price(kite, inst: dict) -> float:
    """A buy limit well below the market that still lies inside limit price protection (±40 % / ±₹20)."""
    key = f"NFO:{inst['tradingsymbol']}"
    ltp = Decimal(str(kite.ltp(key)[key]["last_price"]))
    below = ltp * Decimal("0.7") if ltp > 50 else max(ltp - 15, Decimal("0.05"))
    return float((below / Decimal("0.05")).quantize(Decimal(1)) * Decimal("0.05"))


def place(kite, inst: dict, side: str = "BUY", lots: int = 1, **kw) -> str:
    params = dict(
        variety="regular",
        exchange="NFO",
        tradingsymbol=inst["tradingsymbol"],
        transaction_type=side,
        quantity=inst["lot_size"] * lots,
        product="MIS",
        order_type="MARKET",
        market_protection=-1,
        tag="KDtest1",
    )
    params.update(kw)
    return kite.place_order(**params)


def test_market_order_fills_and_walks_kite_statuses(kite):
    inst = atm_option(kite)
    order_id = place(kite, inst)
    history = kite.order_history(order_id)
    statuses = [h["status"] for h in history]
    assert statuses[0] == "PUT ORDER REQ RECEIVED"
    assert statuses[-1] == "COMPLETE"
    assert "OPEN PENDING" in statuses
    final = history[-1]
    assert final["filled_quantity"] == inst["lot_size"] and final["tag"] == "KDtest1"
    trades = kite.order_trades(order_id)
    assert sum(t["quantity"] for t in trades) == inst["lot_size"]
    ask = kite.quote(f"NFO:{inst['tradingsymbol']}")[f"NFO:{inst['tradingsymbol']}"]["depth"]["sell"][0][
        "price"
    ]
    assert trades[0]["average_price"] == pytest.approx(ask)


def test_market_order_without_market_protection_is_rejected_like_kite(kite):
    inst = atm_option(kite)
    with pytest.raises(kex.InputException, match="market protection") as err:
        place(kite, inst, market_protection=None)
    assert err.value.code == 400
    with pytest.raises(kex.InputException, match="market protection"):
        place(kite, inst, market_protection=0)


def test_quantity_must_be_a_multiple_of_the_lot_size(kite):
    inst = atm_option(kite)
    with pytest.raises(kex.InputException, match="lot size 65"):
        place(kite, inst, quantity=inst["lot_size"] + 1)


def test_positions_and_pnl_follow_fills(sim, kite):
    inst = atm_option(kite)
    place(kite, inst, lots=2)
    net = kite.positions()["net"]
    (pos,) = [p for p in net if p["tradingsymbol"] == inst["tradingsymbol"]]
    assert pos["quantity"] == 2 * inst["lot_size"]
    assert pos["buy_quantity"] == 2 * inst["lot_size"]
    bought = Decimal(str(pos["buy_value"]))
    advance(sim, 120)
    place(kite, inst, side="SELL", lots=2)
    (pos,) = [p for p in kite.positions()["net"] if p["tradingsymbol"] == inst["tradingsymbol"]]
    assert pos["quantity"] == 0
    sold = Decimal(str(pos["sell_value"]))
    assert Decimal(str(pos["pnl"])) == (sold - bought).quantize(Decimal("0.01"))
    assert pos["realised"] == pytest.approx(float(sold - bought))


def test_margins_go_down_with_premium_paid(kite):
    before = kite.margins("equity")["net"]
    inst = atm_option(kite)
    order_id = place(kite, inst)
    paid = kite.order_history(order_id)[-1]["average_price"] * inst["lot_size"]
    after = kite.margins("equity")["net"]
    assert after == pytest.approx(before - paid)
    assert kite.margins()["equity"]["utilised"]["option_premium"] == pytest.approx(paid)


def test_insufficient_funds_rejects_the_order_like_rms():
    sim = start_sim(funds=Decimal(1000))
    try:
        kite = login(sim, "UK9394")
        inst = atm_option(kite)
        order_id = place(kite, inst, lots=5)
        last = kite.order_history(order_id)[-1]
        assert last["status"] == "REJECTED"
        assert "Margin" in last["status_message"]
        assert kite.positions()["net"] == []
    finally:
        sim.stop()


def test_limit_order_rests_open_then_modify_and_cancel(kite):
    inst = atm_option(kite)
    low = resting_buy_price(kite, inst)
    order_id = place(kite, inst, order_type="LIMIT", price=low, market_protection=None)
    (order,) = [o for o in kite.orders() if o["order_id"] == order_id]
    assert order["status"] == "OPEN" and order["pending_quantity"] == inst["lot_size"]
    kite.modify_order(variety="regular", order_id=order_id, price=round(low + 0.05, 2))
    (order,) = [o for o in kite.orders() if o["order_id"] == order_id]
    assert order["price"] == round(low + 0.05, 2) and order["modified"] is True
    kite.cancel_order(variety="regular", order_id=order_id)
    (order,) = [o for o in kite.orders() if o["order_id"] == order_id]
    assert order["status"] == "CANCELLED" and order["cancelled_quantity"] == inst["lot_size"]
    with pytest.raises(kex.InputException):
        kite.cancel_order(variety="regular", order_id=order_id)


def test_stop_loss_sell_waits_in_trigger_pending_until_price_falls(sim, kite):
    inst = atm_option(kite)
    place(kite, inst)
    market = sim.state.market
    token = inst["instrument_token"]
    now = sim.state.clock.now()
    ltp = market.last_price(token, now)
    # Find a later minute where the premium is lower than now, and put the stop just above that level.
    for minutes in range(1, 300):
        later = now.replace(microsecond=0) + timedelta(minutes=minutes)
        if market.last_price(token, later) < ltp - Decimal("1"):
            break
    else:
        pytest.fail("the seeded premium never fell by 1 rupee in 5 hours: the market model looks broken")
    trigger = (ltp - Decimal("0.5")).quantize(Decimal("0.05"))
    limit = trigger - 10  # inside the exchange's trigger-to-limit cap (₹10, or 20 % above ₹50)
    # SL-M is refused for options: the stop is a stop-loss limit order (exchange_rules).
    sl_id = place(
        kite, inst, side="SELL", order_type="SL", trigger_price=float(trigger), price=float(limit),
        market_protection=None,
    )  # fmt: skip
    assert kite.order_history(sl_id)[-1]["status"] == "TRIGGER PENDING"
    advance(sim, minutes * 60)
    sim.step()
    last = kite.order_history(sl_id)[-1]
    assert last["status"] == "COMPLETE"
    assert float(limit) <= last["average_price"] <= float(trigger)


def test_order_of_another_account_is_not_found(sim, kite):
    other = login(sim, "UK1234")
    inst = atm_option(kite)
    order_id = place(kite, inst)
    with pytest.raises(kex.InputException, match="order_id"):
        other.order_history(order_id)
    with pytest.raises(kex.InputException):
        other.cancel_order(variety="regular", order_id=order_id)
    assert other.orders() == [] and other.trades() == [] and other.positions()["net"] == []
    assert len(kite.orders()) == 1


def test_index_is_not_tradable_and_unknown_symbol_is_input_error(kite):
    with pytest.raises(kex.InputException, match="index"):
        kite.place_order(
            variety="regular",
            exchange="NSE",
            tradingsymbol="NIFTY 50",
            transaction_type="BUY",
            quantity=65,
            product="MIS",
            order_type="MARKET",
            market_protection=-1,
        )
    with pytest.raises(kex.InputException, match="tradingsymbol"):
        kite.place_order(
            variety="regular",
            exchange="NFO",
            tradingsymbol="NIFTY99DEC1CE",
            transaction_type="BUY",
            quantity=65,
            product="MIS",
            order_type="MARKET",
            market_protection=-1,
        )


def test_refused_modification_leaves_the_order_untouched(kite):
    inst = atm_option(kite)
    low = resting_buy_price(kite, inst)
    order_id = place(kite, inst, order_type="LIMIT", price=low, market_protection=None)
    before = kite.order_history(order_id)
    with pytest.raises(kex.InputException, match="tick size"):
        kite.modify_order(variety="regular", order_id=order_id, quantity=3 * inst["lot_size"], price=0.07)
    with pytest.raises(kex.InputException, match="order_type"):
        kite.modify_order(variety="regular", order_id=order_id, quantity=2 * inst["lot_size"], order_type="X")
    assert kite.order_history(order_id) == before
    (now,) = [o for o in kite.orders() if o["order_id"] == order_id]
    assert (now["quantity"], now["price"], now["order_type"]) == (inst["lot_size"], low, "LIMIT")


def test_limit_order_made_a_stop_waits_in_trigger_pending(kite):
    inst = atm_option(kite)
    key = f"NFO:{inst['tradingsymbol']}"
    ltp = Decimal(str(kite.ltp(key)[key]["last_price"]))
    order_id = place(
        kite, inst, order_type="LIMIT", price=resting_buy_price(kite, inst), market_protection=None
    )
    trigger = ltp + 20  # a buy stop above the market: it does not trigger in the seconds the test lasts
    kite.modify_order(
        variety="regular", order_id=order_id, order_type="SL", trigger_price=float(trigger),
        price=float(trigger + 1),
    )  # fmt: skip
    last = kite.order_history(order_id)[-1]
    assert (last["status"], last["order_type"], last["trigger_price"]) == (
        "TRIGGER PENDING",
        "SL",
        float(trigger),
    )
    with pytest.raises(kex.InputException, match="Trigger price"):  # a buy stop's trigger above its price
        kite.modify_order(variety="regular", order_id=order_id, price=float(trigger - 1))
    assert kite.order_history(order_id)[-1]["price"] == float(trigger + 1)


def test_orders_after_the_close_are_refused_and_resting_ones_stay_unfilled(sim, kite):
    inst = atm_option(kite)
    resting = place(
        kite, inst, order_type="LIMIT", price=resting_buy_price(kite, inst), market_protection=None
    )
    advance(sim, 10 * 3600)  # past 15:30: the clock stops at the close
    sim.step()
    assert sim.describe()["market_open"] is False
    with pytest.raises(kex.InputException, match="Markets are closed") as err:
        place(kite, inst)
    assert err.value.code == 400
    assert [o["order_id"] for o in kite.orders()] == [resting]
    assert kite.order_history(resting)[-1]["status"] == "OPEN"


def test_an_order_reply_delay_holds_only_the_order_calls_reply_not_the_order_or_other_calls():
    # Benches model the network's round trip to Kite with it (bench/engine_bench.py --order-reply-delay).
    import threading
    import time

    sim = start_sim(order_reply_delay=1.0)
    try:
        kite, reader = login(sim, "UK9394"), login(sim, "UK9394")
        inst = atm_option(kite)
        began = time.monotonic()
        placed: list[str] = []
        placing = threading.Thread(target=lambda: placed.append(place(kite, inst)))
        placing.start()
        time.sleep(0.2)
        book = reader.orders()  # answered at once, the order in it already
        assert time.monotonic() - began < 1.0 and placed == []
        assert [o["tradingsymbol"] for o in book] == [inst["tradingsymbol"]]
        placing.join(5)
        assert time.monotonic() - began >= 1.0 and placed == [book[0]["order_id"]]
    finally:
        sim.stop()
