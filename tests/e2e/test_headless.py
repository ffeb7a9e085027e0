"""Headless runs (issue 5 §7): `kitedesk run` on the shipped demo workspace, and `kitedesk profiles` /
`kitedesk login` from a terminal against the simulator."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import keyring
import pytest
import requests

from desktop.cli.accounts import login, profiles
from desktop.resources import resource_path
from desktop.store import DB_FILENAME, Store
from desktop.store.export import _ExpiryLookup, weekly_expiry
from tests.broker.conftest import MemoryKeyring
from tests.simkit import demo_start, start_sim


@pytest.fixture
def keyring_in_memory():
    """A secure-looking in-memory keyring for this test only (never the developer's real one)."""
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def _env() -> dict[str, str]:
    return dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"
    )


def test_run_demo_workspace_prints_status_per_session_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "desktop.cli", "run", str(resource_path("demo_workspace.toml")), "--demo"]
    cmd += [
        "--speed",
        "120",
        "--start",
        demo_start("09:20"),
        "--for",
        "6",
        "--every",
        "1",
        "--home",
        str(home),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for label, mode in (("Computer 1", "PAPER"), ("Computer 2", "PAPER"), ("Computer 3", "LIVE")):
        status = [line for line in lines if f"'{label}' {mode}" in line and line.startswith("[")]
        assert any(" running |" in line for line in status), (label, status[-3:])
        assert " stopped |" in status[-1]
    assert "stopping..." in lines
    folders = sorted(p.name for p in (home / "logs").iterdir())
    assert len(folders) == 3 and sum(name.startswith("UK9394_") for name in folders) == 2
    _assert_monthly_expiries_are_known_to_the_export(home)


def _assert_monthly_expiries_are_known_to_the_export(home: Path) -> None:
    """The day's instruments are kept in the home, so an export finds a monthly contract's expiry (its symbol,
    e.g. BANKNIFTY26DEC61200PE, does not spell the day; the CSV left it blank)."""
    with sqlite3.connect(home / DB_FILENAME) as db:
        kept = db.execute("SELECT broker_id, trading_day FROM instrument_dumps").fetchall()
    assert {broker for broker, _ in kept} == {"UK9394", "UK1234"}, kept
    with Store.open(home) as store:
        for broker_id, day in kept:
            dump = store.instruments.load(broker_id=broker_id, day=date.fromisoformat(day)) or []
            monthly = [
                i
                for i in dump
                if i.instrument_type in ("CE", "PE") and weekly_expiry(i.tradingsymbol) is None
            ]
            assert monthly, f"no monthly option contract kept for {broker_id}"
            lookup = _ExpiryLookup(store, broker_id)
            for ins in monthly[:5]:
                assert lookup.expiry(ins.exchange, ins.tradingsymbol, date.fromisoformat(day)) == ins.expiry


def test_run_refuses_a_bad_workspace_with_every_problem(tmp_path: Path) -> None:
    ws = tmp_path / "bad.toml"
    ws.write_text(
        '[[session]]\nprofile = "UK9394"\nsegments = ["NIFTY"]\nlots = 0\nstop_loss = 5\nitm_offset = 75\n'
    )
    cmd = [sys.executable, "-m", "desktop.cli", "run", str(ws), "--home", str(tmp_path / "home")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 2
    assert "lots must be a whole number ≥ 1" in done.stderr
    assert "itm_offset 75 is not a multiple of NIFTY's strike step 50" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_for_zero_or_nonsense_seconds_is_refused_in_words(capsys) -> None:
    from desktop.cli.run import run

    for value in ("0", "-3", "soon"):
        with pytest.raises(SystemExit) as info:
            run(["ws.toml", "--for", value])
        assert info.value.code == 2
        assert f"--for: must be a number of seconds greater than 0, not '{value}'" in capsys.readouterr().err


def test_a_run_that_fails_part_way_stops_the_started_sessions_as_the_workspace_says(
    tmp_path: Path, monkeypatch, qapp
) -> None:
    # It closed them all with "keep" whatever their on_stop said.
    from desktop.cli.run import run
    from desktop.engine import Engine, SessionEngine
    from desktop.engine.session import SessionError

    ws = tmp_path / "ws.toml"
    text = resource_path("demo_workspace.toml").read_text(encoding="utf-8")
    ws.write_text(text.replace('on_stop = "square_off"', 'on_stop = "keep"', 1), encoding="utf-8")
    closed: list[tuple[str, str]] = []
    real_close, real_start = Engine.close_session, SessionEngine.start

    def close_session(self, key, positions="square_off"):  # type: ignore[no-untyped-def]
        if self.registry.get(key) is not None:
            closed.append((self.registry.get(key).label, positions))
        real_close(self, key, positions)

    def start(self, params):  # type: ignore[no-untyped-def]
        if self.label == "Computer 3":
            raise SessionError("Kite refused the session")
        real_start(self, params)

    monkeypatch.setattr(Engine, "close_session", close_session)
    monkeypatch.setattr(SessionEngine, "start", start)
    out = io.StringIO()
    args = [
        str(ws),
        "--demo",
        "--speed",
        "120",
        "--start",
        demo_start("09:20"),
        "--for",
        "5",
        "--home",
        str(tmp_path / "home"),
    ]
    assert run(args, out) == 1
    assert closed[:2] == [("Computer 1", "keep"), ("Computer 2", "square_off")]


def test_profiles_add_then_login_with_a_pasted_redirect(
    tmp_path: Path, monkeypatch, keyring_in_memory: None
) -> None:
    sim = start_sim()
    home = str(tmp_path / "home")
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("secret_A\n"))
        out = io.StringIO()
        add = ["--home", home, "add", "UK9394", "--api-key", "UK9394", "--name", "Trader A"]
        assert profiles([*add, "--api-root", sim.url, "--login-root", sim.url], out) == 0
        assert "secret_A" not in out.getvalue() and "OS keyring" in out.getvalue()
        assert "secret_A" not in (tmp_path / "home" / "profiles.toml").read_text()

        redirect = requests.get(
            f"{sim.url}/connect/login?api_key=UK9394&v=3", allow_redirects=False, timeout=5
        )
        monkeypatch.setattr("sys.stdin", io.StringIO(redirect.headers["Location"] + "\n"))
        out = io.StringIO()
        assert login(["UK9394", "--home", home, "--no-listen", "--timeout", "10"], out) == 0
        assert "Logged in: Trader A (UK9394)" in out.getvalue()
        assert f"{sim.url}/connect/login?api_key=UK9394" in out.getvalue()

        out = io.StringIO()
        assert profiles(["--home", home], out) == 0
        assert (
            "UK9394" in out.getvalue() and "logged in" in out.getvalue() and "secret stored" in out.getvalue()
        )

        monkeypatch.setattr(
            "sys.stdin", io.StringIO("\n")
        )  # a new name, no secret typed: the stored one stays
        out = io.StringIO()
        assert (
            profiles([*add[:-1], "Trader A (main)", "--api-root", sim.url, "--login-root", sim.url], out) == 0
        )
        assert "its API secret stored before is kept" in out.getvalue()
        monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
        out = io.StringIO()
        assert profiles(["--home", home, "add", "UK1234", "--api-key", "UK1234"], out) == 0
        assert (
            "no API secret given: add it to log in" in out.getvalue() and "OS keyring" not in out.getvalue()
        )
    finally:
        sim.stop()


def test_demo_never_writes_its_accounts_into_the_os_keyring(
    tmp_path: Path, keyring_in_memory: None, qapp
) -> None:
    from datetime import datetime

    from desktop.broker.profiles import MemorySecretStore
    from desktop.cli.demo import start_demo
    from desktop.engine import Engine
    from desktop.engine.engine import DemoSecretsError

    backend = keyring.get_keyring()
    start = datetime(2026, 1, 8, 9, 20)
    # An engine whose secrets go to the keyring refuses the demo (and the simulator started for it stops).
    engine = Engine(tmp_path / "home")
    try:
        assert engine.secure_secrets()
        with pytest.raises(DemoSecretsError):
            start_demo(engine, speed=30, start=start)
        assert not engine.demo and engine.simulator is None
    finally:
        engine.close()
    # The composition root builds the demo's engine on a memory-only store: it logs in, the keyring stays empty.
    engine = Engine(tmp_path / "home", secrets=MemorySecretStore())
    try:
        start_demo(engine, speed=30, start=start)
        assert engine.is_logged_in("UK9394") and engine.is_logged_in("UK1234")
        assert not engine.secure_secrets()
    finally:
        engine.close()
    assert backend.passwords == {}
