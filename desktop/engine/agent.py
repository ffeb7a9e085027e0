"""`SegmentAgent`: the worker thread of one segment of one session.

A `QThread` running its own loop (CONVENTIONS.md: "a QThread with a loop that checks
isInterruptionRequested()") over an inbox of two queues: commands, order updates and fills first,
market data after, so an exit never waits behind ticks. Its start (instruments, warm-up, recovery) is
network work done on this thread, never the GUI's. An exception in the strategy (or anywhere in the
segment's logic) marks only this agent FAILED, with the traceback in its log file. Snapshots are
published at most 20 times a second as one immutable object the GUI reads without a lock.

Waking. A tick that can lead to an order wakes the agent at once: the first index tick of a new minute
(it closes a bar: the strategy decides), any tick of another instrument (the held option: stops and
targets), a tick without an exchange time. An index tick inside the forming minute only updates that
bar and the clock, so it is queued without waking the thread: it is handled with the next wake or at the
latest PUBLISH_EVERY later. Thirty agents woken on every frame fought for the GIL and each other's
wake-ups (issue 5's tick-to-intent p99); now they wake when there is something to decide.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QThread

from desktop.domain import Fill, Mode, Order, Position, Segment, Tick
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.engine.trader import SegmentTrader

PUBLISH_EVERY = 0.05  # seconds: at most 20 snapshots a second
SQUARE_OFF_WAIT = 2.5  # seconds a stopping PAPER agent waits for its exit to fill
# LIVE: a square-off's exit may be refused or rest unfilled in a thin option: the agent stays until the position
# is flat, or protected again by a stop-loss order at the broker (the exit's patience, then the rest protected).
LIVE_SQUARE_OFF_WAIT = 45.0


@dataclass(frozen=True, slots=True)
class AgentView:
    """What an agent last published: its snapshot and its orders and fills (immutable)."""

    snapshot: SegmentSnapshot
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    positions: tuple[Position, ...] = ()


class SegmentAgent(QThread):
    """One segment's worker thread: startup, then commands/orders before ticks until stopped or failed."""

    def __init__(
        self,
        trader: SegmentTrader,
        startup: Callable[[SegmentTrader], None],
        on_state: Callable[[SegmentAgent], None],
    ) -> None:
        super().__init__()
        self.trader = trader
        self.segment: Segment = trader.segment
        self.setObjectName(f"kitedesk-agent-{trader.ctx.key.session_id[:8]}-{trader.segment.value}")
        self._startup = startup
        self._on_state = on_state
        self._cond = threading.Condition()
        self._urgent: deque[tuple[str, Any]] = deque()
        # Each batch with when its frame arrived and when it was handed to this agent (latency probes).
        self._ticks: deque[tuple[list[Tick], float, float]] = deque()
        self.state = AgentState.STARTING
        self.failure: str | None = None
        self.view = AgentView(trader.snapshot(AgentState.STARTING))
        self._stop_mode: str | None = None
        self._stop_deadline = 0.0
        self.ticks_processed = 0
        self._index_token = trader.segment.spec.index_token
        # End of the forming bar, set by this thread after each batch; read by the poster without a lock
        # (a stale value costs one needless wake, never a missed one: it only moves forward).
        self._bar_ends: datetime | None = None

    # -- inbox (any thread) --------------------------------------------------------------------

    def post_ticks(
        self,
        ticks: list[Tick],
        received: float | None = None,
        wake_after: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Market data: handled after every queued command and order update.

        `received` is when the frame carrying them arrived (`time.perf_counter()`), for latency probes.
        `wake_after`, from the frame's `TickBatch`, defers the wake-up until the whole frame is handed out.
        """
        handed = time.perf_counter()
        posted = handed if received is None else received
        wake = self._decides(ticks)
        with self._cond:
            self._ticks.append((ticks, posted, handed))
            if wake and wake_after is None:
                self._cond.notify()
        if wake and wake_after is not None:
            wake_after(self._wake)

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
        """An order update of this segment's orders."""
        self._post("order", order)

    def post_fill(self, fill: Fill) -> None:
        """A fill of this segment's orders."""
        self._post("fill", fill)

    def post_command(self, name: str, arg: Any = None) -> None:
        """ "kill" (reason) or "stop" ("square_off" | "keep")."""
        self._post(name, arg)

    def _post(self, kind: str, payload: Any) -> None:
        with self._cond:
            self._urgent.append((kind, payload))
            self._cond.notify()

    @property
    def squaring_off(self) -> bool:
        """It took a stop and is waiting, within its own deadline, for its exit to settle."""
        return self._stop_mode is not None

    @property
    def backlog(self) -> int:
        """Tick batches waiting (the bench watches this)."""
        return len(self._ticks)

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        """Startup, then the loop; never raises (a failure marks this agent FAILED, nothing else)."""
        try:
            self._startup(self.trader)
        except Exception as e:
            self._fail(e, "start failed")
            return
        try:
            if self._stop_mode is None and not self.isInterruptionRequested():
                self._set_state(AgentState.RUNNING)
            last_publish = 0.0
            while self._step():
                now = time.monotonic()
                if self.trader.changed and now - last_publish >= PUBLISH_EVERY:
                    self._publish()
                    last_publish = now
            self._publish()
            self._set_state(AgentState.STOPPED)
        except Exception as e:
            self._fail(e, "segment failed")

    def _step(self) -> bool:
        """Handles everything urgent, then one batch of ticks; False when the agent should end."""
        with self._cond:
            if not self._urgent and not self._ticks:
                self._cond.wait(PUBLISH_EVERY)
            urgent = list(self._urgent)
            self._urgent.clear()
            batch = self._ticks.popleft() if self._ticks and not urgent else None
        for kind, payload in urgent:
            self._handle(kind, payload)
        if batch is not None:
            ticks, self.trader.batch_posted, self.trader.batch_handed = batch
            self.trader.batch_picked = time.perf_counter()
            self.trader.on_ticks(ticks)
            self.ticks_processed += len(ticks)
            self._bar_ends = self.trader.bar_ends
        if self.isInterruptionRequested():
            return False
        if self._stop_mode is not None:
            t = self.trader
            if self._stop_mode == "keep":
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

    def _handle(self, kind: str, payload: Any) -> None:
        t = self.trader
        if kind == "order":
            t.on_order(payload)
        elif kind == "fill":
            t.on_fill(payload)
        elif kind == "kill":
            t.log.warning("kill switch: %s", payload)
            t.cancel_open_entries(then_exit="kill")
            if t.holding is not None:
                t.exit("kill")
        elif kind == "stop":
            self._stop_mode = payload
            wait = LIVE_SQUARE_OFF_WAIT if t.mode is Mode.LIVE else SQUARE_OFF_WAIT
            self._stop_deadline = time.monotonic() + wait
            self._set_state(AgentState.STOPPING)
            t.cancel_open_entries(then_exit="square_off" if payload == "square_off" else None)
            if payload == "square_off" and t.holding is not None:
                t.exit("square_off")
            elif t.holding is not None:
                t.log.info("stopping with %s kept open under its stop loss", t.holding.tradingsymbol)
        elif kind == "call":
            payload(t)  # a function to run on this thread (tests, recovery helpers)

    def _publish(self) -> None:
        t = self.trader
        t.changed = False
        h = getattr(t, "holding", None)
        held = (
            (Position(t.ctx.key, t.mode, h.exchange, h.tradingsymbol, h.quantity, h.entry_price, h.last_price, t.realised),)
            if h is not None
            else ()
        )  # fmt: skip
        self.view = AgentView(
            t.snapshot(self.state, self.failure), tuple(t.order_rows.values()), tuple(t.fill_rows), held
        )

    def _fail(self, exc: BaseException, what: str) -> None:
        self.failure = f"{what}: {type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):  # the log itself may be closed: the state still says why
            self.trader.log.error("%s\n%s", self.failure, traceback.format_exc())
        self.state = AgentState.FAILED
        try:
            self._publish()
        except Exception:
            self.view = AgentView(SegmentSnapshot(self.segment, AgentState.FAILED, self.failure))
        self._on_state(self)

    def _set_state(self, state: AgentState) -> None:
        if self.state is AgentState.FAILED:
            return
        self.state = state
        self.trader.changed = True
        self._publish()
        self._on_state(self)
