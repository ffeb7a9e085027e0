"""A segment's start outlives a full disk (issue 16). A 20-minute chaos soak (seed 2) restarted `kitedesk run` while
the disk was full: every segment of every session failed at its start ("start failed: OSError: [Errno 28] No space
left on device", raised by the recording's copy of the warm-up candles), and stayed failed for the rest of the run.
A LIVE position kept under its stop was then managed by nobody: the exchange cancelled the triggered stop (its limit
outside price protection after a gap) and the position stayed naked for 336 market seconds, until the next restart.

What a start writes: the recording's copy of the warm-up candles (a convenience for a later replay: a start goes on
without it) and the session's record (every order intent refers to it: the start waits until the store writes
again, as it waits for the broker's positions, instead of failing for good)."""

from __future__ import annotations

from datetime import date

from desktop.broker.recording import CANDLES_SUFFIX, recordings_dir
from desktop.engine import Engine
from desktop.engine.snapshots import AgentState
from desktop.store import StoreWriteError
from tests.e2e.conftest import START, start_session, wait_until


def _states(session) -> list[AgentState]:
    return [s.state for s in session.snapshot().segments]


def test_a_live_start_goes_on_when_the_recording_cannot_keep_its_warm_up_candles(
    demo_engine: Engine, qapp, tmp_path
) -> None:
    # Every write of the day's candle file fails in the OS (its temporary file's name is taken by a folder): what a
    # full disk does to the recording, for real, on any file system.
    folder = recordings_dir(tmp_path / "home") / "UK9394"
    (folder / f"{START.date().isoformat()}{CANDLES_SUFFIX}.tmp").mkdir(parents=True)
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY", "BANKNIFTY"], lots=1,
                            stop_loss=20, itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(
        qapp,
        lambda: _states(session) == [AgentState.RUNNING] * 2 or AgentState.FAILED in _states(session),
        30,
        "both segments started (or failed)",
    )
    snap = session.snapshot()
    assert _states(session) == [AgentState.RUNNING] * 2, [s.failure for s in snap.segments]
    assert not (folder / f"{date(2026, 1, 8).isoformat()}{CANDLES_SUFFIX}").exists()


def test_a_live_start_waits_for_the_store_to_write_its_session_record_again(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    sessions = demo_engine.store.sessions
    record = sessions.record_session
    refused: list[str] = []

    def full_disk_twice(*args, **kwargs):
        if len(refused) < 2:
            refused.append("refused")
            raise StoreWriteError("the session was not saved: the disk is full")
        return record(*args, **kwargs)

    monkeypatch.setattr(sessions, "record_session", full_disk_twice)
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=20,
                            itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(
        qapp,
        lambda: _states(session) == [AgentState.RUNNING] or AgentState.FAILED in _states(session),
        30,
        "the segment started (or failed)",
    )
    assert _states(session) == [AgentState.RUNNING], [s.failure for s in session.snapshot().segments]
    assert len(refused) == 2
    stored = demo_engine.store.sessions.get(broker_id="UK9394", session_id=session.key.session_id)
    assert stored is not None and stored.state == "running"
