"""`StoreWriter` on a store that stopped accepting writes: the cause is logged once, not once per write, and
the writes resuming once too."""

from __future__ import annotations

import logging
import threading

from desktop.engine.writer import StoreWriter
from desktop.store import StoreWriteError


def test_a_latched_store_failure_is_logged_once_and_other_failures_each_time(caplog) -> None:
    def full() -> None:
        raise StoreWriteError("the disk is full; KiteDesk stopped recording")

    def bug() -> None:
        raise ValueError("a caller's bug")

    written: list[int] = []
    writer = StoreWriter()
    try:
        with caplog.at_level(logging.WARNING, logger="desktop.engine.writer"):
            for job in (full, full, bug, full, bug, lambda: written.append(1)):
                writer.submit(job)
            assert writer.flush()
    finally:
        writer.close()
    assert writer.failures == 5 and written == [1]  # the writes behind the failures still ran
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "a background store write failed: the disk is full; KiteDesk stopped recording",
        "a background store write failed: a caller's bug",
        "a background store write failed: a caller's bug",
        "background store writes resumed (3 were not saved meanwhile)",  # the store writes again: said once
    ]


def test_the_writers_queued_notes_share_group_commits(tmp_path) -> None:
    from desktop.domain import Segment
    from desktop.store import Store
    from tests.store.conftest import DAY, new_session

    with Store.open(tmp_path / "home") as store:
        key = new_session(store, "UK9394")
        writer = StoreWriter(store.deferred)
        gate = threading.Event()
        try:
            writer.submit(lambda: gate.wait(10))  # the writer busy: the notes below queue behind it
            for n in range(20):
                writer.submit(
                    lambda n=n: store.journal.append(
                        key, segment=Segment.NIFTY, kind="note", payload={"n": n}, market_time=DAY
                    )  # fmt: skip
                )
            batches = store._db.batches
            gate.set()
            assert writer.flush()
        finally:
            writer.close()
        assert store._db.batches - batches == 2, "20 notes in two group commits (16 a batch), not 20"
        notes = store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)
        assert [e.payload["n"] for e in notes] == list(range(20)) and writer.failures == 0
