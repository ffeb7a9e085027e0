"""A backtest sweep off the GUI thread: one thread of its own drives the engine's process pool; its progress, its
rows and its end come back to the GUI thread by signal.

The thread only waits on the pool (the replays run in the pool's processes), so the window's own sessions keep
their interpreter. Cancel sets the sweep's stop flag: the jobs in progress end at their next frame, the queued
ones never start, and the rows already finished stay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

from PySide6.QtCore import QObject, Signal

from desktop.engine import DaySource, Workspace, run_sweep

# The pool's processes run below the window's priority: a sweep must not slow a session that trades.
WORKER_NICENESS = 10


class SweepRun(QObject):
    """One sweep: `start()`, then `cancel()` at any time; the signals arrive on the GUI thread."""

    sig_progress = Signal(int, int, float)
    """Replays finished, replays in all, seconds since the start."""
    sig_row = Signal(int, object)
    """A combination finished every day: its index in the combinations, its ComboResult."""
    sig_finished = Signal(bool)
    """The sweep ended: True when every combination finished (False: cancelled)."""
    sig_failed = Signal(str)
    """The sweep stopped on an error (the message names the combination and the day)."""

    def __init__(
        self,
        workspace: Workspace,
        combos: list[dict[str, str]],
        days: list[date],
        source: Callable[[], DaySource],
        workers: int,
        parent: QObject | None = None,
    ) -> None:
        """`source()` gives the days' source, on the sweep's thread: making it may import the simulator (most of
        a second, the first time), which the GUI thread must not wait for."""
        super().__init__(parent)
        self._args = (workspace, combos, days, source, workers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kitedesk-backtest")

    def start(self) -> None:
        """Starts the sweep on its thread."""
        self._thread.start()

    def cancel(self) -> None:
        """Asks the sweep to stop (it ends within moments; sig_finished follows)."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        """Cancel was asked for."""
        return self._stop.is_set()

    def running(self) -> bool:
        """The sweep's thread is alive."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the sweep's thread to end (the app quitting); True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        workspace, combos, days, source, workers = self._args
        try:
            _rows, complete = run_sweep(
                workspace,
                combos,
                days,
                source(),
                workers,
                self.sig_progress.emit,
                stop=self._stop,
                on_row=self.sig_row.emit,
                processes=True,  # never in the window's process: a replay runs an engine of its own
                nice=WORKER_NICENESS,
            )
        except Exception as exc:  # a trader reads it in the dialog, never a traceback
            self.sig_failed.emit(str(exc) or type(exc).__name__)
        else:
            self.sig_finished.emit(complete)
