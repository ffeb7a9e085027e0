"""Tools → Backtest…: the current tab's parameters swept over days of the simulator, as `kitedesk backtest` does.

Each parameter of the tab's form is a field of comma-separated values, prefilled with the tab's value; every
combination of them is replayed over every day, in the engine's process pool (desktop/ui/backtest_run.py: never
on the GUI thread). The table and the equity curves fill in as combinations finish; "Use these parameters"
writes the chosen row into the tab's form and starts nothing.

The days are the simulator's: the composition root hands the window its day maker (desktop/ui/backtest_days.py),
since the UI never imports the simulator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import MARKET_CLOSE, MARKET_OPEN, StrategyParams
from desktop.engine import (
    FIELDS,
    ComboResult,
    DaySource,
    Kind,
    OnStop,
    ParamsError,
    Section,
    SessionEntry,
    SimDay,
    Workspace,
    combinations,
    params_with,
    parse_days,
    sweep_problems,
    to_text,
)
from desktop.ui.backtest_days import sim_days_of
from desktop.ui.backtest_results import ResultsTable, draw_curves, equity_plot
from desktop.ui.backtest_run import SweepRun
from desktop.ui.params_form import ERROR_COLOUR

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.session_tab import SessionTab

# The form's settings a sweep can vary: its numbers and times (not the segments, the mode or the strategy).
SWEPT = tuple(
    f
    for f in FIELDS
    if f.section is not Section.KEPT and f.kind in (Kind.WHOLE, Kind.PERCENT, Kind.AMOUNT, Kind.CLOCK)
)
MAX_REPLAYS = 2000  # combinations × days: a slip ("1,2,…,100" in four fields) is refused, not run for a day


def show_backtest(window: MainWindow) -> BacktestDialog | None:
    """Tools → Backtest… on the current tab's parameters; a message instead when there is nothing to sweep."""
    tab = window.current_tab()
    params = tab.form.params() if tab is not None else None
    days = sim_days_of(window)
    if tab is None or params is None or days is None:
        QMessageBox.information(
            window,
            "Backtest",
            "Open a session tab first: a backtest sweeps the parameters of the tab in front."
            if tab is None
            else "The tab's parameters are not valid yet:\n" + "\n".join(tab.form.problems())
            if params is None
            else "This window has no simulator to replay days of: start KiteDesk with `kitedesk`.",
        )
        return None
    dialog = BacktestDialog(tab, params, days, window)
    dialog.show()
    return dialog


def _values(text: str) -> list[str]:
    """ "3, 5,,7,5" -> ["3", "5", "7"]: the values in the order typed, once each."""
    return list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def _clock(text: str, name: str) -> str | None:
    """A time of the market day "HH:MM", or None when empty; ValueError naming the field."""
    if not text.strip():
        return None
    try:
        if not re.fullmatch(r"\d{1,2}:\d{2}", text.strip()):
            raise ValueError
        t = datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise ValueError(f"{name} must be a time like 10:30, not {text.strip()!r}") from None
    if not MARKET_OPEN <= t <= MARKET_CLOSE:
        raise ValueError(f"{name} must be within market hours, 09:15 to 15:30")
    return t.strftime("%H:%M")


def last_weekday(today: date) -> date:
    """The weekday before `today`: a whole market day of the simulator."""
    day = today - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


class BacktestDialog(QDialog):
    """Sweep inputs, Run / Cancel with a progress bar and ETA, the results table and the equity curves."""

    def __init__(
        self, tab: SessionTab, params: StrategyParams, sim_day: Callable[[], SimDay], parent: MainWindow
    ) -> None:
        """Sweeps around `params` (the tab's, when opened) for `tab`, on the days `sim_day()` makes."""
        super().__init__(parent)
        self.setObjectName("backtest_dialog")
        self.setWindowTitle(f"Backtest — {tab.label}")
        self.tab = tab
        self.window_ = parent
        self._sim_day = sim_day
        self._base = params
        self.sweep_run: SweepRun | None = None
        self._close_when_stopped = False
        self._running = False
        app = QCoreApplication.instance()
        if app is not None:  # quitting KiteDesk stops a sweep first (its thread would keep the process alive)
            app.aboutToQuit.connect(self._stop_for_quit)
        self._plot: Any = None
        lay = QVBoxLayout(self)
        lay.addWidget(self._inputs())
        controls = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("backtest_run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m replays")
        self.eta = QLabel("")
        for w in (self.run_button, self.cancel_button, self.progress):
            controls.addWidget(w)
        controls.addWidget(self.eta, 1)
        lay.addLayout(controls)
        self.problems = QLabel()
        self.problems.setObjectName("backtest_problems")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet(f"color: {ERROR_COLOUR}")
        lay.addWidget(self.problems)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.table = ResultsTable()
        self.table.itemSelectionChanged.connect(self._redraw)
        split.addWidget(self.table)
        self._plot_holder = QWidget()
        QVBoxLayout(self._plot_holder).setContentsMargins(0, 0, 0, 0)
        split.addWidget(self._plot_holder)
        split.setSizes([11_000, 9_000])  # the table's seven or so columns first, the curves beside them
        lay.addWidget(split, 1)
        bottom = QHBoxLayout()
        self.use_button = QPushButton("Use these parameters")
        self.use_button.setToolTip(
            "Writes the selected row's parameters into the tab's form (nothing starts)"
        )
        self.use_button.setEnabled(False)
        self.result_note = QLabel("")
        close = QPushButton("Close")
        bottom.addWidget(self.use_button)
        bottom.addWidget(self.result_note, 1)
        bottom.addWidget(close)
        lay.addLayout(bottom)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self.use_selected)
        close.clicked.connect(self.close)
        self.resize(1200, 720)
        self._check()

    # ------------------------------------------------------------------ inputs
    def _inputs(self) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        left = QFormLayout()
        self.days_edit = QLineEdit(last_weekday(date.today()).isoformat())
        self.days_edit.setObjectName("backtest_days")
        self.days_edit.setToolTip(
            "2026-01-05..2026-01-09 (the weekdays in between) or 2026-01-05, 2026-01-07"
        )
        self.from_edit = QLineEdit()
        self.from_edit.setPlaceholderText("09:15")
        self.to_edit = QLineEdit()
        self.to_edit.setPlaceholderText("15:30")
        self.seed_box = QSpinBox()
        self.seed_box.setRange(1, 1_000_000)
        self.seed_box.setToolTip(
            "The simulator's seed: the same seed, the same prices (as `kitedesk --demo --seed`)"
        )
        self.workers_box = QSpinBox()
        self.workers_box.setRange(1, max(1, os.cpu_count() or 1))
        self.workers_box.setValue(self.workers_box.maximum())
        self.workers_box.setToolTip(
            "Replays run at once, each in a process of its own, below the window's priority"
        )
        for label, w in (
            ("Days", self.days_edit),
            ("From", self.from_edit),
            ("To", self.to_edit),
            ("Simulator seed", self.seed_box),
            ("Processes", self.workers_box),
        ):
            left.addRow(label, w)
        self.count_label = QLabel("")
        left.addRow("", self.count_label)
        grid.addLayout(left, 0, 0)
        self.sweep_edits: dict[str, QLineEdit] = {}
        columns = [QFormLayout(), QFormLayout()]
        half = (len(SWEPT) + 1) // 2
        for i, spec in enumerate(SWEPT):
            value = getattr(self._base, spec.name)
            edit = QLineEdit("" if value is None else to_text(spec, value))
            edit.setObjectName(f"sweep_{spec.name}")
            edit.setPlaceholderText("as the tab: none" if value is None else "")
            edit.setToolTip(f"{spec.help}. Several values, comma-separated: each one is tried.")
            self.sweep_edits[spec.name] = edit
            columns[i // half].addRow(spec.form_label, edit)
        for col, form in enumerate(columns, 1):
            grid.addLayout(form, 0, col)
        hint = QLabel(
            f"Prefilled from {self.tab.label}. A parameter with several values, comma-separated (3, 5, 7), is "
            "swept: every combination is replayed over every day."
        )
        hint.setWordWrap(True)
        grid.addWidget(hint, 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        for edit in [self.days_edit, self.from_edit, self.to_edit, *self.sweep_edits.values()]:
            edit.textChanged.connect(self._check)
        return box

    def sweeps(self) -> list[tuple[str, list[str]]]:
        """The fields whose values differ from the tab's: (name, values)."""
        out = []
        for spec in SWEPT:
            values = _values(self.sweep_edits[spec.name].text())
            value = getattr(self._base, spec.name)
            if values and values != ["" if value is None else to_text(spec, value)]:
                out.append((spec.name, values))
        return out

    def _check(self) -> tuple[list[dict[str, str]], list[date]] | None:
        """Validates the inputs: the problems in the form's words under them (Run disabled), else the
        combinations and the days."""
        problems: list[str] = []
        days: list[date] = []
        try:
            days = parse_days(self.days_edit.text())
            if not days:
                problems.append("Days: no weekday in the range")
        except ValueError as exc:
            problems.append(f"Days: {exc}")
        try:
            start = _clock(self.from_edit.text(), "From")
            end = _clock(self.to_edit.text(), "To")
            if start and end and end <= start:
                problems.append("To must be later than From")
        except ValueError as exc:
            problems.append(str(exc))
        combos = combinations(self.sweeps())
        replays = len(combos) * max(1, len(days))
        if replays > MAX_REPLAYS:
            problems.append(f"{replays:,} replays is more than {MAX_REPLAYS:,}: sweep fewer values or days")
        else:
            problems += [p.in_form for p in sweep_problems(self._base, combos)]
        self.problems.setText("\n".join(problems))
        self.count_label.setText(
            f"{len(combos)} combination(s) × {len(days)} day(s) = {len(combos) * len(days)} replays"
        )
        self.run_button.setEnabled(not problems and not self.running())
        return None if problems else (combos, days)

    # ------------------------------------------------------------------ running
    def running(self) -> bool:
        """A sweep is in progress (from Run until its end has been shown)."""
        return self._running

    def start(self) -> bool:
        """Runs the sweep (True when started); the inputs' problems are shown instead when there are any."""
        checked = self._check()
        if checked is None or self.running():
            return False
        combos, days = checked
        names = [n for n, _ in self.sweeps()]
        self.table.begin(names, [s.form_label for s in SWEPT if s.name in names])
        self._draw()
        entry = SessionEntry(self.tab.session.user_id, self.tab.label, self._base, OnStop.SQUARE_OFF)
        seed, start, end = (
            self.seed_box.value(),
            _clock(self.from_edit.text(), "From"),
            _clock(self.to_edit.text(), "To"),
        )
        make_day = self._sim_day

        def source() -> DaySource:  # on the sweep's thread: the first call imports the simulator
            return DaySource(None, seed, start, end, make_day())

        # Not a Qt child of the dialog: its thread may still emit while the dialog goes.
        self.sweep_run = SweepRun(Workspace((entry,)), combos, days, source, self.workers_box.value())
        self.sweep_run.sig_progress.connect(self._progress)
        self.sweep_run.sig_row.connect(self._row)
        self.sweep_run.sig_finished.connect(self._finished)
        self.sweep_run.sig_failed.connect(self._failed)
        self.progress.setRange(0, len(combos) * len(days))
        self.progress.setValue(0)
        self.eta.setText("Starting the replays' processes…")
        self.result_note.setText("")
        self.sweep_run.start()
        self._set_running(True)
        return True

    def cancel(self) -> None:
        """Stops the sweep: the replays in progress end, the rows already finished stay."""
        if self.sweep_run is not None and self.running():
            self.sweep_run.cancel()
            self.cancel_button.setEnabled(False)
            self.eta.setText("Stopping…")

    def _stop_for_quit(self) -> None:
        if self.sweep_run is not None:
            self.sweep_run.cancel()
            self.sweep_run.wait(30.0)

    def _set_running(self, on: bool) -> None:
        self._running = on
        self.cancel_button.setEnabled(on)
        for edit in [self.days_edit, self.from_edit, self.to_edit, *self.sweep_edits.values()]:
            edit.setReadOnly(on)
        self.run_button.setEnabled(not on and self._check() is not None)

    def _progress(self, done: int, total: int, seconds: float) -> None:
        self.progress.setValue(done)
        left = seconds / done * (total - done) if done else 0.0
        self.eta.setText(
            f"{timedelta(seconds=int(seconds))} elapsed, about {timedelta(seconds=round(left))} left"
            if done < total
            else f"done in {timedelta(seconds=int(seconds))}"
        )

    def _row(self, index: int, result: ComboResult) -> None:
        self.table.add(index, result)
        if self.table.selected() is None:
            self._draw()

    def _finished(self, complete: bool) -> None:
        shown = self.table.rowCount()
        if not complete:
            self.eta.setText(f"Stopped: {shown} combination(s) finished, shown below")
        self._ended()

    def _failed(self, message: str) -> None:
        self.eta.setText("Stopped on an error")
        self._ended()
        self.problems.setText(message)  # after _ended: its check of the inputs would clear it

    def _ended(self) -> None:
        if self.sweep_run is not None:
            self.sweep_run.wait(5.0)  # its thread emitted its end as its last act: it is ending now
        self._set_running(False)
        self.use_button.setEnabled(self.table.rowCount() > 0)
        if self.table.rowCount() and self.table.selected() is None:
            nets = [
                (r.net if (r := self.table.result_of(row)) else None, row)
                for row in range(self.table.rowCount())
            ]
            self.table.selectRow(max((n, row) for n, row in nets if n is not None)[1])  # the best net P&L
        if self._close_when_stopped:
            self.close()

    # ------------------------------------------------------------------ results
    def _redraw(self) -> None:
        self.use_button.setEnabled(self.table.selected() is not None and not self.running())
        self._draw()

    def _draw(self) -> None:
        if self._plot is None:
            self._plot = equity_plot(self._plot_holder, self.window_.theme)
            holder = self._plot_holder.layout()
            assert holder is not None
            holder.addWidget(self._plot)
        chosen = self.table.selected()
        draw_curves(self._plot, self.table.results(), chosen)
        if chosen is not None:
            self._plot.setTitle(f"Equity: {_label(chosen)} in orange", color=self.window_.theme.chart_fg)

    def use_selected(self) -> bool:
        """Writes the selected row's parameters into the tab's form (the tab starts nothing); True when done."""
        chosen = self.table.selected()
        if chosen is None:
            return False
        if self.tab not in self.window_.session_tabs():
            QMessageBox.information(self, "Backtest", f"The tab {self.tab.label} has been closed.")
            return False
        if self.tab.is_active():
            QMessageBox.information(
                self,
                "Backtest",
                "The session is running: stop it first (its parameters change with a stop and a new start).",
            )
            return False
        try:  # on the form as it is now (the trader may have changed it since the run)
            params = params_with(self.tab.form.params() or self._base, chosen.settings)
        except ParamsError as e:
            QMessageBox.information(self, "Backtest", "\n".join(p.in_form for p in e.problems))
            return False
        self.tab.form.set_params(params)
        self.result_note.setText(f"Written into {self.tab.label}'s form: {_label(chosen)}")
        return True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        """Closing during a sweep cancels it; the dialog closes once its processes have stopped."""
        if self.running():
            self._close_when_stopped = True
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)


def _label(result: ComboResult) -> str:
    labels = {s.name: s.form_label for s in SWEPT}
    return ", ".join(f"{labels.get(k, k)} {v}" for k, v in result.settings.items()) or "the tab's parameters"
