"""`KiteSession`: one per session (tab), wrapping its own `KiteConnect`; and `AccountLink`, the little
an account's sessions do share: the day's access token and its "login needed" state.

Every reply is checked before anyone reads it (broker/replies.py): a malformed one is logged, counted
(`malformed_replies`) and asked for again, and after `MALFORMED_RETRIES` more a `MalformedReply` is raised,
a `BrokerError` like a network failure: never a `ValueError` in an agent.

A `TokenException` in any session of account A (the client's expiry hook, or our translation of the
error) marks A's link as "login needed": every session of A learns it through its event callback and
refuses further calls with `LoginNeeded` until a new login; sessions of account B never notice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from desktop.broker import replies
from desktop.broker.errors import (
    AmbiguousOrderFailure,
    BrokerError,
    LoginNeeded,
    MalformedReply,
    RateLimited,
    translate,
)
from desktop.broker.instruments import parse_instruments_csv
from desktop.broker.kite_client import new_kite
from desktop.broker.profiles import AccessGrant, Profile, SecretStore
from desktop.broker.ratelimit import AccountLimiter, CallKind
from desktop.domain import SessionKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerEvent:
    """Something a session's owner should know: kind is one of the EVENT_* names below."""

    kind: str
    key: SessionKey
    message: str = ""


EVENT_LOGIN_NEEDED = "login_needed"
EVENT_LOGGED_IN = "logged_in"
EVENT_STREAM_CONNECTED = "stream_connected"
EVENT_STREAM_DISCONNECTED = "stream_disconnected"
EVENT_TICKS_DROPPED = "ticks_dropped"  # ticks stamped far from the market clock were dropped (message: which)

EventSink = Callable[[BrokerEvent], None]


class AccountLink:
    """One account's login state shared by its sessions (and its market feed); thread-safe."""

    def __init__(self, profile: Profile, secrets: SecretStore) -> None:
        self.profile = profile
        self.broker_id = profile.user_id
        self._secrets = secrets
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str | None], None]] = []
        grant = secrets.access(profile.user_id)
        self._token: str | None = grant.access_token if grant else None

    @property
    def access_token(self) -> str | None:
        """The account's current access token, or None while a login is needed."""
        with self._lock:
            return self._token

    @property
    def login_needed(self) -> bool:
        """True until the account has a valid access token."""
        return self.access_token is None

    def add_listener(self, listener: Callable[[str | None], None]) -> None:
        """`listener(token)` is called with the new token after a login, or None when login is needed."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str | None], None]) -> None:
        """Stops calling `listener`."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def mark_login_needed(self, token_seen: str | None = None) -> None:
        """The token died (TokenException, 403 at the ticker): forget it and tell this account's listeners.

        `token_seen` is the token the failing call used: a failure of an old token after a new login must
        not throw the new one away.
        """
        with self._lock:
            if self._token is None or (token_seen is not None and token_seen != self._token):
                return
            self._token = None
            listeners = list(self._listeners)
        self._secrets.drop_access(self.broker_id)
        log.warning("account %s: Kite login expired, login needed", self.broker_id)
        for listener in listeners:
            _safe_call(listener, None)

    def logged_in(self, grant: AccessGrant) -> None:
        """A new login of this account: every session and the feed switch to the new token."""
        if grant.user_id != self.broker_id:
            raise LoginNeeded(f"that login belongs to {grant.user_id}, not {self.broker_id}")
        with self._lock:
            self._token = grant.access_token
            listeners = list(self._listeners)
        for listener in listeners:
            _safe_call(listener, grant.access_token)


T = TypeVar("T")


def _parse_dump(data: Any) -> list[dict[str, Any]]:
    """The raw instruments dump parsed; a dump that does not parse is a malformed reply."""
    if not isinstance(data, bytes | str):
        raise replies.ReplyInvalid("the instruments dump is not text")
    try:
        return parse_instruments_csv(data)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise replies.ReplyInvalid(f"the instruments dump does not parse: {type(e).__name__}: {e}") from None


def _instrument_rows(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise replies.ReplyInvalid("instruments is not a list of rows")
    return data


def _safe_call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # one bad listener must not stop the others
        log.exception("listener failed")


class KiteSession:
    """One session's Kite REST client: own HTTP session, own token copy, per-account rate limits."""

    RATE_LIMIT_RETRIES = 3  # for calls other than orders, which the gateway retries itself
    MALFORMED_RETRIES = 2  # a malformed reply is asked for again this many times, after a short pause
    MALFORMED_PAUSE = 0.2  # seconds before the first retry, doubled before each next

    def __init__(
        self,
        key: SessionKey,
        account: AccountLink,
        limiter: AccountLimiter,
        on_event: EventSink | None = None,
        timeout: float = 7.0,
        limit_wait: float = 5.0,
        kite_factory: Callable[..., Any] = new_kite,
    ) -> None:
        if key.broker_id != account.broker_id:
            raise ValueError("a session's key and account must name the same broker account")
        self.key = key
        self.profile = account.profile
        self.account = account
        self._limiter = limiter
        self._on_event = on_event
        self._limit_wait = limit_wait
        self._closed = False
        self._count_lock = threading.Lock()
        self.malformed_replies = 0  # replies that did not hold what Kite's API says (diagnostics, snapshot)
        # debug=False always: kiteconnect's debug logs print the Authorization header.
        self.kite = kite_factory(
            self.profile.api_key, root=self.profile.api_root, timeout=timeout, debug=False
        )
        self.kite.set_access_token(account.access_token)
        # A closure per session: it names this session's account only (KITE.md: one hook per account).
        self.kite.set_session_expiry_hook(lambda: account.mark_login_needed(self.kite.access_token))
        account.add_listener(self._account_changed)

    @property
    def broker_id(self) -> str:
        """The account this session trades."""
        return self.key.broker_id

    @property
    def login_needed(self) -> bool:
        """True while the account has no valid access token."""
        return self.account.login_needed

    def _account_changed(self, token: str | None) -> None:
        self.kite.set_access_token(token)
        kind = EVENT_LOGGED_IN if token else EVENT_LOGIN_NEEDED
        message = "" if token else LoginNeeded.default_message
        self._emit(kind, message)

    def _emit(self, kind: str, message: str = "") -> None:
        if self._on_event is not None:
            _safe_call(self._on_event, BrokerEvent(kind, self.key, message))

    def call(self, kind: CallKind, method: str, *args: Any, **kwargs: Any) -> Any:
        """Calls `KiteConnect.<method>` under the account's rate limit; raises only our BrokerErrors."""
        attempts = 1 if kind is CallKind.ORDER else 1 + self.RATE_LIMIT_RETRIES
        for attempt in range(attempts):
            try:
                return self._call_once(kind, method, *args, **kwargs)
            except RateLimited:
                if attempt + 1 >= attempts:
                    raise
                time.sleep(0.5 * 2**attempt)  # Kite's 429 means nothing happened: back off and retry
        raise AssertionError("unreachable")

    def _call_once(self, kind: CallKind, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._send(kind, self._limit_wait, method, args, kwargs)

    def _send(
        self, kind: CallKind, limit_wait: float, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One request once its rate slot is free (waiting at most `limit_wait` s for it, else RateLimited)."""
        if self._closed:
            raise BrokerError("this session is closed")
        token = self.account.access_token
        if token is None:
            raise LoginNeeded()
        self._limiter.acquire(kind, timeout=limit_wait)
        try:
            return getattr(self.kite, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one of our errors
            err = translate(exc, secrets=(token,))
            if isinstance(err, LoginNeeded):
                self.account.mark_login_needed(token)
            log.info("%s %s failed: %s", self.broker_id, method, err.detail or err.trader_message)
        # Raised outside the except block so not even __context__ keeps the raw (unscrubbed) exception.
        raise err

    def read(self, kind: CallKind, check: Callable[[Any], T], method: str, *args: Any, **kwargs: Any) -> T:
        """A read (`call`) whose reply must pass `check` (broker/replies.py); a malformed one is logged, counted
        and asked for again, then `MalformedReply`. Reads change nothing at the broker: asking again is safe."""
        for attempt in range(1 + self.MALFORMED_RETRIES):
            data = self.call(kind, method, *args, **kwargs)
            try:
                return check(data)
            except replies.ReplyInvalid as e:
                problem = str(e)
            self.count_malformed()
            last = attempt >= self.MALFORMED_RETRIES
            log.warning(
                "%s %s: Kite's reply does not hold what its API says (%s): %s", self.broker_id, method, problem,
                "giving up for now" if last else "asking again",
            )  # fmt: skip
            if last:
                raise MalformedReply(detail=f"{method}: {problem}")
            time.sleep(self.MALFORMED_PAUSE * 2**attempt)
        raise AssertionError("unreachable")

    def count_malformed(self) -> None:
        """Counts a reply or an order update that did not hold what Kite's API says (any thread)."""
        with self._count_lock:
            self.malformed_replies += 1

    # Read-only calls ---------------------------------------------------------------------------
    def profile_info(self) -> dict[str, Any]:
        """GET /user/profile."""
        return self.read(CallKind.OTHER, replies.profile, "profile")

    def margins(self, segment: str | None = None) -> dict[str, Any]:
        """GET /user/margins."""
        return self.read(CallKind.OTHER, replies.margins, "margins", segment)

    def orders(self) -> list[dict[str, Any]]:
        """GET /orders: the account's order book (every session's orders: filter by tag)."""
        return self.read(CallKind.OTHER, replies.orders, "orders")

    def order_history(self, order_id: str) -> list[dict[str, Any]]:
        """GET /orders/{order_id}."""
        return self.read(CallKind.OTHER, replies.orders, "order_history", order_id)

    def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        """GET /orders/{order_id}/trades."""
        return self.read(CallKind.OTHER, replies.trades, "order_trades", order_id)

    def trades(self) -> list[dict[str, Any]]:
        """GET /trades."""
        return self.read(CallKind.OTHER, replies.trades, "trades")

    def positions(self) -> dict[str, Any]:
        """GET /portfolio/positions."""
        return self.read(CallKind.OTHER, replies.positions, "positions")

    def instruments(self, exchange: str | None = None) -> list[dict[str, Any]]:
        """GET /instruments[/{exchange}] (parsed rows, as kiteconnect's `instruments` gives them).

        The raw dump (`_get`, in the pinned kiteconnect 5.2.2) is parsed by `parse_instruments_csv`:
        kiteconnect's own parser spends ~0.1 ms a row in dateutil, holding the GIL."""
        if not hasattr(self.kite, "_get"):
            return self.read(CallKind.OTHER, _instrument_rows, "instruments", exchange)
        if exchange:
            return self.read(
                CallKind.OTHER, _parse_dump, "_get", "market.instruments", url_args={"exchange": exchange}
            )
        return self.read(CallKind.OTHER, _parse_dump, "_get", "market.instruments.all")

    def ltp(self, *instruments: str) -> dict[str, Any]:
        """GET /quote/ltp."""
        return self.read(CallKind.QUOTE, replies.quotes, "ltp", *instruments)

    def ltp_once(self, *instruments: str) -> dict[str, Any]:
        """GET /quote/ltp asked once: no wait for the account's quote rate (one a second), no retry after a 429 or
        a malformed reply (`ltp` waits and retries). For a look-up that must not hold its caller up (risk's
        margin check of an entry, whose market order would otherwise wait up to seconds behind other
        segments' look-ups): it fails instead, with RateLimited when no quote may be sent now."""
        return replies.quotes(self._send(CallKind.QUOTE, 0.0, "ltp", instruments, {}))

    def quote(self, *instruments: str) -> dict[str, Any]:
        """GET /quote."""
        return self.read(CallKind.QUOTE, replies.quotes, "quote", *instruments)

    def historical_data(
        self, instrument_token: int, from_date: Any, to_date: Any, interval: str
    ) -> list[Any]:
        """GET /instruments/historical/{token}/{interval}."""
        return self.read(
            CallKind.HISTORICAL,
            replies.candles,
            "historical_data",
            instrument_token,
            from_date,
            to_date,
            interval,
        )

    # Order calls (the gateway decides about retries) ------------------------------------------
    def place_order(self, **params: Any) -> str:
        """POST /orders/{variety}: keywords only (5.2.2 moved `tag` behind `algo_id`). A reply without an order id
        is ambiguous (the order may stand): the gateway looks it up by tag, never sends it again blindly."""
        order_id = self.call(CallKind.ORDER, "place_order", **params)
        try:
            return str(replies.order_id(order_id))
        except replies.ReplyInvalid as e:
            self.count_malformed()
            log.warning("%s place_order: Kite's reply holds no order id (%s)", self.broker_id, e)
            raise AmbiguousOrderFailure(
                "Kite sent a reply KiteDesk could not read; checking before retrying.", f"place_order: {e}"
            ) from None

    def place_autoslice_order(self, **params: Any) -> list[tuple[str, str]]:
        """POST /orders/{variety} with autoslice=true: Kite splits an order above the freeze quantity itself.
        Returns each child as (order_id, "") or ("", the error Kite gave for it). A reply that cannot be read is
        ambiguous (the orders may stand): the gateway looks them up by tag."""
        reply = self.call(CallKind.ORDER, "place_autoslice_order", **params)
        try:
            children = reply["children"]
            out: list[tuple[str, str]] = []
            for child in children:
                if child.get("order_id"):
                    out.append((str(child["order_id"]), ""))
                else:
                    error = child.get("error") or {}
                    out.append(("", str(error.get("message") or "refused")))
            if not out:
                raise ValueError("no children")
            return out
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            self.count_malformed()
            log.warning("%s place_autoslice_order: Kite's reply cannot be read (%s)", self.broker_id, e)
            raise AmbiguousOrderFailure(
                "Kite sent a reply KiteDesk could not read; checking before retrying.", f"autoslice: {e}"
            ) from None

    def modify_order(self, **params: Any) -> str:
        """PUT /orders/{variety}/{order_id}."""
        return str(self.call(CallKind.ORDER, "modify_order", **params))

    def cancel_order(self, **params: Any) -> str:
        """DELETE /orders/{variety}/{order_id}."""
        return str(self.call(CallKind.ORDER, "cancel_order", **params))

    def close(self) -> None:
        """Stops listening to the account and closes this session's HTTP connections."""
        self._closed = True
        self.account.remove_listener(self._account_changed)
        session_http = getattr(self.kite, "reqsession", None)
        if session_http is not None:
            session_http.close()
