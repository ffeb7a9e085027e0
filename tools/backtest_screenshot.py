"""The picture of Tools → Backtest… for docs/: a real sweep over simulator days, the dialog grabbed with its results.

    python tools/backtest_screenshot.py [--out docs/backtest-dialog.png] [--size 1366x768]

Runs offscreen (no display needed): a window with one tab (NIFTY + BANKNIFTY, 1 lot, SL 5 %, offset 100; the
window's engine is the UI tests' stand-in, since the sweep itself needs no account), then sweeps stop loss 3, 5, 7
× ITM offset 50, 100, 150 over two simulator days to 11:30 in the engine's process pool, and saves the dialog.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from desktop.cli.sim_day import sim_day  # noqa: E402
from desktop.ui.backtest_days import provide_sim_days  # noqa: E402
from desktop.ui.backtest_dialog import show_backtest  # noqa: E402
from desktop.ui.main_window import MainWindow  # noqa: E402
from desktop.ui.theme import apply_theme  # noqa: E402
from tests.ui.fakes import FakeEngine, paper_params  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/backtest-dialog.png")
    ap.add_argument("--size", default="1366x768")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    app = QApplication([sys.argv[0]])
    window = MainWindow(FakeEngine(Path(tempfile.mkdtemp(prefix="kitedesk-shot-"))))
    apply_theme(app, window.theme)
    provide_sim_days(window, lambda: sim_day)
    window.open_session("UK9394", "Morning", paper_params())
    dialog = show_backtest(window)
    assert dialog is not None
    dialog.days_edit.setText("2026-01-05..2026-01-06")
    dialog.to_edit.setText("11:30")
    dialog.sweep_edits["stop_loss"].setText("3, 5, 7")
    dialog.sweep_edits["itm_offset"].setText("50, 100, 150")
    dialog.resize(width, height)
    if not dialog.start():
        print(dialog.problems.text(), file=sys.stderr)
        return 1
    while dialog.running():
        app.processEvents()
        time.sleep(0.02)
    dialog.table.sortItems(len(dialog.sweeps()) + 2, Qt.SortOrder.DescendingOrder)  # by net P&L, best first
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    dialog.grab().save(args.out)
    print(f"{args.out}: {dialog.table.rowCount()} combinations, {dialog.eta.text()}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
