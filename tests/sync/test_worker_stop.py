"""Stopping sync workers: one or several, each after its batch in hand, cut off after the grace, never past the
timeout asked for (the window's close waits for it)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from desktop.sync.worker import STOP_GRACE_S, SyncWorker, stop_all


@pytest.fixture
def hung_worker(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Makes workers whose thread hangs inside a batch (a server that never answers) until `abort` cuts it."""
    made: list[tuple[SyncWorker, threading.Event]] = []

    def make() -> tuple[SyncWorker, threading.Event]:
        cut = threading.Event()

        def hung_run(self: SyncWorker) -> None:
            cut.wait(30)  # deaf to the stop request: only the cut socket ends the batch

        monkeypatch.setattr(SyncWorker, "_run", hung_run)  # the thread's target is bound when it is made
        w = SyncWorker(None, "UK9394", "postgresql://u@127.0.0.1:1/db")  # type: ignore[arg-type] - never used
        monkeypatch.setattr(w, "abort", cut.set)
        w.start()
        made.append((w, cut))
        return w, cut

    yield make
    for w, cut in made:
        cut.set()
        w.join(5)


@pytest.mark.parametrize("how", ["stop", "stop_all"])
def test_a_stop_shorter_than_the_grace_cuts_the_hung_batch_within_its_timeout(hung_worker, how: str) -> None:
    worker, cut = hung_worker()
    timeout = STOP_GRACE_S / 4
    t0 = time.monotonic()
    if how == "stop":
        worker.stop(timeout)
    else:
        stop_all([worker], timeout)
    took = time.monotonic() - t0
    assert cut.is_set() and worker.join(1), "the hung batch was not cut off"
    assert took < timeout + 0.3, f"the stop took {took:.2f} s for a timeout of {timeout} s"


def test_stopping_two_hung_workers_takes_one_grace_not_two(hung_worker, monkeypatch) -> None:
    import desktop.sync.worker as worker

    grace = 0.4
    monkeypatch.setattr(worker, "STOP_GRACE_S", grace)
    (a, cut_a), (b, cut_b) = hung_worker(), hung_worker()
    t0 = time.monotonic()
    stop_all([a, b])
    took = time.monotonic() - t0
    assert cut_a.is_set() and cut_b.is_set() and a.join(1) and b.join(1)
    assert grace - 0.05 <= took < 2 * grace, took
