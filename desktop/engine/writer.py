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
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from desktop.store import Deferred, StoreWriteError

log = logging.getLogger(__name__)

Job = Callable[[], object]
Batching = Callable[[], AbstractContextManager[Sequence[Deferred]]]
DRAIN = 64  # jobs taken from the queue at once (committed in group commits of the store's batch size)
RETRY_EVERY = 1.0  # seconds between two tries of the rows the store refused
HOLD_FOR = 600.0  # seconds a refused row is tried again before it is given up (logged)
Held = dict[Hashable, tuple["LatestRow", float]]  # rows the store refused: key -> (write, first refused)


# Seconds a burst's entries go first (`SendGate`): what waits for them waits this long at most.
SEND_WAIT = 0.01
SEND_STALE = (
    0.1  # seconds after which entries still not sent are no longer waited for (an agent failed or stopped)
)


class SendGate:
    """The entries of a frame whose intents are being committed and whose orders are on their way (any thread).
    The rest of the burst's work lets them go first (issue 18): the background writer's notes, order rows and
    positions (~30 ms of CPU at the close of a minute at 10 sessions x 3 segments), and the agents' own work of the
    moment (`SegmentAgent._let_entries_go`: order updates, fills' bookkeeping, exits that do not protect, stop moves,
    after-ticks chores): run meanwhile, it took the interpreter lock from the agents about to send and from the
    intents' transaction.

    An entry is on its way from its frame's group commit's start (`opened`) until its order's HTTP request is
    written (or its send failed or was refused: `closed`), not until Kite answered: a LIVE reply takes a round
    trip of ~4-5 ms, and holding everything for it would leave the core idle.

    Bounded. Everything that waits for a burst's entries waits until `SEND_WAIT` after the burst's first entry was
    opened at most (a burst: from the gate closed to the gate closed again; the bound is per burst, not per wait), and
    not at all once the oldest entry waited for is older than `SEND_STALE` (an entry whose agent failed or stopped is
    never said sent: the gate forgets it)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._open = 0
        self._since = 0.0
        # Counted since the gate last gave up on stale entries (`wait`): a word from before is not for the entries
        # counted now (a LIVE entry said sent late, past SEND_STALE).
        self._round = 0

    def opened(self, count: int) -> int:
        """`count` entries are on their way (their group commit started); returns what `closed` is told of them."""
        with self._cv:
            now = time.monotonic()
            if self._open and now - self._since >= SEND_STALE:
                # Still counted, never said sent (an agent failed mid-send) and nobody waited since: given up on now,
                # not at the first wait of this burst, which would forget this burst's entries with them.
                self._open = 0
                self._round += 1
            if not self._open:
                self._since = now
            self._open += count
            return self._round

    def closed(self, opened: int | None = None) -> None:
        """One of them was sent (its request written) or dropped; `opened`: what `opened` returned for it (None:
        the entries now)."""
        with self._cv:
            if opened is not None and opened != self._round:
                return  # given up on already
            self._open = max(0, self._open - 1)
            if not self._open:
                self._cv.notify_all()

    @property
    def sending(self) -> bool:
        """Entries are on their way now (read without the lock: a stale answer costs one look at `wait`)."""
        return self._open > 0

    def poke(self) -> None:
        """Wakes whatever waits here to look at its own `until` again (an agent's kill or stop command came)."""
        with self._cv:
            self._cv.notify_all()

    def wait(self, timeout: float | None = None, until: Callable[[], bool] | None = None) -> bool:
        """Returns once no entry is on its way: `timeout` seconds at most (None: `SEND_WAIT`), and never past
        `SEND_WAIT` after the burst began (see the class docstring); at once when `until()` is True (checked again
        on `poke`). True when it waited at all."""
        with self._cv:
            if not self._open:
                return False
            now = time.monotonic()
            deadline = min(now + (SEND_WAIT if timeout is None else timeout), self._since + SEND_WAIT)
            while self._open and now - self._since < SEND_STALE and not (until is not None and until()):
                left = deadline - now
                if left <= 0:
                    break
                self._cv.wait(left)
                now = time.monotonic()
            if self._open and now - self._since >= SEND_STALE:
                self._open = 0
                self._round += 1
            return True


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

    def __init__(self, batching: Batching | None = None) -> None:
        """`batching`: the store's `deferred` (the jobs' writes queued behind waited-for ones and committed
        together); None runs each job alone."""
        self._batching = batching
        self.sends = SendGate()  # a frame's entries on their way: the notes wait for them (`SendGate`)
        self._queue: queue.Queue[Job | threading.Event | None] = queue.Queue()
        self.failures = 0
        self._store_failed = False
        self._lost = 0  # background writes the store refused since it failed
        self._refusal = ""  # the store's words when it last refused a write
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kitedesk-store-writer")
        self._thread.start()
        # Group commits callers wait for (a frame's entry intents: `lead`), on a thread of their own: queued on the
        # writer's, they waited behind the notes it had taken already (issue 18: up to 13 ms at 10 x 3).
        self._leads: deque[Job] = deque()
        self._lead_cv = threading.Condition()
        self._leader = threading.Thread(target=self._run_leads, name="kitedesk-store-leader")
        self._leader.start()

    def submit(self, job: Job) -> None:
        """Queues one write (runs at once, on the caller's thread, once the writer is closed)."""
        with self._lock:
            if not self._closed:
                self._queue.put(job)
                return
        job()

    def lead(self, job: Job) -> None:
        """Runs `job`, a group commit that callers wait for (`Store.commit_waiting`), on the leader thread: never
        behind the background notes, at once (on the caller's thread) once the writer is closed. Its failures are
        its waiters' to see (the queued writes' errors), so a raising job is only logged."""
        with self._lead_cv:
            if not self._closed:
                self._leads.append(job)
                self._lead_cv.notify()
                return
        job()

    def _run_leads(self) -> None:
        while True:
            with self._lead_cv:
                while not self._leads and not self._closed:
                    self._lead_cv.wait()
                if not self._leads:
                    return
                job = self._leads.popleft()
            try:
                job()
            except Exception as e:  # the waiters see the write's own error; this is a bug's, said
                log.warning("a group commit failed: %s", e)

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
            with self._lead_cv:
                self._closed = True
                self._lead_cv.notify()
            self._queue.put(None)
        self._leader.join(timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        held: Held = {}
        while True:
            try:
                first = self._queue.get(timeout=RETRY_EVERY if held else None)
            except queue.Empty:
                self._retry(held)
                continue
            if held:
                self._retry(held)
            self.sends.wait()  # a frame's entries on their way go first
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
                self._write(jobs, held)
            if after is not None:
                after.set()
            if end:
                self._retry(held)
                if held:  # with the store's own words (a full disk, a lock): the one cause a trader reads
                    log.warning("%d row(s) the store refused were not saved before KiteDesk stopped (%s)",
                                len(held), self._refusal)  # fmt: skip
                return

    def _write(self, jobs: list[Job], held: Held) -> None:
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
        for job, (start, stop), error in zip(jobs, spans, outcomes, strict=True):
            if error is None:
                error = next((w.error for w in writes[start:stop] if w.error is not None), None)
            self._ran(job, error, held)

    def _ran(self, job: Job, error: BaseException | None, held: Held) -> None:
        """One job's outcome: a refused `LatestRow` held to be tried again, a failure logged (once while the store
        refuses every write), a resume said once."""
        key = job.key if isinstance(job, LatestRow) else None
        if error is None:
            held.pop(key, None)  # a later state of the row is written: the refused one is stale
            self._resumed()
            return
        self.failures += 1
        if not isinstance(error, StoreWriteError):
            log.warning("a background store write failed: %s", error)
            return
        self._refusal = str(error)
        if isinstance(job, LatestRow):
            since = held[key][1] if key in held else time.monotonic()
            held[key] = (job, since)  # tried again (`_retry`); a later write of the row replaces it
        else:
            self._lost += 1
        if not self._store_failed:
            # The store refuses every write after a failure (disk full, I/O error) until it can write again: the
            # cause is said once, the rest are its echo (counted in `failures`).
            self._store_failed = True
            log.warning("a background store write failed: %s", error)

    def _retry(self, held: Held) -> None:
        """The refused rows tried again, oldest first, until the store refuses one (the rest wait)."""
        for key, (job, since) in list(held.items()):
            try:
                job()
            except StoreWriteError as e:
                self._refusal = str(e)
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
