"""`AccountDispatcher`: one per account feed; decides where the tick lands, for every segment of every session.

Waking one agent thread per segment on each deciding tick cost more than the decision (issue 18: thirty woken
threads gave tick-to-intent p99 12-26 ms where one thread running the same code gave about 2 ms; a `Condition`
wake-up costs as much as a bar close). So the account feed's thread, which has just decoded the frame, runs each
interested segment's bars, strategy and risk check itself, in the frame's (market-time) order, and wakes a
segment's agent only when there is something that may block to do: the durable intent and the order, an exit, a
stop to move, an order to cancel (`SegmentTrader.decide`, engine/decisions.py). A slow Kite reply still delays only
its own segment: the dispatcher never waits for an agent (`SegmentAgent.lend` takes the agent's lane lock only if
it is free; a busy agent gets the ticks in its own queue, in order).

- A decision that raises fails its segment only (`SegmentAgent.fail_decision`), with its traceback in the
  segment's log; the dispatcher goes on with the others.
- A decision over `BUDGET_S` of CPU (measured per call, the thread's own time: waiting for the interpreter lock
  is not counted) moves that segment to its own thread for good (`SegmentAgent.run_alone`): one slow strategy must
  not hold every other segment of the account up. The log and the segment's panel say so. A call during which the
  garbage collector ran is not held against its segment (a full collection of this process can take longer than
  the budget by itself); the segment's next slow call is.
- The entry intents decided on one frame share one durable commit (`FrameCommit`): once the whole frame is decided
  it is queued ahead of the background writer's notes and the store writer asked to lead it, then the agents are
  woken; each waits for its intent on disk before its order (or, with no frame end to start it, the first agent
  about to send one commits them all).
- The log lines of a decision are queued (`AgentLog.held`) and written by the agent's thread.
- Full collections stay short: what a session's start made is frozen out of them once it runs
  (`freeze_long_lived`). No automatic garbage collection starts while any account's frame is being handed out (`QUIET`): a collection
  started by an allocation on the feed's thread, or on any other, held every decision still to come on that frame
  (and on the other accounts' frames of the same moment) for as long as it ran, 1-14 ms for a young generation at
  10 sessions x 3 segments (issue 18's p99); it starts with the first allocation after the frame instead.

Threads: `hand` runs on the account feed's thread only (a replay's driver thread); sessions of one account share
its dispatcher through `Dispatchers`, which any thread may ask.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from desktop.domain import Tick
from desktop.engine.decisions import FrameCommit, ReadyEntry

if TYPE_CHECKING:
    from desktop.engine.agent import SegmentAgent
    from desktop.store import Store

WAIT_QUIET_S = 0.02  # the longest background work waits for the frames being handed out before it goes on
BUDGET_S = 0.005  # CPU seconds one decision may take on the dispatcher before its segment gets its own thread

WakeAfter = Callable[[Callable[[], None]], None]


class AccountDispatcher:
    """Runs the decisions of an account's segments on its feed's thread (see the module docstring)."""

    def __init__(self, broker_id: str, budget_s: float = BUDGET_S) -> None:
        self.broker_id = broker_id
        self.budget_s = budget_s
        self._commits: dict[int, FrameCommit] = {}  # the frame's group commit, per store
        self._frame: object | None = None  # the frame being handed out (its wake-up list)
        self._quiet_frame: object | None = None  # the last frame `QUIET` was held for
        self.decisions = 0  # decide calls run here (bench, tests)
        self.cpu_s = 0.0  # their CPU time
        self.moved: list[str] = []  # segments sent to their own thread, and why (tests, bench)

    def hand(
        self,
        agent: SegmentAgent,
        ticks: list[Tick],
        received: float,
        wake_after: WakeAfter | None = None,
        frame: object | None = None,
    ) -> None:
        """One segment's ticks of the frame arriving now: decided here, or queued for its agent (feed thread).
        `frame` is the same object for every part of one frame (its `TickBatch.wakes`), None for a frame alone."""
        if frame is not None and wake_after is not None and frame is not self._quiet_frame:
            self._quiet_frame = frame
            QUIET.hold()
            wake_after(QUIET.release)  # once every session of the account has its part of the frame
        if not agent.lend(ticks, received, wake_after):
            return
        trader = agent.trader
        collections = _GC.started
        started = time.thread_time()
        log = trader.log
        try:
            log.held = agent.held_lines
            trader.batch_posted, trader.batch_handed = received, time.perf_counter()
            trader.batch_picked = trader.batch_handed
            if trader.chores_due():
                decision = None
                agent.post_ticks(ticks, received, wake_after)  # the agent's own work first: it takes them
            else:
                decision = trader.decide(ticks)
                agent.ticks_decided += len(ticks)
                agent._bar_ends = trader.bar_ends
        except Exception as e:
            failure = f"segment failed: {type(e).__name__}: {e}"
            agent.fail_decision(failure, traceback.format_exc())
            return
        finally:
            log.held = None
            agent.lane.release()
            spent = time.thread_time() - started
            self.decisions += 1
            self.cpu_s += spent
        if spent > self.budget_s and _GC.started == collections:
            why = f"a decision took {spent * 1000:.1f} ms (the budget is {self.budget_s * 1000:g} ms)"
            self.moved.append(f"{trader.ctx.key.session_id[:8]}/{agent.segment.value}: {why}")
            agent.run_alone(why)
        if decision is None:
            return
        wake = wake_after
        for action in decision.actions:
            if isinstance(action, ReadyEntry) and action.checked and trader.market_time is not None:
                commit = self._commit_of(trader.ctx.store, frame, wake_after, trader.ctx.write_later)
                action.commit = commit.add(action.intent, trader.market_time)
                if wake_after is not None and frame is not None:
                    wake = commit.wake_after  # woken once its intent is on disk, to send it
        agent.post_decision(decision, wake)

    def _commit_of(
        self,
        store: Store,
        frame: object | None,
        wake_after: WakeAfter | None,
        lead: Callable[[Callable[[], object]], None],
    ) -> FrameCommit:
        """The group commit of the frame being handed out, for `store` (a new one each frame). With the frame's
        wake-ups collected, it is started (queued, the store writer asked to lead it) once the frame is decided,
        before any agent is woken: the intents go to disk while the agents wake (`lead`: the store writer's
        `submit`)."""
        if frame is None or frame is not self._frame:
            self._commits = {}
            self._frame = frame
        commit = self._commits.get(id(store))
        if commit is None:
            commit = self._commits[id(store)] = FrameCommit(store, lead)
            if frame is not None and wake_after is not None:
                wake_after(commit.start)
        return commit


class _CollectionCount:
    """Garbage collections started in this process since this module was imported (all generations), counted by
    a `gc.callbacks` hook: reading it is one attribute load, where summing `gc.get_stats()` cost about 0.8 µs,
    twice for every segment of every frame (issue 24's replay throughput). Only whether it changed during a call
    matters, so counting from the import rather than from the start of the process changes nothing."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started += 1


_GC = _CollectionCount()
gc.callbacks.append(_GC)


class QuietFrames:
    """Holds off the automatic garbage collection of the process while at least one frame is being handed out
    (`hold` when an account's dispatcher gets a frame's first ticks, `release` once the feed has handed out the
    whole frame), so no collection runs in the middle of a frame's decisions; any thread.

    A collection is only delayed, never skipped: the allocations counted meanwhile start it at the first
    allocation after the last frame is released. A frame never released (its feed's thread failed between the
    two) cannot leave collections off for good: a hold finding the collector held for longer than `STALE_S`
    starts afresh. Collections switched off by someone else (`gc.disable()`) stay off.

    Background work that can wait asks `wait_quiet` between two small pieces of it: the feed recorders'
    compression (broker/recording.py, given it by the engine), which on a busy core took the frames' CPU."""

    STALE_S = 1.0

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._open = 0  # frames being handed out
        self._held = False  # this object switched the collector off (and turns it on again)
        self._since = 0.0  # time.monotonic() when the first of the frames being handed out came
        self.stale = 0  # holds dropped for being too old (tests)

    def hold(self) -> None:
        with self._lock:
            if self._open and time.monotonic() - self._since > self.STALE_S:
                self.stale += 1
                self._open = 0
                if self._held:
                    self._held = False
                    gc.enable()
            self._open += 1
            if self._open == 1:
                self._since = time.monotonic()
                if gc.isenabled():
                    gc.disable()
                    self._held = True

    def release(self) -> None:
        with self._lock:
            if self._open:
                self._open -= 1
            if not self._open:
                if self._held:
                    self._held = False
                    gc.enable()
                self._lock.notify_all()

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


QUIET = QuietFrames()


def freeze_long_lived() -> None:
    """A session has started: what the process holds now (instruments, warm-up bars, the sessions' parts) is moved
    out of the collector's generations for good (`gc.freeze`), so a full collection looks only at what was made
    since. Left in, the full collections of a process running 10 sessions took 130-160 ms, each one holding up the
    frame that arrived meanwhile (issue 18's p99 outliers). Objects frozen are still freed when nothing refers to
    them; only a reference cycle already garbage at this moment is never collected (start-up's, bounded, once per
    session start)."""
    gc.freeze()


class Dispatchers:
    """The dispatcher of each account (by broker id), shared by that account's sessions; thread-safe."""

    def __init__(self, budget_s: float = BUDGET_S) -> None:
        self._lock = threading.Lock()
        self._by_account: dict[str, AccountDispatcher] = {}
        self.budget_s = budget_s

    def for_account(self, broker_id: str) -> AccountDispatcher:
        """The account's dispatcher (made on first use)."""
        with self._lock:
            dispatcher = self._by_account.get(broker_id)
            if dispatcher is None:
                dispatcher = self._by_account[broker_id] = AccountDispatcher(broker_id, self.budget_s)
            return dispatcher
