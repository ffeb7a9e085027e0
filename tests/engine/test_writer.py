"""`StoreWriter` on a store that stopped accepting writes: the cause is logged once, not once per write, and
the writes resuming once too."""

from __future__ import annotations

import logging
import threading
import time

from desktop.engine.writer import RETRY_EVERY, LatestRow, StoreWriter
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


def test_a_row_the_store_refused_is_written_once_it_writes_again_in_its_latest_state() -> None:
    """Seed 41 of the chaos run: a position sold while the disk was full; its flat row (with the sale's P&L) was
    refused and never written, so the store kept the session's P&L from before the sale (₹75.00 off the broker's).
    A refused row's latest state is written once the store writes again, with no later write to carry it."""
    full = [True]
    rows: dict[str, int] = {}
    notes: list[str] = []

    def upsert(key: str, value: int):
        def write() -> None:
            if full[0]:
                raise StoreWriteError("the disk is full; KiteDesk stopped recording")
            rows[key] = value

        return LatestRow(("position", key), write)

    def note() -> None:
        if full[0]:
            raise StoreWriteError("the disk is full; KiteDesk stopped recording")
        notes.append("note")

    writer = StoreWriter()
    try:
        for job in (upsert("NIFTY", 1), upsert("BANKNIFTY", 1), note, upsert("BANKNIFTY", 2)):
            writer.submit(job)
        assert writer.flush()
        assert rows == {} and notes == []
        full[0] = False  # the disk has room again; nothing more is submitted
        deadline = time.monotonic() + 5 * RETRY_EVERY
        while rows != {"NIFTY": 1, "BANKNIFTY": 2} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows == {"NIFTY": 1, "BANKNIFTY": 2}, "each row in its latest state, the earlier one replaced"
        assert notes == [], "a refused note is not written late (the journal's order)"
        writer.submit(upsert("NIFTY", 3))
        assert writer.flush() and rows["NIFTY"] == 3
    finally:
        writer.close()


def test_a_row_the_store_refused_in_a_group_commit_is_written_once_the_store_writes_again(
    tmp_path, monkeypatch
) -> None:
    """The same rule through the real store's group commits (`Store.deferred`): there a refusal is known only once
    the batch is committed, not from the job itself, and the row must still be held and written later."""
    import sqlite3
    from functools import partial

    import desktop.store.database as database
    from desktop.store import DB_FILENAME, Store
    from tests.store.conftest import DAY, new_session

    monkeypatch.setattr(database, "RETRY_AFTER_S", 0.3)
    with Store.open(tmp_path) as store:
        key = new_session(store, "AB1234")
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    limit = conn.execute("PRAGMA page_count").fetchone()[0] + 8
    conn.close()
    with Store.open(tmp_path, extra_pragmas={"max_page_count": limit}) as store:
        try:
            for _ in range(1000):
                store.journal.append(
                    key, segment=None, kind="pad", payload={"pad": "p" * 1500}, market_time=DAY
                )
        except StoreWriteError:
            pass
        assert store.write_failure is not None, "the disk never filled"
        writer = StoreWriter(store.deferred)
        try:
            writer.submit(LatestRow(("session", key), partial(store.sessions.set_state, key, "stopped")))
            assert writer.flush()
            record = store.sessions.get(broker_id=key.broker_id, session_id=key.session_id)
            assert record is not None and record.state != "stopped"
            other = sqlite3.connect(tmp_path / DB_FILENAME)  # room again, as when the disk is cleaned up
            with other:
                other.execute("DELETE FROM journal WHERE kind = 'pad'")
                other.execute("DELETE FROM outbox WHERE table_name = 'journal'")
            other.close()
            deadline = time.monotonic() + 5 * RETRY_EVERY
            while time.monotonic() < deadline:
                record = store.sessions.get(broker_id=key.broker_id, session_id=key.session_id)
                if record is not None and record.state == "stopped":
                    break
                time.sleep(0.05)
            assert record is not None and record.state == "stopped", "the refused row was never written"
        finally:
            writer.close()


def test_rows_still_refused_when_the_writer_closes_are_said_with_the_stores_words(caplog) -> None:
    # `kitedesk run`'s Ctrl-C on a full disk printed "1 row(s) the store refused were not saved before KiteDesk
    # stopped": the one line of the terminal that did not say why (the full disk).
    def upsert() -> None:
        raise StoreWriteError(
            "the disk is full (or the database reached its size limit); ... Free some space."
        )

    writer = StoreWriter()
    with caplog.at_level(logging.WARNING, logger="desktop.engine.writer"):
        writer.submit(LatestRow(("position", "NIFTY"), upsert))
        writer.close()
    last = caplog.records[-1].getMessage()
    assert (
        last.startswith("1 row(s) the store refused were not saved before KiteDesk stopped")
        and "disk is full" in last
    )


def test_the_background_notes_let_a_frames_entries_go_first_for_a_moment_at_most() -> None:
    writer = StoreWriter()
    ran = threading.Event()
    try:
        writer.sends.opened(2)  # a frame's two entries committed, their orders on their way
        writer.submit(ran.set)
        assert not ran.wait(0.003), "a note went while the frame's entries were still on their way"
        writer.sends.closed()
        writer.sends.closed()  # both sent
        assert ran.wait(1)
        ran.clear()
        writer.sends.opened(1)  # an entry never said sent (its agent failed): the notes wait a moment only
        writer.submit(ran.set)
        assert ran.wait(1)
    finally:
        writer.close()


def test_a_started_frame_commit_says_its_entries_on_their_way_and_each_sent_once(tmp_path) -> None:
    from desktop.engine.decisions import FrameCommit
    from desktop.store import Store
    from tests.store.conftest import DAY, make_intent, new_session

    class Gate:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def opened(self, count: int) -> int:
            self.calls.append(f"opened {count}")
            return 7

        def closed(self, opened: int | None = None) -> None:
            self.calls.append(f"closed {opened}")

    with Store.open(tmp_path / "home") as store:
        key = new_session(store, "UK9394")
        intents = [make_intent(key) for _ in range(2)]
        gate, leads = Gate(), []  # type: ignore[var-annotated]
        commit = FrameCommit(store, leads.append, gate)  # type: ignore[arg-type]
        for i in intents:
            commit.add(i, DAY)
        commit.start()
        assert gate.calls == ["opened 2"]
        leads[0]()
        commit.sent(intents[0].intent_id)
        commit.sent(intents[0].intent_id)  # said again (the agent's finally): once only
        commit.sent("never-added")
        commit.sent(intents[1].intent_id)
        assert gate.calls == ["opened 2", "closed 7", "closed 7"]


def test_closing_the_writer_while_its_leader_waits_on_a_held_store_commits_the_queued_intent_first(
    tmp_path,
) -> None:
    # Ctrl-C while a frame's group commit is queued on the leader and another write holds the store: the close waits
    # for the commit (its waiters are told, never left hanging), ends both threads, and a commit asked after the
    # close runs on the caller's thread at once.
    from desktop.store import Store
    from tests.store.conftest import DAY, make_intent, new_session

    with Store.open(tmp_path / "home") as store:
        key = new_session(store, "UK9394")
        gate, inside = threading.Event(), threading.Event()

        def held(_writes: object) -> None:
            inside.set()
            assert gate.wait(10)

        holder = threading.Thread(
            target=store._db.run, args=(held,), kwargs={"durable": True, "what": "held"}
        )
        holder.start()
        assert inside.wait(5)
        writer = StoreWriter(store.deferred)
        told = threading.Event()
        first = make_intent(key)
        result = store.intents.queue_all([(first, DAY)], then=told.set)
        writer.lead(store.commit_waiting)
        closer = threading.Thread(target=writer.close)
        closer.start()
        time.sleep(0.2)
        assert closer.is_alive() and not told.is_set(), "the close waits for the led commit"
        gate.set()
        closer.join(10)
        holder.join(10)
        assert not closer.is_alive() and told.is_set() and result() == [True]
        names = {t.name for t in threading.enumerate()}
        assert not names & {"kitedesk-store-leader", "kitedesk-store-writer"}, names
        later = make_intent(key)
        after = store.intents.queue_all([(later, DAY)])
        writer.lead(store.commit_waiting)  # closed: on this thread, now
        assert after() == [True]


def test_an_entry_said_sent_after_the_gate_gave_up_on_it_does_not_let_the_notes_past_a_later_frames_entry() -> (
    None
):
    # A LIVE entry is said sent once Kite answered its order (often more than SEND_STALE later): the gate had given up
    # on it and started counting the next frame's entries, and its late word was taken for one of them.
    from desktop.engine.writer import SEND_STALE, SEND_WAIT, SendGate

    gate = SendGate()
    first = gate.opened(1)  # frame 1's entry, Kite slow to answer
    time.sleep(SEND_STALE + 0.02)
    gate.wait()  # stale: the notes no longer wait for it
    gate.opened(1)  # frame 2's entry on its way
    gate.closed(first)  # frame 1's entry answered at last
    began = time.monotonic()
    gate.wait()
    assert time.monotonic() - began >= SEND_WAIT * 0.8, "the notes waited for frame 2's entry"


def test_the_send_gate_holds_a_bursts_work_until_its_entries_are_written_and_never_past_send_wait_of_the_burst(
    monkeypatch,
) -> None:
    from desktop.engine import writer as writer_module
    from desktop.engine.writer import SendGate

    monkeypatch.setattr(writer_module, "SEND_WAIT", 5.0)  # long enough to see the order under any load
    gate = SendGate()
    assert not gate.sending and gate.wait() is False  # no burst: nothing waits
    gate.opened(2)
    released = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(), released.set()))
    waiter.start()
    gate.closed()
    assert not released.wait(0.05), "went on with one of the two entries still on its way"
    gate.closed()  # both written
    assert released.wait(1)
    waiter.join()
    monkeypatch.setattr(writer_module, "SEND_WAIT", 0.1)
    gate.opened(1)  # an entry never said written: the burst's work waits SEND_WAIT in all, not per wait
    began = time.monotonic()
    assert gate.wait(timeout=5.0) is True
    first = time.monotonic() - began
    began = time.monotonic()
    gate.wait(timeout=5.0)
    second = time.monotonic() - began
    assert 0.08 <= first < 1.0 and second < 0.05, "a second wait of the same burst"


def test_a_wait_at_the_send_gate_ends_when_its_until_says_so_on_a_poke(monkeypatch) -> None:
    from desktop.engine import writer as writer_module
    from desktop.engine.writer import SendGate

    monkeypatch.setattr(writer_module, "SEND_WAIT", 5.0)
    gate = SendGate()
    gate.opened(1)
    commanded = threading.Event()
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(timeout=5.0, until=commanded.is_set), done.set()))
    waiter.start()
    assert not done.wait(0.05)
    commanded.set()
    gate.poke()  # a kill came for the waiting agent
    assert done.wait(1)
    waiter.join()


def test_a_burst_after_an_entry_never_said_sent_still_goes_first(monkeypatch) -> None:
    # An entry whose agent failed mid-send is never said sent; nobody waited at the gate meanwhile (a quiet market),
    # so it was not given up on yet. The next burst's entries were counted beside it, under its old start: the first
    # wait found them stale, forgot them all, and the burst's work no longer let its entries go first.
    from desktop.engine import writer as writer_module
    from desktop.engine.writer import SendGate

    monkeypatch.setattr(writer_module, "SEND_WAIT", 1.0)
    monkeypatch.setattr(writer_module, "SEND_STALE", 1.1)
    gate = SendGate()
    gate.opened(1)  # its agent failed: never said sent
    time.sleep(1.2)  # past SEND_STALE, nobody waited
    burst = gate.opened(1)
    released = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(), released.set()))
    waiter.start()
    assert not released.wait(0.3), "the next burst's work went before its entry"
    gate.closed(burst)
    assert released.wait(1), "the burst's entry written: its work goes"
    waiter.join()
    assert not gate.sending
