"""`SegmentAgent`: the worker thread of one segment of one session.

A `QThread` running its own loop (CONVENTIONS.md: "a QThread with a loop that checks
isInterruptionRequested()") over an inbox of two queues: commands, order updates and fills first,
market data after, so an exit never waits behind ticks. Its start (instruments, recovery, warm-up) is
network work done on this thread, never the GUI's. An exception in the strategy (or anywhere in the
segment's logic) marks only this agent FAILED, with the traceback in its log file. Snapshots are
published at most 20 times a second as one immutable object the GUI reads without a lock: by this thread after
the work it was woken for, and by the process's one `Publisher` (engine/publisher.py) for what changed while it
slept (the dispatcher's decisions), so it is not woken only to publish. The publisher follows the readers: the
snapshot of a segment nobody read for `READ_RECENTLY`, flat and with no order working, is published once every
`UNREAD_EVERY` only (with no window, 600 snapshots a second at 10 sessions x 3 segments cost more CPU than any
account's feed: issue 18); a read makes it follow its trader within `PUBLISH_EVERY` again from the next round.

Waking. A tick that can lead to an order wakes the agent at once: the first index tick of a new minute
(it closes a bar: the strategy decides), any tick of another instrument (the held option: stops and
targets), a tick without an exchange time. An index tick inside the forming minute only updates that
bar and the clock, so it is queued without waking the thread: it is handled with the next wake or at the
latest PUBLISH_EVERY later (the publisher wakes it; with no publisher, its own wait times out). Thirty agents woken on every frame fought for the GIL and each other's
wake-ups (issue 5's tick-to-intent p99); now they wake when there is something to decide.

The account's dispatcher (engine/dispatch.py). Once started, a running agent lends its trader's decisions to its
account's dispatcher: the feed's thread runs the segment's bars, strategy and risk check under the agent's `lane`
lock (`lend`), and hands this thread only what may block: a `Decision`'s entry (the durable intent, then the order),
exits, stop moves, and the work after ticks (engine/decisions.py). The agent takes its ticks back (`_self_run`)
while it starts or stops, while its lane is busy (an order update, a REST call), while something urgent waits in
its inbox, from a decision until it has run it and emptied its queue, and for good when a decision took more than
the dispatcher's budget (`run_alone`): then it is the agent of issue 5 again, waking on the ticks that decide.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from desktop.domain import Fill, Mode, Order, Position, Segment, Tick
from desktop.engine.decisions import Decision, ReadyEntry
from desktop.engine.lockstep import Lockstep
from desktop.engine.publisher import PUBLISH_EVERY, Publisher
from desktop.engine.qt import QThread
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.engine.strategy.base import ExitPosition
from desktop.engine.trader import PROTECTIVE_EXITS, SegmentTrader
from desktop.engine.workspace import OnStop

# With a publisher, an idle agent's wait still times out this often (seconds): a safety net, nothing depends on it.
IDLE_WAIT = 1.0
# The publisher keeps a snapshot within PUBLISH_EVERY of its trader while it was read in the last READ_RECENTLY
# seconds, or its segment holds a position (or published one) or has an order working; else every UNREAD_EVERY.
READ_RECENTLY = 1.0
UNREAD_EVERY = 1.0
SQUARE_OFF_WAIT = 2.5  # seconds a stopping PAPER agent waits for its exit to fill
# LIVE: a square-off's exit may be refused or rest unfilled in a thin option: the agent stays until the position
# is flat, or protected again by a stop-loss order at the broker (the exit's patience, then the rest protected).
LIVE_SQUARE_OFF_WAIT = 45.0


@dataclass(frozen=True, slots=True)
class Kill:
    """The kill switch: cancel the entry on its way, sell what is held (reason `kill`), no more entries."""

    reason: str


@dataclass(frozen=True, slots=True)
class StopAgent:
    """Stops the agent: `on_stop` says whether its position is squared off first or kept under its stop loss."""

    on_stop: OnStop


@dataclass(frozen=True, slots=True)
class RunOnAgent:
    """A function run on the agent's thread with its trader (manual actions, tests, recovery helpers, the bench's
    probes)."""

    fn: Callable[[SegmentTrader], object]


AgentCommand = Kill | StopAgent | RunOnAgent


@dataclass(frozen=True, slots=True)
class Decided:
    """What the account's dispatcher decided on this segment's ticks, for this thread to run (engine/decisions.py)."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class DecisionFailed:
    """The segment's decision code raised on the dispatcher: this agent fails, saying why (its traceback)."""

    failure: str
    details: str


def _goes_first(action: object) -> bool:
    """An action that never waits behind a burst's entries: an entry (one of them), a protective exit."""
    return isinstance(action, ReadyEntry) or (
        isinstance(action, ExitPosition) and action.reason in PROTECTIVE_EXITS
    )


class _Failed(Exception):
    """Raised on the agent's thread for a `DecisionFailed`, so the segment fails as if it had raised here."""

    def __init__(self, failure: str, details: str) -> None:
        super().__init__(failure)
        self.details = details


# What the urgent queue holds: commands, the order updates and fills of the segment's orders, and decisions.
_Urgent = AgentCommand | Order | Fill | Decided | DecisionFailed


def _never_waits(item: _Urgent) -> bool:
    """An inbox item that never waits behind a burst's entries (`SegmentAgent._let_entries_go`): a command (kill, stop,
    a manual action), a failure to say, a decision with an entry of its own to send or a protective exit."""
    return isinstance(item, Kill | StopAgent | RunOnAgent | DecisionFailed) or (
        isinstance(item, Decided) and any(_goes_first(a) for a in item.decision.actions)
    )


@dataclass(frozen=True, slots=True)
class AgentView:
    """What an agent last published: its snapshot and its orders and fills (immutable)."""

    snapshot: SegmentSnapshot
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    positions: tuple[Position, ...] = ()


class SegmentAgent(QThread):
    """One segment's worker thread: startup, then commands/orders before ticks until stopped or failed.

    Threads. Built and `start`ed by its session on the GUI thread; `lend`, `post_decision`, `fail_decision`,
    `run_alone` and `post_ticks` come from the account feed's thread (its dispatcher), `post_order`/`post_fill`
    from the delivery thread, the feed's (paper fills) or this one (recovery), `post_command` and `run_on_thread`
    from any thread. The trader runs on this thread, or on the dispatcher's while it holds `lane` (`decide`
    only). `view`, `state`, `squaring_off` and `backlog` are read from any thread (immutable or atomic).
    """

    def __init__(
        self,
        trader: SegmentTrader,
        startup: Callable[[SegmentTrader], None],
        on_state: Callable[[SegmentAgent], None],
        publisher: Publisher | None = None,
    ) -> None:
        """`publisher`: publishes this agent's snapshots while its thread sleeps (None: it wakes to publish)."""
        super().__init__()
        self.trader = trader
        self.segment: Segment = trader.segment
        self.setObjectName(f"kitedesk-agent-{trader.ctx.key.session_id[:8]}-{trader.segment.value}")
        self._startup = startup
        self._on_state = on_state
        self._publisher = publisher
        self._last_publish = 0.0  # time.monotonic() of the last snapshot published
        self._cond = threading.Condition()
        self._urgent: deque[_Urgent] = deque()
        # Each batch with when its frame arrived and when it was handed to this agent (latency probes).
        self._ticks: deque[tuple[list[Tick], float, float]] = deque()
        self.state = AgentState.STARTING
        self.failure: str | None = None
        self._view = AgentView(trader.snapshot(AgentState.STARTING))
        self._read_at = 0.0  # time.monotonic() of the last read of `view`
        self._on_stop: OnStop | None = None  # set by a StopAgent: the agent is stopping
        self._stop_deadline = 0.0
        self.ticks_here = 0  # ticks this thread handled itself
        self.ticks_decided = 0  # ticks the account's dispatcher decided (written by it only)
        # The dispatcher's side (engine/dispatch.py): whoever runs the trader holds `lane`; `_self_run` says that this
        # thread handles its ticks itself (until it hands them back, see the module docstring); `dispatched` that a
        # dispatcher serves it at all; `alone` why it never hands them back again (a decision over budget).
        self.lane = threading.RLock()
        self._self_run = True
        self.dispatched = False
        self.alone: str | None = None
        self.held_lines: deque[tuple[int, str, tuple[object, ...], datetime | None]] = deque()
        self._index_token = trader.segment.spec.index_token
        # End of the forming bar, set by this thread after each batch; read by the poster without a lock
        # (a stale value costs one needless wake, never a missed one: it only moves forward).
        self._bar_ends: datetime | None = None
        self.lockstep: Lockstep | None = None  # set by a replay only: the inbox is handled on its turns
        self._holding = False  # this thread waits for a burst's entries (`_let_entries_go`)

    @property
    def view(self) -> AgentView:
        """What it last published (any thread, immutable). Reading it keeps the publisher publishing it within
        `PUBLISH_EVERY` of its trader for the next `READ_RECENTLY` seconds."""
        self._read_at = time.monotonic()
        return self._view

    def _watched(self, now: float) -> bool:
        """Its snapshot must follow its trader closely: read lately, or a position or order of its own that a
        reader must see (a position published is also one that may have gone). Read without the lane: a stale
        answer costs one snapshot more, or one published a round later."""
        t = self.trader
        return (
            now - self._read_at < READ_RECENTLY
            or t.holding is not None
            or bool(self._view.positions)
            or bool(t.orders.working)
        )

    # -- inbox (any thread) --------------------------------------------------------------------

    @property
    def ticks_processed(self) -> int:
        """Ticks of this segment handled so far, here or by the dispatcher (bench, tests)."""
        return self.ticks_here + self.ticks_decided

    def post_ticks(
        self,
        ticks: list[Tick],
        received: float | None = None,
        wake_after: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Market data, handled on this thread after every queued command and order update.

        `received` is when the frame carrying them arrived (`time.perf_counter()`), for latency probes.
        `wake_after`, from the frame's `TickBatch`, defers the wake-up until the whole frame is handed out.
        """
        with self._cond:
            self._queue_ticks(ticks, received, wake_after)

    def _queue_ticks(
        self,
        ticks: list[Tick],
        received: float | None,
        wake_after: Callable[[Callable[[], None]], None] | None,
        wake: bool = False,
    ) -> None:
        """`post_ticks` with `_cond` held (`wake`: wake this thread even for a tick that decides nothing)."""
        handed = time.perf_counter()
        posted = handed if received is None else received
        wake = wake or self._decides(ticks)
        self._self_run = True  # queued ticks go before any the dispatcher could decide: this thread's now
        self._ticks.append((ticks, posted, handed))
        if wake and self._holding:
            self._poke()  # ticks that may decide never wait behind a burst's entries
        if wake and wake_after is None:
            self._cond.notify()
        elif wake and wake_after is not None:
            wake_after(self._wake)

    # -- the dispatcher's side (the account feed's thread; engine/dispatch.py) ----------------------------------

    def lend(
        self, ticks: list[Tick], received: float, wake_after: Callable[[Callable[[], None]], None] | None
    ) -> bool:
        """The dispatcher offers `ticks`: True when the caller may decide them now, holding `lane` (it must let go
        of it); False when they were queued for this thread (it runs its ticks itself now, or its lane is busy)."""
        with self._cond:
            if self._self_run or self._urgent or self.state is not AgentState.RUNNING:
                if self.state is not AgentState.FAILED:
                    self._queue_ticks(ticks, received, wake_after)
                return False
        if self.lane.acquire(blocking=False):
            return True
        with self._cond:  # busy with an order update or a REST call: the ticks wait their turn, in order
            self._queue_ticks(ticks, received, wake_after, wake=True)
        return False

    def post_decision(
        self, decision: Decision, wake_after: Callable[[Callable[[], None]], None] | None
    ) -> None:
        """The dispatcher's decision for this thread to run; its ticks are this thread's until it has."""
        with self._cond:
            self._self_run = True
            self._urgent.append(Decided(decision))
            if wake_after is None:
                self._cond.notify()
        if wake_after is not None:
            wake_after(self._wake)
        if any(_goes_first(a) for a in decision.actions):
            self._poke()  # its own entry, or a protective exit, never waits behind the burst's entries

    def fail_decision(self, failure: str, details: str) -> None:
        """The segment's decision code raised on the dispatcher: this agent fails (its thread says so)."""
        with self._cond:
            self.alone = failure
            self._self_run = True
            self._urgent.append(DecisionFailed(failure, details))
            self._cond.notify()
        self._poke()  # a failure to say never waits behind a burst's entries

    def run_alone(self, why: str) -> None:
        """From now on this thread decides its segment's ticks itself (a decision took more than the dispatcher's
        budget): said in its log and on its panel."""
        line = (
            logging.WARNING,
            "%s: this segment runs on its own thread from now on",
            (why,),
            self.trader.market_time,
        )
        with self._cond:
            self.alone = why
            self._self_run = True
            self.held_lines.append(line)  # written by this thread, as the dispatcher's other lines
            self._cond.notify()
        self.trader.changed = True

    def _hand_back(self) -> None:
        """This thread's queue is empty: the dispatcher decides its ticks again (`_cond` held)."""
        if (
            self._self_run
            and self.dispatched
            and self.alone is None
            and not self._ticks
            and not self._urgent
            and self.state is AgentState.RUNNING
            and self._on_stop is None
            and not self.isInterruptionRequested()
        ):
            self._self_run = False

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _decides(self, ticks: list[Tick]) -> bool:
        """True when a tick may lead to an order (see the module docstring)."""
        ends = self._bar_ends
        for tick in ticks:
            t = tick.exchange_timestamp
            if tick.instrument_token != self._index_token or ends is None or t is None or t >= ends:
                return True
        return False

    def post_order(self, order: Order) -> None:
        """An order update of this segment's orders (the stream's delivery thread, or this one in recovery)."""
        self._post(order)

    def post_fill(self, fill: Fill) -> None:
        """A fill of this segment's orders (whichever thread the gateway reports it on)."""
        self._post(fill)

    def post_command(self, command: AgentCommand) -> None:
        """`Kill`, `StopAgent` or `RunOnAgent` (any thread): handled before any tick still queued."""
        if not isinstance(command, Kill | StopAgent | RunOnAgent):
            raise TypeError(f"not an agent command: {command!r}")
        self._post(command)

    def run_on_thread(self, fn: Callable[[SegmentTrader], object]) -> None:
        """Runs `fn(trader)` on this agent's thread, before any tick still queued (any thread)."""
        self.post_command(RunOnAgent(fn))

    def _post(self, item: _Urgent) -> None:
        with self._cond:
            self._urgent.append(item)
            self._cond.notify()
        if isinstance(item, Kill | StopAgent | RunOnAgent):
            self._poke()  # a command (or a manual action) never waits

    @property
    def squaring_off(self) -> bool:
        """It took a stop and is waiting, within its own deadline, for its exit to settle."""
        return self._on_stop is not None

    @property
    def backlog(self) -> int:
        """Tick batches waiting (the bench watches this)."""
        return len(self._ticks)

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        """This thread: startup, then the loop; never raises (a failure marks this agent FAILED, nothing else)."""
        try:
            self._startup(self.trader)
        except Exception as e:
            self._fail(e, "start failed")
            return
        if self._publisher is not None:
            self._publisher.add(self)
        try:
            if self._on_stop is None and not self.isInterruptionRequested():
                self._set_state(AgentState.RUNNING)
            while self._step():
                if self.trader.changed and time.monotonic() - self._last_publish >= PUBLISH_EVERY:
                    self._publish()
            self.trader.stopping()  # orders sent while the journal could not be written: journalled now, if it can
            self._publish()
            self._set_state(AgentState.STOPPED)
        except Exception as e:
            self._fail(e, "segment failed")
        finally:
            if self._publisher is not None:
                self._publisher.remove(self)

    def tend(self) -> None:
        """The publisher's turn (its thread): wakes this thread for ticks queued without a wake, else publishes a
        snapshot of what changed meanwhile (the dispatcher's decisions), if the lane is free (less often while
        nobody reads it: `_watched`). A snapshot that cannot be built fails the segment, on its own thread, as it
        would have there. The queue is looked at without `_cond` first (thirty agents twenty times a second): ticks
        queued just after the look are seen next round, as they would be when queued just after this round."""
        if self._ticks:
            with self._cond:
                self._cond.notify()  # it handles them and publishes after
            return
        if not self.trader.changed:
            return
        now = time.monotonic()
        if now - self._last_publish < PUBLISH_EVERY:
            return
        if now - self._last_publish < UNREAD_EVERY and not self._watched(now):
            return  # nobody reads it, nothing a reader must see: published once every UNREAD_EVERY
        if not self.lane.acquire(blocking=False):
            return  # the trader is busy (its thread, or the dispatcher): published by whoever is done next
        try:
            if self.state is AgentState.RUNNING:
                self._publish()
        except Exception as e:
            self.fail_decision(f"segment failed: {type(e).__name__}: {e}", traceback.format_exc())
        finally:
            self.lane.release()

    def _step(self) -> bool:
        """Handles everything urgent, then one batch of ticks; False when the agent should end. Under a replay's
        lockstep only on its turn, which ends once the inbox is empty (engine/lockstep.py)."""
        gate = self.lockstep
        if gate is None or not gate.await_turn(self):
            return self._step_inbox(wait=True)
        going = False
        try:
            going = self._step_inbox(wait=False)
        finally:
            with self._cond:
                idle = not self._urgent and not self._ticks
            if idle or not going:
                gate.turn_done(self)
        return going

    def handle_inbox_here(self) -> bool:
        """Handles the whole inbox on the caller's thread; False once the agent should end. Only for a replay's
        lockstep, while this agent's own thread waits for a turn it is not given (engine/lockstep.py).

        An empty inbox (most frames) is seen without taking `_cond`: a post racing this look lands before or after
        it with the lock as well, and is handled on the next turn either way."""
        if not self._urgent and not self._ticks:
            return True
        while True:
            with self._cond:
                if not self._urgent and not self._ticks:
                    return True
            if not self._step_inbox(wait=False):
                return False

    def _step_inbox(self, wait: bool) -> bool:
        with self._cond:
            if wait and not self._urgent and not self._ticks:
                # A publisher publishes for it and wakes it for ticks queued without a wake; a stopping agent
                # checks its deadline.
                idle = self._publisher is not None and self._on_stop is None
                self._cond.wait(IDLE_WAIT if idle else PUBLISH_EVERY)
            urgent = list(self._urgent)
            self._urgent.clear()
            batch = self._ticks.popleft() if self._ticks and not urgent else None
        self._let_entries_go(urgent)
        with self.lane:
            log = self.trader.log
            # A decision's orders go out before any log line is written: its lines (and the dispatcher's before
            # them, in order) are queued while it runs and written after it. A file write lets the interpreter lock
            # go, and under load taking it back waited behind the other agents sending theirs (issue 18).
            decided = any(isinstance(item, Decided) for item in urgent)
            if self.held_lines and not decided:
                log.write_held(self.held_lines)  # the dispatcher's lines, before this thread's
            if decided:
                log.held = self.held_lines
            try:
                for item in urgent:
                    self._handle(item)
            finally:
                log.held = None  # lines still queued after a failure are written by `_fail`
            if decided and self.held_lines:
                log.write_held(self.held_lines)
            if batch is not None:
                ticks, self.trader.batch_posted, self.trader.batch_handed = batch
                self.trader.batch_picked = time.perf_counter()
                self.trader.on_ticks(ticks)
                self.ticks_here += len(ticks)
                self._bar_ends = self.trader.bar_ends
        with self._cond:
            self._hand_back()
        if self.isInterruptionRequested():
            return False
        if self._on_stop is not None:
            t = self.trader
            if self._on_stop is OnStop.KEEP:
                # What is kept stays under its stop at the broker, with no process: not before an entry or exit of
                # ours in flight has settled (an entry whose cancel came too late filled and got its stop; an exit
                # that had cancelled the stop filled, or left the rest protected again), up to the stop deadline.
                exit_in_flight = t.mode is Mode.LIVE and t.holding is not None and t.orders_in_flight()
                if not (exit_in_flight or (t.holding is None and not t.flat())):
                    return False
                if time.monotonic() >= self._stop_deadline:
                    t.log.warning("stopping before its orders settled: check the position at the broker")
                    return False
                return True
            if t.flat():
                return False
            if self.trader.protected_at_broker():
                h = self.trader.holding
                self.trader.log.error(
                    "the square-off did not complete: %d %s kept under its stop-loss order at the broker",
                    h.quantity if h else 0, h.tradingsymbol if h else "",
                )  # fmt: skip
                return False
            if time.monotonic() >= self._stop_deadline:
                self.trader.log.warning("stopping before the exit filled: check the position")
                return False
        return True

    def _let_entries_go(self, urgent: list[_Urgent]) -> None:
        """Entries first (`SendGate`, engine/writer.py): while a burst's entries are on their way (their intents
        being committed, their requests not yet written), this thread's own work of the moment waits for them,
        bounded (`SEND_WAIT` per burst): order updates, fills' bookkeeping (an entry's fill placing its stop
        included: its naked window grows by that bound at most), after-ticks chores, stop moves and exits that do
        not protect. Never waits: a kill or stop command, a decision with an entry of its own to send (it is one of
        them) or a protective exit (`PROTECTIVE_EXITS`), ticks that may decide (an entry, a stop, a target): one
        arriving during the wait ends it (`_goes_ahead`); nor a function run on this thread (manual actions), a
        failure to say, or a replay's lockstep (one thread runs every agent's inbox in turn: the entry waited for
        may be behind this one). Its ticks stay with this thread meanwhile."""
        gate = self.trader.ctx.sending
        if gate is None or not gate.sending or self.lockstep is not None or not urgent:
            return
        if any(_never_waits(item) for item in urgent):
            return
        with self._cond:
            # Its ticks stay with this thread meanwhile (the dispatcher must not decide on a view without the
            # updates held here): queued, they end the wait if they may decide something (`_goes_ahead`).
            self._self_run = True
            self._holding = True
        try:
            gate.wait(until=self._goes_ahead)
        finally:
            self._holding = False
        with self._cond:
            # What came meanwhile waited with them: handled now, after them, in order. Left in the inbox, it was held
            # again by a burst that began just after this one (a fill, its stop's naked window, twice the bound).
            urgent.extend(self._urgent)
            self._urgent.clear()

    def _goes_ahead(self) -> bool:
        """Something that must not wait came meanwhile: a kill or stop command, a function to run on this thread (a
        manual action), a failure to say, a decision with an entry of this segment's own (one of those waited for)
        or a protective exit, ticks that may decide (an entry, a stop, a target). Read without `_cond` (a copy of a
        deque is atomic); `poke`d by whoever posts one."""
        return any(_never_waits(item) for item in tuple(self._urgent)) or any(
            self._decides(ticks) for ticks, _, _ in tuple(self._ticks)
        )

    def _poke(self) -> None:
        """This thread is letting a burst's entries go first (`_let_entries_go`): it looks again at what came. Read
        without a lock: a hold that begins just after this look sees the item in `_goes_ahead` first."""
        gate = self.trader.ctx.sending
        if self._holding and gate is not None:
            gate.poke()

    def _handle(self, item: _Urgent) -> None:
        t = self.trader
        match item:
            case Order():
                t.on_order(item)
            case Fill():
                t.on_fill(item)
            case Kill(reason):
                t.log.warning("kill switch: %s", reason)
                t.cancel_open_entries(then_exit="kill")
                if t.holding is not None:
                    t.exit("kill")
            case StopAgent(on_stop):
                self._on_stop = on_stop
                wait = LIVE_SQUARE_OFF_WAIT if t.mode is Mode.LIVE else SQUARE_OFF_WAIT
                self._stop_deadline = time.monotonic() + wait
                self._set_state(AgentState.STOPPING)
                square_off = on_stop is OnStop.SQUARE_OFF
                t.cancel_open_entries(then_exit="square_off" if square_off else None)
                if square_off and t.holding is not None:
                    t.exit("square_off")
                elif t.holding is not None:
                    t.log.info("stopping with %s kept open under its stop loss", t.holding.tradingsymbol)
            case RunOnAgent(fn):
                fn(t)
            case Decided(decision):
                t.act(decision.actions)
                if decision.rest is not None:
                    for actions in decision.rest:  # the batch's ticks after the one that decided
                        t.act(actions)
                t.after_ticks()
                self._bar_ends = t.bar_ends
            case DecisionFailed(failure, details):
                raise _Failed(failure, details)

    def _publish(self) -> None:
        t = self.trader
        with (
            self.lane
        ):  # the dispatcher may be deciding on this trader: its state is read whole, between decisions
            t.changed = False
            self._last_publish = time.monotonic()
            h = getattr(t, "holding", None)
            held = (
                (Position(t.ctx.key, t.mode, h.exchange, h.tradingsymbol, h.quantity, h.entry_price, h.last_price,
                          t.realised),)
                if h is not None
                else ()
            )  # fmt: skip
            snapshot = t.snapshot(self.state, self.failure)
            if self.alone is not None and self.failure is None:
                snapshot = replace(
                    snapshot, note="; ".join(n for n in (snapshot.note, f"own thread: {self.alone}") if n)
                )
            self._view = AgentView(snapshot, tuple(t.order_rows.values()), tuple(t.fill_rows), held)

    def _fail(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, _Failed):  # raised on the dispatcher: its own words and traceback
            self.failure, details = str(exc), exc.details
        else:
            self.failure, details = f"{what}: {type(exc).__name__}: {exc}", traceback.format_exc()
        with contextlib.suppress(Exception):  # the log itself may be closed: the state still says why
            if self.held_lines:
                self.trader.log.write_held(self.held_lines)
            self.trader.log.error("%s\n%s", self.failure, details)
        self.state = AgentState.FAILED
        try:
            self._publish()
        except Exception:
            self._view = AgentView(SegmentSnapshot(self.segment, AgentState.FAILED, self.failure))
        self._on_state(self)

    def _set_state(self, state: AgentState) -> None:
        if self.state is AgentState.FAILED:
            return
        self.state = state
        self.trader.changed = True
        self._publish()
        self._on_state(self)
