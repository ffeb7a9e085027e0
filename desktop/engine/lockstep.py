"""`Lockstep`: a replay's turn-taking between its driver and the segment agents, so a replay is deterministic.

Live, each agent handles its inbox on its own thread whenever it is woken: two agents (or an agent and the paper
gateway) may act on one frame in either order, which is right for latency and wrong for a replay that must give
byte-identical orders on every run. With a `Lockstep` set on its agents (`SegmentAgent.lockstep`), an agent
handles its inbox only during its turn: the replay driver delivers one frame, then gives each agent a turn in a
fixed order and waits until that agent's inbox is empty and it is idle, then the next, then the next frame.
`handle_here` is the same turn without the thread switch: once every agent's thread is parked waiting for a
turn, the driver handles an agent's inbox on its own thread (same code, same order; a replay runs several times
faster than with two thread switches per agent per frame). Live sessions never set one: the agent's loop is
unchanged (one attribute read per step).
"""

from __future__ import annotations

import threading
from typing import Protocol

SAFETY_WAIT = 0.05  # seconds between re-checks; the turn is handed over by notification, not by polling


class Turned(Protocol):
    """What the gate asks of an agent (a `SegmentAgent`, a QThread)."""

    def isInterruptionRequested(self) -> bool: ...  # noqa: N802 - Qt's name

    def isFinished(self) -> bool: ...  # noqa: N802 - Qt's name


class Inbox(Turned, Protocol):
    """An agent whose inbox the driver may handle on its own thread."""

    def handle_inbox_here(self) -> bool: ...


class Lockstep:
    """One turn at a time; `release()` ends the lockstep (agents run free again, e.g. to stop)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._turn: object | None = None
        self._free = False

    # Agent side (its own thread) ----------------------------------------------------------------------
    def await_turn(self, agent: Turned) -> bool:
        """Blocks until it is `agent`'s turn (True) or the lockstep is released or the agent interrupted (False)."""
        with self._cond:
            while self._turn is not agent:
                if self._free or agent.isInterruptionRequested():
                    return False
                self._cond.wait(SAFETY_WAIT)
            return True

    def turn_done(self, agent: Turned) -> None:
        """`agent` has nothing left to do (its inbox is empty, or its loop ends): the driver goes on."""
        with self._cond:
            if self._turn is agent:
                self._turn = None
                self._cond.notify_all()

    # Driver side -----------------------------------------------------------------------------------------
    def run(self, agent: Turned) -> None:
        """Gives `agent` a turn and waits until it has handled everything in its inbox (or has ended)."""
        with self._cond:
            self._turn = agent
            self._cond.notify_all()
            while self._turn is agent:
                if agent.isFinished():
                    self._turn = None
                    break
                self._cond.wait(SAFETY_WAIT)

    def handle_here(self, agent: Inbox) -> bool:
        """Handles `agent`'s whole inbox on the driver's own thread (no thread switch: the fast path of a replay);
        the agent's thread must be parked in `await_turn` (it is, after one `run`). False once the agent ends.

        Read without the lock: only the driver's thread (this one) sets `_free` and gives a turn, so what it reads
        here is exact (an agent only ever takes its turn back to None), and a replay calls this for every agent on
        every frame."""
        if self._free or self._turn is not None:
            raise RuntimeError(
                "handle_here needs every agent parked: the lockstep is released or a turn runs"
            )
        return agent.handle_inbox_here()

    def release(self) -> None:
        """Ends the lockstep: every agent handles its inbox on its own again."""
        with self._cond:
            self._free = True
            self._turn = None
            self._cond.notify_all()
