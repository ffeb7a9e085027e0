"""Session control on the simulator: restart with new parameters, the global kill switch, and a start while
the account is logged out."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import requests
from PySide6.QtCore import QThread

from desktop.domain import Segment
from desktop.engine import Engine, SessionError, SessionState
from tests.e2e.conftest import params, start_session, wait_until


def _running(*sessions) -> bool:
    return all(s.state is SessionState.RUNNING for s in sessions)


def test_restart_with_new_parameters_stops_only_its_own_agents(demo_engine: Engine, qapp) -> None:
    first = demo_engine.open_session("UK9394", "Computer 1")
    lines = []
    first.sig_log_line.connect(lines.append)
    first.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100))
    other = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY", "BANKNIFTY"], lots=3, stop_loss=7,
                          itm_offset=150)  # fmt: skip
    wait_until(qapp, lambda: _running(first, other), 20, "both tabs of UK9394 running")
    other_agents = [other.agent(Segment.NIFTY), other.agent(Segment.BANKNIFTY)]
    with pytest.raises(SessionError, match="stop it before starting"):
        first.start(params(segments=["NIFTY"], lots=2, stop_loss=5, itm_offset=100))

    wait_until(
        qapp,
        lambda: any("LiveAgent-NIFTY-PAPER-UK9394 - INFO - " in line.text for line in lines),
        10,
        "log lines",
    )
    assert all(line.segment == "NIFTY" for line in lines)
    first.stop("square_off")
    assert first.state is SessionState.STOPPED and not first.has_open_position()
    first.start(params(segments=["NIFTY"], lots=2, stop_loss=5, itm_offset=100))
    wait_until(qapp, lambda: first.state is SessionState.RUNNING, 20, "the restarted session running")
    assert other.state is SessionState.RUNNING
    assert [other.agent(Segment.NIFTY), other.agent(Segment.BANKNIFTY)] == other_agents, (
        "the other tab's agents"
    )
    assert all(a.isRunning() for a in other_agents)
    wait_until(
        qapp, lambda: any(o.quantity == 130 for o in first.snapshot().orders), 30, "an order of 2 lots"
    )
    lots3 = {"NIFTY": 195, "BANKNIFTY": 90}
    orders = other.snapshot().orders
    assert all(
        o.quantity == lots3["BANKNIFTY" if o.tradingsymbol.startswith("BANK") else "NIFTY"] for o in orders
    )


def test_global_kill_switch_halts_every_session_and_sessions_started_after_it(
    demo_engine: Engine, qapp
) -> None:
    a = start_session(demo_engine, "UK9394", "A", segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100)
    b = start_session(demo_engine, "UK1234", "B", segments=["SENSEX"], lots=1, stop_loss=5, itm_offset=100)
    wait_until(qapp, lambda: _running(a, b), 20, "both sessions running")
    demo_engine.kill_all("panic button")
    wait_until(
        qapp, lambda: a.state is SessionState.HALTED and b.state is SessionState.HALTED, 10, "both halted"
    )
    wait_until(qapp, lambda: not a.has_open_position() and not b.has_open_position(), 15, "both flat")
    assert "panic button" in a.snapshot().message
    late = start_session(
        demo_engine, "UK9394", "C", segments=["BANKNIFTY"], lots=1, stop_loss=5, itm_offset=100
    )
    wait_until(
        qapp, lambda: late.state is SessionState.HALTED, 20, "a session started after the kill halted too"
    )
    assert demo_engine.kill_reason() == "panic button"
    demo_engine.rearm_kill_switch()  # Trading → Resume trading after Kill all
    assert demo_engine.kill_reason() is None
    resumed = start_session(
        demo_engine, "UK9394", "D", segments=["BANKNIFTY"], lots=1, stop_loss=5, itm_offset=100
    )
    wait_until(
        qapp, lambda: resumed.state is SessionState.RUNNING, 20, "a session started after re-arming trades"
    )
    assert a.state is SessionState.HALTED and b.state is SessionState.HALTED, "the halted ones stay halted"


def test_a_kill_never_waits_behind_a_stop_in_progress(demo_engine: Engine, qapp) -> None:
    # A LIVE square-off may keep its session's stop (and its lock) for 45 s: the global kill halted the sessions
    # one after another, so every session after that one waited for it.
    stopping = start_session(
        demo_engine, "UK9394", "A", segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100
    )
    other = start_session(
        demo_engine, "UK1234", "B", segments=["SENSEX"], lots=1, stop_loss=5, itm_offset=100
    )
    wait_until(qapp, lambda: _running(stopping, other), 20, "both sessions running")
    agent = stopping.agent(Segment.NIFTY)
    assert agent is not None
    held = threading.Event()
    agent.run_on_thread(lambda trader: held.wait(10))  # its square-off, slow: the stop waits for it
    stop = threading.Thread(target=stopping.stop, args=("square_off",))
    stop.start()
    wait_until(qapp, lambda: stopping.state is SessionState.STOPPING, 5, "the stop under way")
    try:
        demo_engine.kill_all("panic button")
        assert stop.is_alive() and not held.is_set(), "the kill came back while the stop was still under way"
        wait_until(qapp, lambda: other.state is SessionState.HALTED, 10, "the other session halted")
    finally:
        held.set()
        stop.join(30)
    assert stopping.state is SessionState.STOPPED


def test_closing_the_engine_stops_its_sessions_side_by_side(tmp_path, qapp) -> None:
    # A LIVE square-off may wait 45 s for its exit: stopped one after another, several added up at quit.
    from desktop.broker.profiles import MemorySecretStore
    from desktop.cli.demo import start_demo
    from tests.e2e.conftest import FEED, START

    engine = Engine(tmp_path / "home", secrets=MemorySecretStore(), feed_options=FEED)
    start_demo(engine, speed=120.0, seed=3, start=START)
    a = start_session(engine, "UK9394", "A", segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100)
    b = start_session(engine, "UK1234", "B", segments=["SENSEX"], lots=1, stop_loss=5, itm_offset=100)
    wait_until(qapp, lambda: _running(a, b), 20, "both sessions running")
    first, second = (a, b) if engine.sessions()[0] is a else (b, a)
    saw: list[bool] = []
    over = (SessionState.STOPPING, SessionState.STOPPED)

    def slow_square_off(trader) -> None:  # type: ignore[no-untyped-def]
        for _ in range(250):  # at most 5 s
            if second.state in over:
                break
            time.sleep(0.02)
        saw.append(second.state in over)

    agent = first.agent(first.params.segments[0])
    assert agent is not None
    agent.run_on_thread(slow_square_off)  # the first session's stop waits for this
    engine.close("square_off")
    assert saw and saw[-1], "the second session began stopping while the first one's was still under way"
    assert a.state is SessionState.STOPPED and b.state is SessionState.STOPPED


def test_a_stop_does_not_wait_long_for_a_segment_still_loading(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    # Stops wait up to 50 s for a LIVE square-off; an agent still loading (or waiting for a login) never takes
    # the stop command and is interrupted after the short wait, as before.
    from desktop.engine import session as session_module

    def loading_until_interrupted(*_a: object) -> None:
        while not QThread.currentThread().isInterruptionRequested():
            time.sleep(0.05)
        raise RuntimeError("loading interrupted")

    monkeypatch.setattr(session_module, "load_segment", loading_until_interrupted)
    session = demo_engine.open_session("UK9394", "Loading")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100))
    stop = threading.Thread(target=session.stop, args=("square_off",))
    stop.start()
    stop.join(20)
    assert not stop.is_alive(), "the stop waited for the long square-off wait"
    assert session.state is SessionState.STOPPED


def test_start_while_logged_out_waits_for_the_login_then_trades(demo_engine: Engine, qapp) -> None:
    sim = demo_engine.simulator
    assert sim is not None
    sim.inject_fault({"kind": "expire_token", "api_key": "UK1234"})
    session = start_session(
        demo_engine, "UK1234", "Computer 2", segments=["NIFTY"], lots=2, stop_loss=3, itm_offset=50
    )
    wait_until(qapp, lambda: session.state is SessionState.LOGIN_NEEDED, 20, "login needed")
    with pytest.raises(SessionError, match="log in to UK1234 first"):
        demo_engine.open_session("UK1234", "Another").start(
            params(segments=["NIFTY"], lots=1, stop_loss=3, itm_offset=50)
        )
    redirect = requests.get(demo_engine.login_url("UK1234"), allow_redirects=False, timeout=5).headers[
        "Location"
    ]
    assert demo_engine.complete_login("UK1234", redirect) == "Demo Trader B"
    wait_until(qapp, lambda: session.state is SessionState.RUNNING, 20, "running after the login")
    wait_until(qapp, lambda: session.snapshot().market_time is not None, 10, "ticks after the login")


class _SlowKeyring:
    """The engine's secret store, with an API-secret read that waits (a keyring asking the desktop to unlock)."""

    def __init__(self, real: object, fail: bool = False) -> None:
        self.real, self.fail = real, fail
        self.release = threading.Event()
        self.threads: list[QThread] = []

    def api_secret(self, user_id: str) -> str:
        self.threads.append(QThread.currentThread())
        if self.fail:
            raise RuntimeError("the keyring is locked")
        self.release.wait(10)
        return self.real.api_secret(user_id)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_start_returns_at_once_its_record_and_keyring_read_done_on_an_agent_thread(
    demo_engine: Engine, qapp
) -> None:
    session = demo_engine.open_session("UK9394", "Slow keyring")
    keyring = _SlowKeyring(session.services.secrets)
    session.services = replace(session.services, secrets=keyring)  # type: ignore[arg-type]
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100))
    # Back on this (the GUI's) thread while the keyring read still waits: the window stays responsive.
    wait_until(qapp, lambda: keyring.threads, 10, "the keyring read")
    assert not keyring.release.is_set() and session.state is SessionState.STARTING
    assert keyring.threads[0] is not qapp.thread(), "the keyring was read on the GUI thread"
    assert keyring.threads[0] is session.agent(Segment.NIFTY), "on the agent's thread"
    record = demo_engine.store.sessions.get(broker_id="UK9394", session_id=session.key.session_id)
    assert record is not None and record.label == "Slow keyring", (
        "the record is durable before the secret is read"
    )
    keyring.release.set()
    wait_until(qapp, lambda: session.state is SessionState.RUNNING, 20, "running once the keyring answered")
    session.stop("square_off")
    assert session.state is SessionState.STOPPED


def test_a_start_whose_keyring_read_fails_leaves_the_session_failed_saying_why(
    demo_engine: Engine, qapp
) -> None:
    session = demo_engine.open_session("UK9394", "Locked keyring")
    session.services = replace(session.services, secrets=_SlowKeyring(session.services.secrets, fail=True))  # type: ignore[arg-type]
    session.start(params(segments=["NIFTY", "BANKNIFTY"], lots=1, stop_loss=5, itm_offset=100))
    wait_until(qapp, lambda: session.state is SessionState.FAILED, 20, "the session failed")
    assert "the keyring is locked" in session.snapshot().message
    session.stop("square_off")
    assert session.state is SessionState.STOPPED
