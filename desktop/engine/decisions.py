"""What an account's dispatcher hands a segment's agent: the decision of one batch of ticks (plain Python, no Qt).

The dispatcher (engine/dispatch.py) runs a segment's bars, strategy and risk check on the account feed's thread;
what may block (the durable intent, the REST call, fills) is left to the segment's own agent thread. A `Decision`
is that hand-over: the strategy's actions, an entry already checked by risk with its intent (`ReadyEntry`), and
the rest of the batch, suspended at the tick that decided, for the agent to finish after acting (so the segment
sees its ticks and its own actions in the same order as when the agent handled the whole batch itself).

`FrameCommit` makes the entry intents decided on one frame durable in one transaction: the first agent about to
send one of them commits them all (one fsync for the frame, not one per intent), the others find theirs
committed. An intent is still on disk before its order is sent.
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


@dataclass(slots=True)
class Decision:
    """One batch's decision for the segment's agent: `actions` to run, then `rest` (the batch's ticks after the
    one that decided, as the trader's suspended `tick_steps`) and the trader's after-ticks work."""

    actions: list[Action | ReadyEntry] = field(default_factory=list)
    rest: Iterator[list[Action]] | None = None


class FrameCommit:
    """The entry intents decided on one frame (of one store): durable in one transaction, committed by the first
    agent that needs one of them. Any thread; the commit runs on an agent's thread, never the dispatcher's."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._waiting: list[tuple[OrderIntent, datetime]] = []
        self._outcome: dict[str, BaseException | None] = {}  # intent id -> None (committed) or the error
        self.transactions = 0  # commits run (tests and bench)

    def add(self, intent: OrderIntent, at: datetime) -> Callable[[], None]:
        """Adds an intent decided at market time `at`; returns what makes it durable (raises the store's error)."""
        with self._lock:
            self._waiting.append((intent, at))
        return lambda: self.commit(intent, at)

    def commit(self, intent: OrderIntent, at: datetime) -> None:
        """Returns once `intent` is committed: with every intent of the frame still waiting, in one transaction
        (the first caller commits; a later one finds its intent done). Raises the store's error if it failed."""
        with self._lock:
            if intent.intent_id not in self._outcome:
                group, self._waiting = self._waiting, []
                if all(waiting.intent_id != intent.intent_id for waiting, _ in group):
                    group.append((intent, at))  # never added (or added after its group committed): now
                error: BaseException | None = None
                try:
                    self._store.intents.record_all(group)
                except Exception as e:  # every intent of the group shares the transaction's fate
                    error = e
                self.transactions += 1
                for waiting, _at in group:
                    self._outcome[waiting.intent_id] = error
            error = self._outcome.get(intent.intent_id)
        if error is not None:
            raise error
