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
  (`freeze_long_lived`). No automatic collection starts while an account's feed hands out a frame
  (`desktop.broker.frames.FRAMES`, held by the feed), and a frame's side effects (its intents' group commit, the
  agents' wake-ups) wait until no account's frame is being handed out (`QUIET.deferring`): the accounts' feeds carry
  the same market, so their frames arrive together, and the store writer's commit and the woken agents took the
  interpreter lock from the feeds still deciding theirs (a frame decided 11-14 ms late while two commits of 1 ms
  of CPU each ran; a young collection held one 1-14 ms).

Threads: `hand` runs on the account feed's thread only (a replay's driver thread); sessions of one account share
its dispatcher through `Dispatchers`, which any thread may ask.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from desktop.broker.frames import FRAMES as QUIET
from desktop.domain import Tick
from desktop.engine.decisions import FrameCommit, ReadyEntry

if TYPE_CHECKING:
    from desktop.engine.agent import SegmentAgent
    from desktop.engine.context import TraderContext
    from desktop.store import Store

BUDGET_S = 0.005  # CPU seconds one decision may take on the dispatcher before its segment gets its own thread

WakeAfter = Callable[[Callable[[], None]], None]


class AccountDispatcher:
    """Runs the decisions of an account's segments on its feed's thread (see the module docstring)."""

    def __init__(self, broker_id: str, budget_s: float = BUDGET_S) -> None:
        self.broker_id = broker_id
        self.budget_s = budget_s
        self._commits: dict[int, FrameCommit] = {}  # the frame's group commit, per store
        self._frame: object | None = None  # the frame being handed out (its wake-up list)
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
        frame_end = wake_after  # this account's frame handed out: its intents' group commit starts then
        if frame is not None and wake_after is not None:
            wake_after = QUIET.deferring(
                wake_after
            )  # after every account's frame of the moment is handed out
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
                commit = self._commit_of(trader.ctx.store, frame, frame_end, trader.ctx)
                action.commit = commit.add(action.intent, trader.market_time)
                action.sent = partial(commit.sent, action.intent.intent_id)
                if wake_after is not None and frame is not None:
                    wake = commit.wake_after  # woken once its intent is on disk, to send it
        agent.post_decision(decision, wake)

    def _commit_of(
        self,
        store: Store,
        frame: object | None,
        wake_after: WakeAfter | None,
        ctx: TraderContext,
    ) -> FrameCommit:
        """The group commit of the frame being handed out, for `store` (a new one each frame). With the frame's
        wake-ups collected, it is started (queued, the store writer asked to lead it) once the frame is decided,
        before any agent is woken: the intents go to disk while the agents wake (`lead`: the store writer's
        `lead`, a thread of its own that is never busy with the background notes)."""
        if frame is None or frame is not self._frame:
            self._commits = {}
            self._frame = frame
        commit = self._commits.get(id(store))
        if commit is None:
            commit = self._commits[id(store)] = FrameCommit(store, ctx.commit_soon, ctx.sending)
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
