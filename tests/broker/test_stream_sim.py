"""Market streams against the simulator: isolation between sessions, reconnects, watchdog, re-login."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from desktop.broker.errors import LoginNeeded
from desktop.broker.login import request_token_by_redirect
from desktop.broker.session import EVENT_LOGGED_IN, EVENT_LOGIN_NEEDED, BrokerEvent
from desktop.broker.stream import MarketStream
from desktop.broker.ticks import QuoteTick
from tests.broker.conftest import login, wait_until

NIFTY, BANKNIFTY, SENSEX = 256265, 260105, 265


class Seen:
    """What one stream delivered: ticks per token and events, collected on its delivery thread."""

    def __init__(self, stream: MarketStream) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[int, int] = {}
        self.events: list[BrokerEvent] = []
        self.threads: set[str] = set()
        stream.add_tick_listener(self.on_ticks)
        stream.add_event_listener(self.events.append)

    def on_ticks(self, ticks: list[QuoteTick]) -> None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            for t in ticks:
                self.tokens[t.instrument_token] = self.tokens.get(t.instrument_token, 0) + 1

    def count(self, token: int) -> int:
        with self.lock:
            return self.tokens.get(token, 0)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def test_three_sessions_of_two_accounts_stream_their_own_subscriptions_and_closing_one_spares_the_rest(
    hub, sim
) -> None:
    a, b = login(hub, sim, "UK9394"), login(hub, sim, "UK1234")
    a1, a2, b1 = hub.open_session(a), hub.open_session(a), hub.open_session(b)
    s_a1, s_a2, s_b1 = hub.open_stream(a1), hub.open_stream(a2), hub.open_stream(b1)
    seen = {name: Seen(s) for name, s in (("a1", s_a1), ("a2", s_a2), ("b1", s_b1))}
    s_a1.subscribe([NIFTY], "ltp")
    s_a2.subscribe([BANKNIFTY], "full")
    s_b1.subscribe([SENSEX, NIFTY])
    assert wait_until(lambda: seen["a1"].count(NIFTY) >= 3 and seen["a2"].count(BANKNIFTY) >= 3
                      and seen["b1"].count(SENSEX) >= 3)  # fmt: skip
    # each stream sees only what it subscribed to, though a1 and a2 share one connection
    assert set(seen["a1"].tokens) == {NIFTY}
    assert set(seen["a2"].tokens) == {BANKNIFTY}
    assert set(seen["b1"].tokens) == {SENSEX, NIFTY}
    assert hub.feed("UK9394") is not hub.feed("UK1234")
    assert sim.describe()["accounts"][0]["websockets"] == 1  # one connection for UK9394's two sessions
    # delivery is off the caller's thread, on each stream's own thread
    assert all(n.startswith("kitedesk-stream-") for v in seen.values() for n in v.threads)
    assert seen["a1"].threads.isdisjoint(seen["a2"].threads)

    s_a1.close()
    before_a2, before_b1 = seen["a2"].count(BANKNIFTY), seen["b1"].count(SENSEX)
    assert wait_until(
        lambda: seen["a2"].count(BANKNIFTY) > before_a2 + 3 and seen["b1"].count(SENSEX) > before_b1 + 3
    )
    assert s_a2.connected and s_b1.connected
    for s in (s_a2, s_b1):
        s.close()
    for sess in (a1, a2, b1):
        sess.close()


def test_dropped_socket_is_back_and_resubscribed_within_five_seconds(hub, sim) -> None:
    a = login(hub, sim, "UK9394")
    session = hub.open_session(a)
    stream = hub.open_stream(session)
    seen = Seen(stream)
    stream.subscribe([NIFTY, BANKNIFTY], "quote")
    assert wait_until(lambda: seen.count(BANKNIFTY) >= 2)
    feed = hub.feed("UK9394")
    assert feed is not None and feed.connections == 1
    assert sim.inject_fault({"kind": "drop_ws", "api_key": "UK9394"})["sockets_dropped"] == 1
    assert wait_until(lambda: feed.connections == 2, timeout=5)
    after = seen.count(BANKNIFTY)
    assert wait_until(lambda: seen.count(BANKNIFTY) >= after + 3, timeout=5)  # resubscribed
    assert "stream_disconnected" in seen.kinds()
    stream.close()
    session.close()


def test_stalled_socket_is_reconnected_by_the_watchdog(hub, sim) -> None:
    a = login(hub, sim, "UK9394")
    session = hub.open_session(a)
    stream = hub.open_stream(session)
    seen = Seen(stream)
    stream.subscribe([NIFTY])
    assert wait_until(lambda: seen.count(NIFTY) >= 2)
    feed = hub.feed("UK9394")
    assert feed is not None
    sim.inject_fault({"kind": "stall_ws", "api_key": "UK9394", "seconds": 30})
    # silence_timeout is 2 s in these tests; the stall lasts 30 s, so only a reconnect brings ticks back
    assert wait_until(lambda: feed.connections == 2, timeout=5)
    after = seen.count(NIFTY)
    assert wait_until(lambda: seen.count(NIFTY) >= after + 3, timeout=5)
    stream.close()
    session.close()


def test_expired_token_asks_only_that_accounts_sessions_to_log_in_and_relogin_rebuilds_the_stream(
    hub, sim
) -> None:
    a, b = login(hub, sim, "UK9394"), login(hub, sim, "UK1234")
    events: dict[str, list[BrokerEvent]] = {"a1": [], "a2": [], "b1": []}
    a1 = hub.open_session(a, on_event=events["a1"].append)
    a2 = hub.open_session(a, on_event=events["a2"].append)
    b1 = hub.open_session(b, on_event=events["b1"].append)
    s_a, s_b = hub.open_stream(a1), hub.open_stream(b1)
    seen_a, seen_b = Seen(s_a), Seen(s_b)
    s_a.subscribe([NIFTY])
    s_b.subscribe([NIFTY])
    assert wait_until(lambda: seen_a.count(NIFTY) >= 2 and seen_b.count(NIFTY) >= 2)

    sim.inject_fault({"kind": "expire_token", "api_key": "UK9394"})
    with pytest.raises(LoginNeeded) as info:
        a1.orders()
    assert "log in again" in info.value.trader_message
    assert wait_until(lambda: a2.login_needed and EVENT_LOGIN_NEEDED in [e.kind for e in events["a2"]])
    with pytest.raises(LoginNeeded):
        a2.positions()  # refused locally, without a call to Kite
    assert [e.kind for e in events["b1"]] == []
    assert not b1.login_needed and isinstance(b1.orders(), list)
    before_b = seen_b.count(NIFTY)
    assert wait_until(lambda: seen_b.count(NIFTY) > before_b + 3)  # B's stream never noticed

    login(hub, sim, "UK9394")
    assert EVENT_LOGGED_IN in [e.kind for e in events["a1"]]
    assert isinstance(a1.orders(), list) and isinstance(a2.orders(), list)
    before_a = seen_a.count(NIFTY)
    assert wait_until(lambda: seen_a.count(NIFTY) > before_a + 3, timeout=5)  # rebuilt with the new token
    for s in (s_a, s_b):
        s.close()
    for sess in (a1, a2, b1):
        sess.close()


def test_a_watched_instrument_is_kept_as_its_latest_value_not_delivered_and_is_decoded_on_read(
    hub, sim
) -> None:
    a = login(hub, sim, "UK9394")
    sess = hub.open_session(a)
    stream = hub.open_stream(sess)
    seen = Seen(stream)
    stream.subscribe([NIFTY], "full")
    stream.watch([BANKNIFTY], "full")
    feed = hub.feed("UK9394")
    assert wait_until(lambda: seen.count(NIFTY) >= 3 and stream.last_tick(BANKNIFTY) is not None)
    assert seen.count(BANKNIFTY) == 0  # watched: never handed to the listeners
    first = stream.last_tick(BANKNIFTY)
    assert first is not None and first.instrument_token == BANKNIFTY and first.last_price > 0
    assert first.mode == "full" and first.exchange_timestamp is not None
    assert stream.last_tick(BANKNIFTY) is first  # the same packet is decoded once
    assert wait_until(lambda: stream.last_tick(BANKNIFTY).exchange_timestamp > first.exchange_timestamp)
    state = sim.describe()
    assert state["accounts"][0]["websockets"] == 1
    assert feed is not None and feed.packets_received > seen.count(NIFTY)
    assert stream.last_tick(SENSEX) is None  # not subscribed: nothing, even if the feed had it
    stream.unsubscribe([BANKNIFTY])
    assert stream.last_tick(BANKNIFTY) is None
    stream.close()
    sess.close()


def test_a_feed_thread_listener_gets_ticks_on_the_feeds_thread_with_the_frames_arrival_time(hub, sim) -> None:
    import time

    a = login(hub, sim, "UK1234")
    sess = hub.open_session(a)
    stream = hub.open_stream(sess)
    got: list[tuple[str, float, float]] = []

    def direct(ticks: list[QuoteTick]) -> None:
        got.append((threading.current_thread().name, getattr(ticks, "received", -1.0), time.perf_counter()))

    stream.add_tick_listener(direct, on_feed_thread=True)
    stream.subscribe([SENSEX], "quote")
    assert wait_until(lambda: len(got) >= 3)
    assert {name for name, _, _ in got} == {"kitedesk-feed-UK1234"}
    assert all(0 <= now - received < 1.0 for _, received, now in got)
    stream.remove_tick_listener(direct)
    count = len(got)
    assert wait_until(lambda: stream.last_tick(SENSEX) is not None)
    before = stream.last_tick(SENSEX)
    assert wait_until(lambda: stream.last_tick(SENSEX) is not before)
    assert len(got) == count  # removed: no more calls
    stream.close()
    sess.close()


def test_wake_ups_asked_for_while_a_frame_is_handed_out_run_once_every_stream_has_it(hub, sim) -> None:
    """Agents are woken after the whole frame is handed out, so none competes with the feed for the GIL while
    another session still waits for its part."""
    a = login(hub, sim, "UK1234")
    sessions = [hub.open_session(a) for _ in range(2)]
    streams = [hub.open_stream(s) for s in sessions]
    lock = threading.Lock()
    events: list[tuple[str, int, float]] = []

    def listener(n: int):
        def on_ticks(ticks) -> None:
            with lock:
                events.append(("got", n, ticks.received))
            ticks.wake_after(lambda: events.append(("wake", n, ticks.received)))

        return on_ticks

    for n, stream in enumerate(streams):
        stream.add_tick_listener(listener(n), on_feed_thread=True)
        stream.subscribe([SENSEX], "quote")
    assert wait_until(lambda: sum(kind == "wake" for kind, _, _ in events) >= 8)
    for stream in streams:
        stream.close()
    for s in sessions:
        s.close()
    frames: dict[float, list[tuple[str, int]]] = {}
    for kind, n, received in events:
        frames.setdefault(received, []).append((kind, n))
    both = [seq for seq in frames.values() if len(seq) == 4]
    assert len(both) >= 3
    for seq in both:
        assert [kind for kind, _ in seq] == ["got", "got", "wake", "wake"], seq
        assert sorted(n for _, n in seq[2:]) == [0, 1]


def test_a_login_after_the_profiles_name_was_edited_reaches_the_sessions_already_running(hub, sim) -> None:
    # Saving an edited profile (its name, its redirect URL) made a new account link: the next login's token went
    # to it, and the running sessions stayed on "login needed" until restarted.
    profile = login(hub, sim, "UK9394")
    running = hub.open_session(profile)
    sim.inject_fault({"kind": "expire_token", "api_key": "UK9394"})
    with pytest.raises(LoginNeeded):
        running.orders()
    edited = replace(profile, display_name="My main account", redirect_url="http://127.0.0.1:5679/back")
    hub.login(edited, request_token_by_redirect(edited))
    assert not running.login_needed and isinstance(running.orders(), list)
    assert hub.account(edited).profile.display_name == "My main account"
    assert hub.account(replace(edited, api_key="another_app")) is not hub.account(edited), "a new connection"
    running.close()
