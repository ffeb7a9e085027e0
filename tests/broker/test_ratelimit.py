"""Per-account rate limits: exact counts with an injected clock, and isolation between accounts."""

from __future__ import annotations

import threading
import time

import pytest

from desktop.broker.errors import RateLimited
from desktop.broker.ratelimit import AccountLimiters, BucketSpec, CallKind


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_eleventh_order_in_one_second_waits_a_tenth_of_a_second() -> None:
    clock = FakeClock()
    limiter = AccountLimiters(clock=clock, sleep=clock.sleep).for_account("UK9394")
    waits = [limiter.acquire(CallKind.ORDER) for _ in range(10)]
    assert waits == [0.0] * 10
    assert limiter.acquire(CallKind.ORDER) == pytest.approx(1.0)
    assert clock.now == pytest.approx(1001.0)


def test_no_more_than_400_orders_in_any_minute() -> None:
    clock = FakeClock()
    limiter = AccountLimiters(clock=clock, sleep=clock.sleep).for_account("UK9394")
    sent_at = []
    for _ in range(401):
        limiter.acquire(CallKind.ORDER, timeout=120)
        sent_at.append(clock.now)
    start = sent_at[0]
    assert sum(1 for t in sent_at if t < start + 60.0) == 400
    assert sent_at[400] >= start + 60.0
    # and never more than 10 in any one second
    for i in range(len(sent_at) - 10):
        assert sent_at[i + 10] - sent_at[i] >= 1.0 - 1e-9


def test_quote_limit_is_one_per_second_and_separate_from_orders() -> None:
    clock = FakeClock()
    limiter = AccountLimiters(clock=clock, sleep=clock.sleep).for_account("UK9394")
    assert limiter.acquire(CallKind.QUOTE) == 0.0
    assert limiter.acquire(CallKind.ORDER) == 0.0  # orders have their own budget
    assert limiter.acquire(CallKind.QUOTE) == pytest.approx(1.0)


def test_historical_allows_three_per_second() -> None:
    clock = FakeClock()
    limiter = AccountLimiters(clock=clock, sleep=clock.sleep).for_account("UK9394")
    assert [limiter.acquire(CallKind.HISTORICAL) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(CallKind.HISTORICAL) == pytest.approx(1.0)


def test_acquire_raises_rate_limited_when_the_wait_exceeds_the_timeout_and_reserves_nothing() -> None:
    clock = FakeClock()
    limiter = AccountLimiters(clock=clock, sleep=clock.sleep).for_account("UK9394")
    limiter.acquire(CallKind.QUOTE)
    with pytest.raises(RateLimited) as info:
        limiter.acquire(CallKind.QUOTE, timeout=0.5)
    assert "UK9394" in info.value.trader_message
    # the refused call took no slot: the next one still waits exactly one second
    assert limiter.acquire(CallKind.QUOTE, timeout=2) == pytest.approx(1.0)


def test_sessions_of_one_account_share_a_limiter_and_other_accounts_do_not_wait() -> None:
    clock = FakeClock()
    limiters = AccountLimiters(clock=clock, sleep=clock.sleep)
    assert limiters.for_account("UK9394") is limiters.for_account("UK9394")
    for _ in range(10):
        limiters.for_account("UK9394").acquire(CallKind.ORDER)
    assert limiters.for_account("UK1234").acquire(CallKind.ORDER) == 0.0
    assert limiters.for_account("UK9394").acquire(CallKind.ORDER) > 0.0


def test_two_registries_never_share_state() -> None:
    clock = FakeClock()
    a = AccountLimiters(clock=clock, sleep=clock.sleep)
    b = AccountLimiters(clock=clock, sleep=clock.sleep)
    a.for_account("UK9394").acquire(CallKind.QUOTE)
    assert b.for_account("UK9394").acquire(CallKind.QUOTE) == 0.0


def test_concurrent_threads_never_exceed_the_limit_with_a_real_clock() -> None:
    limits = {CallKind.ORDER: (BucketSpec(5, 0.2),)}
    limiter = AccountLimiters(limits=limits).for_account("UK9394")
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire(CallKind.ORDER, timeout=5)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 20
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.2 - 0.01
