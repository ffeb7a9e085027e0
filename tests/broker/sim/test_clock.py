"""The simulator's market clock: speed, continuity, the close, market hours."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest

from desktop.broker.sim.clock import MarketClock


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def make_clock(start: datetime, speed: float = 1.0) -> tuple[MarketClock, FakeMonotonic]:
    mono = FakeMonotonic()
    return MarketClock(start, speed, monotonic=mono), mono


def test_clock_starts_at_start_and_runs_at_its_speed() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 9, 15), speed=60)
    assert clock.now() == datetime(2026, 1, 8, 9, 15)
    mono.value += 1.5
    assert clock.now() == datetime(2026, 1, 8, 9, 16, 30)
    assert clock.speed == 60
    assert clock.trading_day == date(2026, 1, 8)


def test_speed_change_keeps_time_continuous() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 10, 0), speed=10)
    mono.value += 6
    before = clock.now()
    clock.set_speed(1)
    assert clock.now() == before == datetime(2026, 1, 8, 10, 1)
    mono.value += 6
    assert clock.now() == datetime(2026, 1, 8, 10, 1, 6)


def test_clock_freezes_at_the_close_of_its_day() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 15, 29, 50), speed=5)
    mono.value += 1
    assert clock.now() == datetime(2026, 1, 8, 15, 29, 55)
    mono.value += 3600
    assert clock.now() == datetime(2026, 1, 8, 15, 30)
    assert not clock.is_open()


def test_advance_jumps_forward_but_not_past_the_close() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 9, 15))
    clock.advance(90)
    assert clock.now() == datetime(2026, 1, 8, 9, 16, 30)
    mono.value += 10
    assert clock.now() == datetime(2026, 1, 8, 9, 16, 40)
    clock.advance(10 * 3600)
    assert clock.now() == datetime(2026, 1, 8, 15, 30)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_clock_started_before_the_open_runs_into_the_session() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 9, 0), speed=60)
    assert not clock.is_open()
    mono.value += 15
    assert clock.now() == datetime(2026, 1, 8, 9, 15)
    assert clock.is_open()


def test_clock_started_after_the_close_stays_at_its_start() -> None:
    clock, mono = make_clock(datetime(2026, 1, 8, 18, 0))
    mono.value += 100
    assert clock.now() == datetime(2026, 1, 8, 18, 0)
    assert not clock.is_open()


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (datetime(2026, 1, 8, 9, 14, 59), False),
        (datetime(2026, 1, 8, 9, 15), True),
        (datetime(2026, 1, 8, 15, 29, 59, 999_999), True),
        (datetime(2026, 1, 8, 15, 30), False),
        (datetime(2026, 1, 9, 10, 0), False),  # another day is not this clock's session
    ],
)
def test_is_open_covers_0915_to_1530_of_the_trading_day(t: datetime, expected: bool) -> None:
    clock, _ = make_clock(datetime(2026, 1, 8, 9, 15))
    assert clock.is_open(t) is expected


@pytest.mark.parametrize("start", [datetime(2026, 1, 10, 10, 0), datetime(2026, 1, 11, 10, 0)])
def test_weekend_start_is_refused_with_a_plain_message(start: datetime) -> None:
    with pytest.raises(ValueError, match="weekend"):
        MarketClock(start)


@pytest.mark.parametrize("speed", [0, -1, float("nan"), float("inf")])
def test_speed_must_be_a_positive_number(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        MarketClock(datetime(2026, 1, 8, 9, 15), speed)
    clock, _ = make_clock(datetime(2026, 1, 8, 9, 15))
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(speed)


def test_real_clock_never_goes_back_while_other_threads_change_speed() -> None:
    clock = MarketClock(datetime(2026, 1, 8, 9, 15), speed=100)
    seen: list[list[datetime]] = [[] for _ in range(3)]

    def read(out: list[datetime]) -> None:
        for _ in range(2000):
            out.append(clock.now())

    def steer() -> None:
        for i in range(300):
            clock.set_speed(1 + i % 50)

    threads = [threading.Thread(target=read, args=(out,)) for out in seen] + [threading.Thread(target=steer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in seen:
        assert all(a <= b for a, b in zip(out, out[1:], strict=False))
    assert max(out[-1] for out in seen) > datetime(2026, 1, 8, 9, 15)
