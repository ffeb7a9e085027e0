"""The simulator refuses and works option orders as Kite and the exchanges do, through the official client.

Each rule of desktop/broker/exchange_rules.py is met here over a real socket: what Kite refuses raises the
same exception class, what the exchange cancels ends CANCELLED with its reason.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from kiteconnect import exceptions as kex

from desktop.broker.exchange_rules import SL_M_REFUSED
from tests.simkit import fault, login, start_sim

TICK = Decimal("0.05")


@pytest.fixture
def sim():
    s = start_sim()
    yield s
    s.stop()


@pytest.fixture
def kite(sim):
    return login(sim, "UK9394")


def option(kite, name: str = "NIFTY", exchange: str = "NFO", right: str = "CE", offset: int = 0) -> dict:
    """The nearest-expiry option of `name` nearest the money, `offset` strikes away."""
    index = {"NIFTY": "NSE:NIFTY 50", "BANKNIFTY": "NSE:NIFTY BANK", "SENSEX": "BSE:SENSEX"}[name]
    spot = kite.ltp(index)[index]["last_price"]
    rows = [r for r in kite.instruments(exchange) if r["name"] == name and r["instrument_type"] == right]
    nearest = min(r["expiry"] for r in rows)
    chain = sorted((r for r in rows if r["expiry"] == nearest), key=lambda r: r["strike"])
    atm = min(range(len(chain)), key=lambda i: abs(chain[i]["strike"] - spot))
    return chain[atm + offset]


def ltp(kite, inst: dict) -> Decimal:
    key = f"{inst['exchange']}:{inst['tradingsymbol']}"
    return Decimal(str(kite.ltp(key)[key]["last_price"]))


def place(kite, inst: dict, side: str = "BUY", lots: int = 1, **kw) -> str:
    params = dict(
        variety="regular",
        exchange=inst["exchange"],
        tradingsymbol=inst["tradingsymbol"],
        transaction_type=side,
        quantity=inst["lot_size"] * lots,
        product="MIS",
        order_type="MARKET",
        market_protection=-1,
        tag="KDrules",
    )
    params.update(kw)
    return kite.place_order(**params)


def book_row(kite, order_id: str) -> dict:
    (row,) = [o for o in kite.orders() if o["order_id"] == order_id]
    return row


def ticks(value: Decimal) -> Decimal:
    return (value / TICK).quantize(Decimal(1)) * TICK


# ------------------------------------------------------------------------------------------ freeze
def test_banknifty_freeze_is_600_units_per_order(kite):
    inst = option(kite, "BANKNIFTY")
    assert inst["lot_size"] == 30
    with pytest.raises(kex.InputException, match="exceeds the freeze limit of 600"):
        place(kite, inst, lots=21)
    order_id = place(kite, inst, lots=20)
    assert book_row(kite, order_id)["status"] == "COMPLETE"


def test_nifty_freeze_is_1800_units(kite):
    inst = option(kite, "NIFTY")
    with pytest.raises(kex.InputException, match="Quantity 1820 exceeds the freeze limit of 1800"):
        place(kite, inst, lots=28)
    assert book_row(kite, place(kite, inst, lots=27))["status"] == "COMPLETE"


def test_freeze_quantity_can_be_overridden_by_configuration():
    sim = start_sim(freeze_overrides={"NIFTY": 650})
    try:
        kite = login(sim, "UK9394")
        inst = option(kite, "NIFTY")
        with pytest.raises(kex.InputException, match="freeze limit of 650"):
            place(kite, inst, lots=11)
        assert book_row(kite, place(kite, inst, lots=10))["status"] == "COMPLETE"
    finally:
        sim.stop()


# ------------------------------------------------------------------------------------------ helpers
@pytest.fixture
def still():
    """A simulator whose market barely moves (1 market second per 1000 s): prices stay as read."""
    s = start_sim(speed=0.001)
    yield s
    s.stop()


@pytest.fixture
def kite_still(still):
    return login(still, "UK9394")


def option_priced(kite, low: float, high: float, name: str = "NIFTY", exchange: str = "NFO") -> dict:
    """A nearest-expiry call of `name` whose last price is between `low` and `high` rupees."""
    rows = [r for r in kite.instruments(exchange) if r["name"] == name and r["instrument_type"] == "CE"]
    nearest = min(r["expiry"] for r in rows)
    chain = {f"{exchange}:{r['tradingsymbol']}": r for r in rows if r["expiry"] == nearest}
    prices = kite.ltp(list(chain))
    for key, row in chain.items():
        if low <= prices[key]["last_price"] <= high:
            return row
    raise AssertionError(f"no {name} call priced {low}–{high}: the market model changed")


def gap_cap(trigger: Decimal) -> Decimal:
    return Decimal(10) if trigger <= 50 else trigger * Decimal("0.2")


def floor_tick(value: Decimal) -> Decimal:
    return (value / TICK).to_integral_value(rounding="ROUND_FLOOR") * TICK


def ceil_tick(value: Decimal) -> Decimal:
    return (value / TICK).to_integral_value(rounding="ROUND_CEILING") * TICK


def sell_stop(kite, inst: dict, trigger: Decimal, limit: Decimal, lots: int = 1) -> str:
    return place(
        kite, inst, side="SELL", lots=lots, order_type="SL", trigger_price=float(trigger), price=float(limit),
        market_protection=None,
    )  # fmt: skip


def net_quantity(kite, inst: dict) -> int:
    return sum(p["quantity"] for p in kite.positions()["net"] if p["tradingsymbol"] == inst["tradingsymbol"])


def depth(kite, inst: dict) -> tuple[Decimal, Decimal]:
    key = f"{inst['exchange']}:{inst['tradingsymbol']}"
    book = kite.quote(key)[key]["depth"]
    return Decimal(str(book["buy"][0]["price"])), Decimal(str(book["sell"][0]["price"]))


# ------------------------------------------------------------------------------------------ SL-M
@pytest.mark.parametrize(("name", "exchange"), [("NIFTY", "NFO"), ("SENSEX", "BFO")])
def test_sl_m_is_refused_for_options_on_nfo_and_bfo(kite_still, name: str, exchange: str):
    inst = option(kite_still, name, exchange)
    trigger = ticks(ltp(kite_still, inst) * Decimal("0.9"))
    with pytest.raises(kex.InputException) as err:
        place(kite_still, inst, side="SELL", order_type="SL-M", trigger_price=float(trigger))
    assert str(err.value) == SL_M_REFUSED and err.value.code == 400
    assert kite_still.orders() == []


# ------------------------------------------------------------------------------------------ gap cap
@pytest.mark.parametrize(("low", "high"), [(60.0, 400.0), (15.0, 50.0)], ids=["above-50", "50-or-less"])
def test_sl_gap_above_the_cap_is_refused_on_placement(kite_still, low: float, high: float):
    inst = option_priced(kite_still, low, high)
    place(kite_still, inst)
    trigger = ltp(kite_still, inst) - 2
    widest = ceil_tick(trigger - gap_cap(trigger))
    with pytest.raises(kex.InputException, match="permissible range"):
        sell_stop(kite_still, inst, trigger, widest - TICK)
    assert [o["order_type"] for o in kite_still.orders()] == ["LIMIT"]  # only the entry
    stop = sell_stop(kite_still, inst, trigger, widest)
    assert book_row(kite_still, stop)["status"] == "TRIGGER PENDING"


def test_sl_gap_above_the_cap_is_refused_on_modification(kite_still):
    inst = option_priced(kite_still, 20.0, 50.0)  # trigger ≤ ₹50: the cap is ₹10
    place(kite_still, inst)
    price = ltp(kite_still, inst)
    stop = sell_stop(kite_still, inst, price - 8, price - 16)
    before = book_row(kite_still, stop)
    # A trailing stop that moves only its trigger widens the gap to 13: refused, the order untouched.
    with pytest.raises(kex.InputException, match="permissible range"):
        kite_still.modify_order(variety="regular", order_id=stop, trigger_price=float(price - 3))
    assert book_row(kite_still, stop) == before
    kite_still.modify_order(
        variety="regular", order_id=stop, trigger_price=float(price - 3), price=float(price - 11)
    )
    row = book_row(kite_still, stop)
    assert (row["trigger_price"], row["price"], row["status"]) == (
        float(price - 3),
        float(price - 11),
        "TRIGGER PENDING",
    )


# ------------------------------------------------------------------------------------------ trigger vs LTP
def test_sell_stop_at_or_above_the_ltp_is_refused_and_buy_stop_below_it(kite_still):
    inst = option_priced(kite_still, 60.0, 400.0)
    place(kite_still, inst)
    price = ltp(kite_still, inst)
    for trigger in (price, price + 1):
        with pytest.raises(kex.InputException, match="lower than the last traded price"):
            sell_stop(kite_still, inst, trigger, trigger - 1)
    for trigger in (price, price - 1):
        with pytest.raises(kex.InputException, match="higher than the last traded price"):
            place(
                kite_still, inst, order_type="SL", trigger_price=float(trigger), price=float(trigger + 1),
                market_protection=None,
            )  # fmt: skip
    assert len(kite_still.orders()) == 1  # nothing rested, nothing filled at once
    assert book_row(kite_still, sell_stop(kite_still, inst, price - TICK, price - 1))["status"] == (
        "TRIGGER PENDING"
    )


# ------------------------------------------------------------------------------------------ LPP
@pytest.mark.parametrize(
    ("name", "exchange", "low", "high", "band"),
    [
        ("NIFTY", "NFO", 60.0, 400.0, lambda p: (p * Decimal("0.6"), p * Decimal("1.4"))),
        ("NIFTY", "NFO", 25.0, 50.0, lambda p: (p - 20, p + 20)),
        ("SENSEX", "BFO", 60.0, 1000.0, lambda p: (p - max(p * Decimal("0.6"), Decimal(30)), None)),
    ],
    ids=["nse-40-percent", "nse-20-rupees", "bse-60-percent"],
)
def test_limit_outside_limit_price_protection_is_refused(kite_still, name, exchange, low, high, band):
    inst = option_priced(kite_still, low, high, name, exchange)
    price = ltp(kite_still, inst)
    lowest, highest = band(price)
    lowest = ceil_tick(max(lowest, TICK))
    with pytest.raises(kex.InputException, match="limit price protection"):
        place(kite_still, inst, order_type="LIMIT", price=float(lowest - TICK), market_protection=None)
    resting = place(kite_still, inst, order_type="LIMIT", price=float(lowest), market_protection=None)
    assert book_row(kite_still, resting)["status"] == "OPEN"
    if highest is not None:
        with pytest.raises(kex.InputException, match="limit price protection"):
            place(
                kite_still, inst, order_type="LIMIT", price=float(floor_tick(highest) + TICK),
                market_protection=None,
            )  # fmt: skip


def test_zerodha_refuses_an_option_limit_sell_more_than_half_below_an_ltp_of_100(kite_still):
    inst = option_priced(kite_still, 120.0, 1000.0, "SENSEX", "BFO")  # BSE's 60 % band would let it pass
    price = ltp(kite_still, inst)
    place(kite_still, inst)
    half = ceil_tick(price / 2)
    with pytest.raises(kex.InputException, match="more than 50% below"):
        place(
            kite_still, inst, side="SELL", order_type="LIMIT", price=float(half - 1), market_protection=None
        )
    assert net_quantity(kite_still, inst) == inst["lot_size"]


# ------------------------------------------------------------------------------------------ triggered SL
def pnl_matches_the_broker(kite, inst: dict) -> None:
    """The position is flat and its P&L is what its trades say, to the paisa."""
    (pos,) = [p for p in kite.positions()["net"] if p["tradingsymbol"] == inst["tradingsymbol"]]
    assert pos["quantity"] == 0
    trades = [t for t in kite.trades() if t["tradingsymbol"] == inst["tradingsymbol"]]
    signed = sum(
        Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
        for t in trades
    )
    assert Decimal(str(pos["pnl"])) == signed.quantize(Decimal("0.01"))


def test_a_premium_that_gaps_through_the_stop_leaves_it_open_unfilled_until_the_limit_is_chased(
    still, kite_still
):
    kite = kite_still
    inst = option_priced(kite, 100.0, 400.0)
    place(kite, inst)
    price = ltp(kite, inst)
    trigger, limit = price - 1, price - 4
    stop = sell_stop(kite, inst, trigger, limit)
    gap = fault(still, kind="gap_premium", tradingsymbol=inst["tradingsymbol"], percent=-25)
    assert Decimal(str(gap["after"])) < limit  # the premium jumped past the limit in one tick
    still.step()
    row = book_row(kite, stop)
    # Triggered: now a limit order at `limit`, inside LPP, that no bid reaches. Nothing sold.
    assert (row["status"], row["order_type"], row["filled_quantity"]) == ("OPEN", "SL", 0)
    assert row["pending_quantity"] == inst["lot_size"] and net_quantity(kite, inst) == inst["lot_size"]
    bid, _ = depth(kite, inst)
    # Chasing the bid with the limit alone would widen the gap past the cap: refused.
    with pytest.raises(kex.InputException, match="permissible range"):
        kite.modify_order(variety="regular", order_id=stop, price=float(bid))
    # Limit and trigger together, as Kite wants: filled at the bid.
    kite.modify_order(variety="regular", order_id=stop, price=float(bid), trigger_price=float(bid + 1))
    row = book_row(kite, stop)
    assert (row["status"], row["filled_quantity"]) == ("COMPLETE", inst["lot_size"])
    assert Decimal(str(row["average_price"])) >= bid
    pnl_matches_the_broker(kite, inst)


def test_a_triggered_stop_whose_limit_is_outside_lpp_is_cancelled_and_the_position_stays(still, kite_still):
    kite = kite_still
    inst = option_priced(kite, 100.0, 400.0)
    place(kite, inst)
    price = ltp(kite, inst)
    stop = sell_stop(kite, inst, price - 1, price - 4)
    fault(still, kind="gap_premium", tradingsymbol=inst["tradingsymbol"], percent=-50)
    row = book_row(kite, stop)  # the fault works resting orders at once: no step needed
    assert row["status"] == "CANCELLED"
    assert "limit price protection" in row["status_message"] and row["filled_quantity"] == 0
    assert row["cancelled_quantity"] == inst["lot_size"]
    assert net_quantity(kite, inst) == inst["lot_size"]  # unprotected: the client must exit another way
    bid, _ = depth(kite, inst)
    exit_id = place(kite, inst, side="SELL", order_type="LIMIT", price=float(bid), market_protection=None)
    assert book_row(kite, exit_id)["status"] == "COMPLETE"
    pnl_matches_the_broker(kite, inst)


# ------------------------------------------------------------------------------------------ MARKET
def test_market_order_becomes_a_limit_at_the_protected_price_and_is_listed_as_limit(kite_still):
    inst = option_priced(kite_still, 100.0, 400.0)
    price = ltp(kite_still, inst)
    order_id = place(kite_still, inst, market_protection=5)
    row = book_row(kite_still, order_id)
    assert (row["order_type"], row["status"], row["market_protection"]) == ("LIMIT", "COMPLETE", 5)
    assert Decimal(str(row["price"])) == floor_tick(price * Decimal("1.05"))
    _, ask = depth(kite_still, inst)
    assert Decimal(str(row["average_price"])) == ask  # filled at the touch, within the protection


def test_market_order_that_cannot_fill_at_once_rests_open_as_a_limit(still, kite_still):
    inst = option_priced(kite_still, 100.0, 400.0)
    price = ltp(kite_still, inst)
    fault(still, kind="fill_part_of_next_order", api_key="UK9394", quantity=inst["lot_size"])
    order_id = place(kite_still, inst, side="BUY", lots=3)
    row = book_row(kite_still, order_id)
    assert (row["status"], row["order_type"]) == ("OPEN", "LIMIT")
    assert (row["filled_quantity"], row["pending_quantity"]) == (inst["lot_size"], 2 * inst["lot_size"])
    assert Decimal(str(row["price"])) == floor_tick(price * Decimal("1.2"))  # automatic protection: 20 %
    assert net_quantity(kite_still, inst) == inst["lot_size"]
    kite_still.cancel_order(variety="regular", order_id=order_id)
    row = book_row(kite_still, order_id)
    assert (row["status"], row["cancelled_quantity"]) == ("CANCELLED", 2 * inst["lot_size"])


def test_market_order_in_a_contract_not_traded_today_is_refused(still, kite_still):
    inst = option(kite_still, offset=12)
    fault(still, kind="no_trade_today", tradingsymbol=inst["tradingsymbol"])
    with pytest.raises(kex.InputException, match="17181"):
        place(kite_still, inst)
    assert kite_still.orders() == []
    price = ltp(kite_still, inst)
    limit = place(kite_still, inst, order_type="LIMIT", price=float(price), market_protection=None)
    assert book_row(kite_still, limit)["status"] in ("OPEN", "COMPLETE")  # a limit order is accepted


# ------------------------------------------------------------------------------------------ modifications
def test_the_26th_modification_of_an_order_is_refused(kite_still):
    inst = option_priced(kite_still, 100.0, 400.0)
    low = ceil_tick(ltp(kite_still, inst) * Decimal("0.7"))
    order_id = place(kite_still, inst, order_type="LIMIT", price=float(low), market_protection=None)
    for i in range(25):
        kite_still.modify_order(variety="regular", order_id=order_id, price=float(low + (i % 2) * TICK))
    with pytest.raises(kex.InputException, match="Maximum allowed order modifications"):
        kite_still.modify_order(variety="regular", order_id=order_id, price=float(low + TICK))
    kite_still.cancel_order(variety="regular", order_id=order_id)  # cancelling is still allowed
    assert book_row(kite_still, order_id)["status"] == "CANCELLED"
