"""JobRunner: blocking work off the GUI thread; a kill never queues behind it."""

from __future__ import annotations

import threading

from desktop.ui.workers import JobRunner


def test_a_kill_runs_at_once_while_every_pool_thread_is_busy(qtbot):
    # Four LIVE square-offs waiting for their exits filled the pool: Kill all queued behind them.
    jobs = JobRunner(max_threads=4)
    release = threading.Event()
    for _ in range(4):
        jobs.submit(lambda: release.wait(10))
    killed = threading.Event()
    results: list[str] = []
    jobs.submit(lambda: "queued")  # waits for a pool thread
    jobs.submit_now(lambda: (killed.set(), "kill")[1], results.append)
    assert killed.wait(2), "the kill ran while the pool was full"
    qtbot.waitUntil(lambda: results == ["kill"], timeout=2000)
    assert jobs.busy == 5
    release.set()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=5000)
    assert jobs.wait()
