"""The simulated Kite login, driven by the official client."""

from __future__ import annotations

import hashlib

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from tests.simkit import login, request_token, start_sim


@pytest.fixture(scope="module")
def sim():
    s = start_sim()
    yield s
    s.stop()


def test_login_redirects_with_request_token_and_redirect_params(sim):
    token, query = request_token(sim, "UK9394", redirect_params="tab=2&who=me")
    assert len(token) >= 16
    assert query["action"] == ["login"] and query["status"] == ["success"]
    assert query["tab"] == ["2"] and query["who"] == ["me"]


def test_generate_session_returns_kite_session_fields(sim):
    kite = KiteConnect("UK9394", root=sim.url)
    token, _ = request_token(sim, "UK9394")
    data = kite.generate_session(token, api_secret="secret_A")
    assert data["user_id"] == "UK9394"
    assert data["access_token"] and data["login_time"]
    assert kite.profile()["user_id"] == "UK9394"


def test_request_token_is_single_use(sim):
    kite = KiteConnect("UK9394", root=sim.url)
    token, _ = request_token(sim, "UK9394")
    kite.generate_session(token, api_secret="secret_A")
    with pytest.raises(kex.TokenException) as err:
        kite.generate_session(token, api_secret="secret_A")
    assert err.value.code == 403


def test_wrong_secret_is_refused(sim):
    kite = KiteConnect("UK1234", root=sim.url)
    token, _ = request_token(sim, "UK1234")
    with pytest.raises(kex.TokenException, match="checksum"):
        kite.generate_session(token, api_secret="not-the-secret")


def test_unknown_api_key_is_an_input_error_at_login(sim):
    resp = requests.get(
        f"{sim.url}/connect/login", params={"api_key": "NOPE", "v": "3"}, allow_redirects=False
    )
    assert resp.status_code == 400
    assert resp.json()["error_type"] == "InputException"


def test_expired_request_token_is_refused(sim, monkeypatch):
    import time

    from desktop.broker.sim.state import REQUEST_TOKEN_LIFETIME_S

    kite = KiteConnect("UK9394", root=sim.url)
    token, _ = request_token(sim, "UK9394")
    monkeypatch.setattr(sim.state, "monotonic", lambda: time.monotonic() + REQUEST_TOKEN_LIFETIME_S + 1)
    with pytest.raises(kex.TokenException, match="expired"):
        kite.generate_session(token, api_secret="secret_A")


def test_same_day_relogin_returns_same_access_token(sim):
    first = login(sim, "UK1234")
    second = login(sim, "UK1234")
    assert first.access_token == second.access_token


def test_logout_invalidates_token_and_next_login_gets_a_new_one(sim):
    kite = login(sim, "UK9394")
    old = kite.access_token
    assert kite.invalidate_access_token() is True
    with pytest.raises(kex.TokenException):
        kite.profile()
    assert login(sim, "UK9394").access_token != old


def test_bad_access_token_is_token_exception_and_calls_expiry_hook(sim):
    kite = KiteConnect("UK9394", root=sim.url, access_token="forged")
    calls = []
    kite.set_session_expiry_hook(lambda: calls.append(1))
    with pytest.raises(kex.TokenException) as err:
        kite.margins()
    assert err.value.code == 403 and calls == [1]


def test_checksum_is_sha256_of_key_token_secret(sim):
    token, _ = request_token(sim, "UK9394")
    checksum = hashlib.sha256(("UK9394" + token + "secret_A").encode()).hexdigest()
    resp = requests.post(
        f"{sim.url}/session/token", data={"api_key": "UK9394", "request_token": token, "checksum": checksum}
    )
    assert resp.status_code == 200 and resp.json()["data"]["user_id"] == "UK9394"
