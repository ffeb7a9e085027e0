"""`kitedesk sim` / `python -m desktop.broker.sim` in a real process, and several embedded simulators."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
from kiteconnect import KiteConnect

from desktop.broker.sim import SimAccount, SimConfig, Simulator
from tests.simkit import login, request_token


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "desktop.broker.sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_urls_and_accounts_serves_the_client_and_stops_on_ctrl_c():
    proc = _spawn(
        "--port",
        "0",
        "--speed",
        "10",
        "--start",
        "2026-01-08T09:15",
        "--seed",
        "3",
        "--account",
        "KEY1:SECRET1:AB0001",
        "--funds",
        "50000",
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        rest = re.search(r"REST\s+(http://\S+)/", text).group(1)
        assert re.search(r"WebSocket\s+ws://127\.0\.0\.1:\d+/ws", text)
        assert "api_key KEY1  user_id AB0001" in text
        assert "2026-01-08 09:15" in text

        class FakeSim:
            url = rest

        kite = KiteConnect("KEY1", root=rest)
        token, _ = request_token(FakeSim, "KEY1")
        kite.set_access_token(kite.generate_session(token, api_secret="SECRET1")["access_token"])
        assert kite.profile()["user_id"] == "AB0001"
        assert kite.margins("equity")["available"]["opening_balance"] == 50000
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--speed", "0"], "--speed"),
        (["--start", "2026-01-10T09:15"], "Saturday"),
        (["--account", "nosecret"], "API_KEY:API_SECRET"),
        (["--start", "tomorrow"], "YYYY-MM-DDTHH:MM"),
    ],
)
def test_cli_bad_input_is_a_clear_message_and_exit_2(args, message):
    proc = _spawn("--port", "0", *args)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert message.lower() in err.lower()
    assert "Traceback" not in err


def test_two_embedded_simulators_run_side_by_side_independently():
    a = Simulator(SimConfig(seed=1, start=datetime(2026, 1, 8, 9, 30), rate_limits=False)).start()
    b = Simulator(
        SimConfig(
            seed=2, start=datetime(2026, 1, 8, 9, 30), rate_limits=False, accounts=(SimAccount("ZZ1", "s1"),)
        )
    ).start()
    try:
        assert a.port != b.port
        ka = login(a, "UK9394")
        kb = KiteConnect("ZZ1", root=b.url)
        token, _ = request_token(b, "ZZ1")
        kb.set_access_token(kb.generate_session(token, api_secret="s1")["access_token"])
        assert kb.profile()["user_id"] == "ZZ1"  # USER_ID defaults to API_KEY
        pa = ka.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]
        pb = kb.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]
        assert pa != pb  # different seeds, different markets
        a.stop()
        assert kb.ltp("NSE:NIFTY 50")  # stopping one leaves the other serving
    finally:
        a.stop()
        b.stop()


def test_kitedesk_sim_ends_with_0_on_ctrl_c() -> None:
    """Ctrl-C is how a foreground simulator stops: through `kitedesk sim` it is no error (it exited 130)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop.cli", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline() + proc.stdout.readline()
        assert "http://127.0.0.1:" in first, first
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "interrupted" not in err and "Traceback" not in err
