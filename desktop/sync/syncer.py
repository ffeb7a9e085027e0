"""Push an account's outbox to the central database, and pull its other computers' rows back.

Push. The outbox is read in batches (oldest first); each batch's records, as they are now, are upserted
in ONE PostgreSQL transaction, and the local cursor moves past the batch only after that commit. A
reply lost after the commit means the batch is sent again: every write is idempotent (facts such as
fills, intents and journal entries are inserted once and never rewritten; an order takes the other
copy's state only when that state ranks later, never OPEN over COMPLETE; sessions, positions and
profiles take the newer copy), so the second send changes nothing.

Pull. The account's rows written by other computers, past the pull cursors (one per table, kept in the
local store_meta in the same transaction as the rows), read in one snapshot so a fill never arrives
before its session. They are inserted with their own `device_id` and never queued for push. Recovery,
risk and resume read only this computer's rows (SessionRepository.list_sessions filters by device), so
another computer's rows never drive this one's trading.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Date, DateTime, Integer, Table, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from desktop.store.database import Database
from desktop.store.schema import (
    DecimalText,
    fills,
    journal,
    order_intents,
    orders,
    outbox,
    positions,
    profiles,
    sessions,
    store_meta,
    sync_cursors,
)
from desktop.store.store import Store
from desktop.sync.central import SyncError, check_broker_id, describe, require_schema

# Parents first: a pulled fill's session is inserted before it (the local store has that foreign key).
LOCAL_TABLES: dict[str, Table] = {
    "profiles": profiles,
    "sessions": sessions,
    "order_intents": order_intents,
    "orders": orders,
    "fills": fills,
    "positions": positions,
    "journal": journal,
}
FACTS = ("order_intents", "fills", "journal")  # append-only: inserted once, never rewritten
_LOCAL_ONLY = {"seq"}  # journal's local order; the central change_seq is its own
PUSH_BATCH = 2000
PULL_BATCH = 5000
_PULL_KEY = "sync_pull:"


def columns(name: str) -> list[str]:
    """The columns of a synced table that travel (every local column but the local sequence)."""
    return [c.name for c in LOCAL_TABLES[name].c if c.name not in _LOCAL_ONLY]


def _pg_type(name: str, column: str) -> str:
    """The PostgreSQL array element type a local column is sent as."""
    local = LOCAL_TABLES[name].c[column].type
    if isinstance(local, DecimalText):
        return "numeric"
    if isinstance(local, DateTime):
        return "timestamp"
    if isinstance(local, Date):
        return "date"
    if isinstance(local, Integer):
        return "integer"
    return "text"


def _upsert_sql(name: str) -> str:
    """One statement per table and batch: the columns go as arrays (one round trip, planned once)."""
    cols = columns(name)
    names = ", ".join(f'"{c}"' for c in cols)
    arrays = ", ".join(f"%s::{_pg_type(name, c)}[]" for c in cols)
    head = (
        f"INSERT INTO kitedesk.{name} AS t ({names}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (broker_id, id) DO "
    )
    if name in FACTS:
        return head + "NOTHING"
    settable = [c for c in cols if c not in ("broker_id", "id")]
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in settable)
    if name == "orders":
        sets = sets.replace(
            '"filled_quantity" = EXCLUDED."filled_quantity"',
            '"filled_quantity" = GREATEST(t.filled_quantity, EXCLUDED.filled_quantity)',
        ).replace(
            '"intent_id" = EXCLUDED."intent_id"',
            "\"intent_id\" = COALESCE(NULLIF(EXCLUDED.intent_id, ''), t.intent_id)",
        )
        rank = "kitedesk.order_status_rank"
        where = (
            f"{rank}(EXCLUDED.status) > {rank}(t.status) OR ({rank}(EXCLUDED.status) = {rank}(t.status) "
            "AND EXCLUDED.updated_at_utc > t.updated_at_utc)"
        )
    else:
        where = "EXCLUDED.updated_at_utc > t.updated_at_utc"
    return head + f"UPDATE SET {sets} WHERE {where}"


_UPSERTS = {name: _upsert_sql(name) for name in LOCAL_TABLES}


# The fast path of a push: each table's rows go by COPY (encoded in C; the values as SQLite stores them, text
# for money and times, parsed by the server) into a temporary table of the session, then one INSERT ...
# SELECT ... ON CONFLICT (the same rules as above) moves them into the central table, under its row-level
# security and trigger. The staging tables empty themselves at each commit.
def _staged_upsert_sql(name: str) -> str:
    head, _, tail = _UPSERTS[name].partition(" SELECT * FROM unnest(")
    return f"{head} SELECT * FROM pg_temp.push_{name} ON CONFLICT{tail.split(' ON CONFLICT', 1)[1]}"


def _quoted(name: str) -> str:
    return ", ".join(f'"{c}"' for c in columns(name))


_STAGED_UPSERTS = {name: _staged_upsert_sql(name) for name in LOCAL_TABLES}
_COPY_SQL = {name: f"COPY pg_temp.push_{name} ({_quoted(name)}) FROM STDIN" for name in LOCAL_TABLES}
_STAGING_DDL = "; ".join(
    f"CREATE TEMP TABLE IF NOT EXISTS push_{name} ON COMMIT DELETE ROWS AS "
    f"SELECT {_quoted(name)} FROM kitedesk.{name} WITH NO DATA"
    for name in LOCAL_TABLES
)


def database(store: Store) -> Database:
    """The store's database door (the sync reads the outbox and writes pulled rows through it)."""
    return store._db  # noqa: SLF001 - the sync sits above the store and shares its one write lock


def pending_count(store: Store, broker_id: str) -> int:
    """How many of the account's local changes wait to be pushed."""
    with database(store).read() as conn:
        done = conn.execute(
            select(sync_cursors.c.last_seq).where(sync_cursors.c.broker_id == broker_id)
        ).scalar()
        return int(
            conn.execute(
                select(func.count()).where(outbox.c.broker_id == broker_id, outbox.c.seq > int(done or 0))
            ).scalar_one()
        )


def push_batch(
    store: Store, conn: psycopg.Connection[Any], broker_id: str, *, limit: int = PUSH_BATCH
) -> int:
    """Pushes the account's next outbox batch in one transaction; returns the outbox entries it covered."""
    covered, last_seq, rows = _next_batch(store, broker_id, limit)
    if not covered:
        return 0
    try:
        staged = _staging(conn)
        with conn.transaction(), conn.cursor() as cur:
            for name, found in rows.items():
                if staged:  # COPY into the session's staging table (the values as stored), then one upsert
                    with cur.copy(_COPY_SQL[name]) as copy:
                        for row in found:
                            copy.write_row(row)
                    cur.execute(_STAGED_UPSERTS[name])
                else:
                    typed = [_typed(name, row) for row in found]
                    cur.execute(_UPSERTS[name], [list(col) for col in zip(*typed, strict=True)])
    except psycopg.Error as exc:
        raise SyncError(describe(exc) + "; the batch stays queued and is sent again") from None
    # Only now: a crash before this line re-sends the batch, which the upserts make a no-op.
    acknowledge(store, broker_id, last_seq)
    return covered


def _next_batch(store: Store, broker_id: str, limit: int) -> tuple[int, int, dict[str, list[Sequence[Any]]]]:
    """(outbox entries covered, the last one's seq, per table the rows they name, as stored) in one snapshot.

    Only the synced tables are read: an outbox entry of anything else (a cache) never leaves the computer.
    The values go as SQLite holds them (text for money and times): the server parses them into its types.
    """
    with database(store).read() as conn:
        done = conn.execute(
            select(sync_cursors.c.last_seq).where(sync_cursors.c.broker_id == broker_id)
        ).scalar()
        done = int(done or 0)
        covered, last = conn.exec_driver_sql(_BATCH_SQL, (broker_id, done, limit)).one()
        if not covered:
            return 0, done, {}
        rows: dict[str, list[Sequence[Any]]] = {}
        for name in LOCAL_TABLES:
            found = conn.exec_driver_sql(_ROWS_SQL[name], (broker_id, broker_id, name, done, last)).all()
            if found:
                rows[name] = list(found)
    return int(covered), int(last), rows


_BATCH_SQL = (
    "SELECT count(*), max(seq) FROM "
    "(SELECT seq FROM outbox WHERE broker_id = ? AND seq > ? ORDER BY seq LIMIT ?)"
)
_ROWS_SQL = {
    name: f"SELECT {', '.join(chr(34) + c + chr(34) for c in columns(name))} FROM {name} "  # noqa: S608 - ours
    "WHERE broker_id = ? AND id IN (SELECT record_id FROM outbox "
    "WHERE broker_id = ? AND table_name = ? AND seq > ? AND seq <= ?)"
    for name in LOCAL_TABLES
}


def _converter(name: str, column: str) -> Callable[[Any], Any] | None:
    kind = _pg_type(name, column)
    if kind == "numeric":
        return Decimal
    if kind == "timestamp":
        return datetime.fromisoformat
    if kind == "date":
        return date.fromisoformat
    return None


_CONVERTERS = {name: [_converter(name, c) for c in columns(name)] for name in LOCAL_TABLES}


def _typed(name: str, row: Sequence[Any]) -> tuple[Any, ...]:
    """A stored row with its money and times as Python values (for the arrays path)."""
    return tuple(v if f is None or v is None else f(v) for f, v in zip(_CONVERTERS[name], row, strict=True))


# Connections whose session has its staging tables (a temporary table lives as long as its session).
_STAGED: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()


def _staging(conn: psycopg.Connection[Any]) -> bool:
    """Makes this session's staging tables, once per connection; False when the server gives this login no
    temporary tables (its batches then go as arrays, slower: psycopg quotes every element in Python)."""
    known = _STAGED.get(conn)
    if known is None:
        try:
            with conn.transaction():
                conn.execute(_STAGING_DDL)
            known = True
        except psycopg.errors.InsufficientPrivilege:
            known = False
        _STAGED[conn] = known
    return known


def acknowledge(store: Store, broker_id: str, up_to_seq: int) -> None:
    """Moves the push cursor (never back). Not fsynced: a cursor lost in a power cut only re-sends batches the
    upserts ignore, and an fsync here would hold the store's write lock that the sessions' writes queue on."""
    with database(store).write(durable=False, what="sync cursor") as conn:
        done = conn.execute(
            select(sync_cursors.c.last_seq).where(sync_cursors.c.broker_id == broker_id)
        ).scalar()
        if up_to_seq > int(done or 0):
            stmt = sqlite_insert(sync_cursors).values(broker_id=broker_id, last_seq=up_to_seq)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[sync_cursors.c.broker_id], set_={"last_seq": up_to_seq}
                )
            )


def pull_cursors(store: Store, broker_id: str) -> dict[str, int]:
    """The account's pull cursors: per table, the last central change_seq received."""
    with database(store).read() as conn:
        raw = conn.execute(
            select(store_meta.c.value).where(store_meta.c.key == _PULL_KEY + broker_id)
        ).scalar()
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


def pull_batch(
    store: Store, conn: psycopg.Connection[Any], broker_id: str, *, limit: int = PULL_BATCH
) -> int:
    """Pulls the account's next rows written by other computers; returns how many arrived."""
    cursors = pull_cursors(store, broker_id)
    me = store.device_id
    fetched: dict[str, list[Sequence[Any]]] = {}
    try:
        with conn.transaction():
            # One snapshot for every table: a row's parent (its session) is never missing from it.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for name in LOCAL_TABLES:
                # Sessions and profiles come whole: a fill's session may have changed after the fill.
                cap = "" if name in ("profiles", "sessions") else f" LIMIT {int(limit)}"
                fetched[name] = conn.execute(
                    _PULL_SELECT[name] + cap, (broker_id, cursors.get(name, 0), me)
                ).fetchall()
    except psycopg.Error as exc:
        raise SyncError(describe(exc)) from None
    total = sum(len(v) for v in fetched.values())
    if total == 0:
        return 0
    new_cursors = dict(cursors)
    for name, rows in fetched.items():
        if rows:
            new_cursors[name] = max(new_cursors.get(name, 0), int(rows[-1][-1]))
    _insert_pulled(store, broker_id, fetched, new_cursors)
    return total


# A pulled row comes in the text SQLite stores (the server formats it: money as its digits, times as
# SQLAlchemy's SQLite format), so it goes into the local table as it is, with no conversion in Python.
_SQLITE_TEXT = {
    "numeric": '"{c}"::text',
    "timestamp": """to_char("{c}", 'YYYY-MM-DD HH24:MI:SS.US')""",
    "date": """to_char("{c}", 'YYYY-MM-DD')""",
}
_PULL_SELECT = {
    name: "SELECT "
    + ", ".join(_SQLITE_TEXT.get(_pg_type(name, c), '"{c}"').format(c=c) for c in columns(name))
    + f", change_seq FROM kitedesk.{name} "
    "WHERE broker_id = %s AND change_seq > %s AND device_id <> %s ORDER BY change_seq"
    for name in LOCAL_TABLES
}
_PULL_INSERTS: dict[tuple[str, str], str] = {}


def _pull_insert(name: str, me: str) -> str:
    """The local insert of a pulled row of `name` on the device `me` (positional, the SELECT's columns)."""
    sql = _PULL_INSERTS.get((name, me))
    if sql is None:
        if not re.fullmatch(r"[0-9a-f]{32}", me):
            raise SyncError("this computer's device id is damaged; nothing was pulled")
        cols = columns(name)
        marks = ", ".join("?" for _ in cols)
        sql = f"INSERT INTO {name} ({_quoted(name)}) VALUES ({marks}) ON CONFLICT"
        if name in FACTS or name == "profiles":
            sql += " DO NOTHING"
        else:
            # Central already chose the winning copy; this computer's own rows are never overwritten.
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in ("id", "broker_id"))
            sql += f" (id) DO UPDATE SET {sets} WHERE {name}.device_id <> '{me}'"  # hex only: checked above
        _PULL_INSERTS[(name, me)] = sql
    return sql


def _insert_pulled(
    store: Store, broker_id: str, fetched: dict[str, list[Sequence[Any]]], cursors: dict[str, int]
) -> None:
    db = database(store)
    me = store.device_id
    # Not fsynced either: rows and cursor are lost (and pulled again) together.
    with db.write(durable=False, what="records pulled from the central database") as conn:
        # A session of this computer is never fed another computer's copy of its rows (only a copied
        # database file makes two computers share a session): recovery replays what this one recorded.
        own_sessions = set(
            conn.execute(
                select(sessions.c.session_id).where(
                    sessions.c.broker_id == broker_id, sessions.c.device_id == me
                )
            ).scalars()
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        for name, rows in fetched.items():
            cols = columns(name)
            values = [r[:-1] for r in rows]
            if "session_id" in cols and name != "sessions":
                at = cols.index("session_id")
                values = [v for v in values if v[at] not in own_sessions]
            if values:
                raw.cursor().executemany(_pull_insert(name, me), values)
        meta = sqlite_insert(store_meta).values(key=_PULL_KEY + broker_id, value=json.dumps(cursors))
        conn.execute(
            meta.on_conflict_do_update(index_elements=[store_meta.c.key], set_={"value": json.dumps(cursors)})
        )


# How the sync's connections guard against a server that stops answering. Server side, a statement or an
# idle open transaction that outlives a minute is ended (a lock held by another session, a client gone).
# Client side, TCP keepalives notice a peer that no longer acknowledges anything (a host gone, a route
# dropped) within about a minute, where a read would otherwise wait for hours; a stop in between aborts the
# socket itself (SyncWorker.stop).
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 60_000
_CONNECTION_OPTIONS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
    f"-c idle_in_transaction_session_timeout={STATEMENT_TIMEOUT_MS}",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


def connect_central(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection for the sync (transactions are explicit), not yet checked against the schema."""
    try:
        return psycopg.connect(url, autocommit=True, **_CONNECTION_OPTIONS)
    except psycopg.Error as exc:
        raise SyncError(describe(exc)) from None


def check_central(conn: psycopg.Connection[Any]) -> None:
    """SyncError unless `conn`'s central schema is this app's; closes `conn` when it is not."""
    try:
        require_schema(conn)
    except psycopg.Error as exc:
        conn.close()
        raise SyncError(describe(exc)) from None
    except BaseException:
        conn.close()
        raise


def open_central(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection for the sync (transactions are explicit), checked against this app's schema."""
    conn = connect_central(url)
    check_central(conn)
    return conn


def sync_once(store: Store, url: str, broker_id: str) -> tuple[int, int]:
    """Pushes everything pending, then pulls everything new; returns (pushed, pulled)."""
    broker_id = check_broker_id(broker_id)
    pushed = pulled = 0
    with open_central(url) as conn:
        while n := push_batch(store, conn, broker_id):
            pushed += n
        while n := pull_batch(store, conn, broker_id):
            pulled += n
    return pushed, pulled
