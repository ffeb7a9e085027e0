"""Group commit: writes queued behind a commit share the next transaction, each in its own savepoint."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import replace

import pytest
from sqlalchemy import insert

from desktop.domain import Mode
from desktop.store import StoreError
from desktop.store.database import Prepared, Writes
from desktop.store.schema import order_intents
from tests.store.conftest import DAY, make_intent, new_session


def _hold_the_writer(store):  # type: ignore[no-untyped-def]
    """Starts a durable write that waits inside its transaction until the returned event is set."""
    gate = threading.Event()
    inside = threading.Event()

    def held(_conn: object) -> None:
        inside.set()
        assert gate.wait(10)

    t = threading.Thread(target=store._db.run, args=(held,), kwargs={"durable": True, "what": "held"})
    t.start()
    assert inside.wait(5)
    return gate, t


def _queue_until(store, n: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while len(store._db._pending) < n:
        assert time.monotonic() < deadline, "writers never queued"
        time.sleep(0.005)


def _run_in_batch_order(store, gate: threading.Event, holder: threading.Thread, writers: list) -> None:  # type: ignore[no-untyped-def]
    """Starts `writers` one by one, each queued before the next starts (their order inside the batch), then
    lets the held write finish and waits for all of them."""
    for n, w in enumerate(writers, start=1):
        w.start()
        _queue_until(store, n)
    gate.set()
    for w in writers + [holder]:
        w.join(10)


def _half_written(store, intent):  # type: ignore[no-untyped-def]
    """A write that saves `intent`'s row and its outbox entry, then fails."""

    def work(writes: Writes) -> None:
        writes.execute(Prepared(insert(order_intents)), _intent_row(store, intent))
        writes.add_to_outbox(broker_id=intent.key.broker_id, table_name="order_intents", record_id="half")
        raise StoreError("failed half-way")

    return work


def _recorder(store, errors: list[BaseException]):  # type: ignore[no-untyped-def]
    """A writer of one intent that collects the StoreError it meets."""

    def write(intent) -> None:  # type: ignore[no-untyped-def]
        try:
            store.intents.record(intent, at=DAY)
        except StoreError as e:
            errors.append(e)

    return write


def test_twenty_intents_queued_behind_a_commit_are_saved_in_two_capped_transactions(store) -> None:
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    intents = [make_intent(key, mode=Mode.LIVE) for _ in range(20)]
    gate, holder = _hold_the_writer(store)
    before = store._db.batches
    results: list[bool] = []
    writers = [
        threading.Thread(target=lambda i=i: results.append(store.intents.record(i, at=DAY))) for i in intents
    ]
    for w in writers:
        w.start()
    _queue_until(store, 20)
    gate.set()
    for w in writers + [holder]:
        w.join(10)
    assert results == [True] * 20
    saved = store.intents.for_session(broker_id="AB1234", session_id=key.session_id)
    assert {i.intent_id for i in saved} == {i.intent_id for i in intents}
    assert store._db.batches - before == 3  # the held one, then sixteen together, then the last four


def test_a_write_refused_inside_a_shared_transaction_fails_alone(store) -> None:
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    good = [make_intent(key, mode=Mode.LIVE) for _ in range(3)]
    bad = make_intent(key, mode=Mode.PAPER)  # paper into a live session: refused by the store
    gate, holder = _hold_the_writer(store)
    errors: list[BaseException] = []
    write = _recorder(store, errors)

    _run_in_batch_order(
        store,
        gate,
        holder,
        [threading.Thread(target=write, args=(i,)) for i in (good[0], bad, good[1], good[2])],
    )
    assert len(errors) == 1 and "cannot belong to a LIVE session" in str(errors[0])
    saved = store.intents.for_session(broker_id="AB1234", session_id=key.session_id)
    assert {i.intent_id for i in saved} == {i.intent_id for i in good}


def test_a_failed_commit_fails_every_write_of_its_batch(store, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    intents = [make_intent(key, mode=Mode.LIVE) for _ in range(3)]
    gate, holder = _hold_the_writer(store)
    errors: list[BaseException] = []
    write = _recorder(store, errors)

    writers = [threading.Thread(target=write, args=(i,)) for i in intents]
    for w in writers:
        w.start()
    _queue_until(store, 3)
    # The next transaction cannot begin (the file is locked by another program, say): none is saved.
    monkeypatch.setattr(
        store._db, "begin_immediate", lambda conn: (_ for _ in ()).throw(StoreError("the database is locked"))
    )
    gate.set()
    for w in writers + [holder]:
        w.join(10)
    monkeypatch.undo()
    assert len(errors) == 3 and all("locked" in str(e) for e in errors)
    assert store.intents.for_session(broker_id="AB1234", session_id=key.session_id) == []


def test_a_write_that_fails_after_writing_rows_leaves_none_of_them_and_the_others_whole(store) -> None:
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    before, after = make_intent(key, mode=Mode.LIVE), make_intent(key, mode=Mode.LIVE)
    half = make_intent(key, mode=Mode.LIVE)
    gate, holder = _hold_the_writer(store)
    errors: list[BaseException] = []
    write = _recorder(store, errors)

    def half_written() -> None:
        try:
            store._db.run(_half_written(store, half), durable=True, what="half")
        except StoreError as e:
            errors.append(e)

    writers = [threading.Thread(target=write, args=(before,)), threading.Thread(target=half_written),
               threading.Thread(target=write, args=(after,))]  # fmt: skip
    _run_in_batch_order(store, gate, holder, writers)
    assert [str(e) for e in errors] == ["failed half-way"]
    saved = store.intents.for_session(broker_id="AB1234", session_id=key.session_id)
    assert {i.intent_id for i in saved} == {before.intent_id, after.intent_id}
    outbox = store.outbox.pending(broker_id="AB1234")
    assert "half" not in {e.record_id for e in outbox}
    assert sum(e.table_name == "order_intents" for e in outbox) == 2


def _intent_row(store, intent) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": "h" * 32, "broker_id": intent.key.broker_id, "device_id": store.device_id,
        "session_id": intent.key.session_id, "intent_id": intent.intent_id, "segment": intent.segment.value,
        "mode": intent.mode.value, "exchange": intent.exchange, "tradingsymbol": intent.tradingsymbol,
        "side": intent.side.value, "quantity": intent.quantity, "order_type": intent.order_type.value,
        "price": intent.price, "trigger_price": intent.trigger_price, "product": intent.product,
        "reason": intent.reason, "tag": intent.tag, "created_at": DAY,
    }  # fmt: skip


def test_a_write_alone_that_fails_after_writing_rows_leaves_none_of_them_and_the_store_writes_on(
    store,
) -> None:
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    half = make_intent(key, mode=Mode.LIVE)

    before = store._db.batches
    with pytest.raises(StoreError, match="failed half-way"):
        store._db.run(_half_written(store, half), durable=True, what="half")
    assert store._db.batches - before == 1
    assert store.intents.for_session(broker_id="AB1234", session_id=key.session_id) == []
    assert {e.table_name for e in store.outbox.pending(broker_id="AB1234")} == {"sessions"}
    after = make_intent(key, mode=Mode.LIVE)  # and the store writes on
    assert store.intents.record(after, at=DAY)
    assert [
        i.intent_id for i in store.intents.for_session(broker_id="AB1234", session_id=key.session_id)
    ] == [after.intent_id]


def _notes(store, key) -> int:  # type: ignore[no-untyped-def]
    return len(store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id))


def test_an_intent_goes_to_disk_before_the_background_writers_notes_queued_earlier(store) -> None:
    key = new_session(store, "UK9394")
    intent = make_intent(key)
    with store.deferred() as writes:
        for n in range(5):  # the background writer's notes, queued without waiting
            store.journal.append(key, segment=None, kind="note", payload={"n": n}, market_time=DAY)
        assert len(writes) == 5 and _notes(store, key) == 0
        # An agent about to send an order: its intent is committed now, in a batch of its own, the notes left queued.
        sender = threading.Thread(target=store.intents.record, args=(intent,), kwargs={"at": DAY})
        sender.start()
        sender.join(10)
        saved = store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
        assert [i.intent_id for i in saved] == [intent.intent_id]
        assert _notes(store, key) == 0, "the notes queued before it did not go first"
    assert _notes(store, key) == 5 and all(w.error is None for w in writes)  # committed on leaving, in order
    seqs = [
        e.payload["n"] for e in store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)
    ]
    assert seqs == [0, 1, 2, 3, 4]


def test_deferred_notes_share_group_commits_and_each_says_its_own_failure(store) -> None:
    key = new_session(store, "UK9394")
    batches = store._db.batches
    with store.deferred() as writes:
        for n in range(20):
            store.journal.append(key, segment=None, kind="note", payload={"n": n}, market_time=DAY)
        store.intents.record_all(
            [(make_intent(key, mode=Mode.LIVE), DAY)]
        )  # a live intent in a paper session
    assert store._db.batches - batches == 2, (
        "20 notes and one refused write in two group commits (16 a batch)"
    )
    assert [w.error is None for w in writes] == [True] * 20 + [False]
    assert "cannot belong to a PAPER session" in str(writes[-1].error)  # that write only: the notes are saved
    assert _notes(store, key) == 20


def _statements(store):  # type: ignore[no-untyped-def]
    """The SQL the group commits' connection runs from now on (its trace), as a list that fills up."""
    store.intents.record_all([(make_intent(new_session(store, "UK1234")), DAY)])  # the connection is made
    seen: list[str] = []
    store._db._batch_conn.driver_connection.set_trace_callback(seen.append)
    return seen


def test_a_frames_intents_go_to_disk_in_three_statements_and_each_says_whether_it_was_new(store) -> None:
    key = new_session(store, "UK9394")
    intents = [make_intent(key) for _ in range(12)]
    assert store.intents.record_all([(intents[3], DAY)]) == [True]
    seen = _statements(store)
    assert store.intents.record_all([(i, DAY) for i in intents]) == [n != 3 for n in range(12)]
    work = [s for s in seen if not s.startswith(("BEGIN", "SAVEPOINT", "COMMIT", "PRAGMA"))]
    # One look for the ones saved already, one INSERT of the new rows, one of their outbox rows: not two per intent
    # (each statement lets the interpreter lock go, and under load taking it back waited behind other threads).
    assert len(work) == 3, work
    saved = store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    assert sorted(i.intent_id for i in saved) == sorted(i.intent_id for i in intents)
    pending = store.outbox.pending(broker_id="UK9394", limit=1000)
    queued = [e.record_id for e in pending if e.table_name == "order_intents"]
    assert len(queued) == 12 and len(set(queued)) == 12, "each intent once in the sync's outbox"


def test_an_intent_twice_in_one_group_is_saved_once(store) -> None:
    key = new_session(store, "UK9394")
    intent = make_intent(key)
    assert store.intents.record_all([(intent, DAY), (intent, DAY)]) == [True, False]
    assert len(store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)) == 1


def test_a_group_with_a_refused_intent_saves_none_of_it(store) -> None:
    key = new_session(store, "UK9394")
    good, bad = make_intent(key), make_intent(key, mode=Mode.LIVE)  # a live intent in a paper session
    with pytest.raises(StoreError, match="cannot belong to a PAPER session"):
        store.intents.record_all([(good, DAY), (bad, DAY)])
    assert store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id) == []


def test_a_batch_of_background_notes_gives_way_to_an_intent_queued_while_it_runs(store) -> None:
    key = new_session(store, "UK9394")
    order: list[str] = []
    intent = make_intent(key)
    queued: list[object] = []

    def note(n: int):  # type: ignore[no-untyped-def]
        def work(writes: Writes) -> None:
            order.append(f"note {n}")
            if n == 1:  # an agent queues its intent while the writer runs the notes' batch
                queued.append(store.intents.queue_all([(intent, DAY)], then=lambda: order.append("intent")))

        return work

    with store.deferred() as writes:
        for n in range(6):
            store._db.run(note(n), durable=True, what="note")
    assert all(w.error is None for w in writes)
    # The batch stopped after the note that was running, committed it, and the intent went next, in a batch of its
    # own; the notes left over followed, in their order.
    assert order == ["note 0", "note 1", "intent", "note 2", "note 3", "note 4", "note 5"]
    saved = store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    assert [i.intent_id for i in saved] == [intent.intent_id]


def _as_old_sqlite(store) -> None:  # type: ignore[no-untyped-def]
    """The store's connections (new ones: the pooled and the batch's dropped) take 999 `?` per statement, as SQLite
    builds before 3.32 do."""
    from sqlalchemy import event

    def old_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    event.listen(store._db.engine, "connect", old_sqlite)
    store._db.engine.dispose()
    store._db._drop_batch_conn()


def test_a_frame_of_sixty_four_intents_is_saved_where_sqlite_takes_999_variables(store) -> None:
    """SQLite builds before 3.32 (and any built with the old default) take 999 `?` per statement. A multi-row INSERT
    of 64 intents of 18 columns is 1,152: "too many SQL variables", which the store took for a disk failure and
    stopped recording for good. The rows per statement follow the connection's own limit."""
    _as_old_sqlite(store)
    key = new_session(store, "AB1234")
    intents = [(make_intent(key), DAY) for _ in range(64)]
    assert store.intents.record_all(intents) == [True] * 64
    assert store.write_failure is None
    with store._db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM order_intents").scalar_one() == 64


def test_a_flush_of_a_thousand_held_intents_is_saved_where_sqlite_takes_999_variables(store) -> None:
    """The intents held through a long outage are journalled in one group (`Orders.journal_back`): the look for
    those already saved asks for every id, 1,000 of them past a 999 limit."""
    _as_old_sqlite(store)
    key = new_session(store, "AB1234")
    first = make_intent(key)
    assert store.intents.record_all([(first, DAY)]) == [True]
    intents = [(first, DAY)] + [(make_intent(key), DAY) for _ in range(999)]
    assert store.intents.record_all(intents) == [False] + [True] * 999
    assert store.write_failure is None
    with store._db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM order_intents").scalar_one() == 1000


def test_a_full_disk_under_a_group_commit_tells_the_frames_entries_and_a_sale_queued_beside_them(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frame's entry intents and a sale's intent of the same moment share one transaction on the store writer's
    # leader (engine/orders.py `_queue_aside`). SQLite answers SQLITE_FULL for real (max_page_count) part-way: each
    # caller is woken and told the disk is full, none of the intents is saved (so no entry is sent), and once there
    # is room again the same intents are saved, once each.
    import desktop.store.database as database
    from desktop.domain import OrderRole, Side
    from desktop.engine.writer import StoreWriter
    from desktop.store import DB_FILENAME, Store, StoreFullError, StoreWriteError

    monkeypatch.setattr(database, "RETRY_AFTER_S", 0.2)
    with Store.open(tmp_path) as store:
        key = new_session(store, "AB1234", mode=Mode.LIVE)
    with closing(sqlite3.connect(tmp_path / DB_FILENAME)) as conn:
        limit = int(conn.execute("PRAGMA page_count").fetchone()[0]) + 8
    with Store.open(tmp_path, extra_pragmas={"max_page_count": limit}) as store:
        with pytest.raises(StoreWriteError, match="disk is full"):
            for _ in range(1000):  # the disk fills up with the session's notes
                store.journal.append(
                    key, segment=None, kind="pad", payload={"p": "p" * 1500}, market_time=DAY
                )
        time.sleep(0.25)  # paused: the next write tries the disk again
        writer = StoreWriter(store.deferred)
        try:
            entries = [(make_intent(key, mode=Mode.LIVE), DAY) for _ in range(60)]  # more than the room left
            sale = replace(make_intent(key, mode=Mode.LIVE, side=Side.SELL), role=OrderRole.STOP)
            told: list[str] = []
            frame = store.intents.queue_all(entries, then=lambda: told.append("entries"))
            sold = store.intents.queue_all([(sale, DAY)], then=lambda: told.append("sale"))
            writer.lead(store.commit_waiting)
            deadline = time.monotonic() + 5
            while len(told) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert told == ["entries", "sale"], "each caller woken once its intent's write ended"
            with pytest.raises(StoreFullError):
                frame()
            with pytest.raises(StoreFullError):
                sold()
            with closing(sqlite3.connect(tmp_path / DB_FILENAME)) as conn:
                assert conn.execute("SELECT count(*) FROM order_intents").fetchone()[0] == 0
                conn.execute("DELETE FROM journal WHERE kind = 'pad'")  # room again
                conn.execute("DELETE FROM outbox WHERE table_name = 'journal'")
                conn.commit()
            time.sleep(0.25)
            assert store.intents.record_all([*entries, (sale, DAY), entries[0]]) == [True] * 61 + [False]
        finally:
            writer.close()
    with closing(sqlite3.connect(tmp_path / DB_FILENAME)) as conn:
        assert conn.execute("SELECT count(*) FROM order_intents").fetchone()[0] == 61
