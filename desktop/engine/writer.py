"""`StoreWriter`: the store writes that must not hold up trading, done in order on one background thread.

Write-ahead records stay synchronous on the agent's thread: an order intent is committed before the order
is sent, a fill before anything acts on it. Everything else (order status updates, position rows, journal
notes) goes through this writer, so thirty agents do not queue behind each other's commits while ticks
wait (Anki's "one writer" habit, CONVENTIONS.md). It is FIFO: what one agent submits is written in the order
it was submitted, and a note submitted before another (on any thread) is written before it.
After a crash the positions are rebuilt from the durable fills, never from these rows.

A write the store refuses (a full disk, the database locked by another program) is lost, except the latest state
of a row (`LatestRow`: a position row, which holds the segment's day's realised P&L in the store): it is held and
tried again every `RETRY_EVERY` until the store writes again, unless a later write of the same row replaces it
first (a chaos run saw a position sold while the disk was full: its flat row, with the sale's P&L, was never
written, and the session's P&L in the store stayed the one before the sale). Given up after `HOLD_FOR`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from desktop.store import StoreWriteError

log = logging.getLogger(__name__)

Job = Callable[[], object]
RETRY_EVERY = 1.0  # seconds between two tries of the rows the store refused
HOLD_FOR = 600.0  # seconds a refused row is tried again before it is given up (logged)


@dataclass(frozen=True, slots=True)
class LatestRow:
    """A write of a row's whole latest state (an upsert) under `key`: refused by the store, it is tried again
    until written, or until a later write of the same `key` supersedes it."""

    key: Hashable
    write: Job

    def __call__(self) -> object:
        return self.write()


class StoreWriter:
    """One background thread running submitted store writes in order; owned by the Engine."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job | threading.Event | None] = queue.Queue()
        self.failures = 0
        self._store_failed = False
        self._lost = 0  # background writes the store refused since it failed
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kitedesk-store-writer")
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queues one write (runs at once, on the caller's thread, once the writer is closed)."""
        with self._lock:
            if not self._closed:
                self._queue.put(job)
                return
        job()

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything submitted so far is written; False on timeout."""
        done = threading.Event()
        with self._lock:
            if self._closed:
                return True
            self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued, then stops the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        held: dict[
            Hashable, tuple[LatestRow, float]
        ] = {}  # rows the store refused: key -> (write, first refused)
        while True:
            try:
                job = self._queue.get(timeout=RETRY_EVERY if held else None)
            except queue.Empty:
                self._retry(held)
                continue
            if job is None:
                self._retry(held)
                if held:
                    log.warning(
                        "%d row(s) the store refused were not saved before KiteDesk stopped", len(held)
                    )
                return
            if held:
                self._retry(held)
            if isinstance(job, threading.Event):
                job.set()
                continue
            self._write(job, held)

    def _write(self, job: Job, held: dict[Hashable, tuple[LatestRow, float]]) -> None:
        key = job.key if isinstance(job, LatestRow) else None
        try:
            job()
        except Exception as e:  # a failed note must not stop the writes behind it
            self.failures += 1
            if not isinstance(e, StoreWriteError):
                log.warning("a background store write failed: %s", e)
                return
            if isinstance(job, LatestRow):
                since = held[key][1] if key in held else time.monotonic()
                held[key] = (job, since)  # tried again (`_retry`); a later write of the row replaces it
            else:
                self._lost += 1
            if not self._store_failed:
                # The store refuses every write after a failure (disk full, I/O error) until it can write again:
                # the cause is said once, the rest are its echo (counted in `failures`).
                self._store_failed = True
                log.warning("a background store write failed: %s", e)
            return
        held.pop(key, None)  # a later state of the row is written: the refused one is stale
        self._resumed()

    def _retry(self, held: dict[Hashable, tuple[LatestRow, float]]) -> None:
        """The refused rows tried again, oldest first, until the store refuses one (the rest wait)."""
        for key, (job, since) in list(held.items()):
            try:
                job()
            except StoreWriteError:
                if time.monotonic() - since > HOLD_FOR:
                    del held[key]
                    self._lost += 1
                    log.warning("a row the store refused for %.0f s is given up", HOLD_FOR)
                return
            except Exception as e:
                del held[key]
                log.warning("a background store write failed: %s", e)
                continue
            del held[key]
            self._resumed()

    def _resumed(self) -> None:
        if self._store_failed:
            self._store_failed = False
            log.warning("background store writes resumed (%d were not saved meanwhile)", self._lost)
            self._lost = 0
