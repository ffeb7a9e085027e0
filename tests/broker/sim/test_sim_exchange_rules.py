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
