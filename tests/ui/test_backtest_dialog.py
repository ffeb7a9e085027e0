"""Tools → Backtest…: the current tab's parameters swept over simulator days in the engine's process pool, off the
GUI thread; the table sorts, the curves draw, a row's parameters go into the tab's form, Cancel keeps what finished.

The sweeps are real (the simulator's days replayed in spawned processes); each is kept short (one day to 10:15).
"""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

from desktop.cli.sim_day import sim_day
from desktop.engine.replay import ReplayError
from desktop.ui.backtest_days import BacktestDays, provide_sim_days
from desktop.ui.backtest_dialog import BacktestDialog
from desktop.ui.main_window import MainWindow
from tests.ui.fakes import FakeEngine, paper_params
from tests.ui.qtkit import answer_next_message_box

DAY = "2026-01-05"
SWEEP_S = 180_000  # ms: two short replays in spawned processes, with room for a loaded CI machine


@pytest.fixture
def window(qtbot, tmp_path: Path):
    window = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(window)
    provide_sim_days(window, lambda: sim_day)
    window.open_session("UK9394", "Morning", paper_params())
    yield window
    for dialog in window.findChildren(BacktestDialog):  # a failed test's sweep is stopped all the same
        if dialog.running():
            dialog.cancel()
            qtbot.waitUntil(lambda d=dialog: not d.running(), timeout=SWEEP_S)


def _shutdown(qtbot, window: MainWindow) -> None:
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)


def _open_from_menu(window: MainWindow) -> BacktestDialog:
    tools = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "Tools")
    assert isinstance(tools, QMenu)
    [backtest] = [a for a in tools.actions() if a.text().replace("&", "") == "Backtest…"]
    backtest.trigger()
    [dialog] = window.findChildren(BacktestDialog)
    return dialog


def _sweep(dialog: BacktestDialog, stop_loss: str, to: str = "10:15", processes: int = 2) -> None:
    dialog.days_edit.setText(DAY)
    dialog.to_edit.setText(to)
    dialog.sweep_edits["stop_loss"].setText(stop_loss)
    dialog.workers_box.setValue(min(processes, dialog.workers_box.maximum()))


def test_a_sweep_from_the_tools_menu_fills_a_sortable_table_and_the_tab_takes_a_rows_parameters(
    qtbot, window
):
    tab = window.current_tab()
    dialog = _open_from_menu(window)
    assert dialog.sweep_edits["stop_loss"].text() == "5"  # prefilled from the tab's form
    assert dialog.sweep_edits["itm_offset"].text() == "100"
    _sweep(dialog, "3, 7")
    assert dialog.count_label.text() == "2 combination(s) × 1 day(s) = 2 replays"
    gui = threading.current_thread()
    assert dialog.start()
    assert dialog.running() and dialog.sweep_run is not None
    assert dialog.sweep_run._thread is not gui  # the sweep waits on its own thread, never the GUI's
    qtbot.waitUntil(lambda: not dialog.running(), timeout=SWEEP_S)

    assert dialog.progress.value() == dialog.progress.maximum() == 2
    assert dialog.eta.text().startswith("done in")
    table = dialog.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Stop loss %", "Trades", "Win rate %", "Net P&L", "Max drawdown", "Sharpe"]
    assert sorted(table.column_texts(0)) == ["3", "7"]
    nets = {r.settings["stop_loss"]: r.net for r in table.results()}
    assert all(r.round_trips > 0 for r in table.results())
    # the best net P&L is selected and its curve is drawn on top of the other
    assert table.selected() is not None and table.selected().net == max(nets.values())
    assert len(dialog._plot.listDataItems()) == 2

    table.sortItems(3, Qt.SortOrder.AscendingOrder)  # Net P&L, lowest first
    assert [table.result_of(r).net for r in range(2)] == sorted(nets.values())
    table.sortItems(3, Qt.SortOrder.DescendingOrder)
    assert [table.result_of(r).net for r in range(2)] == sorted(nets.values(), reverse=True)

    row = table.column_texts(0).index("7")
    table.selectRow(row)
    assert dialog.use_selected()
    assert tab.form.params().stop_loss == Decimal(7)
    assert tab.form.params().itm_offset == 100 and tab.form.params().lots == 1  # the rest as the tab had it
    assert tab.session.calls == []  # nothing started

    # a running session's parameters change only with a stop and a new start: the dialog says so, changes nothing
    assert tab.request_start() and tab.is_active()
    table.selectRow(table.column_texts(0).index("3"))
    seen: list[str] = []
    answer_next_message_box("OK", seen)
    assert not dialog.use_selected()
    assert "stop it first" in seen[0] and tab.form.params().stop_loss == Decimal(7)
    _shutdown(qtbot, window)


def test_sweep_inputs_are_checked_in_the_forms_words_before_anything_runs(qtbot, window):
    dialog = _open_from_menu(window)
    dialog.sweep_edits["stop_loss"].setText("3, abc")
    assert "Stop loss % must be a percent" in dialog.problems.text() and "'abc'" in dialog.problems.text()
    assert not dialog.run_button.isEnabled()
    dialog.sweep_edits["stop_loss"].setText("3")
    dialog.sweep_edits["itm_offset"].setText("100, 75")
    assert "ITM offset 75 is not a multiple of NIFTY's strike step 50" in dialog.problems.text()
    dialog.sweep_edits["itm_offset"].setText("100")
    dialog.sweep_edits["fast_ema"].setText("9, 30")
    assert "Fast EMA (30) must be shorter than Slow EMA (21)" in dialog.problems.text()
    dialog.sweep_edits["fast_ema"].setText("9")
    dialog.days_edit.setText("monday..friday")
    assert dialog.problems.text().startswith("Days: days are YYYY-MM-DD")
    dialog.days_edit.setText("2026-01-10..2026-01-11")
    assert dialog.problems.text() == "Days: no weekday in the range"
    dialog.days_edit.setText(DAY)
    dialog.to_edit.setText("9:3")
    assert dialog.problems.text() == "To must be a time like 10:30, not '9:3'"
    dialog.from_edit.setText("11:00")
    dialog.to_edit.setText("10:00")
    assert dialog.problems.text() == "To must be later than From"
    assert not dialog.start() and not dialog.running()
    dialog.from_edit.setText("")
    assert dialog.problems.text() == "" and dialog.run_button.isEnabled()
    _shutdown(qtbot, window)


def test_cancel_mid_run_keeps_the_finished_rows_and_leaves_no_process_or_thread(qtbot, window):
    dialog = _open_from_menu(window)
    _sweep(dialog, "3, 5, 7", to="11:30", processes=1)  # one process: the combinations one after another
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.table.rowCount() >= 1, timeout=SWEEP_S)
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=30_000)

    # the second combination was in progress: it stopped at once (had it run on, its row would be here)
    assert dialog.table.rowCount() == 1
    assert dialog.eta.text() == f"Stopped: {dialog.table.rowCount()} combination(s) finished, shown below"
    assert dialog.progress.value() < dialog.progress.maximum()
    assert all(r.days == 1 for r in dialog.table.results())  # only whole rows
    assert multiprocessing.active_children() == []
    assert not [t for t in threading.enumerate() if t.name == "kitedesk-backtest"]
    assert dialog.use_button.isEnabled()  # the rows kept can be used
    _shutdown(qtbot, window)


def test_closing_the_dialog_during_a_sweep_stops_it_first(qtbot, window):
    dialog = _open_from_menu(window)
    _sweep(dialog, "3, 7", to="11:30", processes=1)
    assert dialog.start()
    dialog.close()  # asks the sweep to stop; the dialog closes once it has
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=60_000)
    assert not dialog.running() and multiprocessing.active_children() == []
    _shutdown(qtbot, window)


def _a_day_without_data(day, workspace, seed):
    """A day maker that fails as a missing day does (module level: it crosses into the sweep's processes)."""
    raise ReplayError(f"no market data for {day}")


def test_a_failed_replay_is_told_in_words_and_leaves_nothing_running(qtbot, window):
    window.findChild(BacktestDays).sim_day = lambda: _a_day_without_data
    dialog = _open_from_menu(window)
    _sweep(dialog, "3, 7", processes=1)
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=SWEEP_S)
    assert dialog.eta.text() == "Stopped on an error"
    assert dialog.problems.text() == "stop_loss=3 on 2026-01-05: no market data for 2026-01-05"
    assert dialog.table.rowCount() == 0 and multiprocessing.active_children() == []
    assert dialog.run_button.isEnabled()  # the trader may change the days and run again
    _shutdown(qtbot, window)


def test_backtest_without_a_tab_says_what_it_needs(qtbot, tmp_path: Path):
    window = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(window)
    provide_sim_days(window, lambda: sim_day)
    seen: list[str] = []
    answer_next_message_box("OK", seen)
    with pytest.raises(ValueError, match="not enough values"):  # no dialog opened
        _open_from_menu(window)
    assert window.findChildren(BacktestDialog) == []
    assert seen == ["Open a session tab first: a backtest sweeps the parameters of the tab in front."]
    _shutdown(qtbot, window)
