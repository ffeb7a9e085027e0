"""Durable commits for intents, fills and journal entries; indexes of trading tables lead with broker_id."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from desktop.domain import Mode, Position, Segment
from tests.store.conftest import DAY, make_fill, make_intent, new_session

_INSERT = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+\"?(\w+)", re.IGNORECASE)
_SYNC = re.compile(r"PRAGMA\s+synchronous\s*=\s*(\w+)", re.IGNORECASE)


def _sync_level_of_each_insert(store: Any, write: Any) -> dict[str, set[str]]:
    """Runs `write()` and returns, per table inserted into, the synchronous level its connection had.

    It listens with SQLite's own statement trace on every connection the store uses while `write()` runs,
    so it sees the statements SQLAlchemy runs and the ones the group commit runs on the driver's cursor.
    """
    level: dict[int, str] = {}
    seen: dict[str, set[str]] = {}

    def tracer(dbapi_connection: Any) -> Any:
        def spy(statement: str) -> None:
            pragma = _SYNC.search(statement)
            if pragma:
                level[id(dbapi_connection)] = pragma.group(1).upper()
            insert = _INSERT.match(statement)
            if insert:
                current = level.get(id(dbapi_connection), "NORMAL (connection default)")
                seen.setdefault(insert.group(1), set()).add(current)

        return spy

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(tracer(dbapi_connection))

    engine = store._db.engine
    event.listen(engine, "checkout", on_checkout)
    try:
        write()
    finally:
        event.remove(engine, "checkout", on_checkout)
    return seen


def test_intents_fills_and_journal_are_committed_with_full_sync(store):
    key = new_session(store, "AB1234", mode=Mode.LIVE)

    def write() -> None:
        store.intents.record(make_intent(key, mode=Mode.LIVE), at=DAY)
        store.fills.record(make_fill(key, mode=Mode.LIVE, at=DAY))
        store.journal.append(key, segment=Segment.NIFTY, kind="fill", payload={"n": 1}, market_time=DAY)
        store.positions.upsert(Position(key, Mode.LIVE, "NFO", "X", 65, Decimal(1)))

    seen = _sync_level_of_each_insert(store, write)
    assert seen["order_intents"] == {"FULL"}
    assert seen["fills"] == {"FULL"}
    assert seen["journal"] == {"FULL"}
    assert seen["positions"] == {"NORMAL"}  # a position is rebuilt from fills: no fsync needed


def test_every_index_of_a_table_with_broker_id_leads_with_it(tmp_path):
    import sqlite3

    from desktop.store import DB_FILENAME, Store

    with Store.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        checked = 0
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            if "broker_id" not in columns:
                continue
            for _, index, *_ in conn.execute(f'PRAGMA index_list("{table}")'):
                cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{index}")')]
                if cols == ["id"]:
                    continue  # the record's uuid primary key (for the sync), never a query by account
                assert cols[0] == "broker_id", f"{table}.{index} leads with {cols[0]}"
                checked += 1
    finally:
        conn.close()
    assert checked >= 7
