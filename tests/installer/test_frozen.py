"""The frozen app a trader downloads: built from this checkout, unpacked, and run with no Python of ours.

Deselected by default (a build takes a minute or two); `.ci/run` runs it after the suite:
`python -m pytest -m installer tests/installer`. It needs the `[build]` extra (PyInstaller).
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.simkit import demo_start

pytestmark = [pytest.mark.installer, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DEMO_SECONDS = 25
EXIT_BUDGET_S = 10


def _frozen_env(home: Path) -> dict[str, str]:
    """The environment of a trader's machine: no virtualenv, no PYTHONPATH, Qt offscreen, keyring unused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KITEDESK"))}
    env["PATH"] = "/usr/bin:/bin"
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"  # never the developer's keyring
    env["HOME"] = str(home.parent / "user")  # where the default data folder would go: a fresh one
    return env


@pytest.fixture(scope="module")
def frozen_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds the app and its archive (tools/build_installer.py checks the size budgets), then unpacks it."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI builds the frozen app: install the [build] extra (PyInstaller)")
        pytest.skip("the frozen app needs the [build] extra (PyInstaller): pip install -e '.[build]'")
    build = subprocess.run(
        [sys.executable, "tools/build_installer.py"], cwd=ROOT, capture_output=True, text=True, timeout=800
    )
    print(build.stdout[-2000:])
    assert build.returncode == 0, f"the build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    archives = sorted((ROOT / "dist").glob("KiteDesk-*-linux-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    assert archives, "the build made no archive"
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archives[-1]) as tar:
        tar.extractall(target, filter="tar")
    (folder,) = target.iterdir()
    assert (folder / "KiteDesk").is_file() and (folder / "kitedesk").exists()
    return folder


def _children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (Linux /proc)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return kids


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # ended; only its exit status is left for its parent to collect


def _fills_by_session(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT s.label, count(*) FROM fills f JOIN sessions s"
            " ON s.broker_id = f.broker_id AND s.session_id = f.session_id GROUP BY s.label"
        ).fetchall()
    finally:
        conn.close()
    return {label: n for label, n in rows}


def test_frozen_demo_trades_and_ends_cleanly_on_sigterm(frozen_app: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    home = data / "demo"  # the demo's own folder under the data folder, kept after it ends
    out = (tmp_path / "demo.log").open("w+")
    app = subprocess.Popen(
        # The demo's prices follow its day: a pinned day on which its sessions trade within DEMO_SECONDS.
        [str(frozen_app / "KiteDesk"), "--demo", "--start", demo_start("09:19"), "--home", str(data)],
        env=_frozen_env(data),
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    sims: set[int] = set()
    try:
        deadline = time.monotonic() + DEMO_SECONDS
        while time.monotonic() < deadline:
            time.sleep(1)
            out.seek(0)
            assert app.poll() is None, f"the frozen demo ended ({app.returncode}):\n{out.read()[-3000:]}"
            sims.update(_children(app.pid))
        assert app.poll() is None
        # The simulator runs as a child of the frozen executable, as the frozen console binary (no Python).
        assert sims, "the demo started no simulator process"
        for pid in sims:
            if not _gone(pid):
                exe = os.readlink(f"/proc/{pid}/exe")
                assert Path(exe).parent == frozen_app, f"the simulator runs {exe}, not the frozen app"
                assert "sim" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        t0 = time.monotonic()
        app.send_signal(signal.SIGTERM)
        code = app.wait(EXIT_BUDGET_S)
        took = time.monotonic() - t0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
    out.seek(0)
    log = out.read()
    assert code == 0, f"SIGTERM ended the frozen app with {code}:\n{log[-3000:]}"
    print(f"frozen demo: SIGTERM to exit {took:.1f} s")
    left = [pid for pid in sims if not _gone(pid)]
    assert not left, f"simulator process(es) {left} still running after the app ended"

    fills = _fills_by_session(home / "kitedesk.db")
    print(f"frozen demo: fills by session after {DEMO_SECONDS} s: {fills}")
    assert len(fills) >= 2 and all(n >= 1 for n in fills.values()), f"too few demo trades: {fills}"
    assert list((home / "logs").rglob("live_trader_*.log")), "the sessions wrote no log in the home"

    csv_path = tmp_path / "trades.csv"
    export = subprocess.run(
        [str(frozen_app / "kitedesk"), "export", "--broker", "UK9394", "--mode", "PAPER"]
        + ["--home", str(home), "--out", str(csv_path)],
        env=_frozen_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["broker_id"] for r in rows} == {"UK9394"}, rows[:3]


def test_frozen_console_verbs(frozen_app: Path, tmp_path: Path) -> None:
    """`kitedesk sim`, `run`, `login`, `profiles` of the frozen console binary, and every other command's help."""
    home = tmp_path / "home"
    env = _frozen_env(home)
    cli = str(frozen_app / "kitedesk")

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=timeout)

    added = run(
        "profiles", "add", "AB1234", "--api-key", "testkey", "--name", "Frozen test", "--home", str(home)
    )
    assert added.returncode == 0, added.stdout + added.stderr
    listed = run("profiles", "--home", str(home))
    assert listed.returncode == 0 and "AB1234" in listed.stdout, listed.stdout + listed.stderr
    login_help = run("login", "--help")
    assert login_help.returncode == 0 and "profile" in login_help.stdout
    # Every command loads by name from the command table: each one must be in the frozen app.
    for verb in ("export", "record", "replay", "backtest", "sync", "completion"):
        helped = run(verb, "--help")
        assert helped.returncode == 0 and "usage:" in helped.stdout, verb + helped.stdout + helped.stderr

    # A workspace's sessions without a window, on the embedded simulator, for a few seconds.
    workspace = frozen_app / "_internal" / "desktop" / "resources" / "demo_workspace.toml"
    headless = run(
        "run", str(workspace), "--demo", "--for", "8", "--home", str(tmp_path / "run"), timeout=120
    )
    assert headless.returncode == 0, headless.stdout[-2000:] + headless.stderr[-2000:]
    assert "NIFTY" in headless.stdout

    sim = subprocess.Popen([cli, "sim", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        first = sim.stdout.readline() + sim.stdout.readline()
        assert "REST" in first and "http://127.0.0.1:" in first, first
    finally:
        sim.send_signal(signal.SIGINT)
        assert sim.wait(15) == 0


def test_the_frozen_app_carries_no_optional_extra(frozen_app: Path) -> None:
    """dask.distributed (`kitedesk backtest --cluster`, imported lazily) and the benches' peers are installed in the
    test and bench environments the app is built from: the spec's excludes keep them out of the app."""
    import ast

    toc = ROOT / "build" / "installer" / "build_installer" / "PYZ-00.toc"
    _, modules = ast.literal_eval(toc.read_text(encoding="utf-8"))
    names = {entry[0] for entry in modules}
    assert "desktop.cli.main" in names  # the list read is the app's
    carried = sorted(n for n in names if n.split(".")[0] in ("distributed", "dask", "backtrader", "vnpy"))
    assert not carried, f"the frozen app carries optional packages: {carried[:10]}"
