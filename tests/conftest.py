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


@pytest.fixture(autouse=True)
def _no_thread_left_running(request: pytest.FixtureRequest):
    """Fails a test that leaves a Python thread running (napari's habit): leaks crash at exit."""
    before = set(threading.enumerate())
    yield
    if request.node.get_closest_marker("allow_threads"):
        return
    deadline = 5.0
    leaked: list[threading.Thread] = []
    for t in set(threading.enumerate()) - before:
        t.join(timeout=deadline)
        deadline = 0.5
        if t.is_alive() and not t.daemon:
            leaked.append(t)
    if leaked:
        names = ", ".join(t.name for t in leaked)
        pytest.fail(f"test left threads running: {names}")
