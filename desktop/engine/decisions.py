"""What an account's dispatcher hands a segment's agent: the decision of one batch of ticks (plain Python, no Qt).

The dispatcher (engine/dispatch.py) runs a segment's bars, strategy and risk check on the account feed's thread;
what may block (the durable intent, the REST call, fills) is left to the segment's own agent thread. A `Decision`
is that hand-over: the strategy's actions, an entry already checked by risk with its intent (`ReadyEntry`), and
the rest of the batch, suspended at the tick that decided, for the agent to finish after acting (so the segment
sees its ticks and its own actions in the same order as when the agent handled the whole batch itself).

`FrameCommit` makes the entry intents decided on one frame durable in one transaction (one fsync for the frame,
not one per intent). Once the frame is decided the dispatcher `start`s it: the transaction is queued ahead of the
background writer's notes and the engine's store writer is asked to lead it, so it is on its way to disk while the
agents are still waking; each agent about to send waits until its intent is committed (or commits the frame's
intents itself when none started them). An intent is still on disk before its order is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from desktop.domain import OrderIntent

if TYPE_CHECKING:
    from desktop.broker.instruments import OptionContract
    from desktop.engine.strategy.base import Action, EnterPosition
    from desktop.engine.writer import SendGate
    from desktop.store import Store


@dataclass(slots=True)
class ReadyEntry:
    """An entry decided on the dispatcher: the option resolved, the intent built and (`checked`) passed by risk.

    Unchecked when risk's check would ask the broker for the option's price (a LIVE margin check): the agent
    checks it before sending. `commit` makes the intent durable with the rest of its frame (None: alone)."""

    action: EnterPosition
    contract: OptionContract
    intent: OrderIntent
    checked: bool
    commit: Callable[[], None] | None = None
    sent: Callable[[], None] | None = None  # its agent tells its frame's commit it was sent (or not): once


@dataclass(slots=True)
class Decision:
    """One batch's decision for the segment's agent: `actions` to run, then `rest` (the batch's ticks after the
    one that decided, as the trader's suspended `tick_steps`) and the trader's after-ticks work."""

    actions: list[Action | ReadyEntry] = field(default_factory=list)
    rest: Iterator[list[Action]] | None = None


class FrameCommit:
    """The entry intents decided on one frame (of one store): durable in one transaction, queued once the frame is
    decided (`start`, the dispatcher) or committed by the first agent that needs one of them. Any thread; the
    commit runs on the store writer's thread or an agent's, never the dispatcher's."""

    def __init__(
        self,
        store: Store,
        lead: Callable[[Callable[[], object]], None] | None = None,
        sending: SendGate | None = None,
    ) -> None:
        """`lead`: how to ask a thread with nothing more urgent to do to commit a started frame (the store writer's
        `lead`); None: the first agent waiting for it commits it. `sending`: told how many of the frame's entries
        are on their way once it starts, and of each one sent (`sent`: its request written), so the rest of the
        burst (the background notes, the agents' own work) lets them go first."""
        self._store = store
        self._lead = lead
        self._sending = sending
        self._on_way: set[str] = set()  # intents of the started group not said sent yet (`sent`)
        self._opened = 0  # what `sending.opened` returned for them
        self._lock = threading.Lock()
        self._waiting: list[tuple[OrderIntent, datetime]] = []
        self._started: dict[str, Callable[[], list[bool]]] = {}  # intent id -> waits for its started group
        self._outcome: dict[str, BaseException | None] = {}  # intent id -> None (committed) or the error
        self._wake_lock = (
            threading.Lock()
        )  # not `_lock`: `_done` may run inside `commit`, on the committing thread
        self._wakes: list[Callable[[], None]] = []  # agents to wake once the started group is done
        self._settled = False  # the started group is done (or none was started)
        self.transactions = 0  # commits run (tests and bench)

    def add(self, intent: OrderIntent, at: datetime) -> Callable[[], None]:
        """Adds an intent decided at market time `at`; returns what makes it durable (raises the store's error)."""
        with self._lock:
            self._waiting.append((intent, at))
        return lambda: self.commit(intent, at)

    def start(self) -> None:
        """The frame is decided: its intents' transaction is queued now, without waiting (the dispatcher's thread),
        and the store writer asked to lead it; `commit` then waits for it. Never blocks on the disk."""
        wait: Callable[[], list[bool]] | None = None
        with self._lock:
            group, self._waiting = self._waiting, []
            try:
                if group:  # none: an agent awake already took them (`commit`)
                    wait = self._store.intents.queue_all(group, then=self._done)
            except Exception as e:  # refused before queueing (the store stopped): each agent is told so
                for waiting, _ in group:
                    self._outcome[waiting.intent_id] = e
            if wait is not None:
                self.transactions += 1
                for waiting, _ in group:
                    self._started[waiting.intent_id] = wait
                if self._sending is not None and self._lead is not None:
                    self._on_way = {waiting.intent_id for waiting, _ in group}
                    self._opened = self._sending.opened(len(self._on_way))
        if wait is None or self._lead is None:
            self._done()  # nothing to wait for here: the agents commit (or are refused) themselves
            return
        try:
            self._lead(self._store.commit_waiting)
        except BaseException:
            self._done()  # the agents commit it themselves
            raise

    def sent(self, intent_id: str) -> None:
        """`intent_id`'s agent sent its order (or dropped it): said once (any thread)."""
        with self._lock:
            if intent_id not in self._on_way:
                return
            self._on_way.discard(intent_id)
        if self._sending is not None:
            self._sending.closed(self._opened)

    def wake_after(self, wake: Callable[[], None]) -> None:
        """Runs `wake` (an agent's, to send its entry) once the started group is on disk (or failed), on the thread
        that committed it: the agents wake to send, not to wait for the disk beside the committer. At once when
        it is done already or none was started."""
        with self._wake_lock:
            if not self._settled:
                self._wakes.append(wake)
                return
        wake()

    def _done(self) -> None:
        """The started group is done: the agents waiting to send are woken (never raises)."""
        with self._wake_lock:
            self._settled = True
            wakes, self._wakes = self._wakes, []
        for wake in wakes:
            wake()

    def commit(self, intent: OrderIntent, at: datetime) -> None:
        """Returns once `intent` is committed: with every intent of the frame still waiting, in one transaction
        (the first caller commits; a later one finds its intent done). Raises the store's error if it failed."""
        with self._lock:
            if intent.intent_id not in self._outcome:
                wait = self._started.get(intent.intent_id)
                if wait is None:
                    group, self._waiting = self._waiting, []
                    if all(waiting.intent_id != intent.intent_id for waiting, _ in group):
                        group.append((intent, at))  # never added (or added after its group committed): now
                    self.transactions += 1
                    store = self._store
                    wait = lambda: store.intents.record_all(group)  # noqa: E731
                    ids = [waiting.intent_id for waiting, _ in group]
                else:
                    ids = [i for i, w in self._started.items() if w is wait]
                error: BaseException | None = None
                try:
                    wait()
                except Exception as e:  # every intent of the group shares the transaction's fate
                    error = e
                for intent_id in ids:
                    self._outcome[intent_id] = error
                    self._started.pop(intent_id, None)
            error = self._outcome.get(intent.intent_id)
        if error is not None:
            raise error
