"""Login URL, pasted redirect parsing, the loopback listener and the token exchange."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests
from kiteconnect import exceptions as kex

from desktop.broker.errors import LoginFailed
from desktop.broker.login import LoopbackListener, complete_login, login_url, parse_request_token
from desktop.broker.profiles import IST, Profile, SecretStore

PROFILE = Profile("UK9394", "kitekeyA", login_url_root="https://kite.zerodha.com")


def test_login_url_has_api_key_version_and_redirect_params() -> None:
    assert login_url(PROFILE) == "https://kite.zerodha.com/connect/login?api_key=kitekeyA&v=3"
    url = login_url(PROFILE, {"tab": "2"})
    assert url.endswith("&redirect_params=tab%3D2")


@pytest.mark.parametrize(
    "pasted",
    [
        "http://127.0.0.1:5678/kitedesk/login?request_token=AbC123xyz&action=login&status=success",
        "  AbC123xyz ",
        "request_token=AbC123xyz&status=success",
    ],
)
def test_request_token_is_found_in_a_pasted_url_or_bare_token(pasted: str) -> None:
    assert parse_request_token(pasted) == "AbC123xyz"


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("", "paste"),
        ("http://127.0.0.1/cb?action=login&status=success", "no request_token"),
        ("http://127.0.0.1/cb?request_token=abc123&status=cancelled", "cancelled"),
        ("not a token!", "does not look like"),
    ],
)
def test_bad_pastes_get_a_plain_message(pasted: str, message: str) -> None:
    with pytest.raises(LoginFailed, match=message):
        parse_request_token(pasted)


def test_listener_refuses_a_non_loopback_redirect_url() -> None:
    with pytest.raises(LoginFailed, match="redirect URL"):
        LoopbackListener("https://example.com/callback")


def test_listener_captures_the_request_token_and_answers_the_browser() -> None:
    listener = LoopbackListener("http://127.0.0.1:0/kitedesk/login").start()
    base = f"http://127.0.0.1:{listener.port}"
    assert requests.get(base + "/favicon.ico", timeout=5).status_code == 404
    page = requests.get(base + "/kitedesk/login?request_token=Tok3n9&action=login&status=success", timeout=5)
    assert page.status_code == 200 and "close this tab" in page.text
    assert listener.wait(timeout=5) == "Tok3n9"
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/kitedesk/login", timeout=2)  # the listener is gone


def test_listener_times_out_with_a_clear_message_and_stops() -> None:
    listener = LoopbackListener("http://127.0.0.1:0/cb").start()
    with pytest.raises(LoginFailed, match="no login arrived"):
        listener.wait(timeout=0.2)


class FakeKite:
    """A stand-in for KiteConnect's generate_session (unit level only)."""

    def __init__(self, api_key: str, root: str | None = None, timeout: float | None = None) -> None:
        self.api_key = api_key

    def generate_session(self, request_token: str, api_secret: str) -> dict[str, Any]:
        if api_secret != "rightSECRET":
            raise kex.TokenException(f"Invalid checksum for secret {api_secret}", code=403)
        return {
            "user_id": self.user_id,
            "access_token": "dayTOKEN123",
            "login_time": datetime(2026, 1, 8, 9, 5),
        }

    user_id = "UK9394"


def test_complete_login_stores_the_token_until_six_am(memory_keyring: object) -> None:
    store = SecretStore()
    store.set_api_secret("UK9394", "rightSECRET")
    at = datetime(2026, 1, 8, 9, 5, tzinfo=IST)
    grant = complete_login(PROFILE, "reqTok1", store, kite_factory=FakeKite, now=lambda: at)
    assert grant.expires_at == datetime(2026, 1, 9, 6, 0, tzinfo=IST)
    assert store.access("UK9394", now=datetime(2026, 1, 8, 12, 0, tzinfo=IST)) == grant


def test_wrong_secret_fails_login_without_echoing_the_secret(memory_keyring: object) -> None:
    store = SecretStore()
    store.set_api_secret("UK9394", "wrongSECRET")
    with pytest.raises(LoginFailed) as info:
        complete_login(PROFILE, "reqTok1", store, kite_factory=FakeKite)
    assert "wrongSECRET" not in f"{info.value} {info.value.detail!r} {info.value!r}"
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_login_as_another_account_is_refused(memory_keyring: object) -> None:
    class OtherUserKite(FakeKite):
        user_id = "UK1234"

    store = SecretStore()
    store.set_api_secret("UK9394", "rightSECRET")
    with pytest.raises(LoginFailed, match="as UK1234"):
        complete_login(PROFILE, "reqTok1", store, kite_factory=OtherUserKite)
    assert store.access("UK9394") is None


def test_login_without_a_stored_secret_asks_for_it(memory_keyring: object) -> None:
    with pytest.raises(LoginFailed, match="API secret"):
        complete_login(PROFILE, "reqTok1", SecretStore(), kite_factory=FakeKite)
