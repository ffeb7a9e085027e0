"""Blocking work (login, export, stopping a session) off the GUI thread; results come back by signal."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


class _Relay(QObject):
    """Lives in the GUI thread: the worker emits, Qt queues, the callbacks run on the GUI thread."""

    sig_done = Signal(object)
    """The job returned a value."""
    sig_failed = Signal(object)
    """The job raised an exception (passed as the value)."""

    def __init__(
        self,
        runner: JobRunner,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ) -> None:
        super().__init__(runner)
        self._runner = runner
        self._on_done = on_done
        self._on_error = on_error
        self.sig_done.connect(self._deliver_result)
        self.sig_failed.connect(self._deliver_failure)

    @Slot(object)
    def _deliver_result(self, value: Any) -> None:
        try:
            if self._on_done is not None:
                self._on_done(value)
        finally:
            self._runner._finished(self)

    @Slot(object)
    def _deliver_failure(self, exc: BaseException) -> None:
        try:
            if self._on_error is not None:
                self._on_error(exc)
        finally:
            self._runner._finished(self)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            value = self._fn()
        except BaseException as exc:  # handed to the GUI thread, never raised in a pool thread
            self._relay.sig_failed.emit(exc)
        else:
            self._relay.sig_done.emit(value)


class JobRunner(QObject):
    """A private thread pool: `submit(fn, on_done, on_error)`; callbacks run on the GUI thread."""

    sig_busy_changed = Signal(int)
    """The number of unfinished jobs changed (drives the progress indicator)."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relays: set[_Relay] = set()

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Runs `fn()` on a pool thread; `on_done(result)` or `on_error(exc)` later on this thread."""
        self._pool.start(self._job(fn, on_done, on_error))

    def submit_detached(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Like `submit`, on a daemon thread the app may abandon at exit (waiting for a browser login).

        A pool thread blocked for minutes would hold up quitting: Qt waits for its pool's threads.
        """
        job = self._job(fn, on_done, on_error)
        threading.Thread(target=job.run, name="kitedesk-ui-wait", daemon=True).start()

    def submit_now(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Like `submit`, on a thread of its own at once: for a kill switch, which must never queue behind the pool's
        slow jobs (a LIVE square-off waits up to 45 s for its exit). Not a daemon: quitting waits for it."""
        job = self._job(fn, on_done, on_error)
        threading.Thread(target=job.run, name="kitedesk-ui-now").start()

    def _job(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ) -> _Job:
        relay = _Relay(self, on_done, on_error)
        self._relays.add(relay)
        self.sig_busy_changed.emit(len(self._relays))
        return _Job(fn, relay)

    @property
    def busy(self) -> int:
        """Jobs submitted and not yet delivered."""
        return len(self._relays)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Waits for every running job's thread to finish (shutdown); True when all did."""
        return self._pool.waitForDone(timeout_ms)

    def _finished(self, relay: _Relay) -> None:
        self._relays.discard(relay)
        relay.deleteLater()
        self.sig_busy_changed.emit(len(self._relays))
