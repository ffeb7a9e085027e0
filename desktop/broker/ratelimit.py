"""Kite's rate limits, per ACCOUNT: sliding windows shared by that account's sessions and nobody else's.

Kite counts requests per api_key/account (KITE.md): orders 10/s and 400/min, quotes 1/s, historical
3/s, everything else 10/s. `AccountLimiters` is a registry the composition root owns and hands to every
`KiteSession`, so two tabs of one account draw from one budget while another account never waits.
`acquire()` blocks until the request may go, or raises `RateLimited` at once when it could not go
within its timeout (it never reserves a slot it will not use).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from desktop.broker.errors import RateLimited


class CallKind(enum.StrEnum):
    """Which of Kite's rate-limit classes a request belongs to."""

    ORDER = "order"  # place / modify / cancel
    QUOTE = "quote"  # quote, ohlc, ltp
    HISTORICAL = "historical"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """At most `count` requests in any `per_seconds` interval."""

    count: int
    per_seconds: float


DEFAULT_LIMITS: dict[CallKind, tuple[BucketSpec, ...]] = {
    CallKind.ORDER: (BucketSpec(10, 1.0), BucketSpec(400, 60.0)),
    CallKind.QUOTE: (BucketSpec(1, 1.0),),
    CallKind.HISTORICAL: (BucketSpec(3, 1.0),),
    CallKind.OTHER: (BucketSpec(10, 1.0),),
}


class _Window:
    """A sliding window: at most `count` sends in any `per_seconds`; guarded by the limiter's lock.

    A sliding log rather than a refilling bucket, because a bucket with a 400 burst lets 600 orders
    through in the first minute when the 10/s limit paces them; the log never exceeds the count.
    """

    def __init__(self, spec: BucketSpec) -> None:
        self.count = spec.count
        self.per = spec.per_seconds
        self.stamps: deque[float] = deque()

    def earliest(self, now: float) -> float:
        """The earliest time >= now at which one more send keeps the window within its count."""
        while self.stamps and self.stamps[0] <= now - self.per:
            self.stamps.popleft()
        t = max(now, self.stamps[-1]) if self.stamps else now
        if len(self.stamps) >= self.count:
            t = max(t, self.stamps[-self.count] + self.per)
        return t


class AccountLimiter:
    """All of one account's rate windows behind one lock; thread-safe."""

    def __init__(
        self,
        broker_id: str,
        limits: dict[CallKind, tuple[BucketSpec, ...]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker_id = broker_id
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        chosen = limits if limits is not None else DEFAULT_LIMITS
        self._windows = {kind: [_Window(s) for s in specs] for kind, specs in chosen.items()}

    def acquire(self, kind: CallKind, timeout: float = 5.0) -> float:
        """Blocks until a `kind` request may be sent; returns the seconds waited, or raises RateLimited."""
        windows = self._windows.get(kind, [])
        with self._lock:
            now = self._clock()
            at = max((w.earliest(now) for w in windows), default=now)
            wait = at - now
            if wait > timeout:
                raise RateLimited(
                    f"Too many {kind.value} requests for account {self.broker_id}: "
                    f"the next one could go in {wait:.1f} s.",
                    detail=f"wait {wait:.3f}s > timeout {timeout:.3f}s",
                )
            # Reserve the slot now so later callers queue behind this one, first come first served.
            for w in windows:
                w.stamps.append(at)
        if wait > 0:
            self._sleep(wait)
        return wait


class AccountLimiters:
    """Registry of one `AccountLimiter` per broker account; owned by the composition root, never global."""

    def __init__(
        self,
        limits: dict[CallKind, tuple[BucketSpec, ...]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._by_account: dict[str, AccountLimiter] = {}

    def for_account(self, broker_id: str) -> AccountLimiter:
        """The limiter every session of `broker_id` shares (created on first use)."""
        with self._lock:
            limiter = self._by_account.get(broker_id)
            if limiter is None:
                limiter = AccountLimiter(broker_id, self._limits, self._clock, self._sleep)
                self._by_account[broker_id] = limiter
            return limiter
