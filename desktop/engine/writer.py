"""`StoreWriter`: the store writes that must not hold up trading, done in order on one background thread.

Write-ahead records stay synchronous on the agent's thread: an order intent is committed before the order
is sent, a fill before anything acts on it. Everything else (order status updates, position rows, journal
notes) goes through this writer, so thirty agents do not queue behind each other's commits while ticks
wait (Anki's "one writer" habit, CONVENTIONS.md). It is FIFO: what one agent submits is written in the order
it was submitted, and a note submitted before another (on any thread) is written before it.
After a crash the positions are rebuilt from the durable fills, never from these rows.

Batched, behind the waiting writes. The writer takes every job queued (up to DRAIN at a time) and runs them
inside the store's `deferred` block: their writes are queued behind any write a caller waits for (an intent
before its order, a fill) and committed together, one fsync per group commit rather than one per note. Run one
note at a time, the writer held the database's write lock for an fsync per note, and an intent about to be sent
waited behind it (issue 18: 4-11 ms at 10 sessions × 3 segments).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from desktop.store import Deferred, StoreWriteError

log = logging.getLogger(__name__)

Job = Callable[[], object]
Batching = Callable[[], AbstractContextManager[Sequence[Deferred]]]
DRAIN = 64  # jobs taken from the queue at once (committed in group commits of the store's batch size)


class StoreWriter:
    """One background thread running submitted store writes in order; owned by the Engine."""

    def __init__(self, batching: Batching | None = None) -> None:
        """`batching`: the store's `deferred` (the jobs' writes queued behind waited-for ones and committed
        together); None runs each job alone."""
        self._batching = batching
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
            first = self._queue.get()
            jobs: list[Job] = []
            after: threading.Event | None = None
            end = first is None
            if isinstance(first, threading.Event):
                after = first
            elif first is not None:
                jobs.append(first)
                while (
                    len(jobs) < DRAIN
                ):  # what else is queued now goes with it, in order, up to a flush or the end
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        end = True
                        break
                    if isinstance(more, threading.Event):
                        after = more
                        break
                    jobs.append(more)
            if jobs:
                self._write(jobs)
            if after is not None:
                after.set()
            if end:
                return

    def _write(self, jobs: list[Job]) -> None:
        """Runs `jobs` in order; their writes committed together when batching; each failure said as `_ran` says."""
        outcomes: list[BaseException | None] = []
        spans: list[tuple[int, int]] = []  # each job's writes in the deferred list
        context = self._batching() if self._batching is not None else nullcontext(())
        with context as writes:
            for job in jobs:
                start = len(writes)
                try:
                    job()
                    outcomes.append(None)
                except Exception as e:
                    outcomes.append(e)
                spans.append((start, len(writes)))
        for (start, stop), error in zip(spans, outcomes, strict=True):
            if error is None:
                error = next((w.error for w in writes[start:stop] if w.error is not None), None)
            self._ran(error)

    def _ran(self, error: BaseException | None) -> None:
        """One job's outcome: a failure logged (once while the store refuses every write), a resume said once."""
        if error is not None:
            self.failures += 1
            if isinstance(error, StoreWriteError) and self._store_failed:
                # The store refuses every write after a failure (disk full, I/O error) until it can write
                # again: the cause was said once, the rest are its echo (counted in `failures`).
                self._lost += 1
                return
            if isinstance(error, StoreWriteError):
                self._store_failed, self._lost = True, 1
            log.warning("a background store write failed: %s", error)
            return
        if self._store_failed:
            self._store_failed = False
            log.warning("background store writes resumed (%d were not saved meanwhile)", self._lost)
