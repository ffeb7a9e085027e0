"""`kitedesk` and `kitedesk --demo [--speed X] [--home DIR]`: builds the engine and the window, runs Qt.

The command line and the home are desktop/app.py's (the composition root picks the home); this module gets
them parsed and resolved.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.engine import OnStop
from desktop.resources import app_icon_file, resource_path
from desktop.ui.main_window import MainWindow
from desktop.ui.theme import apply_theme


def demo_workspace_path() -> Path:
    """The seed's three-session scenario, shipped as package data with the engine's demo."""
    return resource_path("demo_workspace.toml")


def demo_start_time(today: date | None = None) -> datetime:
    """09:19 of today (or the last weekday): one minute before the entry window opens."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 19)


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


def run_gui(args: argparse.Namespace, home: Path, temporary: bool) -> int:
    """Runs the window on `home` until it is closed; returns the exit code. `temporary`: a demo's own
    folder, removed at the end."""
    from desktop.engine import Engine

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("KiteDesk")
    app.setWindowIcon(QIcon(app_icon_file()))  # a null icon (no file found) leaves the platform's
    try:
        # Takes the home's lock: a second KiteDesk on this home (a window or `kitedesk run`) is refused
        # here, in one line naming it, before any window opens.
        engine = Engine(home)
    except Exception as e:  # the store's and the lock's messages name the folder and what is wrong
        print(f"kitedesk: {e}", file=sys.stderr)
        if app.platformName() not in ("offscreen", "minimal"):  # started from a menu: no terminal to read
            QMessageBox.critical(None, "KiteDesk", str(e))
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
        return 1
    window = MainWindow(engine, demo=args.demo)
    if args.theme:
        window.set_theme(args.theme)
    else:
        apply_theme(app, window.theme)
    window.show()
    # Ctrl-C in the terminal (or SIGTERM: a logout, `kill`) quits without a question, positions kept under
    # their stops (as on a crash, the next start adopts them). Deferred to the event loop: the handler may
    # run inside a paint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: QTimer.singleShot(0, lambda: window.shutdown(OnStop.KEEP)))
    if args.demo:
        start_demo(window, args.speed, args.seed)
    else:
        window.restore_tabs()
    code = app.exec()
    window.jobs.wait(10_000)
    if temporary:
        shutil.rmtree(home, ignore_errors=True)
    return int(code)
