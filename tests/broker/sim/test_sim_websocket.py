"""The simulator's WebSocket, read by the official KiteTicker and by a plain WebSocket client."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import aiohttp
import pytest
from kiteconnect import KiteTicker

from tests.simkit import login, start_sim

IST = timezone(timedelta(hours=5, minutes=30))
NIFTY, BANKNIFTY, SENSEX = 256265, 260105, 265


@pytest.fixture(scope="module")
def sim():
    s = start_sim(speed=5.0)
    yield s
    s.stop()


class TickerProbe:
    """A KiteTicker on Twisted's shared reactor that records what it receives."""

    def __init__(self, sim, kite, tokens: list[int], mode: str) -> None:
        from twisted.internet import reactor

        self.ticks: list[dict] = []
        self.orders: list[dict] = []
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.close_codes: list[object] = []
        self.ticker = KiteTicker(kite.api_key, kite.access_token, root=sim.ws_url, reconnect=False)

        def on_close(ws, code, reason):
            self.close_codes.append(code)
            self.closed.set()

        def on_connect(ws, response):
            ws.subscribe(tokens)
            ws.set_mode(mode, tokens)
            self.connected.set()

        self.ticker.on_connect = on_connect
        self.ticker.on_ticks = lambda ws, ticks: self.ticks.extend(ticks)
        self.ticker.on_order_update = lambda ws, data: self.orders.append(data)
        self.ticker.on_close = on_close
        if reactor.running:
            reactor.callFromThread(self.ticker.connect, threaded=True)
        else:
            self.ticker.connect(threaded=True)
        assert self.connected.wait(10), "KiteTicker did not connect to the simulator"

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for the ticker")

    def close(self) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(self.ticker.close)


def _ist(dt: datetime) -> datetime:
    """KiteTicker turns exchange epochs into machine-local datetimes; back to IST wall clock."""
    return datetime.fromtimestamp(dt.timestamp(), tz=IST).replace(tzinfo=None)


def test_ticker_ticks_equal_the_simulators_prices_field_by_field(sim):
    kite = login(sim, "UK9394")
    option = next(r for r in kite.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == "CE")
    probe = TickerProbe(sim, kite, [NIFTY, option["instrument_token"]], "full")
    try:
        probe.wait_for(
            lambda: {t["instrument_token"] for t in probe.ticks} >= {NIFTY, option["instrument_token"]}
        )
    finally:
        probe.close()
    market = sim.state.market
    checked = 0
    for tick in probe.ticks:
        if "exchange_timestamp" not in tick or tick["mode"] != "full":
            continue
        t = _ist(tick["exchange_timestamp"])
        token = tick["instrument_token"]
        assert Decimal(str(tick["last_price"])) == market.last_price(token, t), (token, t)
        quote = market.quote(token, t)
        assert tick["ohlc"]["open"] == pytest.approx(quote["ohlc"]["open"])
        assert tick["ohlc"]["close"] == pytest.approx(quote["ohlc"]["close"])
        if tick["tradable"]:
            assert tick["volume_traded"] == quote["volume"]
            assert tick["depth"]["buy"][0]["price"] == pytest.approx(quote["depth"]["buy"][0]["price"])
            assert tick["depth"]["sell"][0]["price"] == pytest.approx(quote["depth"]["sell"][0]["price"])
        checked += 1
    assert checked >= 2


def test_two_tickers_of_two_accounts_get_only_their_own_order_updates(sim):
    kite_a, kite_b = login(sim, "UK9394"), login(sim, "UK1234")
    probe_a = TickerProbe(sim, kite_a, [NIFTY], "ltp")
    probe_b = TickerProbe(sim, kite_b, [SENSEX], "quote")
    try:
        option = next(
            r for r in kite_a.instruments("NFO") if r["name"] == "NIFTY" and r["instrument_type"] == "PE"
        )
        order_id = kite_a.place_order(
            variety="regular",
            exchange="NFO",
            tradingsymbol=option["tradingsymbol"],
            transaction_type="BUY",
            quantity=option["lot_size"],
            product="MIS",
            order_type="MARKET",
            market_protection=-1,
            tag="KDiso",
        )
        probe_a.wait_for(lambda: any(o["status"] == "COMPLETE" for o in probe_a.orders))
        probe_b.wait_for(lambda: any(t["instrument_token"] == SENSEX for t in probe_b.ticks))
        time.sleep(0.5)
    finally:
        probe_a.close()
        probe_b.close()
    assert {o["order_id"] for o in probe_a.orders} == {order_id}
    assert all(o["tag"] == "KDiso" and o["user_id"] == "UK9394" for o in probe_a.orders)
    assert probe_b.orders == []
    assert {t["instrument_token"] for t in probe_a.ticks} == {NIFTY}
    assert {t["instrument_token"] for t in probe_b.ticks} == {SENSEX}
    assert all(t["mode"] == "ltp" for t in probe_a.ticks)


async def _ws_session(url: str, action):
    async with aiohttp.ClientSession() as session:
        return await action(session, url)


def _ws_url(sim, kite) -> str:
    return f"{sim.ws_url}?api_key={kite.api_key}&access_token={kite.access_token}"


def test_bad_token_is_refused_with_403_at_the_upgrade(sim):
    async def go(session, url):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url)
        return err.value.status

    assert asyncio.run(_ws_session(f"{sim.ws_url}?api_key=UK9394&access_token=forged", go)) == 403


def test_idle_connection_gets_one_byte_heartbeats(sim):
    kite = login(sim, "UK9394")

    async def go(session, url):
        async with session.ws_connect(url) as ws:
            msg = await ws.receive(timeout=5)
            return msg.data

    assert asyncio.run(_ws_session(_ws_url(sim, kite), go)) == b"\x00"


def test_fourth_connection_of_one_api_key_is_refused(sim):
    kite = login(sim, "UK1234")

    async def go(session, url):
        sockets = [await session.ws_connect(url) for _ in range(3)]
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(url)
            return err.value.status
        finally:
            for ws in sockets:
                await ws.close()

    assert asyncio.run(_ws_session(_ws_url(sim, kite), go)) == 429


def test_subscription_beyond_the_per_connection_limit_is_an_error_frame(sim, monkeypatch):
    import json

    import desktop.broker.sim.stream as stream

    assert stream.MAX_TOKENS_PER_CONNECTION == 3000  # Kite's limit; lowered below to reach it cheaply
    monkeypatch.setattr(stream, "MAX_TOKENS_PER_CONNECTION", 2)
    kite = login(sim, "UK9394")

    async def go(session, url):
        async with session.ws_connect(url) as ws:
            await ws.send_str(json.dumps({"a": "subscribe", "v": [NIFTY, BANKNIFTY, SENSEX]}))
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    return json.loads(msg.data)

    reply = asyncio.run(_ws_session(_ws_url(sim, kite), go))
    assert reply["type"] == "error" and "limit" in reply["data"]


def test_malformed_messages_get_an_error_frame_and_the_connection_keeps_working(sim):
    import json

    kite = login(sim, "UK9394")
    bad = [
        {"a": "subscribe", "v": ["abc"]},
        {"a": "mode", "v": ["full"]},
        {"a": "mode", "v": ["full", ["x"]]},
        {"a": "unsubscribe", "v": 5},
        ["subscribe", [NIFTY]],
        "not json",
    ]

    async def go(session, url):
        errors, ticks = 0, 0
        async with session.ws_connect(url) as ws:
            for msg in bad:
                await ws.send_str(msg if isinstance(msg, str) else json.dumps(msg))
            await ws.send_str(json.dumps({"a": "subscribe", "v": [NIFTY]}))
            while ticks == 0:
                msg = await ws.receive(timeout=5)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    assert json.loads(msg.data)["type"] == "error"
                    errors += 1
                elif msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 2:
                    ticks += 1
                else:
                    assert msg.type in (aiohttp.WSMsgType.BINARY,), msg
        return errors, ticks

    assert asyncio.run(_ws_session(_ws_url(sim, kite), go)) == (len(bad), 1)


def test_after_the_close_a_subscribed_connection_gets_heartbeats_not_ticks():
    import json

    close = datetime(2026, 1, 8, 15, 30)
    # 2 s of real time before the close: the login and the connection must not eat all of it on a busy
    # machine (with 0.4 s, the first frame sometimes came after the close and the test saw no ticks at all).
    closing = start_sim(speed=5.0, start=close - timedelta(seconds=10))
    try:
        kite = login(closing, "UK9394")

        async def go(session, url):
            frames = []  # (real time, market time when received, frame)
            async with session.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"a": "subscribe", "v": [NIFTY]}))
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=3)
                    frames.append((time.monotonic(), closing.state.clock.now(), msg.data))
            return frames

        frames = asyncio.run(_ws_session(_ws_url(closing, kite), go))
        assert closing.describe()["clock"] == "2026-01-08 15:30:00"  # the clock stops at the close
    finally:
        closing.stop()
    closed_at = min(real for real, market, _ in frames if market >= close)
    assert any(len(d) > 2 for real, market, d in frames if market < close)  # ticks while open
    after = [d for real, _, d in frames if real > closed_at + 0.5]  # a frame in flight may still land
    assert after and all(d == b"\x00" for d in after)  # then only heartbeats


@pytest.mark.parametrize("kind", ["drop_ws", "expire_token"])
def test_kiteticker_sees_its_socket_close_on_drop_and_on_token_expiry(sim, kind):
    kite = login(sim, "UK1234")
    probe = TickerProbe(sim, kite, [SENSEX], "ltp")
    try:
        probe.wait_for(lambda: bool(probe.ticks))
        sim.inject_fault({"kind": kind, "api_key": "UK1234"})
        assert probe.closed.wait(10), f"KiteTicker did not see the socket close after {kind}"
    finally:
        probe.close()
    if kind == "expire_token":
        assert probe.close_codes[0] == 1000  # a clean close: the session is over
    else:
        assert probe.close_codes[0] != 1000  # an unclean drop


def test_kiteticker_gets_no_ticks_while_the_socket_is_stalled(sim):
    kite = login(sim, "UK9394")
    probe = TickerProbe(sim, kite, [NIFTY], "ltp")
    try:
        probe.wait_for(lambda: len(probe.ticks) >= 2)
        sim.inject_fault({"kind": "stall_ws", "api_key": "UK9394", "seconds": 2.5})
        time.sleep(0.3)  # frames already on the wire may still land
        during = len(probe.ticks)
        time.sleep(1.5)
        assert len(probe.ticks) == during and not probe.closed.is_set()
        probe.wait_for(lambda: len(probe.ticks) > during, timeout=10)  # and it speaks again afterwards
    finally:
        probe.close()


def test_a_simulators_websocket_url_follows_from_its_rest_root(sim):
    from desktop.broker.sim import ws_url_of

    assert sim.ws_url.startswith("ws://") and sim.ws_url.endswith("/ws")
    assert ws_url_of(sim.url) == ws_url_of(sim.url + "/") == sim.ws_url == "ws" + sim.url[4:] + "/ws"
