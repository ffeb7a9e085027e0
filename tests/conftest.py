"""Test configuration shared by every test: headless Qt, and no thread left running after a test."""

from __future__ import annotations

import os
import threading

import pytest

# Must be set before any Qt module is imported: every test runs headless.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never let a test touch the developer's real keyring or data folder.
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Our threads are named with these prefixes; daemon or not, one left running after a test is a leak.
OUR_THREAD_PREFIXES = ("kitedesk", "kite-sim")


def _ours(t: threading.Thread) -> bool:
    return not t.daemon or t.name.startswith(OUR_THREAD_PREFIXES)


@pytest.fixture(autouse=True)
def _no_thread_left_running(request: pytest.FixtureRequest):
    """Fails a test that leaves a thread of ours running (napari's habit): leaks crash at exit.

    Foreign daemon threads (Twisted's reactor thread, started once by KiteTicker) are not ours to stop.
    """
    before = set(threading.enumerate())
    yield
    if request.node.get_closest_marker("allow_threads"):
        return
    budget = 5.0
    leaked: list[threading.Thread] = []
    for t in set(threading.enumerate()) - before:
        if not _ours(t):
            continue
        t.join(timeout=budget)
        budget = 0.2
        if t.is_alive():
            leaked.append(t)
    if leaked:
        names = ", ".join(t.name for t in leaked)
        pytest.fail(f"test left threads running: {names}")
