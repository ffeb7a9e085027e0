"""The snapshot publisher (engine/publisher.py): one thread publishes every agent's snapshot, so an agent whose
ticks the dispatcher decides is not woken twenty times a second only to publish, and its window stays current.

Unit level: real `SegmentTrader`s and `SegmentAgent` threads, a recording gateway in place of the broker; the
test's own thread plays the account feed's thread (as in test_dispatch.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from desktop.domain import Mode, Tick
from desktop.engine.agent import IDLE_WAIT, SegmentAgent, StopAgent
from desktop.engine.dispatch import AccountDispatcher
from desktop.engine.publisher import PUBLISH_EVERY, Publisher
from desktop.engine.snapshots import AgentState
from desktop.engine.trader import SegmentTrader
from desktop.engine.workspace import OnStop
from tests.engine.traders import T0


def _index(trader: SegmentTrader, seconds: int) -> list[Tick]:
    return [Tick(trader.segment.spec.index_token, Decimal("25012.40"), T0 + timedelta(seconds=seconds))]


def _wait(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.005)
    return bool(predicate())


def _counting(agent: SegmentAgent) -> list[int]:
    """Counts the agent thread's passes through its inbox (each one a wake-up, or a wait that timed out)."""
    passes = [0]
    step = agent._step_inbox

    def counted(wait: bool) -> bool:
        passes[0] += 1
        return step(wait)

    agent._step_inbox = counted  # type: ignore[method-assign]
    return passes


def _stop(publisher: Publisher, *agents: SegmentAgent) -> None:
    for agent in agents:
        if agent.isRunning():
            agent.post_command(StopAgent(OnStop.KEEP))
    for agent in agents:
        assert agent.wait(5000)
    assert _wait(lambda: publisher._thread is None), "the publisher's thread ends with its last agent"


def test_decided_ticks_reach_the_snapshot_without_waking_the_agent(make, qapp) -> None:
    trader, _gateway, _store = make(Mode.PAPER)
    publisher = Publisher()
    agent = SegmentAgent(trader, lambda t: None, lambda a: None, publisher)
    agent.dispatched = True
    passes = _counting(agent)
    agent.start()
    dispatcher = AccountDispatcher("UK9394")
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING and not agent._self_run)
        before, rounds = passes[0], publisher.rounds
        started = time.monotonic()
        for second in range(1, 11):  # ten ticks inside one minute, decided on this thread over 0.6 s
            dispatcher.hand(agent, _index(trader, second), time.perf_counter())
            time.sleep(0.06)
        assert agent.ticks_decided == 10 and agent.ticks_here == 0, "every tick decided on the dispatcher"
        assert _wait(
            lambda: agent.view.snapshot.last_tick_time == T0 + timedelta(seconds=10), 4 * PUBLISH_EVERY
        )
        assert agent.view.snapshot.forming_bar is not None and agent.view.snapshot.state is AgentState.RUNNING
        elapsed = time.monotonic() - started
        assert publisher.rounds - rounds >= 5, "the publisher kept publishing meanwhile"
        # Its own wait times out once every IDLE_WAIT at most: without the publisher it woke every PUBLISH_EVERY
        # (12 times over these 0.6 s) to publish.
        assert passes[0] - before <= elapsed / IDLE_WAIT + 1, f"the agent woke {passes[0] - before} times"
    finally:
        _stop(publisher, agent)


def test_ticks_queued_without_a_wake_are_handled_within_a_publishing_round(make, qapp) -> None:
    trader, _gateway, _store = make(Mode.PAPER)
    publisher = Publisher()
    agent = SegmentAgent(
        trader, lambda t: None, lambda a: None, publisher
    )  # not dispatched: it runs its ticks
    agent.start()
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING)
        agent.post_ticks(_index(trader, 1))  # the first tick wakes it (no forming bar yet)
        assert _wait(lambda: agent.ticks_here == 1 and agent.backlog == 0)
        agent.post_ticks(_index(trader, 2))  # inside the forming minute: queued without a wake
        assert agent._decides(_index(trader, 2)) is False
        started = time.monotonic()
        assert _wait(lambda: agent.ticks_here == 2, 1.0)
        assert time.monotonic() - started < IDLE_WAIT / 2, "handled within a round, not at the idle timeout"
        assert _wait(
            lambda: agent.view.snapshot.last_tick_time == T0 + timedelta(seconds=2), 4 * PUBLISH_EVERY
        )
    finally:
        _stop(publisher, agent)


def test_a_snapshot_that_cannot_be_built_fails_only_its_segment(make, qapp) -> None:
    trader, _gateway, _store = make(Mode.PAPER)
    publisher = Publisher()
    agent = SegmentAgent(trader, lambda t: None, lambda a: None, publisher)
    agent.dispatched = True
    agent.start()
    dispatcher = AccountDispatcher("UK9394")
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING and not agent._self_run)

        def broken(state: AgentState, failure: str | None = None) -> object:
            raise ValueError("no snapshot")

        trader.snapshot = broken  # type: ignore[method-assign]
        dispatcher.hand(
            agent, _index(trader, 1), time.perf_counter()
        )  # decided here: the publisher publishes
        assert _wait(lambda: agent.state is AgentState.FAILED)
        assert agent.failure == "segment failed: ValueError: no snapshot"
        assert agent.view.snapshot.state is AgentState.FAILED
    finally:
        _stop(publisher, agent)


def test_an_unread_flat_segment_is_published_once_every_unread_every_and_a_read_or_working_one_each_round(
    make,
) -> None:
    from desktop.engine.agent import UNREAD_EVERY

    trader, _gateway, _store = make(Mode.PAPER)
    agent = SegmentAgent(trader, lambda t: None, lambda a: None, Publisher())  # its thread not started
    agent.state = AgentState.RUNNING

    def changed_a_round_ago(seconds: float = 2 * PUBLISH_EVERY) -> object:
        trader.changed = True
        agent._last_publish = time.monotonic() - seconds
        return agent._view

    before = changed_a_round_ago()
    agent.tend()
    assert agent._view is before, "nobody read it, flat, nothing working: not published this round"
    assert agent.view is before  # a read
    agent.tend()
    assert agent._view is not before, "read lately: published within a round again"
    agent._read_at = 0.0  # its reader went away
    before = changed_a_round_ago(UNREAD_EVERY + 0.01)
    agent.tend()
    assert agent._view is not before, "unread, still published once every UNREAD_EVERY"
    before = changed_a_round_ago()
    trader.orders.working.append(object())  # type: ignore[arg-type]  # an order of its own working
    try:
        agent.tend()
    finally:
        trader.orders.working.clear()
    assert agent._view is not before, "an order working: every round, read or not"
