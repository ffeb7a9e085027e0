"""The front door (issues 17 §4 and 25): the demo keeps its own folder under the data folder (`--fresh`
wipes it), and `kitedesk login` without a keyring asks for the API secret (hidden) or reads it from stdin."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.cli.conftest import kitedesk_cmd, kitedesk_env, run_kitedesk, said
from tests.simkit import start_sim


def _window_demo(data: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        kitedesk_cmd("--demo", "--speed", "120", "--home", str(data), *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kitedesk_env(),
    )


def _wait_for(what: str, ok, proc: subprocess.Popen[str], seconds: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not ok():
        if proc.poll() is not None:
            raise AssertionError(
                f"the window ended ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}"
            )  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        time.sleep(0.25)


def _end(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)  # quits without a question, positions kept under their stops
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err[-3000:]
    return err


def _session_logs(home: Path) -> list[Path]:
    return sorted((home / "logs").rglob("*.log")) if (home / "logs").is_dir() else []


def _log_written_since(home: Path, t: float) -> bool:
    """A session log of `home` was written after `t` (the window is up: its signal handlers are set)."""
    try:
        return any(p.stat().st_mtime > t for p in _session_logs(home))
    except OSError:  # a folder being wiped by --fresh
        return False


@pytest.mark.slow
def test_the_demo_keeps_its_folder_and_fresh_wipes_it_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = data / "demo"
    first = _window_demo(data)
    try:
        _wait_for("demo session log", lambda: bool(_session_logs(demo)), first)
        # A reset while a demo runs on the folder is refused in words, and deletes nothing.
        busy = run_kitedesk("--demo", "--fresh", "--home", str(data), timeout=60)
        assert busy.returncode == 1, busy.stderr
        assert any("was not reset" in line for line in said(busy.stderr)), busy.stderr
        assert _session_logs(demo) and (demo / "kitedesk.db").is_file()
    finally:
        _end(first)
    # After quitting, what "Where are my logs" showed is still there; the data folder itself holds no demo data.
    logs = _session_logs(demo)
    assert logs and all(p.stat().st_size > 0 for p in logs)
    assert (demo / "kitedesk.db").is_file()
    assert not (data / "kitedesk.db").exists()

    marker = demo / "left-by-the-first-demo"
    marker.write_text("x")
    again = _window_demo(data)  # without --fresh: the same folder, kept
    try:
        started = time.time()
        _wait_for(
            "a session log written by the second demo",
            lambda: _log_written_since(demo, started),
            again,
        )
        assert marker.exists()
    finally:
        _end(again)
    started = time.time()
    fresh = _window_demo(data, "--fresh")
    try:
        _wait_for(
            "a session log written by the fresh demo",
            lambda: _log_written_since(demo, started),
            fresh,
        )
        assert not marker.exists(), "--fresh kept the old demo folder"
        assert not [p for p in _session_logs(demo) if p in logs], "--fresh kept the old logs"
    finally:
        _end(fresh)


def test_fresh_is_refused_without_the_demo(tmp_path: Path) -> None:
    done = run_kitedesk("--fresh", "--home", str(tmp_path / "data"), timeout=60)
    assert done.returncode == 2 and "--fresh resets the demo's folder: use it with --demo" in done.stderr
    assert not (tmp_path / "data").exists()


def _add_profile(sim_url: str, home: Path) -> None:
    """A profile without a stored secret: this process has no keyring (null backend) to keep one."""
    add = subprocess.run(
        kitedesk_cmd(
            "profiles",
            "add",
            "UK9394",
            "--api-key",
            "UK9394",
            "--name",
            "Trader A",
            "--api-root",
            sim_url,
            "--login-root",
            sim_url,
            "--home",
            str(home),
        ),  # fmt: skip
        input="\n",
        capture_output=True,
        text=True,
        env=kitedesk_env(),
        timeout=60,
    )
    assert add.returncode == 0, add.stderr


def _redirect(sim_url: str) -> str:
    resp = requests.get(f"{sim_url}/connect/login?api_key=UK9394&v=3", allow_redirects=False, timeout=5)
    return str(resp.headers["Location"])


def _login(home: Path, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = kitedesk_cmd("login", "UK9394", "--home", str(home), "--no-listen", "--timeout", "20", *extra)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=kitedesk_env(), timeout=60)


@pytest.mark.slow
def test_login_without_a_keyring_reads_the_secret_from_stdin(tmp_path: Path) -> None:
    sim = start_sim()
    home = tmp_path / "home"
    try:
        _add_profile(sim.url, home)
        # No keyring holds the secret and stdin is no terminal: said how to give it, nothing asked or sent.
        done = _login(home, _redirect(sim.url) + "\n")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "--secret-stdin" in done.stderr and "Logged in" not in done.stdout
        # A wrong secret reaches Kite and is refused there: the secret given is the one used.
        done = _login(home, "not-the-secret\n" + _redirect(sim.url) + "\n", "--secret-stdin")
        assert done.returncode == 1 and "Logged in" not in done.stdout, done.stdout + done.stderr
        done = _login(home, "secret_A\n" + _redirect(sim.url) + "\n", "--secret-stdin")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Logged in: Trader A (UK9394)." in done.stdout
        assert "secret_A" not in done.stdout + done.stderr
        assert not [p for p in home.rglob("*") if p.is_file() and b"secret_A" in p.read_bytes()]
        empty = _login(home, "\n", "--secret-stdin")
        assert empty.returncode == 1 and "stdin's first line is empty" in empty.stderr
    finally:
        sim.stop()


def _read_until(fd: int, text: bytes, seconds: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child ended: its terminal is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.slow
def test_login_in_a_terminal_asks_for_the_secret_without_echo(tmp_path: Path) -> None:
    sim = start_sim()
    home = tmp_path / "home"
    try:
        _add_profile(sim.url, home)
        cmd = kitedesk_cmd("login", "UK9394", "--home", str(home), "--no-listen", "--timeout", "20")
        pid, fd = pty.fork()
        if pid == 0:  # the child: kitedesk on a terminal, as a trader runs it over ssh
            os.execvpe(cmd[0], cmd, kitedesk_env())
        try:
            _read_until(fd, b"API secret of UK9394 (not shown")
            os.write(fd, b"secret_A\n")
            after = _read_until(fd, b"request token):")
            os.write(fd, (_redirect(sim.url) + "\n").encode())
            after += _read_until(fd, b"Logged in")
            after += _read_until(fd, b"\n")
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, after.decode(errors="replace")
        assert b"Logged in: Trader A (UK9394)." in after
        assert b"secret_A" not in after  # never echoed
    finally:
        sim.stop()
