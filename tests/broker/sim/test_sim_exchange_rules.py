"""The simulator refuses and works option orders as Kite and the exchanges do, through the official client.

Each rule of desktop/broker/exchange_rules.py is met here over a real socket: what Kite refuses raises the
same exception class, what the exchange cancels ends CANCELLED with its reason.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from kiteconnect import exceptions as kex

from desktop.broker.exchange_rules import SL_M_REFUSED
from tests.simkit import login, start_sim

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
