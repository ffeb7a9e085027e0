"""One process per home (issue 16 §4): two `kitedesk run` (or a window and a run) on one home would both
take over the same session and trade it twice. The second is refused in one line naming the first."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import demo_run_args, kitedesk_cmd, kitedesk_env, run_kitedesk, said

pytestmark = pytest.mark.slow


def test_a_second_process_on_one_home_is_refused_and_the_first_trades_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = subprocess.Popen(
        kitedesk_cmd(*demo_run_args(home, "--for", "60", "--every", "0.5")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kitedesk_env(),
    )
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 60
        started = 0
        while started < 3 and time.monotonic() < deadline:
            line = first.stdout.readline()
            assert line, first.stderr.read() if first.stderr else ""
            started += line.startswith("started")
        assert started == 3
        for second in (
            demo_run_args(home, "--for", "5"),  # a second headless run
            ("profiles", "--home", str(home)),  # a command that writes the home's database
            ("--home", str(home)),  # the window
        ):
            done = run_kitedesk(*second, timeout=60)
            lines = said(done.stderr)
            assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
            assert len(lines) == 1, lines
            assert f"pid {first.pid}" in lines[0] and "kitedesk run" in lines[0], lines[0]
            assert "started" not in done.stdout
        assert first.poll() is None  # the first one is untouched
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=90)
        assert first.returncode == 0, err[-2000:]
        assert "stopping..." in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # Once the first has ended, the home is free again.
    done = run_kitedesk("profiles", "--home", str(home))
    assert done.returncode == 0, done.stderr
    # And everything the run wrote (database, session logs, lock) is its owner's only (issue 16 §11).
    logs = [p for p in home.rglob("*.log")]
    assert len(logs) >= 3
    for p in [home, *home.rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
