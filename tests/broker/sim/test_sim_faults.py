"""Each fault of the simulator, observed through the official client or a real socket."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import requests
from kiteconnect import exceptions as kex

from tests.simkit import fault, login, start_sim


@pytest.fixture
def sim():
    s = start_sim(speed=5.0)
    yield s
    s.stop()


def _option(kite) -> dict:
    return next(r for r in kite.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == "CE")


def _buy(kite, inst, tag="KDfault"):
    return kite.place_order(
        variety="regular",
        exchange="NFO",
        tradingsymbol=inst["tradingsymbol"],
        transaction_type="BUY",
        quantity=inst["lot_size"],
        product="MIS",
        order_type="MARKET",
        market_protection=-1,
        tag=tag,
    )


async def _read_until_closed(url: str, after) -> tuple[str, float]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, heartbeat=None) as ws:
        await ws.send_json({"a": "subscribe", "v": [256265]})
        await ws.receive(timeout=5)
        await asyncio.to_thread(after)
        started = time.monotonic()
        kinds = []
        while True:
            try:
                msg = await ws.receive(timeout=3)
            except TimeoutError:
                return "silent", time.monotonic() - started
            kinds.append(msg.type)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return f"{msg.type.name}:{ws.close_code}", time.monotonic() - started


def _ws_url(sim, kite):
    return f"{sim.ws_url}?api_key={kite.api_key}&access_token={kite.access_token}"


def test_expire_token_gives_403_token_exception_and_closes_sockets(sim):
    kite = login(sim, "UK9394")
    other = login(sim, "UK1234")
    outcome, _ = asyncio.run(
        _read_until_closed(_ws_url(sim, kite), lambda: fault(sim, kind="expire_token", api_key="UK9394"))
    )
    assert outcome.startswith(("CLOSE", "CLOSED"))
    with pytest.raises(kex.TokenException) as err:
        kite.positions()
    assert err.value.code == 403
    assert other.profile()["user_id"] == "UK1234"  # the other account is untouched
    assert login(sim, "UK9394").access_token != kite.access_token


def test_drop_ws_closes_without_a_close_frame(sim):
    kite = login(sim, "UK9394")
    outcome, _ = asyncio.run(
        _read_until_closed(_ws_url(sim, kite), lambda: fault(sim, kind="drop_ws", api_key="UK9394"))
    )
    assert outcome.startswith(("CLOSED", "ERROR", "CLOSE:1006")), outcome
    assert kite.profile()["user_id"] == "UK9394"  # REST still works; the token is fine


def test_stall_ws_keeps_the_socket_open_but_silent(sim):
    kite = login(sim, "UK9394")
    outcome, waited = asyncio.run(
        _read_until_closed(
            _ws_url(sim, kite), lambda: fault(sim, kind="stall_ws", api_key="UK9394", seconds=10)
        )
    )
    assert outcome == "silent" and waited >= 2.9


def test_rate_limit_fault_gives_429_network_exception_then_recovers(sim):
    kite = login(sim, "UK1234")
    fault(sim, kind="rate_limit", api_key="UK1234", seconds=1)
    with pytest.raises(kex.NetworkException) as err:
        kite.margins()
    assert err.value.code == 429
    time.sleep(1.1)
    assert kite.margins()["equity"]["enabled"] is True


def test_reject_next_order_rejects_exactly_one_order(sim):
    kite = login(sim, "UK9394")
    inst = _option(kite)
    fault(sim, kind="reject_next_order", api_key="UK9394")
    first = _buy(kite, inst)
    second = _buy(kite, inst)
    assert kite.order_history(first)[-1]["status"] == "REJECTED"
    assert kite.order_history(second)[-1]["status"] == "COMPLETE"


def test_fill_part_of_next_order_leaves_the_rest_open_until_cancelled(sim):
    kite = login(sim, "UK9394")
    inst = _option(kite)
    lot = inst["lot_size"]
    fault(sim, kind="fill_part_of_next_order", api_key="UK9394", quantity=lot)
    part = kite.place_order(
        variety="regular", exchange="NFO", tradingsymbol=inst["tradingsymbol"], transaction_type="BUY",
        quantity=3 * lot, product="MIS", order_type="MARKET", market_protection=-1, tag="KDpart",
    )  # fmt: skip
    time.sleep(0.5)  # the exchange works resting orders every market second
    row = kite.order_history(part)[-1]
    assert (row["status"], row["filled_quantity"], row["pending_quantity"]) == ("OPEN", lot, 2 * lot)
    assert [t["quantity"] for t in kite.order_trades(part)] == [lot]
    kite.cancel_order(variety="regular", order_id=part)
    row = kite.order_history(part)[-1]
    assert (row["status"], row["filled_quantity"], row["cancelled_quantity"]) == ("CANCELLED", lot, 2 * lot)
    net = next(p for p in kite.positions()["net"] if p["tradingsymbol"] == inst["tradingsymbol"])
    assert net["quantity"] == lot
    assert kite.order_history(_buy(kite, inst))[-1]["status"] == "COMPLETE", "only the next order"


def test_fill_part_of_next_order_needs_a_quantity(sim):
    resp = requests.post(
        f"{sim.url}/_sim/faults", json={"kind": "fill_part_of_next_order", "api_key": "UK9394", "quantity": 0}
    )
    assert resp.status_code == 400 and '"quantity": a whole number > 0' in resp.json()["message"]


@pytest.mark.parametrize("how, expected", [("drop", requests.ConnectionError), ("503", kex.NetworkException)])
def test_lost_order_reply_still_places_exactly_one_order(sim, how, expected):
    kite = login(sim, "UK9394")
    inst = _option(kite)
    fault(sim, kind="lose_next_order_reply", api_key="UK9394", how=how)
    with pytest.raises(expected):
        _buy(kite, inst, tag="KDlost")
    orders = [o for o in kite.orders() if o["tag"] == "KDlost"]
    assert len(orders) == 1 and orders[0]["status"] == "COMPLETE"


def test_unknown_fault_kind_is_an_input_error(sim):
    resp = requests.post(f"{sim.url}/_sim/faults", json={"kind": "meteor", "api_key": "UK9394"})
    assert resp.status_code == 400 and "Unknown fault kind" in resp.json()["message"]


def test_faults_from_python_match_http(sim):
    kite = login(sim, "UK1234")
    result = sim.inject_fault({"kind": "expire_token", "api_key": "UK1234"})
    assert result["kind"] == "expire_token"
    with pytest.raises(kex.TokenException):
        kite.profile()
    state = sim.describe()
    assert {a["api_key"]: a["logged_in"] for a in state["accounts"]}["UK1234"] is False


def test_gap_premium_moves_one_contracts_price_in_one_tick_for_every_account(sim):
    kite, other = login(sim, "UK9394"), login(sim, "UK1234")
    rows = [r for r in kite.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == "CE"]
    inst, untouched = rows[len(rows) // 2], rows[len(rows) // 2 + 1]
    key, key2 = f"NFO:{inst['tradingsymbol']}", f"NFO:{untouched['tradingsymbol']}"
    sim.state.clock.set_speed(0.001)  # hold the market still so before/after compare one moment
    before = kite.ltp([key, key2])
    result = fault(sim, kind="gap_premium", tradingsymbol=inst["tradingsymbol"], percent=-30)
    assert result["before"] == pytest.approx(before[key]["last_price"])
    assert result["after"] == pytest.approx(round(before[key]["last_price"] * 0.7 / 0.05) * 0.05, abs=0.051)
    after = other.ltp([key, key2])  # the market is everyone's
    assert after[key]["last_price"] == pytest.approx(result["after"])
    assert after[key2]["last_price"] == before[key2]["last_price"]
    quote = other.quote(key)[key]
    assert quote["depth"]["buy"][0]["price"] <= result["after"] <= quote["depth"]["sell"][0]["price"]
    assert quote["ohlc"]["low"] <= result["after"]


def test_gap_premium_from_python_matches_http(sim):
    kite = login(sim, "UK9394")
    inst = _option(kite)
    result = sim.inject_fault({"kind": "gap_premium", "tradingsymbol": inst["tradingsymbol"], "percent": 40})
    assert result["after"] > result["before"] and result["exchange"] == "NFO"


@pytest.mark.parametrize(
    "body, words",
    [
        ({"tradingsymbol": "NIFTY99DEC1CE", "percent": -10}, "tradingsymbol"),
        ({"tradingsymbol": "NIFTY 50", "exchange": "NSE", "percent": -10}, "tradingsymbol"),
        ({"percent": -10}, "tradingsymbol"),
        ({"tradingsymbol": "X", "percent": -10}, "tradingsymbol"),
        ({"tradingsymbol": None, "percent": "abc"}, "tradingsymbol"),
    ],
)
def test_gap_premium_needs_an_option_of_today(sim, body, words):
    resp = requests.post(f"{sim.url}/_sim/faults", json={"kind": "gap_premium", **body})
    assert resp.status_code == 400 and words in resp.json()["message"]


@pytest.mark.parametrize("percent", [None, "abc", -100, -150, 0, "NaN"])
def test_gap_premium_needs_a_percent_above_minus_100(sim, percent):
    kite = login(sim, "UK9394")
    inst = _option(kite)
    body = {"kind": "gap_premium", "tradingsymbol": inst["tradingsymbol"]}
    if percent is not None:
        body["percent"] = percent
    resp = requests.post(f"{sim.url}/_sim/faults", json=body)
    assert resp.status_code == 400 and '"percent"' in resp.json()["message"]
