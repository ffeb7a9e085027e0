"""A session one of whose segments failed did not stop cleanly: the next tab of its label takes it over, so that
segment's position and the fills since are recovered on that start (issue 16: a 30-minute chaos soak saw a LIVE
segment fail at its start, its session then recorded as cleanly "stopped", and a stop-loss fill of its position
never counted in any session's P&L)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from desktop.domain import Fill, Mode, Segment, Side
from desktop.engine import Engine, OnStop
from desktop.engine.snapshots import AgentState
from desktop.store import StoreWriteError
from tests.e2e.conftest import start_session, wait_until


def test_a_session_whose_segment_failed_is_taken_over_by_the_next_tab_of_its_label(
    demo_engine: Engine, qapp
) -> None:
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY", "BANKNIFTY"], lots=1,
                            stop_loss=20, itm_offset=100, mode="LIVE")  # fmt: skip
    states = lambda: [s.state for s in session.snapshot().segments]  # noqa: E731
    wait_until(qapp, lambda: states() == [AgentState.RUNNING] * 2, 30, "both segments running")

    def fail(trader: object) -> None:
        raise RuntimeError("a failure nobody planned for")

    session.agent(Segment.NIFTY).run_on_thread(fail)
    wait_until(qapp, lambda: states()[0] is AgentState.FAILED, 10, "the NIFTY segment failed")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert demo_engine.label_resumes("UK9394", "Computer 3"), "the failed segment's session is taken over"
    assert demo_engine.open_session("UK9394", "Computer 3").key == session.key


def test_a_session_that_stopped_cleanly_and_flat_is_not_taken_over(demo_engine: Engine, qapp) -> None:
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=20,
                            itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(qapp, lambda: session.snapshot().segments[0].state is AgentState.RUNNING, 30, "running")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert not demo_engine.label_resumes("UK9394", "Computer 3")


def test_a_session_stopped_with_a_fill_the_store_refused_is_taken_over_by_the_next_tab(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    """A fill that came while the disk was full waits in the segment to be recorded; if the session stops before
    the store writes again, the next start must count it: the session is taken over, not recorded as stopped."""
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=20,
                            itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(qapp, lambda: session.snapshot().segments[0].state is AgentState.RUNNING, 30, "running")
    agent = session.agent(Segment.NIFTY)
    refused: list[str] = []

    def full_disk(fill: Fill) -> None:
        refused.append(fill.fill_id)
        raise StoreWriteError("the fill was not saved: the disk is full")

    def a_fill_while_the_disk_is_full(trader) -> None:
        monkeypatch.setattr(trader.ctx.store.fills, "record", full_disk)
        trader.on_fill(Fill("T1", "O1", session.key, Mode.LIVE, "NFO", "NIFTY2611326000CE", Side.SELL, 65,
                            Decimal("100"), datetime(2026, 1, 8, 9, 30)))  # fmt: skip

    agent.run_on_thread(a_fill_while_the_disk_is_full)
    wait_until(qapp, lambda: "T1" in refused, 10, "the fill refused by the store")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert demo_engine.label_resumes("UK9394", "Computer 3")
