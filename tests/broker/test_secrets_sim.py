"""No API secret or access token in any log line, file or exception, with logging at DEBUG."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import requests

from desktop.broker.errors import BrokerError
from desktop.broker.gateway import LiveGateway
from desktop.broker.login import LoopbackListener, login_url
from desktop.broker.profiles import ProfileBook
from desktop.domain import Mode, OrderIntent, Segment, Side
from tests.broker.conftest import SIM_SECRETS, login, sim_profile, wait_until
from tests.broker.test_gateway_sim import option
from tests.simkit import start_sim


def exception_texts(exc: BaseException | None) -> list[str]:
    """str, repr and detail of an exception and of everything chained to it."""
    out: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out += [str(exc), repr(exc), str(getattr(exc, "detail", "")), str(getattr(exc, "trader_message", ""))]
        exc = exc.__cause__ or exc.__context__
    return out


def test_a_full_session_at_debug_leaks_no_secret_or_token(hub, sim, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, kiteconnect, urllib3, aiohttp
    book = ProfileBook(tmp_path / "profiles.toml")
    profile = book.save(login(hub, sim, "UK9394"))
    token = hub.secrets.access("UK9394").access_token
    session = hub.open_session(profile)
    stream = hub.open_stream(session)
    stream.subscribe([256265])
    assert wait_until(lambda: stream.last_price(256265) is not None)
    gateway = LiveGateway(session, stream, lookup_pause=0.05)
    raised: list[BaseException] = []

    sim.inject_fault({"kind": "fail_next_request", "api_key": "UK9394", "error_type": "InputException",
                      "message": f"bad request with access_token={token}"})  # fmt: skip
    with pytest.raises(BrokerError) as info:
        session.margins()
    raised.append(info.value)
    sim.inject_fault({"kind": "lose_next_order_reply", "api_key": "UK9394", "how": "drop"})
    contract = option(hub, session)
    gateway.place(OrderIntent(session.key, Segment.NIFTY, Mode.LIVE, contract.exchange, contract.tradingsymbol,
                              Side.BUY, contract.lot_size))  # fmt: skip
    assert wait_until(lambda: any(o.status.is_final for o in gateway.orders()))
    gateway.close()
    time.sleep(0.3)  # let the fill lookup of that order finish before the token dies
    sim.inject_fault({"kind": "expire_token", "api_key": "UK9394"})
    # no REST call: the feed's reconnect meets the 403 at the upgrade (its URL holds the token)
    assert wait_until(lambda: session.login_needed)
    assert any("refused the token" in r.getMessage() for r in caplog.records)
    with pytest.raises(BrokerError) as info:
        session.orders()
    raised.append(info.value)
    stream.close()
    session.close()

    # Each record as a log file would hold it: message, arguments, and any traceback logged with it.
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s %(pathname)s")
    texts = [formatter.format(r) for r in caplog.records] + [str(r.args) for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
    texts += [t for exc in raised for t in exception_texts(exc)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    secrets = [token, SIM_SECRETS["UK9394"]]
    assert len(caplog.records) > 10  # DEBUG really was on
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_browser_login_through_the_loopback_listener_against_the_simulator(memory_keyring) -> None:
    listener = LoopbackListener("http://127.0.0.1:0/kitedesk/login").start()
    redirect = f"http://127.0.0.1:{listener.port}/kitedesk/login"
    sim = start_sim(redirect_url=redirect)
    try:
        from desktop.broker.hub import BrokerHub
        from desktop.broker.profiles import SecretStore

        hub = BrokerHub(SecretStore())
        hub.secrets.set_api_secret("UK9394", SIM_SECRETS["UK9394"])
        profile = sim_profile(sim, "UK9394")
        page = requests.get(login_url(profile), timeout=5)  # the "browser" follows Kite's redirect
        assert "close this tab" in page.text
        grant = hub.login(profile, listener.wait(timeout=5))
        assert grant.user_id == "UK9394"
        session = hub.open_session(profile)
        assert session.profile_info()["user_id"] == "UK9394"
        session.close()
        hub.close()
    finally:
        listener.close()
        sim.stop()
