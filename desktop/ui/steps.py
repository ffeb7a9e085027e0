"""`StepQueue`: the window's construction work, one step per event-loop pass.

Building a segment panel (its chart in parts, then its first drawing) and starting a session are steps of
5-25 ms each. Each tab used to run its own chain of timers, and the chains of three tabs, plus the session
starts, often came due together: Qt runs every due timer in one sweep, so their steps added up to one
60-70 ms pass while the sessions started. One queue per window runs one step per pass, `gap_ms` apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from shiboken6 import isValid

STEP_GAP_MS = 8


class StepQueue(QObject):
    """Runs queued steps one per event-loop pass, in turn; a step returning True is queued again (one that
    returns None or False has done its work)."""

    def __init__(self, gap_ms: int = STEP_GAP_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: deque[tuple[QObject, Callable[[], bool | None]]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(gap_ms)
        self._timer.timeout.connect(self._run_one)

    def add(self, owner: QObject, step: Callable[[], bool | None]) -> None:
        """Queues `step` (dropped if `owner` is deleted first); it runs again while it returns True."""
        self._jobs.append((owner, step))
        if not self._timer.isActive():
            self._timer.start()

    def __len__(self) -> int:
        return len(self._jobs)

    def _run_one(self) -> None:
        try:
            while self._jobs:
                owner, step = self._jobs.popleft()
                if not isValid(owner):  # its tab was closed meanwhile
                    continue
                if step():
                    self._jobs.append(
                        (owner, step)
                    )  # in turn with the others: no tab waits for another's panels
                break
        finally:  # a step that raised is dropped (Qt reports it); the others still run
            if self._jobs:
                self._timer.start()
