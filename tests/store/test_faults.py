"""Many writers at once, a database locked by another program, and a full disk."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.domain import Mode, Segment
from desktop.store import DB_FILENAME, Store, StoreError, StoreLockedError, StoreWriteError
from tests.store.conftest import DAY, make_fill, make_intent, new_session

WRITERS = 30
RECORDS_EACH = 12


def test_thirty_segment_agents_writing_at_once_lose_nothing(store):
    keys = [new_session(store, f"AC{n % 5:04d}", label=f"agent {n}") for n in range(WRITERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def agent(n: int) -> None:
        key = keys[n]
        try:
            start.wait()
            for i in range(RECORDS_EACH):
                at = DAY + timedelta(seconds=i)
                store.journal.append(
                    key, segment=Segment.NIFTY, kind="tick", payload={"i": i}, market_time=at
                )
                if i % 3 == 0:
                    store.intents.record(make_intent(key), at=at)
                    store.fills.record(make_fill(key, at=at))
                store.trades.for_session(broker_id=key.broker_id, session_id=key.session_id)  # readers too
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(n,), name=f"agent-{n}") for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    for key in keys:
        entries = store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)
        assert [e.payload["i"] for e in entries] == list(range(RECORDS_EACH))
        assert len(store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)) == 4
        assert len(store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)) == 4


@pytest.fixture
def other_program(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A second program's connection to the same database file, not holding any lock yet."""
    with Store.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None, check_same_thread=False)
    yield conn
    conn.close()


def test_locked_database_is_retried_then_reported_plainly(tmp_path, other_program):
    with Store.open(tmp_path, busy_timeout_s=0.05, lock_retries=2) as store:
        key = new_session(store, "AB1234")
        other_program.execute("BEGIN IMMEDIATE")  # the other program holds the write lock
        try:
            with pytest.raises(StoreLockedError, match="locked by another program"):
                store.fills.record(make_fill(key))
        finally:
            other_program.execute("ROLLBACK")
        assert store.write_failure is None  # a lock is not a damaged disk: writes go on
        assert store.fills.record(make_fill(key))


def test_lock_released_during_the_retries_lets_the_write_through(tmp_path, other_program):
    with Store.open(tmp_path, busy_timeout_s=0.1, lock_retries=5) as store:
        key = new_session(store, "AB1234")
        other_program.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.25, lambda: other_program.execute("ROLLBACK"))
        release.start()
        try:
            fill = make_fill(key)
            assert store.fills.record(fill)
        finally:
            release.join()
        assert store.fills.for_session(broker_id="AB1234", session_id=key.session_id) == [fill]


def test_once_a_write_waited_out_a_lock_the_next_ones_fail_fast_until_the_lock_is_gone(
    tmp_path, other_program
):
    # A database another program keeps locked: each write waited the whole busy timeout and its retries (20 s by
    # default), one after another. Ctrl-C with 30 segments saving their last notes took over 200 s.
    with Store.open(tmp_path, busy_timeout_s=1.0, lock_retries=1) as store:
        key = new_session(store, "AB1234")
        other_program.execute("BEGIN IMMEDIATE")
        try:
            began = time.monotonic()
            with pytest.raises(StoreLockedError, match="locked by another program"):
                store.fills.record(make_fill(key))
            assert time.monotonic() - began >= 2.0, "the first write waits the whole timeout and its retry"
            waits = []
            for _ in range(3):
                began = time.monotonic()
                with pytest.raises(StoreLockedError, match="locked"):
                    store.journal.append(key, segment=Segment.NIFTY, kind="note", payload={}, market_time=DAY)
                waits.append(time.monotonic() - began)
            assert max(waits) < 1.0, (
                f"the lock is known: each later write is refused within a short try {waits}"
            )
        finally:
            other_program.execute("ROLLBACK")
        fill = make_fill(key)
        assert store.fills.record(fill), "the lock gone: the next write goes through"
        other_program.execute("BEGIN IMMEDIATE")  # locked again later: a write waits the whole timeout again
        try:
            began = time.monotonic()
            with pytest.raises(StoreLockedError):
                store.fills.record(make_fill(key))
            assert time.monotonic() - began >= 2.0
        finally:
            other_program.execute("ROLLBACK")


def _pages(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def test_full_disk_stops_writes_and_leaves_nothing_half_written(tmp_path):
    with Store.open(tmp_path) as store:
        key = new_session(store, "AB1234", mode=Mode.LIVE)
    limit = _pages(tmp_path / DB_FILENAME) + 8
    # max_page_count makes SQLite answer SQLITE_FULL for real once the file would grow past it.
    with Store.open(tmp_path, extra_pragmas={"max_page_count": limit}) as store:
        saved = []
        with pytest.raises(StoreWriteError, match="disk is full") as failure:
            for n in range(1000):
                fill = make_fill(key, mode=Mode.LIVE, fill_id=f"F{n}" + "x" * 40)
                store.journal.append(
                    key, segment=None, kind="fill", payload={"pad": "p" * 1500}, market_time=DAY
                )
                store.fills.record(fill)
                saved.append(fill.fill_id)
        assert saved and "no new entries until it can" in str(failure.value)
        assert store.write_failure is not None
        # New entries stop, even small ones that would fit (till the store tries the disk again).
        with pytest.raises(StoreWriteError, match="not saved"):
            store.sessions.set_state(key, "stopped")
        # Reads still work, and every saved fill is whole: its row and its outbox entry, nothing else.
        fills = store.fills.for_session(broker_id="AB1234", session_id=key.session_id)
        # Sorted: make_fill's times come from a counter shared by every test and wrap every 300 fills.
        assert sorted(f.fill_id for f in fills) == sorted(saved)
        assert all(f.price == Decimal("100.05") for f in fills)
        outbox = store.outbox.pending(broker_id="AB1234", limit=100_000)
        assert sum(e.table_name == "fills" for e in outbox) == len(saved)
        journal = store.journal.for_session(broker_id="AB1234", session_id=key.session_id)
        assert sum(e.table_name == "journal" for e in outbox) == len(journal)
        assert len(journal) in (len(saved), len(saved) + 1)
    with Store.open(tmp_path) as store:  # with room again, a restart records again
        assert store.fills.record(make_fill(key, mode=Mode.LIVE))


def test_a_full_disk_pauses_recording_and_it_resumes_once_there_is_room_again(tmp_path, monkeypatch, caplog):
    # A disk full for a few seconds ended the trading day: every later write refused till a restart.
    import desktop.store.database as database

    monkeypatch.setattr(database, "RETRY_AFTER_S", 0.3)
    with Store.open(tmp_path) as store:
        key = new_session(store, "AB1234", mode=Mode.LIVE)
    limit = _pages(tmp_path / DB_FILENAME) + 8
    with Store.open(tmp_path, extra_pragmas={"max_page_count": limit}) as store:
        with pytest.raises(StoreWriteError, match="disk is full"):
            for _ in range(1000):
                store.journal.append(
                    key, segment=None, kind="pad", payload={"pad": "p" * 1500}, market_time=DAY
                )
        with pytest.raises(StoreWriteError, match="not saved"):  # paused: refused without trying the disk
            store.fills.record(make_fill(key, mode=Mode.LIVE, fill_id="F-refused"))
        # Room again (as when the disk is cleaned up): the padding goes, from another connection.
        other = sqlite3.connect(tmp_path / DB_FILENAME)
        with other:
            other.execute("DELETE FROM journal WHERE kind = 'pad'")
            other.execute("DELETE FROM outbox WHERE table_name = 'journal'")
        other.close()
        time.sleep(0.4)
        with caplog.at_level(logging.WARNING, logger="desktop.store.database"):
            assert store.fills.record(make_fill(key, mode=Mode.LIVE, fill_id="F-after"))
        assert store.write_failure is None
        store.sessions.set_state(key, "stopped")  # and everything else records again
        fills = store.fills.for_session(broker_id="AB1234", session_id=key.session_id)
        assert [f.fill_id for f in fills] == ["F-after"]
        assert any("records to" in r.getMessage() and "again" in r.getMessage() for r in caplog.records)


def test_a_damaged_database_stays_stopped(tmp_path, monkeypatch):
    import desktop.store.database as database

    monkeypatch.setattr(database, "RETRY_AFTER_S", 0.0)
    with Store.open(tmp_path) as store:
        db = store._db
        damaged = sqlite3.DatabaseError("database disk image is malformed")
        damaged.sqlite_errorcode = 11  # type: ignore[attr-defined]  # SQLITE_CORRUPT
        failure = db._write_failed(damaged, "fill")
        assert "damaged" in str(failure) and "restart" in str(failure) and db.write_failure is failure
        key = None
        with pytest.raises(StoreWriteError, match="not saved"):
            key = new_session(store, "AB1234")
        assert key is None and db.write_failure is failure


@pytest.mark.parametrize(
    ("quantity", "price", "message"),
    [
        (Decimal("1.5"), "100", "quantity must be a whole number ≥ 1"),
        (0, "100", "quantity must be a whole number ≥ 1"),
        (-75, "100", "quantity must be a whole number ≥ 1"),
        (65, "NaN", "price must be an amount ≥ 0"),
        (65, "-1", "price must be an amount ≥ 0"),
    ],
)
def test_an_impossible_fill_is_refused_in_words_and_recording_goes_on(store, quantity, price, message):
    # One fill of 1.5 broke the account's trades table and export with a TypeError; a value SQLite could not bind
    # latched the whole store off ("KiteDesk stopped recording") for every session.
    key = new_session(store, "UK9394")
    with pytest.raises(StoreError, match=f"the fill was not saved: {message}"):
        store.fills.record(make_fill(key, quantity=quantity, price=price))
    assert store.fills.record(make_fill(key))
    assert store.trades.for_session(broker_id=key.broker_id, session_id=key.session_id)


def test_a_value_sqlite_cannot_bind_is_refused_without_stopping_the_store(store):
    key = new_session(store, "UK9394")
    bad = replace(make_intent(key), quantity=Decimal("65"))  # a caller's bug, not a failing disk
    with pytest.raises(StoreError, match="was not saved") as failure:
        store.intents.record(bad, at=DAY)
    assert not isinstance(failure.value, StoreWriteError) and "stopped recording" not in str(failure.value)
    assert store.fills.record(make_fill(key)), "recording goes on"
