"""A sync thread per enabled account, and the status a window or a terminal polls.

Plain threads, no Qt: the window (or `kitedesk sync run`) starts a `SyncWorker`, polls `status()` (cheap,
no I/O: a snapshot the worker keeps) and calls `stop()` on the way out. The worker never touches the
engine; it shares only the store's write lock, for the moment a pushed batch is acknowledged or a pulled
batch saved, like any other writer.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from desktop.store.errors import StoreError
from desktop.store.store import Store
from desktop.sync.central import SyncError
from desktop.sync.config import PASSWORD_ENV, SyncConfig, SyncSecrets, with_password
from desktop.sync.syncer import (
    CONNECT_TIMEOUT_S,
    check_central,
    connect_central,
    pending_count,
    pull_batch,
    push_batch,
)

log = logging.getLogger(__name__)

State = Literal["off", "starting", "synced", "pending", "offline", "error"]
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # the last repeats: `offline — retry in 30 s`
IDLE_S = 2.0
# A stop lets the batch in hand finish for this long, then cuts the connection under it (a hung server would
# otherwise hold the window's close for as long as the operating system waits on the socket).
STOP_GRACE_S = 2.0
STOP_TIMEOUT_S = STOP_GRACE_S + CONNECT_TIMEOUT_S + 1.0  # a thread inside a connect waits out its timeout


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the status bar shows for one account: `state` and a sentence in `text`."""

    broker_id: str
    state: State
    pending: int = 0
    error: str = ""
    retry_at: float | None = None  # time.monotonic() of the next attempt while offline or failing
    last_synced_at: datetime | None = None
    pushed: int = 0  # outbox entries pushed by this worker (since it started)
    pulled: int = 0  # rows pulled by this worker

    @property
    def text(self) -> str:
        """`synced`, `N pending`, `offline — retry in 30 s`, or the error in words."""
        if self.state == "synced":
            return "synced"
        if self.state == "pending":
            return f"{self.pending} pending"
        if self.state in ("offline", "error"):
            wait = (
                ""
                if self.retry_at is None
                else f" — retry in {max(0, round(self.retry_at - time.monotonic()))} s"
            )
            return ("offline" if self.state == "offline" else self.error) + wait
        return self.state


class SyncWorker:
    """Syncs one account of one store until stopped: push all pending, pull all new, wait, again."""

    def __init__(self, store: Store, broker_id: str, url: str, *, idle_s: float = IDLE_S) -> None:
        self._store = store
        self._url = url  # holds the password: kept in memory only, never logged or shown
        self._idle_s = idle_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._status = SyncStatus(broker_id, "starting")
        self._conn: psycopg.Connection[Any] | None = None  # the thread's, kept between rounds
        # `abort` reads the socket of `_conn` from another thread while this one may close it.
        self._conn_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"sync-{broker_id}", daemon=True)

    def __repr__(self) -> str:  # never print the URL
        return f"SyncWorker({self._status.broker_id!r})"

    @property
    def broker_id(self) -> str:
        """The account this worker syncs."""
        return self._status.broker_id

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Asks the thread to stop after the batch in hand, and waits for it; a batch that has not finished
        within STOP_GRACE_S (a hung server) is cut off by `abort` and sent again by the next sync (`stop_all`)."""
        stop_all([self], timeout)

    def request_stop(self) -> None:
        """Asks the thread to stop after the batch in hand, without waiting (see `stop`)."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Waits up to `timeout` s for the thread to end; True when it has (or never started)."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def abort(self) -> None:
        """Cuts the connection's socket under the thread, whatever it waits for: its read ends at once with an
        error, the server rolls back the open transaction, and nothing of the batch was acknowledged here,
        so the next sync sends it again (the upserts make that safe)."""
        with self._conn_lock:
            conn = self._conn
            if conn is None or conn.closed:
                return
            try:
                dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
            except (psycopg.Error, OSError):
                return
        with dup, suppress(OSError):
            dup.shutdown(socket.SHUT_RDWR)

    def sync_now(self) -> None:
        """Skips the wait (new records, or the trader pressed retry)."""
        self._wake.set()

    def status(self) -> SyncStatus:
        """The latest status snapshot (no I/O)."""
        with self._lock:
            return self._status

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def run_once(self, *, keep_open: bool = False) -> tuple[int, int]:
        """One round on the calling thread: push everything, pull everything; returns (pushed, pulled).

        `keep_open` keeps the connection for the next round (the thread does: connecting costs a login's
        key derivation, CPU the engine's threads would wait for); any failure closes it.
        """
        if self._conn is None or self._conn.closed:
            conn = connect_central(self._url)
            with self._conn_lock:  # from here a stop can cut it, also during the schema check
                self._conn = conn
            check_central(conn)
        try:
            pushed, pulled = self._round(self._conn)
        except BaseException:
            self._close()
            raise
        if not keep_open:
            self._close()
        return pushed, pulled

    def _close(self) -> None:
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _round(self, conn: psycopg.Connection[Any]) -> tuple[int, int]:
        broker_id = self.broker_id
        pushed = pulled = 0
        while not self._stop.is_set() and (n := push_batch(self._store, conn, broker_id)):
            pushed += n
            self._set(state="pending", pending=pending_count(self._store, broker_id), error="", retry_at=None)
        while not self._stop.is_set() and (n := pull_batch(self._store, conn, broker_id)):
            pulled += n
        pending = pending_count(self._store, broker_id)
        st = self.status()
        self._set(
            state="synced" if pending == 0 else "pending",
            pending=pending,
            error="",
            retry_at=None,
            last_synced_at=datetime.now(UTC),
            pushed=st.pushed + pushed,
            pulled=st.pulled + pulled,
        )
        return pushed, pulled

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.run_once(keep_open=True)
                failures = 0
                wait = self._idle_s
            except (SyncError, StoreError) as exc:
                if self._stop.is_set():  # stopped mid-batch (`abort`): not a fault to show
                    break
                wait = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                message = str(exc)
                offline = "cannot be reached" in message or "connection" in message.lower()
                try:
                    pending = pending_count(self._store, self.broker_id)
                except StoreError:
                    pending = self.status().pending
                self._set(
                    state="offline" if offline else "error",
                    error=message,
                    pending=pending,
                    retry_at=time.monotonic() + wait,
                )
                log.warning("sync of %s: %s (retry in %.0f s)", self.broker_id, message, wait)
            except Exception as exc:  # a bug must not kill the thread silently: say it and retry later
                wait = BACKOFF_S[-1]
                self._set(
                    state="error",
                    error=f"sync failed: {type(exc).__name__}",
                    retry_at=time.monotonic() + wait,
                )
                log.exception("sync of %s failed", self.broker_id)
            self._wake.wait(wait)
            self._wake.clear()
        self._close()


def stop_all(workers: list[SyncWorker], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stops `workers` all at once, each after the batch in hand, cut off after STOP_GRACE_S: the whole stop
    takes at most `timeout` s however many accounts sync (a `timeout` shorter than the grace cuts them off sooner)."""
    deadline = time.monotonic() + timeout
    for w in workers:
        w.request_stop()
    grace = min(deadline, time.monotonic() + STOP_GRACE_S)
    for w in workers:
        if not w.join(max(0.0, grace - time.monotonic())):
            w.abort()
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))


class SyncService:
    """Every enabled account of one home, a `SyncWorker` each: what the window starts beside the engine.

    `statuses()` is the poll for the status bar (no I/O); `stop()` on the way out. Accounts without a
    password (keyring or environment) are not started; `problems` says why in words.
    """

    def __init__(self, store: Store, home: Path, *, idle_s: float = IDLE_S) -> None:
        self.problems: dict[str, str] = {}
        self.workers: list[SyncWorker] = []
        secrets = SyncSecrets()
        for account in SyncConfig(home).accounts():
            if not account.enabled:
                continue
            password = secrets.password(account.broker_id)
            if password is None:
                self.problems[account.broker_id] = (
                    f"no password for {account.broker_id} in the keyring or in {PASSWORD_ENV}{account.broker_id}: "
                    f"run `kitedesk sync enable {account.broker_id} --url URL` again"
                )
                continue
            url = with_password(account.url, password)
            self.workers.append(SyncWorker(store, account.broker_id, url, idle_s=idle_s))

    def start(self) -> None:
        """Starts every worker."""
        for w in self.workers:
            w.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stops every worker, all at once (see `stop_all`)."""
        stop_all(self.workers, timeout)

    def statuses(self) -> list[SyncStatus]:
        """One status per enabled account: the workers' snapshots, then the accounts that could not start."""
        out = [w.status() for w in self.workers]
        out += [SyncStatus(b, "error", error=text) for b, text in self.problems.items()]
        return out
