"""The window's run: builds the Qt application and the window around an engine, runs Qt until it closes.

The composition root (desktop/cli/gui.py) parses the command line, picks the home and says how to build the
engine and, for `--demo`, how to start the demo market; this module only shows them.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.engine import OnStop
from desktop.resources import app_icon_file, resource_path
from desktop.ui.backtest_days import provide_sim_days
from desktop.ui.main_window import MainWindow
from desktop.ui.theme import apply_theme
from desktop.ui.warmup import import_after_first_paint

if TYPE_CHECKING:
    from desktop.engine import Engine, SimDay

DemoStarter = Callable[["Engine"], None]
"""Blocking: starts a demo market and attaches it to the engine (run on a worker thread)."""


def demo_workspace_path() -> Path:
    """The seed's three-session scenario, shipped as package data with the engine's demo."""
    return resource_path("demo_workspace.toml")


def start_demo(window: MainWindow, attach: DemoStarter, speed: float) -> None:
    """Starts the demo market and logs the demo accounts in on a worker (`attach`), then opens and starts the
    demo's sessions. `speed` is for the status line."""
    engine = window.engine
    window.statusBar().showMessage(f"Starting the simulator at {speed:g}× and logging in the demo accounts…")

    def run() -> None:
        attach(engine)

    def opened(_: object) -> None:
        window.statusBar().showMessage("Demo running", 5000)
        try:
            window.open_workspace(demo_workspace_path(), start=True)
        except Exception as e:
            QMessageBox.warning(window, "Demo", f"The demo sessions could not start: {e}")

    def failed(exc: BaseException) -> None:
        QMessageBox.warning(window, "Demo", f"The simulator could not start: {exc}")

    window.jobs.submit(run, opened, failed)


def run_gui(
    open_engine: Callable[[], Engine],
    *,
    theme: str | None = None,
    demo: DemoStarter | None = None,
    speed: float = 0.0,
    sim_days: Callable[[], SimDay] | None = None,
) -> int:
    """Runs the window on the engine `open_engine` builds until it is closed; returns the exit code. `demo`:
    starts the demo market (then the demo's sessions open), else the last tabs are restored. `sim_days`: returns
    the simulator's day maker, for Tools → Backtest…"""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("KiteDesk")
    app.setWindowIcon(QIcon(app_icon_file()))  # a null icon (no file found) leaves the platform's
    try:
        # Takes the home's lock: a second KiteDesk on this home (a window or `kitedesk run`) is refused
        # here, in one line naming it, before any window opens.
        engine = open_engine()
    except Exception as e:  # the store's and the lock's messages name the folder and what is wrong
        print(f"kitedesk: {e}", file=sys.stderr)
        if app.platformName() not in ("offscreen", "minimal"):  # started from a menu: no terminal to read
            QMessageBox.critical(None, "KiteDesk", str(e))
        return 1
    window = MainWindow(engine, demo=demo is not None)
    if sim_days is not None:
        provide_sim_days(window, sim_days)
    if theme:
        window.set_theme(theme)
    else:
        apply_theme(app, window.theme)
    window.show()
    # Once the window is up: charts, Kite client and feed imported, and the accounts enabled for sync started
    # (a thread each, never this one; the engine stops them when it closes).
    import_after_first_paint(window, then=engine.start_sync)
    # Ctrl-C in the terminal (or SIGTERM: a logout, `kill`) quits without a question, positions kept under
    # their stops (as on a crash, the next start adopts them). Deferred to the event loop: the handler may
    # run inside a paint.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: QTimer.singleShot(0, lambda: window.shutdown(OnStop.KEEP)))
    if demo is not None:
        start_demo(window, demo, speed)
    else:
        window.restore_tabs()
    code = app.exec()
    window.jobs.wait(10_000)
    return int(code)
