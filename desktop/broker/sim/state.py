"""The simulator's state: configuration, accounts with their tokens and books, rate limits and faults.

One `SimState` per simulator instance; nothing is module-global, so several simulators run in one process.
All mutation happens on the simulator's event-loop thread.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from desktop.broker.sim.book import AccountBook, IdSource, SimKiteError, SimOrder
from desktop.broker.sim.clock import MarketClock
from desktop.broker.sim.market import Market

REQUEST_TOKEN_LIFETIME_S = 300.0
DEFAULT_REDIRECT_URL = "http://127.0.0.1:5000/kite/callback"
DEFAULT_FUNDS = Decimal(1_000_000)


@dataclass(frozen=True)
class SimAccount:
    """An account the simulator knows: api key and secret, and the Kite user id behind them."""

    api_key: str
    api_secret: str
    user_id: str = ""
    user_name: str = ""
    funds: Decimal | None = None
    redirect_url: str | None = None

    @classmethod
    def parse(cls, text: str) -> SimAccount:
        """`API_KEY:API_SECRET[:USER_ID]` as given on the command line."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"--account {text!r}: expected API_KEY:API_SECRET[:USER_ID]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


DEMO_ACCOUNTS = (
    SimAccount("UK9394", "secret_A", "UK9394", "Demo Trader A"),
    SimAccount("UK1234", "secret_B", "UK1234", "Demo Trader B"),
)


def default_start(today: date | None = None) -> datetime:
    """09:15 of today, or of the last weekday when today is a weekend: a demo works at any real hour."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 15)


@dataclass(frozen=True)
class SimConfig:
    """How to run a simulator: accounts, market seed and clock, funds and limits."""

    accounts: tuple[SimAccount, ...] = DEMO_ACCOUNTS
    seed: int = 1
    speed: float = 1.0
    start: datetime | None = None
    redirect_url: str = DEFAULT_REDIRECT_URL
    funds: Decimal = DEFAULT_FUNDS
    rate_limits: bool = True
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    # Freeze quantities (units per order) that differ from exchange_rules.FREEZE_LIMITS, by underlying.
    freeze_overrides: Mapping[str, int] | None = None
    # Seconds an order call (place, modify, cancel) is answered late: the network's round trip to Kite, which a
    # local simulator has none of (benches; the order is in the book meanwhile, as at Kite).
    order_reply_delay: float = 0.0


class SlidingWindow:
    """At most `limit` events in any `period` seconds of real time."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._events: deque[float] = deque()

    def has_room(self, now: float) -> bool:
        """True when one more event at `now` stays within the limit (nothing is counted)."""
        while self._events and now - self._events[0] >= self.period:
            self._events.popleft()
        return len(self._events) < self.limit

    def add(self, now: float) -> None:
        """Counts one event at `now`."""
        self._events.append(now)


def _kite_limits() -> dict[str, list[SlidingWindow]]:
    return {
        "orders": [SlidingWindow(10, 1.0), SlidingWindow(400, 60.0)],
        "quote": [SlidingWindow(1, 1.0)],
        "historical": [SlidingWindow(3, 1.0)],
        "other": [SlidingWindow(10, 1.0)],
    }


@dataclass
class AccountState:
    """One account inside a running simulator."""

    account: SimAccount
    book: AccountBook
    redirect_url: str
    access_token: str | None = None
    public_token: str = ""
    login_time: datetime | None = None
    request_tokens: dict[str, float] = field(default_factory=dict)
    limits: dict[str, list[SlidingWindow]] = field(default_factory=_kite_limits)
    rate_limited_until: float = 0.0
    lose_next_order_reply: str | None = None  # "503" or "drop"
    next_order_lag: float | None = None  # market seconds the lost-reply order stays out of the book
    # Orders placed whose reply was lost, not in the book yet: (market time they appear, form, variety).
    lagging_orders: list[tuple[datetime, dict[str, str], str]] = field(default_factory=list)
    fail_next_request: SimKiteError | None = None
    malformed_replies: dict[str, tuple[str, Any, int]] = field(
        default_factory=dict
    )  # path -> (field, value, times)
    stamp_next_frame: int | None = None  # an exchange timestamp for every packet of the next frame
    sockets: set[Any] = field(default_factory=set)

    @property
    def user_id(self) -> str:
        return self.account.user_id or self.account.api_key


class SimState:
    """Everything one simulator knows, owned by its event-loop thread."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.monotonic = time.monotonic  # real time for token lifetimes and rate limits; tests replace it
        start = config.start or default_start()
        self.clock = MarketClock(start, config.speed)
        self.market = Market(config.seed, self.clock.trading_day)
        prefix = self.clock.trading_day.strftime("%y%m%d")
        self._order_ids = IdSource(prefix, 1)
        self._trade_ids = IdSource("", 10_000_001)
        self.order_listeners: list[Any] = []
        self.accounts: dict[str, AccountState] = {}
        for acc in config.accounts:
            self.add_account(acc)

    def add_account(self, acc: SimAccount) -> AccountState:
        """Registers an account (also while running)."""
        if acc.api_key in self.accounts:
            raise ValueError(f"account {acc.api_key} exists already")
        user_id = acc.user_id or acc.api_key
        book = AccountBook(
            user_id,
            acc.funds if acc.funds is not None else self.config.funds,
            self.market,
            self._order_ids,
            self._trade_ids,
            functools.partial(self._order_updated, acc.api_key),
            self.config.freeze_overrides,
        )
        state = AccountState(acc, book, acc.redirect_url or self.config.redirect_url)
        self.accounts[acc.api_key] = state
        return state

    def _order_updated(self, api_key: str, order: SimOrder) -> None:
        for listener in self.order_listeners:
            listener(api_key, order)

    # ------------------------------------------------------------------ login
    def issue_request_token(self, api_key: str) -> tuple[AccountState, str]:
        acc = self.account(api_key)
        token = secrets.token_hex(16)
        now = self.monotonic()
        acc.request_tokens = {t: exp for t, exp in acc.request_tokens.items() if exp > now}
        acc.request_tokens[token] = now + REQUEST_TOKEN_LIFETIME_S
        return acc, token

    def redeem_request_token(self, api_key: str, request_token: str, checksum: str) -> AccountState:
        import hashlib

        acc = self.accounts.get(api_key)
        if acc is None:
            raise SimKiteError(403, "TokenException", "Invalid `api_key`.")
        expected = hashlib.sha256((api_key + request_token + acc.account.api_secret).encode()).hexdigest()
        expiry = acc.request_tokens.get(request_token)
        if expiry is None or expiry <= self.monotonic():
            acc.request_tokens.pop(request_token, None)
            raise SimKiteError(403, "TokenException", "Token is invalid or has expired.")
        if not secrets.compare_digest(expected, checksum or ""):
            raise SimKiteError(403, "TokenException", "Invalid checksum.")
        del acc.request_tokens[request_token]  # single use
        if acc.access_token is None:  # Kite gives the same token for logins on the same day
            acc.access_token = secrets.token_urlsafe(24)
            acc.public_token = secrets.token_hex(16)
        acc.login_time = self.clock.now()
        return acc

    def account(self, api_key: str) -> AccountState:
        acc = self.accounts.get(api_key)
        if acc is None:
            raise SimKiteError(400, "InputException", "Invalid `api_key`.")
        return acc

    def authenticate(self, header: str | None) -> AccountState:
        """The account of an `Authorization: token api_key:access_token` header, or TokenException."""
        if header and header.startswith("token ") and ":" in header:
            api_key, _, token = header[6:].partition(":")
            acc = self.accounts.get(api_key)
            if acc and acc.access_token and secrets.compare_digest(acc.access_token, token):
                return acc
        raise SimKiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")

    def check_ws_token(self, api_key: str, access_token: str) -> AccountState | None:
        acc = self.accounts.get(api_key)
        if acc and acc.access_token and secrets.compare_digest(acc.access_token, access_token):
            return acc
        return None

    # ------------------------------------------------------------------ limits
    def check_rate(self, acc: AccountState, bucket: str) -> None:
        """Raises Kite's 429 when this account is over a limit (or under a rate_limit fault)."""
        failure, acc.fail_next_request = acc.fail_next_request, None
        if failure is not None:
            raise failure
        now = self.monotonic()
        if acc.rate_limited_until > now:
            raise SimKiteError(429, "NetworkException", "Too many requests")
        if not self.config.rate_limits:
            return
        windows = acc.limits[bucket]
        # A refused request counts against no window: only requests Kite answers use up the limits.
        if not all(w.has_room(now) for w in windows):
            raise SimKiteError(429, "NetworkException", "Too many requests")
        for w in windows:
            w.add(now)

    # ------------------------------------------------------------------ reports
    def describe(self) -> dict[str, Any]:
        """GET /_sim/state: the clock and each account's counts (never a secret or token)."""
        now = self.clock.now()
        return {
            "clock": now.strftime("%Y-%m-%d %H:%M:%S"),
            "speed": self.clock.speed,
            "market_open": self.clock.is_open(now),
            "seed": self.config.seed,
            "rate_limits": self.config.rate_limits,
            "accounts": [
                {
                    "api_key": key,
                    "user_id": acc.user_id,
                    "logged_in": acc.access_token is not None,
                    "orders": len(acc.book.orders),
                    "trades": len(acc.book.trades),
                    "open_positions": sum(1 for leg in acc.book.legs.values() if leg.quantity),
                    "websockets": len(acc.sockets),
                }
                for key, acc in self.accounts.items()
            ],
        }
