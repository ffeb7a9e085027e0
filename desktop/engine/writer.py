"""`StoreWriter`: the store writes that must not hold up trading, done in order on one background thread.

Write-ahead records stay synchronous on the agent's thread: an order intent is committed before the order
is sent, a fill before anything acts on it. Everything else (order status updates, position rows, journal
notes) goes through this writer, so thirty agents do not queue behind each other's commits while ticks
wait (Anki's "one writer" habit, CONVENTIONS.md). It is FIFO: what one agent submits is written in the order
it was submitted, and a note submitted before another (on any thread) is written before it.
After a crash the positions are rebuilt from the durable fills, never from these rows.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from desktop.store import StoreWriteError

log = logging.getLogger(__name__)

Job = Callable[[], object]


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
        while True:
            job = self._queue.get()
            if job is None:
                return
            if isinstance(job, threading.Event):
                job.set()
                continue
            try:
                job()
            except Exception as e:  # a failed note must not stop the writes behind it
                self.failures += 1
                if isinstance(e, StoreWriteError) and self._store_failed:
                    # The store refuses every write after a failure (disk full, I/O error) until it can write
                    # again: the cause was said once, the rest are its echo (counted in `failures`).
                    self._lost += 1
                    continue
                if isinstance(e, StoreWriteError):
                    self._store_failed, self._lost = True, 1
                log.warning("a background store write failed: %s", e)
                continue
            if self._store_failed:
                self._store_failed = False
                log.warning("background store writes resumed (%d were not saved meanwhile)", self._lost)
