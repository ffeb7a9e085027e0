"""The account dispatcher (engine/dispatch.py): decisions on the feed's thread, what may block on the agent's.

Unit level: real `SegmentTrader`s (strategy, risk, store) and real `SegmentAgent` threads, a recording gateway in
place of the broker; the test's own thread plays the account feed's thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.domain import Mode, OptionRight, OrderRole, Segment, Side, Tick
from desktop.engine import agent as agent_module
from desktop.engine.agent import Decided, RunOnAgent, SegmentAgent, StopAgent
from desktop.engine.decisions import Decision, FrameCommit, ReadyEntry
from desktop.engine.dispatch import AccountDispatcher
from desktop.engine.probes import LatencyProbe
from desktop.engine.snapshots import AgentState
from desktop.engine.strategy.base import Action, EnterPosition
from desktop.engine.trader import SegmentTrader
from desktop.engine.workspace import OnStop
from desktop.store import StoreWriteError
from tests.engine.traders import T0

NEXT_BAR = T0 + timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _short_stop_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agents stop (`_stop`, after each test's checks) with their entries still working at the recording
    gateway, which fills nothing: a stop that keeps positions waits `SQUARE_OFF_WAIT` (2.5 s) for such an entry to
    settle. None of these tests is about that wait (tests/engine/test_agent.py is): 0.1 s here."""
    monkeypatch.setattr(agent_module, "SQUARE_OFF_WAIT", 0.1)


def _entering(trader: SegmentTrader, before: Callable[[], None] = lambda: None) -> None:
    """The trader's strategy asks for a CE entry on every closed bar (after `before()`)."""

    def on_bar(bar: object) -> list[Action]:
        before()
        trader.strategy.pending_entry = OptionRight.CE  # type: ignore[attr-defined]
        return [EnterPosition(OptionRight.CE, "test")]

    trader.strategy.on_bar = on_bar  # type: ignore[method-assign]


def _index(trader: SegmentTrader, seconds: int, price: str = "25012.40") -> list[Tick]:
    return [Tick(trader.segment.spec.index_token, Decimal(price), T0 + timedelta(seconds=seconds))]


def _wait(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.005)
    return bool(predicate())


def _agent(trader: SegmentTrader) -> SegmentAgent:
    """A started, dispatched agent whose ticks the dispatcher decides (its trader is loaded already)."""
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)
    agent.dispatched = True
    agent.start()
    assert _wait(lambda: agent.state is AgentState.RUNNING and not agent._self_run)
    return agent


def _stop(*agents: SegmentAgent) -> None:
    for agent in agents:
        if agent.isRunning():
            agent.post_command(StopAgent(OnStop.KEEP))
    for agent in agents:
        assert agent.wait(5000)


def test_the_dispatcher_decides_on_its_thread_and_the_agent_sends_the_entry(make, qapp) -> None:
    trader, gateway, _store = make(Mode.PAPER)
    _entering(trader)
    sent_on: list[int] = []
    place = gateway.place
    gateway.place = lambda intent: (sent_on.append(threading.get_ident()), place(intent))[1]  # type: ignore[method-assign]
    trader.entries.observer = probe = LatencyProbe()
    agent = _agent(trader)
    dispatcher = AccountDispatcher("UK9394")
    try:
        dispatcher.hand(agent, _index(trader, 5), time.perf_counter())
        dispatcher.hand(agent, _index(trader, 60), time.perf_counter())  # closes the 10:00 bar: an entry
        assert _wait(lambda: len(gateway.placed) == 1)
        assert agent.ticks_decided == 2 and agent.ticks_here == 0, "both ticks decided on the dispatcher"
        assert len(probe.decided) == 1, "the risk check ran on the dispatcher"
        agent_thread: list[int] = []
        agent.run_on_thread(lambda t: agent_thread.append(threading.get_ident()))
        assert _wait(lambda: agent_thread)
        assert sent_on == agent_thread != [threading.get_ident()], (
            "the order went out from the segment's thread"
        )
        assert gateway.placed[0].role is OrderRole.ENTRY and gateway.placed[0].side is Side.BUY
        assert _wait(lambda: not agent._self_run), (
            "the agent hands its ticks back once it has run the decision"
        )
    finally:
        _stop(agent)


def test_a_second_entry_decided_on_a_view_a_tick_old_is_never_sent(make, qapp) -> None:
    trader, gateway, _store = make(Mode.PAPER)
    trader.market_time = T0
    first = trader.entries.ready(EnterPosition(OptionRight.CE, "test"), on_dispatcher=True)
    assert first is not None and first.checked
    # The same decision made again on a view that did not show the first entry yet (the dispatcher's view may be a
    # tick old): a second intent, checked, handed to the agent after the first.
    again = replace(first, intent=replace(first.intent, intent_id="second-intent"))
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)
    agent.start()
    try:
        agent._post(Decided(Decision([first])))
        agent._post(Decided(Decision([again])))
        assert _wait(lambda: len(gateway.placed) >= 1)
        agent.run_on_thread(lambda t: None)
        time.sleep(0.2)
        assert [i.intent_id for i in gateway.placed] == [first.intent.intent_id], "one entry, never a second"
        assert trader.ctx.risk.open_positions == 1, "the refused one did not free the entry on its way"
    finally:
        _stop(agent)
    text = trader.log.path.read_text(encoding="utf-8")
    assert "an entry decided on a view a tick old is not sent" in text


def test_ticks_of_a_busy_agent_wait_in_its_queue_in_order_and_are_decided_there(make, qapp) -> None:
    trader, gateway, _store = make(Mode.PAPER)
    _entering(trader)
    agent = _agent(trader)
    dispatcher = AccountDispatcher("UK9394")
    busy, release = threading.Event(), threading.Event()
    try:
        agent.post_command(RunOnAgent(lambda t: (busy.set(), release.wait(5))))  # a slow REST call, say
        assert busy.wait(5)
        started = time.monotonic()
        dispatcher.hand(agent, _index(trader, 5), time.perf_counter())
        dispatcher.hand(agent, _index(trader, 60), time.perf_counter())
        assert time.monotonic() - started < 0.5, "the dispatcher never waits for a busy agent"
        assert agent.ticks_decided == 0 and gateway.placed == []
        release.set()
        assert _wait(lambda: len(gateway.placed) == 1), "the agent decided its queued ticks itself, in order"
        assert _wait(lambda: agent.ticks_here == 2)
        assert _wait(lambda: not agent._self_run)
        dispatcher.hand(agent, _index(trader, 65), time.perf_counter())
        # Its entry is working (the broker has not filled it): the agent watches it on each tick, as before.
        assert _wait(lambda: agent.ticks_here == 3) and agent.ticks_decided == 0
    finally:
        release.set()
        _stop(agent)


def test_a_strategy_exception_on_the_dispatcher_fails_only_its_segment(make, qapp) -> None:
    bad, _, _ = make(Mode.PAPER)
    good, good_gateway, _ = make(Mode.PAPER, segment=Segment.BANKNIFTY, itm_offset=100)
    _entering(bad, before=lambda: 1 / 0)
    _entering(good)
    agents = [_agent(bad), _agent(good)]
    dispatcher = AccountDispatcher("UK9394")
    try:
        for agent in agents:
            dispatcher.hand(agent, _index(agent.trader, 5), time.perf_counter())
        for agent in agents:
            price = "25012.40" if agent.segment is Segment.NIFTY else "60040"
            dispatcher.hand(agent, _index(agent.trader, 60, price), time.perf_counter())
        assert _wait(lambda: agents[0].state is AgentState.FAILED and len(good_gateway.placed) == 1)
        assert agents[1].state is AgentState.RUNNING
        assert "ZeroDivisionError" in (agents[0].failure or "")
        dispatcher.hand(agents[0], _index(bad, 61), time.perf_counter())  # a failed segment is left alone
        assert agents[0].backlog == 0
    finally:
        _stop(*agents)
    text = bad.log.path.read_text(encoding="utf-8")
    assert "Traceback" in text and "ZeroDivisionError" in text
    assert "Traceback" not in good.log.path.read_text(encoding="utf-8")


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_decision_over_its_budget_moves_its_segment_to_its_own_thread(make, qapp) -> None:
    trader, gateway, _store = make(Mode.PAPER)
    _entering(trader, before=lambda: _busy(0.008))
    agent = _agent(trader)
    dispatcher = AccountDispatcher("UK9394", budget_s=0.005)
    try:
        dispatcher.hand(agent, _index(trader, 5), time.perf_counter())
        assert agent.alone is None, "a cheap decision stays on the dispatcher"
        dispatcher.hand(agent, _index(trader, 60), time.perf_counter())
        assert agent.alone is not None and "budget is 5 ms" in agent.alone
        assert _wait(lambda: len(gateway.placed) == 1), "the decision itself still counts"
        assert _wait(lambda: "own thread" in agent.view.snapshot.note), "said on the segment's panel"
        decided = agent.ticks_decided
        dispatcher.hand(agent, _index(trader, 70), time.perf_counter())
        assert _wait(lambda: agent.ticks_here == 1) and agent.ticks_decided == decided, (
            "decided on its own thread"
        )
        assert dispatcher.moved and "NIFTY" in dispatcher.moved[0]
    finally:
        _stop(agent)
    assert "runs on its own thread from now on" in trader.log.path.read_text(encoding="utf-8")


def test_a_slow_decision_during_which_the_garbage_collector_ran_does_not_move_its_segment(make) -> None:
    import gc

    trader, _gateway, _store = make(Mode.PAPER)
    _entering(trader, before=lambda: (gc.collect(), _busy(0.008)))
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)  # its thread not started: the test steps it
    agent.state, agent._self_run, agent.dispatched = AgentState.RUNNING, False, True
    dispatcher = AccountDispatcher("UK9394", budget_s=0.005)
    dispatcher.hand(agent, _index(trader, 5), time.perf_counter())
    dispatcher.hand(agent, _index(trader, 60), time.perf_counter())
    assert agent.alone is None and dispatcher.moved == []
    assert dispatcher.cpu_s > 0.005, "the call was slow, the collector's pause counted as the reason"


def test_a_decisions_log_lines_are_queued_and_written_by_the_agent(make) -> None:
    trader, gateway, _store = make(Mode.PAPER)
    _entering(trader)
    trader.ctx.risk.kill("a test halt")  # every entry refused: one line each
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)  # its thread not started: the test steps it
    agent.state, agent._self_run, agent.dispatched = AgentState.RUNNING, False, True
    dispatcher = AccountDispatcher("UK9394")
    dispatcher.hand(agent, _index(trader, 5), time.perf_counter())
    dispatcher.hand(agent, _index(trader, 60), time.perf_counter())
    path = trader.log.path
    assert "entry refused by risk" not in path.read_text(encoding="utf-8"), "no file write on the dispatcher"
    assert any("entry refused by risk" in msg for _, msg, _, _ in agent.held_lines)
    agent._step_inbox(wait=False)
    assert "entry refused by risk: session halted (a test halt)" in path.read_text(encoding="utf-8")
    assert not agent.held_lines and gateway.placed == []


def test_the_entries_decided_on_one_frame_share_one_durable_commit_before_their_orders(make, qapp) -> None:
    first, gateway, store = make(Mode.PAPER)
    second, second_gateway, _ = make(Mode.PAPER, segment=Segment.BANKNIFTY, store=store, itm_offset=100)
    for trader in (first, second):
        _entering(trader)
    agents = [_agent(first), _agent(second)]
    dispatcher = AccountDispatcher("UK9394")
    batches = store._db.batches
    try:
        for agent in agents:
            dispatcher.hand(agent, _index(agent.trader, 5), time.perf_counter())
        wakes: list[Callable[[], None]] = []  # one frame: the agents are woken once it is all decided
        for agent in agents:
            price = "25012.40" if agent.segment is Segment.NIFTY else "60040"
            dispatcher.hand(agent, _index(agent.trader, 60, price), time.perf_counter(), wakes.append, wakes)
        commit = dispatcher._commits[id(store)]
        for wake in wakes:
            wake()
        assert _wait(lambda: len(gateway.placed) == 1 and len(second_gateway.placed) == 1)
        assert commit.transactions == 1, "both intents in one durable transaction"
        assert store._db.batches - batches >= 1
        # RecordingGateway.place asserts that each intent was journaled before its order was sent.
    finally:
        _stop(*agents)


def test_a_frame_commit_commits_every_waiting_intent_at_once_and_an_intent_added_late_alone(make) -> None:
    trader, _, store = make(Mode.PAPER)
    intents = [
        trader.intent("NFO", f"NIFTY2611325{n}00CE", Side.BUY, 65, "entry", OrderRole.ENTRY) for n in range(3)
    ]
    commit = FrameCommit(store)
    durable = [commit.add(i, T0) for i in intents[:2]]
    durable[1]()
    saved = {
        i.intent_id
        for i in store.intents.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    }
    assert {i.intent_id for i in intents[:2]} <= saved and commit.transactions == 1
    durable[0]()  # already committed with the other: no second transaction
    assert commit.transactions == 1
    commit.commit(intents[2], T0)  # never added to a group: committed alone, still before its order
    saved = {
        i.intent_id
        for i in store.intents.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    }
    assert intents[2].intent_id in saved and commit.transactions == 2


def test_a_started_frame_commit_is_led_elsewhere_and_its_agents_woken_only_once_it_is_on_disk(make) -> None:
    trader, _, store = make(Mode.PAPER)
    intents = [
        trader.intent("NFO", f"NIFTY2611325{n}00CE", Side.BUY, 65, "entry", OrderRole.ENTRY) for n in range(2)
    ]
    leads: list[Callable[[], object]] = []
    woken: list[str] = []
    commit = FrameCommit(store, leads.append)
    durable = [commit.add(i, T0) for i in intents]
    commit.wake_after(lambda: woken.append("agent"))

    def saved() -> set[str]:
        rows = store.intents.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
        return {i.intent_id for i in rows}

    commit.start()  # the frame is decided (the feed's thread): queued, nothing waited for
    assert len(leads) == 1 and woken == [] and not saved() & {i.intent_id for i in intents}
    leads[0]()  # the store writer's turn: it commits the frame's intents, then wakes the agents
    assert {i.intent_id for i in intents} <= saved() and woken == ["agent"]
    for make_durable in durable:
        make_durable()  # each agent finds its intent on disk
    assert commit.transactions == 1
    commit.wake_after(lambda: woken.append("late"))  # registered after: woken at once
    assert woken == ["agent", "late"]


def test_a_frame_commit_the_store_refuses_wakes_its_agents_with_the_stores_error(make) -> None:
    trader, _, store = make(Mode.PAPER)
    intent = trader.intent("NFO", "NIFTY2611325000CE", Side.BUY, 65, "entry", OrderRole.ENTRY)
    leads: list[Callable[[], object]] = []
    woken: list[str] = []
    commit = FrameCommit(store, leads.append)
    durable = commit.add(intent, T0)
    commit.wake_after(lambda: woken.append("agent"))
    store._db._failure = StoreWriteError("the disk is full (a test)")  # the store refuses writes for a while
    store._db._retry_at = time.monotonic() + 60
    commit.start()
    assert leads == [] and woken == ["agent"], "nothing queued: the agent is woken at once, to be refused"
    with pytest.raises(StoreWriteError, match="the disk is full"):
        durable()  # its order is not sent


def test_a_ready_entry_of_a_halted_segment_is_not_sent_and_frees_its_risk_count(make) -> None:
    trader, gateway, _ = make(Mode.PAPER)
    ready = trader.entries.ready(EnterPosition(OptionRight.CE, "test"), on_dispatcher=True)
    assert isinstance(ready, ReadyEntry) and trader.ctx.risk.open_positions == 1
    trader.cancel_open_entries("kill")  # a kill came between the decision and its turn on the agent
    trader.entries.send(ready)
    assert gateway.placed == [] and trader.ctx.risk.open_positions == 0


_CRASH_BETWEEN_COMMIT_AND_SEND = """
import os, sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from desktop.domain import Mode, OptionRight, SessionKey, Segment, Tick
from desktop.engine.decisions import FrameCommit, ReadyEntry
from desktop.engine.logs import SessionLogs
from desktop.engine.params import parse_params
from desktop.engine.risk import RiskManager
from desktop.engine.strategy.base import EnterPosition
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy
from desktop.engine.trader import SegmentTrader, TraderContext
from desktop.store import Store
from tests.engine.traders import T0, RecordingGateway, _book

home, session_id = Path(sys.argv[1]), sys.argv[2]
params = parse_params({"segments": ["NIFTY"], "lots": 1, "stop_loss": 7, "itm_offset": 150, "mode": "live"},
                      confirm_live=True)
key = SessionKey("UK9394", session_id)
store = Store.open(home)
store.sessions.record_session(key, label="t", params={}, mode=Mode.LIVE, state="running", started_at=T0)

class DiesOnSend(RecordingGateway):
    def place(self, intent):
        os._exit(9)  # the process is killed here: the intent committed, the order not sent

ctx = TraderContext(key, "t", params, store, DiesOnSend(key, Mode.LIVE, store), RiskManager(params), lambda *a: None)
logs = SessionLogs(home, key, "t", Mode.LIVE)
trader = SegmentTrader(ctx, Segment.NIFTY, ItmMomentumStrategy(params, Segment.NIFTY), logs.for_segment(Segment.NIFTY))
trader.load(_book(), [], None)
trader.strategy.on_bar = lambda bar: [EnterPosition(OptionRight.CE, "test")]
token = Segment.NIFTY.spec.index_token
trader.decide([Tick(token, Decimal("25012.40"), T0 + timedelta(seconds=5))])
decision = trader.decide([Tick(token, Decimal("25012.40"), T0 + timedelta(seconds=60))])
entry = decision.actions[0]
assert isinstance(entry, ReadyEntry) and entry.checked
entry.commit = FrameCommit(store).add(entry.intent, trader.market_time)
print(entry.intent.intent_id, flush=True)
trader.act(decision.actions)  # the agent's turn: commit, then send (the process dies in place)
print("sent", flush=True)
"""


def test_a_process_killed_between_the_frames_commit_and_the_send_leaves_the_intent_for_recovery(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from desktop.domain import SessionKey
    from desktop.store import Store

    key = SessionKey.new("UK9394")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_BETWEEN_COMMIT_AND_SEND, str(tmp_path), key.session_id],
        capture_output=True, text=True, cwd=root, timeout=120,
    )  # fmt: skip
    assert child.returncode == 9, child.stderr
    intent_id = child.stdout.split()[0]
    assert "sent" not in child.stdout
    store = Store.open(tmp_path)  # the next run
    try:
        unfilled = store.intents.unfilled(broker_id=key.broker_id, session_id=key.session_id)
    finally:
        store.close()
    # What a restart reconciles: the intent is on disk, with the session's tag to look it up by at the broker.
    assert [(i.intent_id, i.tag) for i in unfilled] == [(intent_id, key.order_tag)]


def test_a_bursts_entry_goes_before_a_held_fills_bookkeeping_and_a_kill_is_never_held(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Entries first (engine/writer.py `SendGate`): while a frame's entry is on its way, another agent's fill waits
    # (bounded: SEND_WAIT per burst, made long here so the order is seen, not raced); a kill ends the wait at once.
    from desktop.domain import Fill
    from desktop.engine import writer as writer_module
    from desktop.engine.agent import Kill
    from desktop.engine.writer import StoreWriter

    monkeypatch.setattr(writer_module, "SEND_WAIT", 5.0)
    monkeypatch.setattr(writer_module, "SEND_STALE", 10.0)
    first, gateway, store = make(Mode.PAPER)
    second, second_gateway, _ = make(Mode.PAPER, segment=Segment.BANKNIFTY, store=store, itm_offset=100)
    writer = StoreWriter(store.deferred)
    for trader in (first, second):
        trader.ctx = replace(trader.ctx, sending=writer.sends, commit_soon=writer.lead)
    events: list[str] = []
    go = threading.Event()
    place = gateway.place

    def slow_place(intent):  # the entry's request on its way until `go`
        events.append("entry sending")
        go.wait(5)
        events.append("entry sent")
        return place(intent)

    gateway.place = slow_place  # type: ignore[method-assign]
    second.on_fill = lambda fill: events.append("fill")  # type: ignore[method-assign]
    second.cancel_open_entries = lambda then_exit=None: events.append("kill")  # type: ignore[method-assign]
    _entering(first)
    agents = [_agent(first), _agent(second)]
    dispatcher = AccountDispatcher("UK9394")

    def fill(n: int) -> Fill:
        return Fill(f"f{n}", f"o{n}", second.ctx.key, Mode.PAPER, "NFO", "BANKNIFTY26JAN60000CE", Side.BUY, 15,
                    Decimal("100"), T0)  # fmt: skip

    try:
        dispatcher.hand(agents[0], _index(first, 5), time.perf_counter())
        wakes: list[Callable[[], None]] = []
        dispatcher.hand(agents[0], _index(first, 60), time.perf_counter(), wakes.append, wakes)  # an entry
        for wake in wakes:
            wake()  # the frame handed out: its intent committed, its agent woken to send
        assert _wait(lambda: "entry sending" in events) and writer.sends.sending
        agents[1].post_fill(fill(1))
        time.sleep(0.2)
        assert events == ["entry sending"], "the fill's bookkeeping went while the entry was on its way"
        go.set()
        assert _wait(lambda: "fill" in events)
        assert events == ["entry sending", "entry sent", "fill"]
        assert _wait(lambda: not writer.sends.sending)
        # Another burst whose entry is never said sent: a fill waits (its segment's ticks stay with its thread
        # meanwhile); ticks that may decide, arriving meanwhile, end the wait (here: its own entry), and so does a kill.
        writer.sends.opened(1)
        _entering(second)
        dispatcher.hand(agents[1], _index(second, 5, "60040"), time.perf_counter())
        agents[1].post_fill(fill(2))
        time.sleep(0.2)
        decided = agents[1].ticks_decided
        dispatcher.hand(agents[1], _index(second, 30, "60040"), time.perf_counter())  # inside the minute
        time.sleep(0.05)
        assert agents[1].ticks_decided == decided, "decided on a view without the fill held by its agent"
        assert events.count("fill") == 1, "the second fill waited for the burst's entry"
        began = time.monotonic()
        dispatcher.hand(agents[1], _index(second, 60, "60040"), time.perf_counter())  # closes a bar: an entry
        assert _wait(lambda: len(second_gateway.placed) == 1 and events.count("fill") == 2, timeout=2.0)
        assert time.monotonic() - began < 2.0 < writer_module.SEND_WAIT, "its own entry was held"
        agents[1].post_fill(fill(3))
        time.sleep(0.2)
        assert events.count("fill") == 2, "the third fill waited for the burst's entry"
        began = time.monotonic()
        agents[1].post_command(Kill("test"))
        assert _wait(lambda: "kill" in events and events.count("fill") == 3, timeout=2.0)
        assert time.monotonic() - began < 2.0 < writer_module.SEND_WAIT, "a kill is never held"
    finally:
        go.set()
        writer.sends.closed()
        _stop(*agents)
        writer.close()


def _held_agent(make, monkeypatch: pytest.MonkeyPatch, wait: float):
    """A dispatched agent whose segment shares a `SendGate` (SEND_WAIT = `wait`, never stale here) and records when
    each fill's bookkeeping ran; returns (agent, trader, gate, handled: fill id -> time.monotonic())."""
    from desktop.engine import writer as writer_module
    from desktop.engine.writer import SendGate

    monkeypatch.setattr(writer_module, "SEND_WAIT", wait)
    monkeypatch.setattr(writer_module, "SEND_STALE", 60.0)
    trader, _, _ = make(Mode.PAPER)
    gate = SendGate()
    trader.ctx = replace(trader.ctx, sending=gate)
    handled: dict[str, float] = {}
    trader.on_fill = lambda fill: handled.setdefault(fill.fill_id, time.monotonic())  # type: ignore[method-assign]
    return _agent(trader), trader, gate, handled


def _fill_of(trader: SegmentTrader, n: int):
    from desktop.domain import Fill

    return Fill(f"f{n}", f"o{n}", trader.ctx.key, Mode.PAPER, "NFO", "NIFTY26JAN25000CE", Side.BUY, 75,
                Decimal("100"), T0)  # fmt: skip


def test_a_fill_that_came_while_its_agent_was_held_is_not_held_again_by_the_next_burst(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entry's fill places its stop: it may wait SEND_WAIT at most for other agents' entries (the position's naked
    # window grows by that bound). A fill that came while its agent was held for one burst was left in the inbox,
    # and held again, a whole SEND_WAIT more, by a burst that began just after (back-to-back frames, or another
    # account's frame): measured here with real hold times (SEND_WAIT made long so the figures are not raced).
    wait = 0.5
    agent, trader, gate, handled = _held_agent(make, monkeypatch, wait)
    # Burst A: an entry on its way whose request is not written within SEND_WAIT (a slow machine).
    first = gate.opened(1)
    on_fill = trader.on_fill

    def next_burst(fill) -> None:  # as the first fill is handled, burst B's entries start
        if fill.fill_id == "f1":
            gate.closed(first)
            gate.opened(1)
        on_fill(fill)

    trader.on_fill = next_burst  # type: ignore[method-assign]
    try:
        agent.post_fill(_fill_of(trader, 1))
        time.sleep(wait / 2)
        posted = time.monotonic()
        agent.post_fill(_fill_of(trader, 2))  # while its agent is held for burst A
        assert _wait(lambda: "f2" in handled, timeout=5 * wait)
        held = handled["f2"] - posted
        assert held < wait, f"a fill waited {held:.3f} s for the bursts' entries (SEND_WAIT {wait} s)"
        assert handled["f1"] <= handled["f2"], "fills handled out of order"
    finally:
        gate.closed()
        _stop(agent)


def test_a_manual_action_posted_while_its_agent_is_held_runs_at_once(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A function run on the agent's thread (a trader's manual exit or stop move: `Session._manual`) never waits
    # behind a burst's entries; posted while its agent was already held (for a fill), it waited out the hold.
    wait = 2.0
    agent, trader, gate, handled = _held_agent(make, monkeypatch, wait)
    gate.opened(1)
    ran = threading.Event()
    try:
        agent.post_fill(_fill_of(trader, 1))
        assert _wait(lambda: agent._holding, timeout=1.0), "the fill was not held"
        began = time.monotonic()
        agent.run_on_thread(lambda t: ran.set())
        assert ran.wait(5)
        took = time.monotonic() - began
        assert took < 0.5 < wait, f"a manual action waited {took:.3f} s behind the burst's entries"
        assert "f1" in handled and handled["f1"] <= time.monotonic()
    finally:
        gate.closed()
        _stop(agent)


def test_a_kill_posted_as_its_agent_begins_a_hold_is_not_held(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race `_poke` names: the kill comes after the agent took its inbox (a fill) and before it says it is holding,
    # so nobody pokes the gate. The hold must still see the kill (`_goes_ahead`) and end at once.
    from desktop.engine.agent import Kill
    from desktop.engine.writer import SendGate

    wait = 2.0
    agent, trader, _, handled = _held_agent(make, monkeypatch, wait)
    killed: list[float] = []
    trader.cancel_open_entries = lambda then_exit=None: killed.append(time.monotonic())  # type: ignore[method-assign]

    class Racing(SendGate):
        posted = 0.0

        @property
        def sending(self) -> bool:  # read by the agent just before it holds
            if not self.posted and threading.current_thread() is not threading.main_thread():
                Racing.posted = time.monotonic()
                agent.post_command(Kill("race"))
            return super().sending

    gate = Racing()
    trader.ctx = replace(trader.ctx, sending=gate)
    gate.opened(1)
    try:
        agent.post_fill(_fill_of(trader, 1))
        assert _wait(lambda: killed, timeout=5.0)
        assert killed[0] - Racing.posted < 0.5 < wait, "the kill waited behind the burst's entries"
        assert handled["f1"] <= killed[0], "the held fill came first in the inbox: handled first"
    finally:
        gate.closed()
        _stop(agent)


def test_many_agents_held_at_once_are_all_let_go_when_the_bursts_entries_are_written(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Eight agents hold their order updates and fills for one burst; the burst's last entry written (`closed`) lets
    # every one of them go at once, each fill handled once and in its agent's order; none waits past SEND_WAIT.
    wait = 1.0
    agent, trader, gate, handled = _held_agent(make, monkeypatch, wait)
    agents, traders, handles = [agent], [trader], [handled]
    for _ in range(7):
        other, _, _ = make(Mode.PAPER)  # (segments of other sessions)
        other.ctx = replace(other.ctx, sending=gate)
        mine: dict[str, float] = {}
        other.on_fill = lambda fill, mine=mine: mine.setdefault(fill.fill_id, time.monotonic())  # type: ignore[method-assign]
        traders.append(other)
        handles.append(mine)
        agents.append(_agent(other))
    first = gate.opened(2)
    try:
        for a, t in zip(agents, traders, strict=True):
            a.post_fill(_fill_of(t, 1))
            a.post_fill(_fill_of(t, 2))
        assert _wait(lambda: all(a._holding for a in agents), timeout=wait / 2), "not all held"
        time.sleep(0.1)
        assert not any(handles), "a fill's bookkeeping went while the burst's entries were on their way"
        gate.closed(first)
        assert all(a._holding for a in agents), "one entry of two written: still held"
        let_go = time.monotonic()
        gate.closed(first)
        assert _wait(lambda: all(len(h) == 2 for h in handles), timeout=wait)
        for h in handles:
            assert h["f1"] <= h["f2"] and h["f2"] - let_go < 0.5 < wait
        assert not gate.sending
        gate.closed(first)  # said once too often: the count stays at zero, the next burst counts from it
        gate.opened(1)
        assert gate.sending
    finally:
        gate.closed()
        _stop(*agents)


def test_a_stop_or_an_interrupted_thread_ends_a_hold_within_send_wait_and_nothing_waits_forever(
    make, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst whose entry is never said sent (its agent failed mid-send): a held agent told to stop stops at once,
    # not after SEND_WAIT; and the gate's bound holds for a thread only asked to end (the process closing).
    wait = 1.0
    agent, trader, gate, handled = _held_agent(make, monkeypatch, wait)
    gate.opened(1)
    try:
        agent.post_fill(_fill_of(trader, 1))
        assert _wait(lambda: agent._holding, timeout=1.0), "the fill was not held"
        began = time.monotonic()
        agent.post_command(StopAgent(OnStop.KEEP))
        assert agent.wait(int(wait * 1000 / 2)), "a stop waited behind the burst's entries"
        assert time.monotonic() - began < 0.5 < wait and "f1" in handled
    finally:
        gate.closed()
        _stop(agent)
    other, _, _ = make(Mode.PAPER)
    other.ctx = replace(other.ctx, sending=gate)
    seen: list[str] = []
    other.on_fill = lambda fill: seen.append(fill.fill_id)  # type: ignore[method-assign]
    held = _agent(other)
    gate.opened(1)
    try:
        held.post_fill(_fill_of(other, 2))
        assert _wait(lambda: held._holding, timeout=1.0), "the fill was not held"
        began = time.monotonic()
        held.requestInterruption()
        assert held.wait(int(wait * 1000 * 2)), "an interrupted agent never ended"
        assert time.monotonic() - began <= wait + 0.5 and seen == ["f2"], "the fill held was lost"
    finally:
        gate.closed()
        _stop(held)


def test_an_entry_said_sent_at_its_write_and_again_on_return_or_failure_is_counted_off_once(
    make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `_enter` says an entry sent when the order lane writes its request (`when_written`) and again when `send`
    # returns or raises (`_Once`): another burst's entry counted at the gate must not be counted off by the second
    # word, and no callback may stay set on the thread for its next POST (an exit, a stop).
    from desktop.broker import order_lane
    from desktop.engine import writer as writer_module
    from desktop.engine.writer import SendGate

    monkeypatch.setattr(
        writer_module, "SEND_STALE", 60.0
    )  # (the traders are made meanwhile: never given up on)
    gate = SendGate()
    gate.opened(1)  # another agent's entry, on its way
    for outcome in (
        "written, then the reply",
        "written, then the connection reset",
        "refused before written",
    ):
        trader, gateway, _ = make(Mode.PAPER)
        trader.ctx = replace(trader.ctx, sending=gate)
        trader.market_time = T0
        place = gateway.place
        tried: list[str] = []

        def lane_place(intent, outcome=outcome, place=place, tried=tried):
            tried.append(outcome)
            assert gate._open == 2, "the entry was not counted as on its way"
            if outcome.startswith("written"):
                order_lane._said_written()  # what `OrderLane` does once the POST is written, before the reply
                assert gate._open == 1, "the entry written was not counted off at its write"
            if outcome != "written, then the reply":
                raise ConnectionError(outcome)
            return place(intent)

        gateway.place = lane_place  # type: ignore[method-assign]
        with contextlib.suppress(ConnectionError):
            trader.act([EnterPosition(OptionRight.CE, "test")])
        assert tried == [outcome], "the entry never reached the broker"
        assert gate._open == 1, f"{outcome}: an entry's two words counted off another burst's entry"
        assert getattr(order_lane._written, "callback", None) is None, (
            "a callback left for the thread's next POST"
        )
    gate.closed()
    assert not gate.sending
