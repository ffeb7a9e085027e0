"""Ticks stamped far from the market clock, or going back, are dropped and counted at the feed (issue 16, defect
6): a tick stamped in 2106 froze every session's clock. Unit level, the feed's frame path, and the simulator's
hostile frame over a real socket."""

from __future__ import annotations

import struct
import time
from datetime import datetime, timedelta
from decimal import Decimal

from desktop.broker.stream import AccountFeed
from desktop.broker.tick_times import TickTimeGuard
from desktop.broker.ticks import QuoteTick, pack_frame
from desktop.domain import SessionKey
from tests.broker.conftest import login, wait_until
from tests.broker.test_stream_routing import NoLink
from tests.simkit import fault

NOW = datetime(2026, 1, 8, 9, 31, 0)
NIFTY = 256265  # an index: its full packet (32 bytes) carries the exchange timestamp
EPOCH_2106 = 0xFFFFFFFF  # the largest 32-bit epoch, 2106-02-07: what a corrupt packet decodes to


def quote(t: datetime | None, token: int = NIFTY) -> QuoteTick:
    return QuoteTick(token, "full", False, Decimal("25000"), exchange_timestamp=t)


def test_the_guard_drops_ticks_far_from_the_clock_or_going_back_and_counts_them() -> None:
    guard = TickTimeGuard("UK9394", clock=lambda: NOW)
    now = guard.market_time()
    assert guard.accept(quote(NOW - timedelta(seconds=2)), now)
    assert not guard.accept(quote(datetime(2106, 2, 7, 11, 58, 15)), now)
    assert not guard.accept(quote(datetime(1970, 1, 1, 5, 30)), now)
    assert not guard.accept(quote(NOW - timedelta(seconds=10)), now), "8 s before the instrument's last tick"
    assert guard.accept(quote(NOW - timedelta(seconds=5)), now), "3 s back: within a few seconds"
    assert guard.accept(quote(NOW - timedelta(minutes=3), token=NIFTY + 1), now), (
        "a thin option: its own time"
    )
    assert guard.accept(quote(None), now), "no exchange time: it moves no clock"
    assert guard.dropped == 3


def test_without_a_clock_only_going_back_is_judged() -> None:
    guard = TickTimeGuard("UK9394")
    assert guard.accept(quote(NOW), None)
    assert not guard.accept(quote(NOW - timedelta(minutes=1)), None) and guard.dropped == 1


def _index_packet(token: int, epoch: int) -> bytes:
    return struct.pack(">8I", token, 2500000, 2500000, 2500000, 2500000, 2500000, 0, epoch)


def test_the_feed_hands_on_the_good_ticks_of_a_frame_and_counts_the_bad_one_for_each_stream() -> None:
    feed = AccountFeed(NoLink(), clock=lambda: NOW)  # type: ignore[arg-type]
    stream = feed.open_stream(SessionKey("UK9394", "aaaa"))
    other = feed.open_stream(SessionKey("UK9394", "bbbb"))
    got: list[QuoteTick] = []
    stream.add_tick_listener(got.extend, on_feed_thread=True)
    try:
        stream.subscribe([NIFTY])
        other.subscribe([NIFTY + 1])
        good = int((NOW - datetime(1970, 1, 1, 5, 30)).total_seconds())
        feed._on_frame(
            pack_frame([_index_packet(NIFTY, EPOCH_2106), _index_packet(NIFTY, good)]), time.perf_counter()
        )
        assert [t.exchange_timestamp for t in got] == [NOW]
        assert (feed.bad_time_ticks, stream.bad_time_ticks, other.bad_time_ticks) == (1, 1, 0)
    finally:
        stream.close()
        other.close()


def test_a_hostile_frame_from_the_simulator_never_reaches_a_stream(sim) -> None:
    from desktop.broker.hub import BrokerHub
    from desktop.broker.profiles import SecretStore
    from tests.broker.conftest import SIM_SECRETS

    secrets = SecretStore()
    for user, secret in SIM_SECRETS.items():
        secrets.set_api_secret(user, secret)
    hub = BrokerHub(secrets, feed_options={"silence_timeout": 2.0}, clock=sim.state.clock.now)
    session = hub.open_session(login(hub, sim, "UK9394"))
    stream = hub.open_stream(session)
    stamps: list[datetime] = []
    stream.add_tick_listener(
        lambda batch: stamps.extend(t.exchange_timestamp for t in batch), on_feed_thread=True
    )
    try:
        stream.subscribe([NIFTY], "full")
        assert wait_until(lambda: len(stamps) >= 2)
        fault(sim, kind="stamp_next_frame", api_key="UK9394")
        assert wait_until(lambda: stream.bad_time_ticks == 1)
        seen = len(stamps)
        assert wait_until(lambda: len(stamps) >= seen + 2), "the frames after it are handed on"
        assert all(t is not None and t.year == 2026 for t in stamps)
    finally:
        stream.close()
        session.close()
        hub.close()
