"""`Publisher`: one thread that publishes the snapshots of every running segment agent of the process.

A segment agent's snapshot (`SegmentAgent.view`) must follow its trader within `PUBLISH_EVERY`, also when the
account's dispatcher (engine/dispatch.py) decides its ticks and the agent's own thread has nothing to do. Each
agent waking `PUBLISH_EVERY` to publish cost thirty threads woken twenty times a second at 10 sessions x 3
segments (600 wake-ups a second, each a turn at the interpreter lock the feed's thread was waiting for: issue 18).
So one thread does it for all of them: every `PUBLISH_EVERY` it publishes each agent whose trader changed since
its last snapshot, taking the agent's `lane` only if it is free (a busy agent is working, and publishes when
done), and lets the interpreter lock go every few agents so a frame arriving meanwhile waits for a few snapshots
at most. An agent's own thread still publishes after the work it was woken for. The same round wakes an agent
that has ticks queued without a wake (an index tick inside the forming minute), as its own timed wait did.

Threads: `add` and `remove` from the agents' threads; the publishing thread is started by the first `add` and
ends once the last agent is removed (no thread is left behind when no session runs).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)

PUBLISH_EVERY = 0.05  # seconds: a segment's snapshot is at most this old (the window pulls them at 15 Hz)
# Snapshots built between two turns given to a thread waiting for the interpreter lock: a snapshot takes about
# 10 us, so a frame arriving meanwhile waits about 0.1 ms at most (not a whole round: 30 agents), and the thread
# does not yield 600 times a second (each a system call, often a context switch).
YIELD_EVERY = 8


class Publishing(Protocol):
    def tend(self) -> None:
        """Publishes a new snapshot if its trader changed and its lane is free, or wakes its thread for ticks
        queued without a wake (the publisher's thread; never raises)."""


class Publisher:
    """Publishes the snapshots of the agents added to it every `PUBLISH_EVERY` (see the module docstring)."""

    def __init__(self, every: float = PUBLISH_EVERY) -> None:
        self.every = every
        self._cond = threading.Condition()
        self._agents: list[Publishing] = []
        self._thread: threading.Thread | None = None
        self.rounds = 0  # publishing rounds run (tests, bench)

    def add(self, agent: Publishing) -> None:
        """`agent`'s snapshots are published from now on (any thread); starts the thread if it is not running."""
        with self._cond:
            self._agents = [*self._agents, agent]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kitedesk-publisher", daemon=True)
                self._thread.start()

    def remove(self, agent: Publishing) -> None:
        """No more publishing for `agent` (its thread publishes its last snapshot itself); the thread ends with
        the last agent removed."""
        with self._cond:
            self._agents = [a for a in self._agents if a is not agent]
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._agents:
                    self._thread = None
                    return
                self._cond.wait(self.every)
                agents = self._agents
            self.rounds += 1
            for n, agent in enumerate(agents, 1):
                try:
                    agent.tend()
                except Exception:  # never expected (`tend` fails its segment): the others are still published
                    log.exception("publishing a segment's snapshot failed")
                if n % YIELD_EVERY == 0:
                    time.sleep(0)  # the interpreter lock goes to a thread waiting for it (the feed's)
