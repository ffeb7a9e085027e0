"""`SimProcess`: the simulator in a child process (the window's demo), and that it never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import pytest
from kiteconnect.exceptions import TokenException

from desktop.broker.sim.process import SimProcess, SimStartError
from tests.simkit import login


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it has ended and waits for its parent to collect it.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_simulator_process_serves_the_real_client_takes_faults_over_http_and_stops():
    sim = SimProcess.start(speed=30, seed=2, start=datetime(2026, 1, 8, 9, 20))
    try:
        assert sim.running and sim.url.startswith("http://127.0.0.1:") and sim.ws_url.endswith("/ws")
        kite = login(sim, "UK1234")  # the whole Kite login flow, kiteconnect over a real socket
        assert kite.profile()["user_id"] == "UK1234"
        quote = kite.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]
        assert quote["last_price"] > 0
        sim.inject_fault({"kind": "expire_token", "api_key": "UK1234"})
        with pytest.raises(TokenException):
            kite.profile()
    finally:
        sim.stop()
    assert not sim.running


def test_a_simulator_that_cannot_start_says_why():
    with pytest.raises(SimStartError, match="Saturday|weekend|not a trading day|market"):
        SimProcess.start(speed=30, start=datetime(2026, 1, 10, 9, 20))  # a Saturday


def test_the_simulator_process_ends_by_itself_when_its_parent_is_killed():
    # A parent that starts a simulator process, prints its pid, then waits to be killed with SIGKILL (no
    # chance to stop its child): the child must notice and end, never left running on its own.
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from desktop.broker.sim.process import SimProcess
            sim = SimProcess.start(speed=10)
            print(sim._proc.pid, flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
