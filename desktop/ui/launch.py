"""`kitedesk` and `kitedesk --demo [--speed X] [--home DIR]`: builds the engine and the window, runs Qt."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import platformdirs
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.resources import app_icon_file, resource_path
from desktop.ui.main_window import MainWindow
from desktop.ui.theme import apply_theme
from desktop.ui.warmup import import_after_first_paint

DEFAULT_DEMO_SPEED = 60.0  # a 1-minute bar every second: charts move and trades come within seconds
HOME_ENV = "KITEDESK_HOME"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The GUI's command line."""
    p = argparse.ArgumentParser(prog="kitedesk", description="KiteDesk: the desktop window.")
    p.add_argument("--demo", action="store_true", help="run three sessions on the built-in simulator")
    p.add_argument("--speed", type=float, default=DEFAULT_DEMO_SPEED, help="demo market speed (× real time)")
    p.add_argument("--home", help="data folder (default: $KITEDESK_HOME or your user data folder)")
    p.add_argument("--seed", type=int, default=1, help="demo market seed")
    p.add_argument("--theme", choices=("dark", "light"), help="colour theme")
    return p.parse_args(list(argv))


def demo_workspace_path() -> Path:
    """The seed's three-session scenario, shipped as package data with the engine's demo."""
    return resource_path("demo_workspace.toml")


def demo_start_time(today: date | None = None) -> datetime:
    """09:19 of today (or the last weekday): one minute before the entry window opens."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 19)


def resolve_home(cli_home: str | None, demo: bool) -> tuple[Path, bool]:
    """(home, is_temporary). The demo gets a fresh folder of its own unless --home is given."""
    import os

    if cli_home:
        return Path(cli_home).expanduser().resolve(), False
    if demo:
        return Path(tempfile.mkdtemp(prefix="kitedesk-demo-")), True
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve(), False
    return Path(platformdirs.user_data_dir("KiteDesk", appauthor=False)), False


def start_demo(window: MainWindow, speed: float, seed: int = 1) -> None:
    """Starts the simulator and logs the demo accounts in on a worker, then opens and starts the sessions."""
    engine = window.engine
    window.statusBar().showMessage(f"Starting the simulator at {speed:g}× and logging in the demo accounts…")
    start = demo_start_time()

    def run() -> None:
        # The simulator in a process of its own: in this one, its Python held the GIL the window needs.
        engine.start_demo(speed=speed, seed=seed, start=start, separate_process=True)

    def opened(_: object) -> None:
        window.statusBar().showMessage("Demo running", 5000)
        try:
            window.open_workspace(demo_workspace_path(), start=True)
        except Exception as e:
            QMessageBox.warning(window, "Demo", f"The demo sessions could not start: {e}")

    def failed(exc: BaseException) -> None:
        QMessageBox.warning(window, "Demo", f"The simulator could not start: {exc}")

    window.jobs.submit(run, opened, failed)


def run_gui(argv: Sequence[str]) -> int:
    """Runs the window until it is closed; returns the exit code."""
    args = parse_args(argv)
    from desktop.engine import Engine

    home, temporary = resolve_home(args.home, args.demo)
    home.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("KiteDesk")
    app.setWindowIcon(QIcon(app_icon_file()))  # a null icon (no file found) leaves the platform's
    try:
        engine = Engine(home)
    except Exception as e:
        print(f"kitedesk: cannot open the data folder {home}: {e}", file=sys.stderr)
        return 1
    window = MainWindow(engine, demo=args.demo)
    if args.theme:
        window.set_theme(args.theme)
    else:
        apply_theme(app, window.theme)
    window.show()
    import_after_first_paint(window)  # charts, Kite client, feed: imported once the window is up
    # Ctrl-C in the terminal (or SIGTERM: a logout, `kill`) quits without a question, positions kept under
    # their stops (as on a crash, the next start adopts them). Deferred to the event loop: the handler may
    # run inside a paint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: QTimer.singleShot(0, lambda: window.shutdown("keep")))
    if args.demo:
        start_demo(window, args.speed, args.seed)
    else:
        window.restore_tabs()
    code = app.exec()
    window.jobs.wait(10_000)
    if temporary:
        shutil.rmtree(home, ignore_errors=True)
    return int(code)
