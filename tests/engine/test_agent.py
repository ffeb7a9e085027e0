"""SegmentAgent's thread: order updates and commands before queued ticks; a failure stays in its agent."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from desktop.domain import Mode, Order, OrderStatus, OrderType, Segment, SessionKey, Side, Tick
from desktop.engine.agent import SegmentAgent, StopAgent
from desktop.engine.logs import SessionLogs
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.engine.workspace import OnStop
from tests.engine.traders import enter

KEY = SessionKey.new("UK9394")


@dataclass
class _Ctx:
    key: SessionKey = KEY
    sending: None = None  # no `SendGate`: nothing waits for a burst's entries


@dataclass
class RecordingTrader:
    """The few things an agent calls on its trader, recording the order of calls (unit level)."""

    segment: Segment
    log: object
    ctx: _Ctx = field(default_factory=_Ctx)
    calls: list[str] = field(default_factory=list)
    fail_on_ticks: bool = False
    changed: bool = True
    holding: object = None
    order_rows: dict = field(default_factory=dict)
    fill_rows: list = field(default_factory=list)
    bar_ends: datetime | None = None
    mode: Mode = Mode.PAPER

    def snapshot(self, state: AgentState, failure: str | None = None) -> SegmentSnapshot:
        return SegmentSnapshot(self.segment, state, failure)

    def on_ticks(self, ticks: list[Tick]) -> None:
        if self.fail_on_ticks:
            raise ZeroDivisionError("strategy bug")
        self.calls.append("ticks")

    def on_order(self, order: Order) -> None:
        self.calls.append("order")

    def on_fill(self, fill: object) -> None:
        self.calls.append("fill")

    def cancel_open_entries(self, then_exit: str | None = None) -> None:
        self.calls.append("cancel_entries")

    def stopping(self) -> None:
        self.calls.append("stopping")

    def flat(self) -> bool:
        return True

    def protected_at_broker(self) -> bool:
        return False


def _order() -> Order:
    return Order(
        "1",
        KEY,
        Mode.PAPER,
        "NFO",
        "NIFTY2611325000CE",
        Side.SELL,
        65,
        OrderType.MARKET,
        OrderStatus.COMPLETE,
    )


def _ticks() -> list[Tick]:
    return [Tick(256265, Decimal("25000"), datetime(2026, 1, 8, 10, 0))]


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return bool(predicate())


def test_order_update_is_handled_before_ticks_queued_ahead_of_it(tmp_path: Path, qapp) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    trader = RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY))
    release = threading.Event()
    agent = SegmentAgent(trader, lambda t: release.wait(5), lambda a: None)  # type: ignore[arg-type]
    agent.start()
    try:
        for _ in range(50):
            agent.post_ticks(_ticks())
        agent.post_order(_order())
        release.set()
        assert _wait(lambda: len(trader.calls) == 51)
        assert trader.calls[0] == "order" and trader.calls.count("ticks") == 50
    finally:
        agent.post_command(StopAgent(OnStop.KEEP))
        assert agent.wait(5000)
        logs.close()
    assert agent.state is AgentState.STOPPED


def test_exception_fails_only_its_agent_with_the_traceback_in_its_log(tmp_path: Path, qapp) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    bad = RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY), fail_on_ticks=True)
    good = RecordingTrader(Segment.BANKNIFTY, logs.for_segment(Segment.BANKNIFTY))
    states: list[tuple[Segment, AgentState]] = []
    agents = [
        SegmentAgent(t, lambda t: None, lambda a: states.append((a.segment, a.state))) for t in (bad, good)
    ]  # type: ignore[arg-type]
    for agent in agents:
        agent.start()
    try:
        for agent in agents:
            agent.post_ticks(_ticks())
        assert _wait(lambda: agents[0].state is AgentState.FAILED and "ticks" in good.calls)
        assert agents[1].state is AgentState.RUNNING
        agents[1].post_ticks(_ticks())
        assert _wait(lambda: good.calls.count("ticks") == 2), "the other agent keeps working"
        assert "ZeroDivisionError: strategy bug" in (agents[0].failure or "")
        assert agents[0].view.snapshot.state is AgentState.FAILED
    finally:
        agents[1].post_command(StopAgent(OnStop.KEEP))
        for agent in agents:
            assert agent.wait(5000)
        logs.close()
    text = logs.path_for(Segment.NIFTY).read_text(encoding="utf-8")
    assert "Traceback" in text and "ZeroDivisionError: strategy bug" in text
    assert "Traceback" not in logs.path_for(Segment.BANKNIFTY).read_text(encoding="utf-8")
    assert (Segment.NIFTY, AgentState.FAILED) in states


def test_stop_cancels_pending_entries_and_ends_the_thread(tmp_path: Path, qapp) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    trader = RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY))
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)  # type: ignore[arg-type]
    agent.start()
    agent.post_command(StopAgent(OnStop.SQUARE_OFF))
    assert agent.wait(5000)
    logs.close()
    assert trader.calls == ["cancel_entries", "stopping"] and agent.state is AgentState.STOPPED


def test_only_a_tick_that_may_lead_to_an_order_wakes_the_agent(tmp_path: Path, qapp) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    trader = RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY))
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)  # type: ignore[arg-type]
    index = Segment.NIFTY.spec.index_token

    def tick(token: int, t: datetime | None) -> Tick:
        return Tick(token, Decimal("25000"), t, 0, 0)

    inside = datetime(2026, 1, 8, 10, 0, 30)
    assert agent._decides([tick(index, inside)])  # no bar yet: nothing known, wake
    agent._bar_ends = datetime(2026, 1, 8, 10, 1)
    assert not agent._decides([tick(index, inside)])  # inside the forming minute: bar and clock only
    assert agent._decides([tick(index, datetime(2026, 1, 8, 10, 1))])  # closes the bar: the strategy decides
    assert agent._decides([tick(index, None)])
    assert agent._decides([tick(index, inside), tick(12345, inside)])  # the held option: stops and targets
    logs.close()


def test_a_tick_that_does_not_wake_the_agent_is_still_handled_within_a_publish_period(
    tmp_path: Path, qapp
) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    trader = RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY))
    trader.bar_ends = datetime(2026, 1, 8, 10, 1)
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)  # type: ignore[arg-type]
    agent.start()
    try:
        deadline = time.monotonic() + 5
        while agent.state is not AgentState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        agent.post_ticks(
            [Tick(Segment.NIFTY.spec.index_token, Decimal("25000"), datetime(2026, 1, 8, 10, 0, 5), 0, 0)]
        )
        agent.post_ticks(
            [Tick(Segment.NIFTY.spec.index_token, Decimal("25001"), datetime(2026, 1, 8, 10, 0, 6), 0, 0)]
        )
        deadline = time.monotonic() + 2
        while agent.ticks_processed < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.ticks_processed == 2 and trader.calls.count("ticks") == 2
    finally:
        agent.requestInterruption()
        agent.wait(5000)
        logs.close()


def test_a_deciding_tick_posted_during_a_frame_asks_the_feed_for_its_wake_up(tmp_path: Path) -> None:
    logs = SessionLogs(tmp_path, KEY, "t", Mode.PAPER)
    agent = SegmentAgent(
        RecordingTrader(Segment.NIFTY, logs.for_segment(Segment.NIFTY)), lambda t: None, lambda a: None
    )  # type: ignore[arg-type]
    index = Segment.NIFTY.spec.index_token
    wakes: list = []
    agent._bar_ends = datetime(2026, 1, 8, 10, 1)
    agent.post_ticks([Tick(index, Decimal("25000"), datetime(2026, 1, 8, 10, 0, 5), 0, 0)], 1.0, wakes.append)
    assert wakes == []  # inside the minute: no wake-up asked for
    agent.post_ticks([Tick(index, Decimal("25001"), datetime(2026, 1, 8, 10, 1), 0, 0)], 1.0, wakes.append)
    assert wakes == [agent._wake] and agent.backlog == 2  # queued at once, woken when the feed runs it
    logs.close()


def test_a_live_square_off_whose_exit_is_refused_late_leaves_the_position_under_a_new_stop(
    make, qapp
) -> None:
    # The agent used to end 2.5 s after a square-off began. An exit refused after that (RMS, market protection)
    # left the position at the broker with its stop already cancelled, and no one watching it.
    trader, gateway, _ = make()  # LIVE
    enter(trader, gateway, "200")
    assert trader.protected_at_broker()  # held under its resting stop
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)
    agent.start()
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING)
        agent.post_command(StopAgent(OnStop.SQUARE_OFF))
        assert _wait(lambda: gateway.placed[-1].reason == "square_off")
        assert (
            gateway.cancelled == ["O2"] and not trader.protected_at_broker()
        )  # stop cancelled, exit working
        time.sleep(3.0)  # past the old 2.5 s
        assert agent.isRunning(), "still waiting for its exit"
        exit_order = next(o for o in gateway.orders() if o.order_id == "O3")
        agent.post_order(replace(exit_order, status=OrderStatus.REJECTED, status_message="RMS: margin"))
        assert agent.wait(5000), "protected again: the agent ends"
        stop = gateway.placed[-1]
        assert (stop.order_type, stop.quantity, stop.reason) == (OrderType.SL, 195, "protective_stop")
        assert trader.holding is not None and trader.protected_at_broker()
        assert "the square-off did not complete: 195" in trader.log.path.read_text()
    finally:
        agent.requestInterruption()
        agent.wait(5000)


def test_a_live_stop_that_keeps_positions_waits_for_an_entry_it_could_not_cancel_and_protects_its_fill(
    make, qapp
) -> None:
    # Ctrl-C while an entry was on its way: its cancel came too late ("being processed or is complete"), the agent
    # ended at once, and the entry filled with no stop and no one recording its fill.
    from desktop.domain import Fill, OptionRight
    from desktop.engine.strategy.base import EnterPosition
    from tests.engine.traders import T0

    trader, gateway, _ = make()  # LIVE
    trader.strategy.pending_entry = OptionRight.CE  # as after the strategy's own EnterPosition
    trader.act([EnterPosition(OptionRight.CE, "test")])
    entry = gateway.placed[-1]
    gateway.refuse_cancel = True
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)
    agent.start()
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING)
        agent.post_command(StopAgent(OnStop.KEEP))
        time.sleep(1.0)
        assert agent.isRunning(), "waiting for the entry it could not cancel"
        agent.post_fill(Fill("F1", "O1", entry.key, entry.mode, entry.exchange, entry.tradingsymbol, Side.BUY,
                             entry.quantity, Decimal("200"), T0))  # fmt: skip
        assert agent.wait(5000), "filled and protected: the agent ends"
        stop = gateway.placed[-1]
        assert (stop.order_type, stop.quantity, stop.reason) == (
            OrderType.SL,
            entry.quantity,
            "protective_stop",
        )
        assert trader.holding is not None and trader.protected_at_broker()
    finally:
        agent.requestInterruption()
        agent.wait(5000)


def test_a_live_stop_that_keeps_positions_waits_for_an_exit_in_flight_and_records_its_fill(
    make, qapp
) -> None:
    # Ctrl-C just after an exit had cancelled the stop and sent its sale: the agent ended at once, the sale's fill
    # was never recorded (the session's P&L short of the broker's), and had it not filled, nothing protected it.
    from desktop.domain import Fill
    from desktop.engine.strategy.base import ExitPosition
    from tests.engine.traders import T0

    trader, gateway, store = make()  # LIVE
    enter(trader, gateway, "200")
    trader.strategy.exits.exit_pending = True
    trader.act([ExitPosition("signal_exit")])
    sale = gateway.placed[-1]
    assert sale.reason == "signal_exit" and gateway.cancelled == ["O2"]
    agent = SegmentAgent(trader, lambda t: None, lambda a: None)
    agent.start()
    try:
        assert _wait(lambda: agent.state is AgentState.RUNNING)
        agent.post_command(StopAgent(OnStop.KEEP))
        time.sleep(1.0)
        assert agent.isRunning(), "waiting for the exit in flight"
        agent.post_fill(Fill("F2", "O3", sale.key, sale.mode, sale.exchange, sale.tradingsymbol, Side.SELL,
                             sale.quantity, Decimal("210"), T0))  # fmt: skip
        assert agent.wait(5000), "flat: the agent ends"
        assert trader.holding is None and trader.realised == Decimal("1950.00")
        fills = store.fills.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
        assert [f.fill_id for f in fills] == ["F1", "F2"]
    finally:
        agent.requestInterruption()
        agent.wait(5000)
