"""The one door to the SQLite file: connections, transactions, retries and write-failure handling.

Threads. SQLite allows one writer at a time. Rather than let 30 segment agents race for that lock
(and meet "database is locked"), every write in this process goes through `Database.write`, which
holds one `threading.Lock` for the whole transaction: writers queue in Python, in order, and never
see SQLITE_BUSY from each other. Each write is one `BEGIN IMMEDIATE ... COMMIT` on a pooled
connection, so a logical record (the row plus its outbox entry) is all written or not at all.
Reads use their own pooled connections without the lock: in WAL mode readers never block the writer
and see a consistent snapshot. Another process on the same file (a second app, the export command)
is met with SQLite's busy timeout, then a few retries, then `StoreLockedError`.

Group commit. The hot writes (intents, fills, journal entries, order updates, positions) go through
`Database.run(work)`: the writes queued while another batch's COMMIT is on disk are run together, each
in a SAVEPOINT of one transaction (one of them failing touches none of the others), with one fsync
for the lot. A caller still returns only once its own write is committed, so "journaled before acting"
holds, but thirty agents that decide on the same tick wait for one or two fsyncs, not thirty. No extra
thread: the first waiter becomes the batch's leader (PostgreSQL's and InnoDB's habit).

Waiting writes first. A write whose caller waits for it (an order's intent before the order is sent, a fill
before it is acted on) is never queued behind the background writer's notes (engine/writer.py): those are
`deferred` (queued without waiting, in order, then waited for together), and a leader takes the waited-for
writes first, in a batch of their own. So an intent waits at most for the one batch already on disk, never
for the journal notes, order updates and positions queued meanwhile, and the writer's notes share one fsync
per batch instead of one each (issue 18: intents waited 4-11 ms behind the writer's one-note transactions).

Hot writes skip SQLAlchemy's per-call machinery. A batch runs on one connection kept for it, through the
driver's cursor, with `Prepared` statements: SQL and value conversions compiled once by SQLAlchemy, then
only sqlite3's execute per write. Through `Connection.execute` a write cost 0.4-1.7 ms of CPU (coercions,
cache keys, result set-up, pool checkout, five control statements), all of it holding the GIL that thirty
agents and the window share; an entry makes about eight such writes.

Durability. Intents, fills and journal entries are committed with `synchronous=FULL` (on disk before
the call returns, even across a power cut); order updates and positions, which a restart rebuilds
from the broker, use `NORMAL` (safe across a crash of the app). A disk-full or I/O failure during a
write raises `StoreWriteError` and pauses the store: every write is refused with the same error for
`RETRY_AFTER_S`, then the next one tries the disk again; the first that commits resumes recording (logged). A full disk for a few seconds must not end a trading day, and
no failure is silent: each refused write raised to its caller (an order is not sent when its intent was
refused, a fill is recorded again by the engine). A damaged database file stays latched until it is reopened.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import ClauseElement, Connection, Engine, Table, create_engine, event, insert
from sqlalchemy.dialects.sqlite import Insert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, ProgrammingError, StatementError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.compiler import SQLCompiler

from desktop.store.errors import (
    BUSY_CODES,
    CORRUPT_CODES,
    SQLITE_FULL,
    SQLITE_IOERR,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreWriteError,
    sqlite_code,
    sqlite_reason,
)
from desktop.store.schema import outbox

PragmaValue = int | str
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
MAX_BATCH = 16  # writes per group-commit transaction
# After a disk-full or I/O failure: writes are refused this long, then the disk is tried again.
RETRY_AFTER_S = 1.0
# How long a write waits for a lock another program is known to keep (see `begin_immediate`).
LOCKED_TRY_S = 0.02
_RESUMABLE = (SQLITE_FULL, SQLITE_IOERR)  # failures that may pass (space freed); a damaged file does not

log = logging.getLogger(__name__)


class RefusedValue(Exception):
    """A value a column cannot take (a float as money, ...), found before SQLite saw it."""


_DIALECT = sqlite_dialect(paramstyle="named")
_PARAM = re.compile(r":(\w+)")
ROWS_PER_INSERT = (
    64  # rows of one multi-row INSERT (`Writes.execute_rows`): 64 x ~20 columns, far below SQLite's cap
)


class Prepared:
    """A statement compiled once by SQLAlchemy for SQLite, run by `Writes.execute` on the driver's cursor.

    The SQL text and each parameter's conversion (Decimal to text, datetimes in SQLAlchemy's SQLite format)
    are SQLAlchemy's own, so what is written here reads back through the tables like any other row. An
    INSERT is compiled for the set of columns it is given (once per set). Rows come back as the driver's
    plain tuples, without SQLAlchemy's result conversions: select text and integer columns only.
    """

    def __init__(self, stmt: ClauseElement) -> None:
        self._stmt = stmt
        self._compiled: dict[tuple[str, ...], tuple[str, dict[str, Callable[[Any], Any]]]] = {}

    def bind(self, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The SQL for these columns and the values converted as SQLAlchemy would bind them."""
        names = tuple(values)
        compiled = self._compiled.get(names)
        if compiled is None:
            compiled = self._compiled[names] = self._compile(names)
        sql, converters = compiled
        try:
            return sql, {k: (converters[k](v) if k in converters else v) for k, v in values.items()}
        except (TypeError, ValueError) as exc:
            raise RefusedValue(str(exc)) from exc

    def bind_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
        """An INSERT of several rows (the same columns each) as ONE statement: `INSERT ... VALUES (row 0), (row 1),
        ...`, each row's values converted as `bind` converts them. One statement is one step of SQLite's, so the
        interpreter lock is let go once for all the rows, not once per row (see `Writes.execute_rows`)."""
        names = tuple(rows[0])
        key = (*names, f"#rows{len(rows)}")
        compiled = self._compiled.get(key)
        if compiled is None:
            sql, converters = self._compiled.get(names) or self._compile(names)
            self._compiled[names] = (sql, converters)
            head, sep, tail = sql.partition(" VALUES (")
            template, close, rest = tail.partition(")")
            if not sep or not close or not head.startswith("INSERT"):
                raise ValueError(f"not a single-row INSERT: {sql}")
            tuples = ", ".join("(" + _PARAM.sub(rf":\1__{n}", template) + ")" for n in range(len(rows)))
            compiled = self._compiled[key] = (f"{head} VALUES {tuples}{rest}", converters)
        sql, converters = compiled
        params: dict[str, Any] = {}
        try:
            for n, values in enumerate(rows):
                if tuple(values) != names:
                    raise ValueError("the rows of one INSERT must have the same columns, in the same order")
                for k, v in values.items():
                    params[f"{k}__{n}"] = converters[k](v) if k in converters else v
        except (TypeError, ValueError) as exc:
            raise RefusedValue(str(exc)) from exc
        return sql, params

    def _compile(self, names: tuple[str, ...]) -> tuple[str, dict[str, Callable[[Any], Any]]]:
        compiled = cast(SQLCompiler, self._stmt.compile(dialect=_DIALECT, column_keys=list(names)))
        converters: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            convert = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if convert is not None:
                converters[name] = convert
        return compiled.string, converters


class Writes:
    """What a `Database.run` job writes with: `Prepared` statements inside the batch's transaction.

    `session_modes` remembers each recorded session's mode (it never changes, and sessions are never
    deleted), so the check that paper and live never mix costs a lookup, not a query, per write.
    """

    __slots__ = ("_cursor", "session_modes")

    def __init__(self, cursor: sqlite3.Cursor, session_modes: dict[tuple[str, str], Any]) -> None:
        self._cursor = cursor
        self.session_modes = session_modes

    def execute(self, stmt: Prepared, values: Mapping[str, Any]) -> sqlite3.Cursor:
        """Runs `stmt` with `values`; the cursor gives `rowcount`, `lastrowid` and any rows (as tuples)."""
        sql, params = stmt.bind(values)
        return self._cursor.execute(sql, params)

    def execute_rows(self, stmt: Prepared, rows: Sequence[Mapping[str, Any]]) -> int:
        """Runs the INSERT `stmt` for all `rows` (the same columns each) in as few statements as it takes
        (`ROWS_PER_INSERT` rows each); returns the rows added. A group commit's rows go in one step of SQLite's:
        the driver lets go of the interpreter lock around each step, and under load taking it back waited for
        another thread's turn each time (issue 18: a frame's transaction of 15 intents, a statement each and
        their outbox rows, took 5-17 ms of wall time for well under 1 ms of work)."""
        added = 0
        if not rows:
            return added
        # Never more `?` than this SQLite takes in one statement: 999 in builds before 3.32 (64 rows of an intent's
        # 18 columns are 1,152); over it, "too many SQL variables" is taken for a failing store.
        limit = self._cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(ROWS_PER_INSERT, limit // max(1, len(rows[0]))))
        for start in range(0, len(rows), per):
            sql, params = stmt.bind_rows(rows[start : start + per])
            added += self._cursor.execute(sql, params).rowcount
        return added

    def present(self, table: Table, ids: Sequence[str]) -> set[str]:
        """Which of `ids` (primary keys of `table`) are saved already: one query (more past SQLite's `?` limit)."""
        found: set[str] = set()
        per = self._cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # see `execute_rows`
        for start in range(0, len(ids), per):
            part = tuple(ids[start : start + per])
            marks = ", ".join("?" * len(part))
            found.update(
                row[0]
                for row in self._cursor.execute(f"SELECT id FROM {table.name} WHERE id IN ({marks})", part)
            )
        return found

    def add_to_outbox(self, *, broker_id: str, table_name: str, record_id: str) -> None:
        """Queues one changed record for the sync, in this transaction."""
        self.execute(_OUTBOX_PREPARED, outbox_row(broker_id, table_name, record_id))

    def add_all_to_outbox(self, changed: Sequence[tuple[str, str, str]]) -> None:
        """Queues changed records (broker id, table name, record id each), in order, for the sync: one statement."""
        if changed:
            self.execute_rows(_OUTBOX_PREPARED, [outbox_row(b, t, r) for b, t, r in changed])


class Queued(Protocol[T_co]):
    """A write queued by `Database.enqueue`, for `Database.wait`."""

    @property
    def done(self) -> bool: ...


class Deferred(Protocol):
    """A write queued inside `Database.deferred`: once the block is left, None (saved) or why it was not."""

    @property
    def error(self) -> BaseException | None: ...


@dataclass(eq=False)
class _Job(Generic[T]):
    """One queued `run` call: its work, and once its batch committed, its value or error."""

    work: Callable[[Writes], T]
    durable: bool
    what: str
    then: Callable[[], None] | None = None  # run by the leader once done (`Database.enqueue`)
    done: bool = False
    value: Any = None
    error: BaseException | None = field(default=None, repr=False)


# Statements built once and run with parameters: SQLAlchemy then skips building and hashing a new statement
# per write (half of a journal append's CPU, all of it holding the GIL the agents and the window share).
_OUTBOX_INSERT = insert(outbox)
_OUTBOX_PREPARED = Prepared(_OUTBOX_INSERT)


def upsert_statement(table: Table, updated: Sequence[str]) -> Insert:
    """An insert of one row of `table` (run with its values as parameters) that, when a row with the same id
    exists, replaces that row's `updated` columns with the new values and leaves its other columns alone."""
    stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id], set_={name: stmt.excluded[name] for name in updated}
    )


def outbox_row(broker_id: str, table_name: str, record_id: str) -> dict[str, Any]:
    """The outbox entry queuing one changed record for the sync."""
    return {
        "broker_id": broker_id,
        "table_name": table_name,
        "record_id": record_id,
        "changed_at_utc": utc_now(),
    }


def utc_now() -> datetime:
    """Wall-clock time for bookkeeping columns (`*_utc`), as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """A SQLite file behind one write lock; repositories do all their SQL through `read` and `write`."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        lock_retries: int = 3,
        extra_pragmas: Mapping[str, PragmaValue] | None = None,
    ) -> None:
        self.path = path
        self.device_id = ""  # set by the store once the schema exists
        self._busy_timeout_s = busy_timeout_s
        self._lock_retries = lock_retries
        self._write_lock = threading.Lock()
        self._batch_cv = threading.Condition()  # guards _pending and _leading
        self._pending: list[_Job[Any]] = []  # writes their callers wait for: the next batch's
        self._bulk: list[_Job[Any]] = []  # deferred writes (the background writer's): after those
        self._leading = False
        self._deferring = threading.local()  # .jobs: the calling thread's deferred writes (see `deferred`)
        self.batches = 0  # group-commit transactions run (bench and tests)
        self._failure: StoreWriteError | None = None
        self._retry_at: float | None = None  # monotonic: when a paused store tries the disk again
        self._locked_since: float | None = None  # monotonic: a write waited out another program's lock (see
        # `begin_immediate`); None once a write took the lock
        self.resumes = 0  # times recording resumed after a failure (tests, bench)
        self._closed = False
        self._batch_conn: Any = None  # the pooled connection group commits run on (under the write lock)
        self._batch_sync = ""  # its synchronous level, set only when it changes
        self._session_modes: dict[tuple[str, str], Any] = {}  # see Writes
        self.engine: Engine = _make_engine(path, busy_timeout_s, dict(extra_pragmas or {}))

    @property
    def write_failure(self) -> StoreWriteError | None:
        """The failure that paused (or stopped) writes, or None while writes are accepted."""
        return self._failure

    def _resumed(self) -> None:
        """A write committed: a paused store records again (called under the write lock)."""
        if self._failure is None:
            return
        log.warning(
            "KiteDesk records to %s again (writes were refused meanwhile: %s)", self.path, self._failure
        )
        self._failure, self._retry_at = None, None
        self.resumes += 1

    @contextmanager
    def write(self, *, durable: bool, what: str) -> Iterator[Connection]:
        """One write transaction saving `what` ("fill", "journal entry", ...): all of it or nothing."""
        self._refuse_if_stopped(what)
        self._flush_deferred()
        with self._write_lock:
            self._refuse_if_stopped(what)
            try:
                conn = self.engine.connect()
            except DBAPIError as exc:
                raise self._write_failed(exc, what) from exc
            try:
                conn.exec_driver_sql("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
                conn.commit()
                self.begin_immediate(conn.exec_driver_sql, conn.rollback)
                try:
                    yield conn
                    conn.exec_driver_sql("COMMIT")
                except BaseException:
                    _rollback_quietly(conn)
                    raise
                conn.commit()
                self._resumed()
            except StoreError:
                raise
            except StatementError as exc:  # IntegrityError and DBAPIError are StatementErrors too
                raise self._translate(exc, what) from exc
            finally:
                conn.close()

    def run(self, work: Callable[[Writes], T], *, durable: bool, what: str) -> T:
        """Runs `work(writes)` inside a write transaction shared with other queued writes; returns its value
        once committed (on disk first when `durable`). Raises as `write` would, for this write only.
        Inside `deferred` (on that thread) it only queues the write, behind waited-for ones, and returns None."""
        self._refuse_if_stopped(what)
        job: _Job[T] = _Job(work, durable, what)
        deferring: list[_Job[Any]] | None = getattr(self._deferring, "jobs", None)
        with self._batch_cv:
            (self._bulk if deferring is not None else self._pending).append(job)
        if deferring is not None:
            deferring.append(job)
            return None  # type: ignore[return-value]
        return self.wait(job)

    def enqueue(
        self, work: Callable[[Writes], T], *, durable: bool, what: str, then: Callable[[], None] | None = None
    ) -> Queued[T]:
        """`run`'s first half: queues a write its caller will wait for (with `wait`), without waiting now. Any
        thread; the write is committed by whichever thread leads a batch next (`lead`, `wait`). `then` runs on
        that thread once the write is committed or failed: quick, and it must not raise (a wake-up)."""
        self._refuse_if_stopped(what)
        job: _Job[T] = _Job(work, durable, what, then)
        with self._batch_cv:
            self._pending.append(job)
        return job

    def wait(self, queued: Queued[T]) -> T:
        """`run`'s second half: returns the queued write's value once committed, or raises why it was not."""
        job = cast(_Job[T], queued)
        self._await(job)
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def lead(self) -> None:
        """Commits the waited-for writes queued now, on the calling thread (one with nothing more urgent to do:
        the background writer), waiting its turn while another thread leads; returns once none is queued."""
        while True:
            with self._batch_cv:
                while self._leading:
                    self._batch_cv.wait()
                if not self._pending:
                    return
            self._lead_once(None)

    @contextmanager
    def deferred(self) -> Iterator[list[_Job[Any]]]:
        """Inside, this thread's `run` calls queue their writes without waiting (in order, after every write a
        caller waits for); on leaving, waits until all are committed. Yields those writes: each one's `.error`
        is None (saved) or why not. For the background writer (engine/writer.py), whose caller waits for none."""
        if getattr(self._deferring, "jobs", None) is not None:
            raise RuntimeError("Database.deferred does not nest")
        jobs: list[_Job[Any]] = []
        self._deferring.jobs = jobs
        try:
            yield jobs
        finally:
            self._deferring.jobs = None
            for job in jobs:
                self._await(job)

    def _flush_deferred(self) -> None:
        """A `write` inside `deferred`: this thread's queued writes go to disk first (their order is kept)."""
        jobs = getattr(self._deferring, "jobs", None)
        for job in jobs or ():
            self._await(job)

    def _await(self, job: _Job[Any]) -> None:
        """Returns once `job` is committed (or failed), leading batches while no other thread is."""
        while not job.done:
            self._lead_once(job)

    def _lead_once(self, job: _Job[Any] | None) -> None:
        """Waits while another thread leads; then, unless `job` got done meanwhile, commits the next batch."""
        with self._batch_cv:
            while (job is None or not job.done) and self._leading:
                self._batch_cv.wait()
            if job is not None and job.done:
                return
            # Capped: a leader runs its batch's Python under the GIL, and a long run would hold up
            # the GUI and the agents. The writes left over form the next batch at once
            # (the oldest first: this leader's own write may be among them, then it leads again).
            # Waited-for writes first, in a batch of their own: a deferred note never delays an intent.
            # A batch of deferred writes gives way to a waited-for write queued while it runs: it commits what it
            # has written so far and the rest goes back to the head of the line (`_commit_batch`'s `yields`).
            bulk = not self._pending
            if not bulk:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            else:
                batch, self._bulk = self._bulk[:MAX_BATCH], self._bulk[MAX_BATCH:]
            if not batch:
                return
            self._leading = True
        left: list[_Job[Any]] = []
        try:
            left = self._commit_batch(batch, yields=bulk)
        finally:
            with self._batch_cv:
                if left:
                    self._bulk[:0] = left
                self._leading = False
                self._batch_cv.notify_all()
            for done in batch:
                if done.then is not None and done.done:
                    done.then()

    def _commit_batch(self, jobs: list[_Job[Any]], yields: bool = False) -> list[_Job[Any]]:
        """One transaction for `jobs`, a SAVEPOINT each; marks each done with its value or error. `yields`: once a
        waited-for write is queued (`_pending`), the jobs not started yet are left out (returned, not done): a note
        never holds an intent up for more than its own write (issue 18: an intent waited behind batches of 16
        notes, each statement of which let the interpreter lock go, 5-20 ms under load)."""
        failed: StoreWriteError | None = None
        ran = jobs
        try:
            with self._batch_transaction(durable=any(j.durable for j in jobs), what=jobs[0].what) as cursor:
                writes = Writes(cursor, self._session_modes)
                for n, job in enumerate(jobs):
                    if (
                        yields and n and self._pending
                    ):  # read without the lock: a write queued just after waits
                        ran = jobs[:n]  # for one more job at most
                        break
                    job.error = failed  # a write that failed at the disk stops the ones after it
                    if job.error is not None:
                        continue
                    # Savepoints nest and COMMIT ends them all: no RELEASE per write (each statement lets go
                    # of the GIL, and so of the leader's turn while thirty agents wait for it).
                    cursor.execute(f"SAVEPOINT w{n}")
                    try:
                        job.value = job.work(writes)
                    except BaseException as exc:  # this write only: roll it back, keep the others
                        with suppress(Exception):
                            cursor.execute(f"ROLLBACK TO w{n}")
                        job.error = self._translate(exc, job.what)
                        if isinstance(job.error, StoreWriteError) and job.error is self._failure:
                            failed = job.error
                if failed is not None:
                    # SQLite may have rolled the whole transaction back on a full disk (a COMMIT would then fail
                    # with "no transaction is active", not the disk's reason): none of the batch is saved.
                    raise failed
            if failed is None and any(job.error is None for job in ran):
                with self._write_lock:
                    self._resumed()
        except BaseException as exc:  # the transaction itself failed (BEGIN or COMMIT): nothing was saved
            for job in ran:
                if job.error is None:
                    job.error = exc if isinstance(exc, StoreError) else self._translate(exc, job.what)
        finally:
            self.batches += 1
            for job in ran:
                job.done = True
        return jobs[len(ran) :]

    @contextmanager
    def _batch_transaction(self, *, durable: bool, what: str) -> Iterator[sqlite3.Cursor]:
        """`write` for group commits, on the driver's cursor of the connection kept for them."""
        self._refuse_if_stopped(what)
        with self._write_lock:
            self._refuse_if_stopped(what)
            try:
                if self._batch_conn is None:
                    self._batch_conn = self.engine.raw_connection()
                cursor = self._batch_conn.cursor()
                sync = "FULL" if durable else "NORMAL"
                if self._batch_sync != sync:
                    cursor.execute(f"PRAGMA synchronous={sync}")
                    self._batch_sync = sync
                self.begin_immediate(cursor.execute)
                try:
                    yield cursor
                    cursor.execute("COMMIT")
                except BaseException:
                    with suppress(Exception):  # SQLite may have rolled back on its own (disk full, I/O)
                        cursor.execute("ROLLBACK")
                    self._drop_batch_conn()  # the next batch starts on a fresh connection, whatever state this is in
                    raise
            except StoreError:
                raise
            except (sqlite3.Error, DBAPIError) as exc:
                raise self._translate(exc, what) from exc

    def _translate(self, exc: BaseException, what: str) -> BaseException:
        """The store's error for a write that raised `exc` (latching the store off on a disk failure)."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
            return StoreError(_integrity_message(exc, what))
        if isinstance(
            exc, InterfaceError | ProgrammingError | sqlite3.InterfaceError | sqlite3.ProgrammingError
        ):
            # A value SQLite cannot take (a caller's bug), not a failing disk: this write only is refused.
            return StoreError(f"the {what} was not saved: {sqlite_reason(exc)}")
        if isinstance(exc, DBAPIError | sqlite3.Error):
            return self._write_failed(exc, what)
        if isinstance(exc, StatementError):  # a value refused before SQLite saw it (e.g. a float as money)
            return StoreError(f"the {what} was not saved: {exc.orig}")
        if isinstance(exc, RefusedValue):
            return StoreError(f"the {what} was not saved: {exc}")
        return exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot: every query inside sees the same committed state."""
        if self._closed:
            raise StoreError("the store is closed")
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise _read_failed(exc) from exc
        try:
            conn.exec_driver_sql("BEGIN")
            yield conn
        except DBAPIError as exc:
            raise _read_failed(exc) from exc
        finally:
            _rollback_quietly(conn)
            conn.close()

    def begin_immediate(
        self, execute: Callable[[str], object], reset: Callable[[], object] = lambda: None
    ) -> None:
        """Takes SQLite's write lock now (`execute` runs SQL on the writing connection), retrying while
        another process holds it; `reset` runs after each refusal.

        Once one write waited out the whole busy timeout and its retries, the lock is known (`_locked_since`): the
        next writes try once for `LOCKED_TRY_S` only, until one goes through (the lock gone, the first write after
        takes it). Each write waiting it out again (20 s) stalled every caller in turn: Ctrl-C, with thirty
        segments saving their last notes, took 286 s; the store writer's batches waiting 0.2 s each, 36 s."""
        locked_since = self._locked_since
        retries = 0 if locked_since is not None else self._lock_retries
        if locked_since is not None:
            execute(f"PRAGMA busy_timeout={int(LOCKED_TRY_S * 1000)}")
        try:
            for attempt in range(retries + 1):
                try:
                    execute("BEGIN IMMEDIATE")
                    self._locked_since = None
                    return
                except (sqlite3.Error, DBAPIError) as exc:
                    if sqlite_code(exc) not in BUSY_CODES:
                        raise
                    reset()
                    if attempt < retries:
                        time.sleep(min(0.05 * 2**attempt, 0.5))
                        continue
                    if self._locked_since is None:
                        self._locked_since = time.monotonic()
                    # The first wait (the busy timeout and its retries), and how long the lock has been known since.
                    waited = (
                        (self._lock_retries + 1) * self._busy_timeout_s
                        + time.monotonic()
                        - self._locked_since
                    )
                    raise StoreLockedError(
                        f"the database {self.path} stayed locked by another program for about "
                        f"{waited:.1f} s; nothing was written. Close the other program and try again."
                    ) from exc
        finally:
            if locked_since is not None:
                with suppress(Exception):  # a connection the refusal left unusable is dropped by its caller
                    execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")

    def add_to_outbox(self, conn: Connection, *, broker_id: str, table_name: str, record_id: str) -> None:
        """Queues one changed record for the sync, in the caller's transaction."""
        conn.execute(_OUTBOX_INSERT, outbox_row(broker_id, table_name, record_id))

    def close(self) -> None:
        """Waits for a write in progress, then closes every connection."""
        with self._write_lock:
            self._closed = True
            self._drop_batch_conn()
            self.engine.dispose()

    def _drop_batch_conn(self) -> None:
        if self._batch_conn is not None:
            with suppress(Exception):
                self._batch_conn.close()
            self._batch_conn = None
            self._batch_sync = ""

    def _refuse_if_stopped(self, what: str) -> None:
        if self._closed:
            raise StoreWriteError(f"the {what} was not saved: the store is closed")
        failure = self._failure
        if failure is None:
            return
        retry_at = self._retry_at
        if retry_at is not None and time.monotonic() >= retry_at:
            return  # paused long enough: this write tries the disk again
        raise StoreWriteError(f"the {what} was not saved: {failure}")

    def _write_failed(self, exc: BaseException, what: str) -> StoreWriteError:
        code = sqlite_code(exc)
        if code in BUSY_CODES:
            return StoreLockedError(f"the {what} was not saved: the database {self.path} is locked")
        if code == SQLITE_FULL:
            reason = "the disk is full (or the database reached its size limit)"
        elif code == SQLITE_IOERR:
            reason = "the disk reported an I/O error"
        elif code in CORRUPT_CODES:
            reason = "the database file is damaged"
        else:
            reason = f"SQLite said: {sqlite_reason(exc)}"
        if code in _RESUMABLE:
            failure = (StoreFullError if code == SQLITE_FULL else StoreWriteError)(
                f"{reason}; the {what} was not saved and KiteDesk cannot record to {self.path}: no new entries "
                "until it can (it tries again every second). Free some space."
            )
            self._retry_at = time.monotonic() + RETRY_AFTER_S
        else:
            failure = StoreWriteError(
                f"{reason}; the {what} was not saved and KiteDesk stopped recording to {self.path}. "
                "Fix the cause and restart."
            )
            self._retry_at = None
        self._failure = failure  # said by the callers it is raised to (the engine's writer: once)
        return failure


def _make_engine(path: Path, busy_timeout_s: float, extra_pragmas: dict[str, PragmaValue]) -> Engine:
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        poolclass=QueuePool,
        pool_size=5,
        max_overflow=40,  # readers beyond the pool wait for a connection rather than fail
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Driver-level autocommit: we issue BEGIN [IMMEDIATE] / COMMIT ourselves (SQLAlchemy's
        # documented recipe), because pysqlite's implicit transactions start too late for a writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            for name, value in extra_pragmas.items():
                # Names and values go into the SQL text (PRAGMA takes no parameters): allow plain words only.
                if not name.replace("_", "").isalnum() or not str(value).replace("_", "").isalnum():
                    raise ValueError(f"not a pragma: {name}={value!r}")
                cursor.execute(f"PRAGMA {name}={value}")
        finally:
            cursor.close()

    return engine


def _rollback_quietly(conn: Connection) -> None:
    # After SQLITE_FULL or an I/O error SQLite may already have rolled back on its own.
    with suppress(Exception):
        conn.exec_driver_sql("ROLLBACK")
    with suppress(Exception):
        conn.rollback()


def _read_failed(exc: DBAPIError) -> StoreError:
    code = sqlite_code(exc)
    if code in CORRUPT_CODES:
        return StoreCorruptError(f"the database file is damaged ({sqlite_reason(exc)})")
    if code in BUSY_CODES:
        return StoreLockedError("the database is locked by another program; try again")
    return StoreError(f"could not read the database: {sqlite_reason(exc)}")


def _integrity_message(exc: BaseException, what: str) -> str:
    reason = sqlite_reason(exc)
    if "FOREIGN KEY" in reason:
        return f"the {what} was not saved: its session is not recorded for this account (record the session first)"
    return f"the {what} was not saved: it conflicts with a saved record ({reason})"
