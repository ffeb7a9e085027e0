"""Our broker error types, and `translate()` from kiteconnect / requests / aiohttp exceptions to them.

Every error carries a `trader_message` a trader understands and a scrubbed technical `detail`.
Neither ever contains an access token, API secret, checksum or a URL's query string: kiteconnect and
requests put URLs (with query parameters such as `access_token=`) into some of their messages.
Callers re-raise translated errors `from None` so the raw exception text is not chained either.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    from kiteconnect import exceptions as kex


class BrokerError(Exception):
    """Base of every error the broker layer raises; `str()` is the trader's message."""

    default_message = "Kite could not complete the request."

    def __init__(self, trader_message: str | None = None, detail: str = "", http_status: int | None = None):
        self.trader_message = trader_message or self.default_message
        self.detail = detail
        self.http_status = http_status
        super().__init__(self.trader_message)


class LoginNeeded(BrokerError):
    """The account's access token is missing, invalid or expired: the trader must log in again."""

    default_message = "Your Kite login for this account has expired: log in again."


class LoginFailed(BrokerError):
    """A login step failed (bad request token, wrong account, listener timeout)."""

    default_message = "Kite login did not complete: try again."


class NotPermitted(BrokerError):
    """Kite refused the call for this account (PermissionException)."""

    default_message = "Kite does not allow this request for this account."


class InputRejected(BrokerError):
    """Kite (or our own checks) refused the request's parameters: nothing happened at the broker."""

    default_message = "Kite refused the request's parameters."


class ModificationCapReached(InputRejected):
    """Kite refused a modification: the order has had its 25 (cancel it and place a new one)."""

    default_message = "Kite allows no more modifications of this order."


class OrderRejected(BrokerError):
    """Kite refused the order: it definitely does not exist at the broker."""

    default_message = "Kite rejected the order."


class RateLimited(BrokerError):
    """Too many requests for this account (ours or Kite's 429): nothing was sent or done."""

    default_message = "Too many requests to Kite for this account: slowing down."


class BrokerUnavailable(BrokerError):
    """Kite could not be reached; the request certainly did not take effect."""

    default_message = "Kite cannot be reached right now: check the connection."


class MalformedReply(BrokerUnavailable):
    """Kite's replies to a read did not hold what its API says, again and again (broker/replies.py): nothing
    changed at the broker; the caller tries again later as after a network failure."""

    default_message = "Kite sent replies KiteDesk could not read: trying again later."


class AmbiguousOrderFailure(BrokerUnavailable):
    """The request may or may not have taken effect (timeout, dropped reply, 5xx): verify before retrying."""

    default_message = "Kite did not confirm the request: checking the order book before doing anything else."


# Query strings, Authorization headers, and named secret fields. Order matters: URL query first.
_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(wss?|https?)://([^\s'\"?#]*)\?[^\s'\")]*"), r"\1://\2?…"),
    (re.compile(r"(?i)(url:\s*\S*?)\?[^\s'\")]*"), r"\1?…"),
    (re.compile(r"(?i)\btoken\s+[A-Za-z0-9_-]+:[A-Za-z0-9_-]+"), "token …"),
    (
        re.compile(
            r"(?i)(access_token|api_secret|request_token|refresh_token|enctoken|public_token|checksum)"
            r"(['\"]?\s*[=:]\s*['\"]?)[^\s&'\",}]+"
        ),
        r"\1\2…",
    ),
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL query strings, auth headers, token fields and every given secret removed."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "…")
    for pattern, repl in _SCRUBBERS:
        text = pattern.sub(repl, text)
    return text


def _connection_never_opened(exc: requests.ConnectionError) -> bool:
    """True when requests failed before sending anything (refused, DNS): retrying cannot duplicate."""
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    return isinstance(inner, NewConnectionError | NameResolutionError)


def translate(exc: BaseException, secrets: Iterable[str] = ()) -> BrokerError:
    """Our error for any exception a Kite call can raise; unknown ones become an ambiguous failure."""
    if isinstance(exc, BrokerError):
        return exc
    secrets = tuple(secrets)
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    # kiteconnect (with its ticker's twisted stack) and requests are imported by whoever makes a Kite call,
    # not for the first window: a module not imported yet cannot have raised `exc`.
    kex_module = sys.modules.get("kiteconnect.exceptions")
    if kex_module is not None and isinstance(exc, kex_module.KiteException):
        return _translate_kite(exc, kex_module, detail, secrets)
    rex = sys.modules.get("requests.exceptions")
    if rex is not None:
        if isinstance(exc, rex.ConnectTimeout):
            return BrokerUnavailable("Kite did not answer the connection in time: check the network.", detail)
        if isinstance(exc, rex.ReadTimeout | rex.ChunkedEncodingError):
            return AmbiguousOrderFailure(detail=detail)
        if isinstance(exc, rex.ConnectionError):
            if _connection_never_opened(exc):
                return BrokerUnavailable(detail=detail)
            return AmbiguousOrderFailure(detail=detail)
        if isinstance(exc, rex.RequestException):
            return BrokerUnavailable(detail=detail)
    ws_error = _translate_aiohttp(exc, detail)
    if ws_error is not None:
        return ws_error
    if isinstance(exc, KeyError | TypeError | ValueError):
        # kiteconnect raises these on a malformed reply (no Content-Type, no error_type): the request
        # reached Kite, so its effect is unknown.
        return AmbiguousOrderFailure(
            "Kite sent a reply KiteDesk could not read; checking before retrying.", detail
        )
    if isinstance(exc, OSError | TimeoutError):
        return AmbiguousOrderFailure(detail=detail)
    return AmbiguousOrderFailure(detail=detail)


def _translate_kite(
    exc: kex.KiteException, kite_exceptions: Any, detail: str, secrets: tuple[str, ...]
) -> BrokerError:
    code = getattr(exc, "code", None)
    said = scrub(str(exc), secrets).strip().rstrip(".")
    if isinstance(exc, kite_exceptions.TokenException):
        return LoginNeeded(detail=detail, http_status=code)
    if isinstance(exc, kite_exceptions.PermissionException):
        return NotPermitted(f"Kite does not allow this for this account: {said}.", detail, code)
    if isinstance(exc, kite_exceptions.InputException):
        words = said.lower()  # Kite's own words are all that tells its modification cap from other refusals
        if "modification" in words and ("exceeded" in words or "maximum" in words):
            return ModificationCapReached(f"Kite refused the request: {said}.", detail, code)
        return InputRejected(f"Kite refused the request: {said}.", detail, code)
    if isinstance(exc, kite_exceptions.NetworkException):
        if code == 429:
            return RateLimited(detail=detail, http_status=code)
        # Kite's OMS link failed: the order may have been created (KITE.md: look it up by tag).
        return AmbiguousOrderFailure(detail=detail, http_status=code)
    if isinstance(exc, kite_exceptions.OrderException):
        return OrderRejected(f"Kite rejected the order: {said}.", detail, code)
    if isinstance(exc, kite_exceptions.DataException):
        return AmbiguousOrderFailure(
            "Kite sent a reply KiteDesk could not read; checking before retrying.", detail, code
        )
    if code == 429:
        return RateLimited(detail=detail, http_status=code)
    if code is not None and 400 <= code < 500:
        # MarginException, HoldingException, UserException arrive as GeneralException with a 4xx.
        return OrderRejected(f"Kite refused the request: {said}.", detail, code)
    return AmbiguousOrderFailure(detail=detail, http_status=code)


def _translate_aiohttp(exc: BaseException, detail: str) -> BrokerError | None:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        return None
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status == 403:
            return LoginNeeded(detail=detail, http_status=403)
        if exc.status == 429:
            return RateLimited("Kite refused another market-data connection for this account.", detail, 429)
        return BrokerUnavailable("Kite's market-data connection was refused.", detail, exc.status)
    if isinstance(exc, aiohttp.ClientError):
        return BrokerUnavailable("Kite's market-data connection failed.", detail)
    return None
