"""Kite, requests and aiohttp exceptions become our errors, with messages free of secrets."""

from __future__ import annotations

import pytest
import requests
from kiteconnect import exceptions as kex
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from desktop.broker.errors import (
    AmbiguousOrderFailure,
    BrokerError,
    BrokerUnavailable,
    InputRejected,
    LoginNeeded,
    ModificationCapReached,
    NotPermitted,
    OrderRejected,
    RateLimited,
    scrub,
    translate,
)

TOKEN = "tok3nSECRETvalue99"
SECRET = "apiSECRETzz42"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (kex.TokenException("Incorrect `api_key` or `access_token`."), LoginNeeded),
        (kex.PermissionException("Insufficient permission for that call."), NotPermitted),
        (kex.InputException("Invalid `quantity`."), InputRejected),
        (kex.InputException("Maximum allowed order modifications exceeded."), ModificationCapReached),
        (kex.InputException("Order cannot be modified as it is being processed"), InputRejected),
        (kex.OrderException("Order not found"), OrderRejected),
        (kex.NetworkException("Too many requests", code=429), RateLimited),
        (kex.NetworkException("Gateway down", code=503), AmbiguousOrderFailure),
        (kex.DataException("Couldn't parse"), AmbiguousOrderFailure),
        (kex.GeneralException("Insufficient funds", code=400), OrderRejected),
        (kex.GeneralException("Too many requests", code=429), RateLimited),
        (kex.GeneralException("boom", code=500), AmbiguousOrderFailure),
        (requests.exceptions.ReadTimeout("read timed out"), AmbiguousOrderFailure),
        (requests.exceptions.ConnectTimeout("connect timed out"), BrokerUnavailable),
        (requests.exceptions.ConnectionError(ProtocolError("Connection aborted.")), AmbiguousOrderFailure),
        (KeyError("content-type"), AmbiguousOrderFailure),
    ],
)
def test_every_kite_and_transport_exception_maps_to_our_type(exc: Exception, expected: type) -> None:
    err = translate(exc)
    assert type(err) is expected
    assert err.trader_message and "Traceback" not in err.trader_message


def test_refused_connection_is_unavailable_but_not_ambiguous() -> None:
    pool_err = MaxRetryError(None, "/orders", NewConnectionError(None, "Connection refused"))
    err = translate(requests.exceptions.ConnectionError(pool_err))
    assert isinstance(err, BrokerUnavailable)
    assert not isinstance(err, AmbiguousOrderFailure)


def test_input_rejection_keeps_kites_reason_for_the_trader() -> None:
    err = translate(kex.InputException("Market orders without market protection are not allowed via API"))
    assert "market protection" in err.trader_message


def test_translated_errors_carry_no_url_query_token_or_secret() -> None:
    raw = requests.exceptions.ConnectionError(
        f"HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
        f"/session/token?api_key=k&access_token={TOKEN} (Caused by refused)"
    )
    kite = kex.InputException(f"bad checksum={SECRET} for https://api.kite.trade/x?access_token={TOKEN}")
    for exc in (raw, kite):
        err = translate(exc, secrets=[TOKEN, SECRET])
        for text in (str(err), err.trader_message, err.detail, repr(err)):
            assert TOKEN not in text
            assert SECRET not in text


def test_scrub_removes_authorization_header_and_named_secret_even_when_unlisted() -> None:
    text = f"headers {{'Authorization': 'token UK9394KEY:{TOKEN}'}} api_secret={SECRET}"
    cleaned = scrub(text)
    assert TOKEN not in cleaned and SECRET not in cleaned


def test_scrub_keeps_the_url_host_and_path_for_diagnosis() -> None:
    assert scrub(f"wss://ws.kite.trade/?api_key=k&access_token={TOKEN}").startswith("wss://ws.kite.trade/?")


def test_broker_errors_pass_through_unchanged() -> None:
    original = OrderRejected("lots must be a whole number ≥ 1")
    assert translate(original) is original
    assert isinstance(original, BrokerError)
    assert str(original) == "lots must be a whole number ≥ 1"
