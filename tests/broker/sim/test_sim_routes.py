"""Every REST route the trading client uses, through the official client, against kite-mocks' shapes."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from kiteconnect import exceptions as kex

from tests.simkit import fault, login, start_sim

MOCKS = Path(__file__).resolve().parents[2] / "fixtures" / "kite-mocks"


def mock(name: str):
    return json.loads((MOCKS / name).read_text())["data"]


@pytest.fixture(scope="module")
def sim():
    s = start_sim()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kite(sim):
    k = login(sim, "UK9394")
    option = next(r for r in k.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == "CE")
    k.place_order(
        variety="regular",
        exchange="NFO",
        tradingsymbol=option["tradingsymbol"],
        transaction_type="BUY",
        quantity=option["lot_size"],
        product="MIS",
        order_type="MARKET",
        market_protection=-1,
        tag="KDroute",
    )
    return k


def missing(expected: dict, actual: dict) -> set[str]:
    return set(expected) - set(actual)


def test_profile_has_the_mock_keys(kite):
    assert not missing(mock("profile.json"), kite.profile())


def test_margins_have_the_mock_keys(kite):
    expected, actual = mock("margins.json"), kite.margins()
    assert not missing(expected, actual)
    for seg in ("equity", "commodity"):
        assert not missing(expected[seg], actual[seg])
        assert not missing(expected[seg]["available"], actual[seg]["available"])
        assert not missing(expected[seg]["utilised"], actual[seg]["utilised"])
    assert kite.margins("equity")["net"] == actual["equity"]["net"]


def test_orders_history_and_trades_have_the_mock_keys(kite):
    orders = kite.orders()
    assert orders and not missing(mock("orders.json")[0], orders[0])
    history = kite.order_history(orders[0]["order_id"])
    assert not missing(mock("order_info.json")[0], history[-1])
    trades = kite.trades()
    assert trades and not missing(mock("trades.json")[0], trades[0])
    assert not missing(mock("order_trades.json")[0], kite.order_trades(orders[0]["order_id"])[0])


def test_positions_have_the_mock_keys(kite):
    expected, actual = mock("positions.json"), kite.positions()
    assert set(actual) == {"net", "day"}
    assert not missing(expected["net"][0], actual["net"][0])
    assert not missing(expected["day"][0], actual["day"][0])


def test_quote_ohlc_ltp_have_the_mock_keys(kite):
    key = "NSE:NIFTY 50"
    q = kite.quote(key)[key]
    ref = next(iter(mock("quote.json").values()))
    assert not missing(ref, q), missing(ref, q)
    assert not missing(next(iter(mock("ohlc.json").values())), kite.ohlc(key)[key])
    assert not missing(next(iter(mock("ltp.json").values())), kite.ltp(key)[key])
    assert kite.ltp(key)[key]["instrument_token"] == 256265


def test_quote_of_an_option_has_five_levels_of_depth_and_agrees_with_ltp(sim, kite):
    opt = next(r for r in kite.instruments("NFO") if r["instrument_type"] == "PE")
    key = f"NFO:{opt['tradingsymbol']}"
    q = kite.quote(key)[key]
    assert len(q["depth"]["buy"]) == 5 and len(q["depth"]["sell"]) == 5
    assert q["depth"]["buy"][0]["price"] < q["depth"]["sell"][0]["price"]
    assert q["last_price"] == kite.ltp(key)[key]["last_price"]


def test_instruments_parse_with_the_client_and_follow_the_token_rule(kite):
    rows = kite.instruments()
    by_exchange = {r["exchange"] for r in rows}
    assert {"NSE", "BSE", "NFO", "BFO"} <= by_exchange
    segment_ids = {"NFO": 2, "BFO": 5}
    for r in rows:
        if r["segment"] == "INDICES":
            assert r["instrument_token"] & 0xFF == 9
        else:
            assert r["instrument_token"] == int(r["exchange_token"]) * 256 + segment_ids[r["exchange"]]
            assert isinstance(r["expiry"], date) and r["tick_size"] == 0.05
    lots = {r["name"]: r["lot_size"] for r in rows if r["instrument_type"] in ("CE", "PE")}
    assert lots == {"NIFTY": 65, "BANKNIFTY": 30, "SENSEX": 20}
    assert all(r["exchange"] == "NFO" for r in kite.instruments("NFO"))


def test_historical_candles_parse_and_cover_yesterday(sim, kite):
    now = sim.state.clock.now()
    candles = kite.historical_data(256265, now - timedelta(days=3), now, "minute")
    assert candles, "no candles"
    first, last = candles[0], candles[-1]
    assert first["date"].date() < now.date()  # the previous trading day is there for warm-up
    assert last["date"].replace(tzinfo=None) <= now
    assert all(
        c["low"] <= min(c["open"], c["close"]) and c["high"] >= max(c["open"], c["close"]) for c in candles
    )
    with_oi = kite.historical_data(256265, now - timedelta(hours=1), now, "5minute", oi=True)
    assert "oi" in with_oi[0]


def test_historical_with_bad_range_or_interval_is_input_error(sim, kite):
    now = sim.state.clock.now()
    with pytest.raises(kex.InputException):
        kite.historical_data(256265, now, now - timedelta(days=1), "minute")
    with pytest.raises(kex.InputException):
        kite.historical_data(256265, now - timedelta(days=1), now, "7minute")
    with pytest.raises(kex.InputException):
        kite.historical_data(1, now - timedelta(days=1), now, "minute")


@pytest.mark.parametrize(
    "error_type, code",
    [
        ("TokenException", 403),
        ("PermissionException", 403),
        ("InputException", 400),
        ("OrderException", 500),
        ("DataException", 502),
        ("NetworkException", 503),
        ("GeneralException", 500),
    ],
)
def test_each_kite_error_type_raises_its_client_exception_with_its_code(sim, kite, error_type, code):
    fault(sim, kind="fail_next_request", api_key="UK9394", error_type=error_type)
    with pytest.raises(getattr(kex, error_type)) as err:
        kite.margins()
    assert err.value.code == code
    assert kite.margins()["equity"]["enabled"]  # only the next request failed


def test_server_side_only_error_types_arrive_as_general_exception(sim, kite):
    fault(sim, kind="fail_next_request", api_key="UK9394", error_type="MarginException")
    with pytest.raises(kex.GeneralException) as err:
        kite.margins()
    assert err.value.code == 400


def test_unknown_route_is_kite_shaped_404(sim, kite):
    import requests

    resp = requests.get(f"{sim.url}/no/such/route")
    assert resp.status_code == 404
    assert resp.json() == {
        "status": "error",
        "message": "Route not found",
        "error_type": "GeneralException",
        "data": None,
    }


def test_generate_session_has_the_mock_keys(sim):
    from kiteconnect import KiteConnect

    from tests.simkit import request_token

    token, _ = request_token(sim, "UK1234")
    data = KiteConnect("UK1234", root=sim.url).generate_session(token, api_secret="secret_B")
    assert not missing(mock("generate_session.json"), data)
    assert isinstance(data["login_time"], datetime)


def test_rate_limits_answer_429_like_kite():
    sim = start_sim(rate_limits=True)
    try:
        kite = login(sim, "UK1234")
        kite.ltp("NSE:NIFTY 50")
        with pytest.raises(kex.NetworkException) as err:
            kite.ltp("NSE:NIFTY 50")  # quotes: 1 per second
        assert err.value.code == 429
        opt = next(r for r in kite.instruments("NFO") if r["instrument_type"] == "CE")
        codes = []
        for _ in range(12):  # orders: 10 per second
            try:
                kite.place_order(
                    variety="regular",
                    exchange="NFO",
                    tradingsymbol=opt["tradingsymbol"],
                    transaction_type="BUY",
                    quantity=opt["lot_size"],
                    product="MIS",
                    order_type="MARKET",  # a far-away limit would meet limit price protection instead
                    market_protection=-1,
                )
                codes.append(200)
            except kex.NetworkException as exc:
                codes.append(exc.code)
        assert codes.count(429) >= 1 and codes[:5] == [200] * 5
        other = login(sim, "UK9394")  # another account's limits are its own
        assert other.ltp("NSE:NIFTY 50")
    finally:
        sim.stop()
