"""A simulator day made once per process: every later replay of the day gets the frames a fresh day would give."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from desktop.broker.recording import KIND_BINARY, Frame
from desktop.broker.sim.market import Market
from desktop.broker.sim.ticks import encode_frame, ist_epoch
from desktop.cli import sim_day as sim_day_module
from desktop.cli.sim_day import _DayCache, forget_days, sim_day
from desktop.domain import MARKET_OPEN, Segment
from desktop.engine import Workspace
from desktop.engine.replay import ReplayError

DAY = date(2026, 1, 6)
SECONDS = 300
INDICES = {s.spec.index_token: "full" for s in Segment}

Wanted = Callable[[int], dict[int, str]]


def _options(market: Market, n: int, skip: int = 0) -> list[int]:
    return [i.instrument_token for i in market.instruments if i.is_option][skip : skip + n]


def _fresh(wanted: Wanted) -> list[Frame]:
    """The frames as the simulator made them before days were kept: a new market, every packet made now."""
    market = Market(1, DAY)
    t = datetime.combine(DAY, MARKET_OPEN)
    frames = []
    for second in range(SECONDS):
        subscribed = {**INDICES, **wanted(second)}
        packets = [market.tick_packet(token, t, mode) for token, mode in sorted(subscribed.items())]
        frames.append(Frame(float(ist_epoch(t)), KIND_BINARY, encode_frame(packets)))
        t += timedelta(seconds=1)
    return frames


def _kept(wanted: Wanted) -> list[Frame]:
    """The first SECONDS frames of `sim_day`, subscribing per second as `wanted` says (as a replay's feeds do)."""
    frames, _data = sim_day(DAY, Workspace(sessions=()), 1)
    asked = [0]

    def subscribed() -> dict[int, str]:
        asked[0] += 1
        return wanted(asked[0] - 1)

    frames.bind(subscribed)
    out = []
    for frame in frames:
        out.append(frame)
        if len(out) == SECONDS:
            break
    return out


@pytest.fixture(autouse=True)
def _no_day_kept():
    forget_days()
    yield
    forget_days()


def test_a_kept_day_gives_every_replay_the_frames_a_fresh_day_gives_whatever_each_subscribes() -> None:
    market = Market(1, DAY)
    first, second = _options(market, 2), _options(market, 2, skip=7)

    def one(s: int) -> dict[int, str]:  # a replay that buys one contract a minute in, another later
        return {first[0]: "full"} if 60 <= s < 200 else {first[1]: "quote"} if s >= 200 else {}

    def other(s: int) -> dict[int, str]:  # another combination: other strikes and modes, the same seconds
        return (
            {second[0]: "full", first[0]: "full"} if 30 <= s < 150 else {second[1]: "ltp", first[1]: "full"}
        )

    for wanted in (one, other, one, other):  # made, partly made, then all kept
        assert _kept(wanted) == _fresh(wanted)
    [kept] = sim_day_module._CACHE._days.values()
    assert kept.size > 0 and (first[0], "full") in kept.columns


def test_a_kept_days_data_is_the_fresh_days() -> None:
    _, data = sim_day(DAY, Workspace(sessions=()), 1)
    _, again = sim_day(DAY, Workspace(sessions=()), 1)
    forget_days()
    _, fresh = sim_day(DAY, Workspace(sessions=()), 1)
    assert again is data and fresh is not data
    assert (fresh.day, fresh.instruments_csv, fresh.candles) == (data.day, data.instruments_csv, data.candles)


def test_past_its_limit_a_process_keeps_no_further_day_and_drops_a_stale_one() -> None:
    cache = _DayCache(limit=1, stale_s=3600)
    monday = cache.day(1, date(2026, 1, 5))
    monday.packet(265, "full", 0, datetime.combine(date(2026, 1, 5), MARKET_OPEN))  # past the 1-byte limit
    tuesday = cache.day(1, DAY)
    assert not tuesday.keep and cache.day(1, DAY) is not tuesday, "made for each replay, kept nowhere"
    assert cache.day(1, date(2026, 1, 5)) is monday, "the day kept first stays kept"
    packet = tuesday.packet(265, "full", 0, datetime.combine(DAY, MARKET_OPEN))
    assert packet == Market(1, DAY).tick_packet(265, datetime.combine(DAY, MARKET_OPEN), "full")
    assert tuesday.columns == {} and tuesday.size == 0
    cache.stale_s = 0.0  # every kept day unused for longer than this is dropped at the next ask
    assert cache.day(1, DAY).keep


def test_a_weekend_is_refused_in_words() -> None:
    with pytest.raises(ReplayError, match="Saturday"):
        sim_day(date(2026, 1, 10), Workspace(sessions=()), 1)
