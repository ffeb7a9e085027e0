"""Whether an account feed is handing out a frame just now (`FRAMES`), for what must not hold that up.

Held by `AccountFeed._on_frame` (broker/stream.py) from the moment it takes a frame until it has handed it out;
read by the garbage collector's switch, by the engine for a frame's side effects, and by the feed recorders'
compression (see `QuietFrames`). Plain Python: no Qt, no I/O.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

WAIT_QUIET_S = 0.02  # the longest background work waits for the frames being handed out before it goes on
TURN_WAIT_S = 0.02  # the longest a feed waits for another feed to decide its frame before it decides its own
_YIELD = getattr(os, "sched_yield", lambda: None)


class QuietFrames:
    """Says whether an account feed's thread is handing out a frame (`hold` as it takes one, `release` once it has
    handed it out), for whatever must not hold that up; any thread. While one is:

    - the automatic garbage collection of the process is held off, so no collection runs in the middle of a
      frame's decisions (a young collection held one for 1-14 ms at 10 sessions x 3 segments: issue 18's p99);

    - work given to `after` waits (the engine's: a frame's intents' commit and its agents' wake-ups);
    - background work that can wait asks `wait_quiet` between two small pieces of it (the feed recorders'
      compression, which on a busy core took the frames' CPU).

    - the frames are decided one at a time: a feed that takes its frame while another feed's is being handed out
      waits for it (at most `TURN_WAIT_S`, then goes on beside it), blocked on a lock rather than on the
      interpreter lock. Four feeds deciding side by side took the interpreter lock from each other every switch
      interval, so each frame's last decision came only once all of them were done (processor sharing); one at
      a time, a frame's decisions are done once the frames before it are (issue 18's p99 at 10 x 3).

    The accounts' feeds carry the same market, so their frames arrive together: what one frame's decisions set
    off waits for the other accounts' frames of the same moment. A collection is only delayed, never skipped: the
    allocations counted meanwhile start it at the first allocation after the last frame is released. A frame never
    released cannot leave collections off or work waiting for good: a hold is forgotten once older than `STALE_S`.
    Collections switched off by someone else (`gc.disable()`) stay off."""

    STALE_S = 1.0

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._open = 0  # frames being handed out
        self._held = False  # this object switched the collector off (and turns it on again)
        self._since = 0.0  # time.monotonic() when the first of the frames being handed out came
        self._after: list[Callable[[], None]] = []  # work waiting for the last frame to be handed out
        self.stale = 0  # holds dropped for being too old (tests)
        self._turn = (
            threading.RLock()
        )  # held by the feed deciding its frame (re-entrant: a replay's tests nest)
        self._turn_since = 0.0  # time.monotonic() when the feed deciding now took its turn
        self._mine = threading.local()  # `turns`: for each hold of this thread, whether it took the turn
        self._holders: dict[int, float] = {}  # thread ident -> time.monotonic() of a recent hold (to 0.1 s)

    def hold(self) -> None:
        late: list[Callable[[], None]] = []
        with self._lock:
            if self._open and time.monotonic() - self._since > self.STALE_S:
                self.stale += 1
                self._open = 0
                late, self._after = self._after, []
                if self._held:
                    self._held = False
                    gc.enable()
            self._open += 1
            me, now = threading.get_ident(), time.monotonic()
            if self._holders.get(me, 0.0) < now - 0.1:  # the feeds handing out frames lately (`_others`)
                if len(self._holders) > 64:
                    self._holders = {t: at for t, at in self._holders.items() if at >= now - self.STALE_S}
                self._holders[me] = now
            if self._open == 1:
                self._since = time.monotonic()
                if gc.isenabled():
                    gc.disable()
                    self._held = True
            wait = TURN_WAIT_S if time.monotonic() - self._turn_since <= self.STALE_S else 0.0
        _run_all(late)
        # One frame decided at a time (see the class docstring); counted as being handed out while it waits.
        turns: list[bool] = self._mine.__dict__.setdefault("turns", [])
        took = self._turn.acquire(timeout=wait) if wait else self._turn.acquire(blocking=False)
        if took:
            self._turn_since = time.monotonic()
        turns.append(took)

    def release(self) -> None:
        turns: list[bool] = self._mine.__dict__.setdefault("turns", [])
        if turns and turns.pop():
            self._turn.release()
        now: list[Callable[[], None]] = []
        with self._lock:
            if self._open:
                self._open -= 1
            if not self._open:
                if self._held:
                    self._held = False
                    gc.enable()
                now, self._after = self._after, []
                self._lock.notify_all()
        if not now:
            return
        # The work waits for the frames of the moment: another account's feed may have its frame already and be
        # waiting for the interpreter lock to take it. It gets the CPU first (`os.sched_yield`, the lock let go);
        # if it took its frame meanwhile, the work runs once that one is handed out, still before its own.
        if not self._others():
            _run_all(now)
            return
        _YIELD()
        with self._lock:
            if self._open and time.monotonic() - self._since <= self.STALE_S:
                self._after[:0] = now
                return
        _run_all(now)

    def _others(self) -> bool:
        """True when another thread handed out a frame in the last `STALE_S`: another account's feed may be about
        to take its frame, so the CPU is worth offering. Alone (one account, a replay's driver) nobody is."""
        me, since = threading.get_ident(), time.monotonic() - self.STALE_S
        return any(at >= since for t, at in list(self._holders.items()) if t != me)

    def after(self, work: Callable[[], None]) -> None:
        """Runs `work` once no frame is being handed out: now if none is, else on the thread that hands out the last
        one, right after it (a frame's side effects: its intents' commit, the agents' wake-ups). Never raises."""
        with self._lock:
            if self._open and time.monotonic() - self._since <= self.STALE_S:
                self._after.append(work)
                return
        _run_all([work])

    def deferring(
        self, wake_after: Callable[[Callable[[], None]], None]
    ) -> Callable[[Callable[[], None]], None]:
        """A frame's `wake_after` whose wake-ups also wait for the other accounts' frames being handed out (`after`)."""
        return lambda wake: wake_after(lambda: self.after(wake))

    def after_deciding(self, timeout: float = WAIT_QUIET_S) -> bool:
        """A feed has handed its frame out (released it) and has work left on it that no decision waits for (its
        watch list): first the other accounts' feeds decide theirs. The accounts' frames of one moment arrive
        together; a feed that went straight on with its own rest held the interpreter lock from the feeds still
        waiting to decide (issue 18). So the CPU is offered to them (`os.sched_yield`, the interpreter lock let go:
        a feed thread waiting for it takes it now), then this waits (`wait_quiet`, at most `timeout`) until no
        frame is being handed out. Alone (no other thread handed out a frame lately: one account, a replay's
        driver) it returns at once. True when quiet."""
        if not self._others():
            return self.wait_quiet(0.0)
        _YIELD()
        return self.wait_quiet(timeout)

    def wait_quiet(self, timeout: float = WAIT_QUIET_S) -> bool:
        """Waits until no frame is being handed out, at most `timeout` seconds (background work that may wait: the
        feed recorders' compression); True when none is. A hold older than `STALE_S` is not waited for."""
        with self._lock:
            if not self._open:
                return True
            return (
                self._lock.wait_for(
                    lambda: not self._open or time.monotonic() - self._since > self.STALE_S, timeout
                )
                and not self._open
            )


def _run_all(work: list[Callable[[], None]]) -> None:
    """Runs each; one that raises is logged and the others still run (the wake-ups of other agents)."""
    for w in work:
        try:
            w()
        except Exception:
            log.exception("work after a frame failed")


FRAMES = QuietFrames()  # the process's: every account feed holds it while it hands out a frame
