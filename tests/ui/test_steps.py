"""The window's StepQueue: one construction step per event-loop pass, in turn, never a closed tab's."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject

from desktop.ui.steps import StepQueue


def _job(name: str, steps: int, log: list[tuple[str, float]]):  # type: ignore[no-untyped-def]
    left = [steps]

    def step() -> bool:
        log.append((name, time.perf_counter()))
        left[0] -= 1
        return left[0] > 0

    return step


def test_steps_of_several_owners_run_in_turn_one_at_a_time_apart(qtbot):
    queue = StepQueue(gap_ms=8)
    a, b = QObject(), QObject()
    log: list[tuple[str, float]] = []
    queue.add(a, _job("a", 3, log))
    queue.add(b, _job("b", 2, log))
    assert log == []  # nothing runs inside add()
    qtbot.waitUntil(lambda: len(log) == 5, timeout=2000)
    assert [name for name, _ in log] == ["a", "b", "a", "b", "a"]
    gaps = [t1 - t0 for (_, t0), (_, t1) in zip(log, log[1:], strict=False)]
    assert min(gaps) >= 0.006  # each in a pass of its own, the gap apart (timers may come a little early)
    qtbot.wait(50)
    assert len(log) == 5 and len(queue) == 0


def test_a_step_of_an_owner_deleted_meanwhile_is_dropped(qtbot):
    queue = StepQueue(gap_ms=5)
    gone, kept = QObject(), QObject()
    log: list[tuple[str, float]] = []
    queue.add(gone, _job("gone", 3, log))
    queue.add(kept, _job("kept", 2, log))
    gone.deleteLater()
    qtbot.waitUntil(lambda: len(log) == 2, timeout=2000)
    qtbot.wait(50)
    assert [name for name, _ in log] == ["kept", "kept"]


def test_a_step_that_raises_is_dropped_and_the_others_still_run(qtbot):
    # A workspace's tab failing to open stopped the queue: every later step waited for unrelated work.
    queue = StepQueue(gap_ms=5)
    owner = QObject()
    log: list[tuple[str, float]] = []

    def broken() -> bool:
        raise RuntimeError("no such account")

    queue.add(owner, broken)
    queue.add(owner, _job("after", 2, log))
    with qtbot.captureExceptions() as raised:
        qtbot.waitUntil(lambda: len(log) == 2, timeout=2000)
    assert [str(e[1]) for e in raised] == ["no such account"]
    assert [name for name, _ in log] == ["after", "after"]
