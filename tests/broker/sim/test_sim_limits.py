"""The simulator's per-account rate limits, on a clock the test moves: Kite's figures, exactly."""

from __future__ import annotations

from datetime import datetime

import pytest

from desktop.broker.sim import SimConfig
from desktop.broker.sim.book import SimKiteError
from desktop.broker.sim.state import AccountState, SimState


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited() -> tuple[SimState, Clock]:
    state = SimState(SimConfig(start=datetime(2026, 1, 8, 9, 30), rate_limits=True))
    clock = Clock()
    state.monotonic = clock
    return state, clock


def calls_allowed(state: SimState, acc: AccountState, bucket: str, attempts: int) -> int:
    """How many of `attempts` back-to-back calls get through; each refusal must be Kite's 429."""
    allowed = 0
    for _ in range(attempts):
        try:
            state.check_rate(acc, bucket)
            allowed += 1
        except SimKiteError as err:
            assert (err.status, err.error_type) == (429, "NetworkException")
    return allowed


@pytest.mark.parametrize(("bucket", "per_second"), [("orders", 10), ("quote", 1), ("historical", 3)])
def test_each_bucket_allows_kites_figure_per_second(limited, bucket: str, per_second: int) -> None:
    state, clock = limited
    acc = state.accounts["UK9394"]
    assert calls_allowed(state, acc, bucket, per_second + 5) == per_second
    clock.now += 0.999
    assert calls_allowed(state, acc, bucket, 1) == 0
    clock.now += 0.001
    assert calls_allowed(state, acc, bucket, per_second + 5) == per_second


def test_no_more_than_400_orders_in_any_minute(limited) -> None:
    state, clock = limited
    acc = state.accounts["UK9394"]
    placed = 0
    for _ in range(45):  # ten a second, each second within the per-second limit
        placed += calls_allowed(state, acc, "orders", 10)
        clock.now += 1.0
    assert placed == 400
    clock.now = 1000.0 + 59.5
    assert calls_allowed(state, acc, "orders", 10) == 0
    # The refused calls used up nothing: once the first second leaves the minute, ten more go through.
    clock.now = 1000.0 + 60.0
    assert calls_allowed(state, acc, "orders", 12) == 10


def test_one_accounts_limit_never_slows_another(limited) -> None:
    state, _ = limited
    a, b = state.accounts["UK9394"], state.accounts["UK1234"]
    assert calls_allowed(state, a, "quote", 3) == 1
    assert calls_allowed(state, b, "quote", 3) == 1
    assert calls_allowed(state, a, "orders", 10) == 10  # quotes and orders are separate buckets


def test_limits_switched_off_refuse_nothing() -> None:
    state = SimState(SimConfig(start=datetime(2026, 1, 8, 9, 30), rate_limits=False))
    assert calls_allowed(state, state.accounts["UK9394"], "orders", 50) == 50
