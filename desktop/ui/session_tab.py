"""One session's tab: header with the PAPER/LIVE badge, parameters, Start/Stop/Kill, segments, tables, log.

A view: its `show_*` methods show a snapshot; when they run is its TabPacer's choice (desktop.ui.pacing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode, Position, StrategyParams
from desktop.engine import LogLine, ParamsError, SessionSnapshot, SessionState, parse_params
from desktop.ui.day_view import MARKET_CLOSED, day_positions, day_summary, display_state
from desktop.ui.fence import GeometryFence
from desktop.ui.funds_view import FundsLabel
from desktop.ui.layout import settle_hidden
from desktop.ui.log_panel import LogPanel
from desktop.ui.pacing import SessionLike, TabPacer
from desktop.ui.params_form import ParamsForm, in_form_words
from desktop.ui.segment_panel import SegmentPanel
from desktop.ui.session_parts import build_controls, build_header, build_login_banner, build_tables
from desktop.ui.session_prompts import SQUARE_OFF, ask_open_position, confirm_live, held_positions
from desktop.ui.steps import StepQueue
from desktop.ui.tables import SpecTableModel, fmt_rupees
from desktop.ui.theme import BADGE_STYLE, Theme, pnl_color
from desktop.ui.workers import JobRunner

ACTIVE_STATES = (SessionState.STARTING, SessionState.RUNNING, SessionState.HALTED, SessionState.LOGIN_NEEDED)


def _set_text(label: QLabel, text: str) -> None:
    """Sets a label's text only when it changed (a new text costs a relayout of the label's row)."""
    if label.text() != text:
        label.setText(text)


class SessionTab(QWidget):
    """The view of one SessionEngine; it owns no trading state, it only shows snapshots and sends commands."""

    sig_login_requested = Signal(str)
    """The trader clicked "Log in again" for this account (user id)."""
    sig_label_changed = Signal(str)
    """The session's label changed (tab title)."""

    # Built by desktop.ui.session_parts: the header, the login banner, the controls and the tables.
    account: QLabel
    badge: QLabel
    state_label: QLabel
    progress: QProgressBar
    pnl_label: QLabel
    funds_label: FundsLabel
    message: QLabel
    login_banner: QWidget
    login_banner_text: QLabel
    login_button: QPushButton
    form: ParamsForm
    start_button: QPushButton
    stop_button: QPushButton
    kill_button: QPushButton
    positions_model: SpecTableModel
    orders_model: SpecTableModel
    trades_model: SpecTableModel
    hide_closed: QCheckBox
    log_panel: LogPanel
    bottom_tabs: QTabWidget

    def __init__(
        self,
        session: SessionLike,
        theme: Theme,
        jobs: JobRunner,
        strategies: list[str],
        parent: QWidget | None = None,
        steps: StepQueue | None = None,
        settings: QSettings | None = None,
    ) -> None:
        """`steps`: the window's queue of construction steps (one per event-loop pass); a tab alone has its own.
        `settings`: where the tables' column widths are remembered (the window's settings file)."""
        super().__init__(parent)
        self.session = session
        self._theme = theme
        self._jobs = jobs
        self._segment_panels: dict[str, SegmentPanel] = {}
        self._session_message = ""  # the session's own message shown in the header, if any
        self._busy = False
        self._day_rows: tuple[tuple[Any, ...], tuple[Position, ...]] | None = (
            None  # the positions shown, and of what
        )
        self.last_error = ""
        # When this tab pulls and shows what: a tab alone (tests) has a queue of its own.
        self.pacer = TabPacer(self, session, steps if steps is not None else StepQueue(parent=self))
        self.market_now: datetime | None = (
            None  # the market's clock, when the window knows it (its status bar)
        )

        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        # The header's texts change while trading: a fixed height keeps those changes from resizing the
        # charts below, and the fence keeps them from re-laying out (and repainting) the window (fence.py).
        header = QWidget()
        header_layout = build_header(self)
        header_layout.setContentsMargins(0, 0, 0, 0)
        header.setLayout(header_layout)
        height = max(self.account.sizeHint().height(), 2 * self.message.fontMetrics().height()) + 4
        root.addWidget(GeometryFence(header, height))
        root.addWidget(build_login_banner(self))

        body = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(body, 1)
        body.addWidget(build_controls(self, strategies))
        right = QSplitter(Qt.Orientation.Vertical)
        self.segments_area = QSplitter(Qt.Orientation.Horizontal)
        # Not a splitter's direct child: an empty splitter nested in another is given a maximum size of 0
        # when shown (Qt's QSplitter), and one whose panels were then added behind another tab stayed
        # squeezed until the click that showed it, which laid every chart out three times over.
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        holder_layout.addWidget(self.segments_area)
        right.addWidget(holder)
        right.addWidget(build_tables(self, theme, settings))
        # Each table with the part of a snapshot it shows, in the order they update.
        self._tables: tuple[tuple[SpecTableModel, Callable[[SessionSnapshot], Sequence[Any]]], ...] = (
            (self.positions_model, self._day_positions),
            (self.orders_model, attrgetter("orders")),
            (self.trades_model, attrgetter("fills")),
        )
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setSizes([640, 240])
        body.addWidget(right)
        body.setStretchFactor(1, 1)
        body.setSizes([300, 1200])

        session.sig_login_needed.connect(self._on_login_needed)
        self.refresh()

    # ------------------------------------------------------------------ engine signals
    @Slot()
    def _on_login_needed(self) -> None:
        self.login_banner.setVisible(True)

    def login_completed(self) -> None:
        """The account logged in again: hide the banner and let the session resume where it was."""
        self.login_banner.setVisible(False)
        try:
            self.session.resume_after_login()
        except Exception as e:  # a trader-readable reason, never a traceback
            self._show_error(f"could not resume: {e}")

    # ------------------------------------------------------------------ commands
    def is_active(self) -> bool:
        """The session is trading (or starting, halted, waiting for a login)."""
        snap = self.pacer.snapshot
        return snap is not None and snap.state in ACTIVE_STATES

    def request_start(self) -> bool:
        """Start with the form's parameters; LIVE asks for confirmation first. True when started.

        Nothing while the session runs or a stop is on its way (the shortcut works whatever the buttons show).
        """
        if self._busy or self.is_active():
            return False
        raw = self.form.raw()
        live = str(raw.get("mode", "")).upper() == Mode.LIVE.value
        try:
            params = parse_params(raw, confirm_live=False) if not live else self.form.params()
        except ParamsError as e:
            self.form.reveal_problems()
            self._show_error("; ".join(in_form_words(p) for p in e.problems))
            return False
        if params is None:
            self.form.reveal_problems()
            self._show_error("; ".join(self.form.problems()) or "the parameters are not valid")
            return False
        if live:
            if not self.confirm_live(params):
                self._show_error("LIVE start cancelled")
                return False
            params = parse_params(raw, confirm_live=True)
        try:
            self.session.start(params)
        except Exception as e:
            self._show_error(f"could not start: {e}")
            return False
        self.message.setText("")
        self.form.set_editable(False)
        self.refresh(force=True)
        return True

    def start_with(self, params: StrategyParams) -> None:
        """Starts with parameters confirmed elsewhere (a workspace file with confirm_live, the demo)."""
        self.form.set_params(params)
        self.session.start(params)
        self.form.set_editable(False)
        self.refresh(force=True)

    def confirm_live(self, params: StrategyParams) -> bool:
        """The LIVE confirmation dialog, naming the account and the segments; default is Cancel."""
        return confirm_live(self, self.session.user_id, self.label, params)

    def request_stop(self) -> None:
        """Stop; with an open position the trader chooses square off or keep. Nothing while a stop is on its way."""
        if self._busy:
            return
        positions = SQUARE_OFF
        if self.session.has_open_position():
            starting = self.session.snapshot().state is SessionState.STARTING
            choice = ask_open_position(self, f"{self.session.user_id} · {self.label}", starting)
            if choice is None:
                return
            positions = choice
        self._run(lambda: self.session.stop(positions), "stopping…")

    def request_kill(self) -> None:
        """Kill switch: immediate, no question (it exists for emergencies)."""
        self._run(lambda: self.session.kill("kill switch (button)"), "kill switch…", now=True)

    def _run(self, fn: Any, busy_text: str, now: bool = False) -> None:
        """`fn` on a worker; `now`: on a thread of its own at once (a kill), which leaves Start/Stop as they are."""
        if not now:
            self._busy = True
        self.message.setText(busy_text)
        self.show_buttons()

        def done(_: object) -> None:
            if not now:
                self._busy = False
            if not self._busy:  # a kill done while a stop is still on its way leaves its "stopping…"
                self.message.setText("")
            self.refresh(force=True)

        def failed(exc: BaseException) -> None:
            if not now:
                self._busy = False
            self._show_error(str(exc) or type(exc).__name__)
            self.refresh(force=True)

        (self._jobs.submit_now if now else self._jobs.submit)(fn, done, failed)

    def _show_error(self, text: str) -> None:
        self.last_error = text
        self.message.setText(f"<span style='color:{self._theme.loss}'>{text}</span>")

    # ------------------------------------------------------------------ drawing
    def set_theme(self, theme: Theme) -> None:
        """Recolours the tab."""
        self._theme = theme
        for model in (self.positions_model, self.orders_model, self.trades_model):
            model.theme = theme
        for panel in self._segment_panels.values():
            panel.set_theme(theme)
        self.refresh(force=True)

    @property
    def label(self) -> str:
        """The session's label (shown in the header, saved with the workspace and the session's record)."""
        return self.session.label

    def set_label(self, label: str) -> None:
        """Renames the tab's session: its label here, in the workspace and in its record (so that a kept position
        is taken over by the renamed tab next time)."""
        self.session.rename(label)
        self.account.setText(f"<b>{self.session.user_id}</b> · {label}")
        self.sig_label_changed.emit(label)

    # ------------------------------------------------------------------ paced by self.pacer
    @property
    def drawing(self) -> bool:
        """False while another tab is in front: only its header follows the session (the window's pacer sets it)."""
        return self.pacer.drawing

    @drawing.setter
    def drawing(self, on: bool) -> None:
        self.pacer.drawing = on

    def refresh(self, force: bool = False, force_all: bool = False) -> None:
        """Pulls the session's latest snapshot and shows it; a hidden tab updates only its header (TabPacer)."""
        self.pacer.refresh(force, force_all)

    def catch_up_now(self) -> None:
        """A background tab's turn: the latest snapshot, and its charts and tables caught up (TabPacer)."""
        self.pacer.catch_up_now()

    def catch_up(self) -> None:
        """Charts and tables of a hidden tab follow the last snapshot, a step at a time (TabPacer)."""
        self.pacer.catch_up()

    def flush_logs(self) -> None:
        """Shows the log lines that arrived since the last refresh."""
        self.pacer.flush_logs()

    def snapshot(self) -> SessionSnapshot | None:
        """The last snapshot shown."""
        return self.pacer.snapshot

    # ------------------------------------------------------------------ show_*: what the pacer hands over
    def show_log_lines(self, lines: list[LogLine]) -> None:
        """Appends log lines, a batch at a time."""
        self.log_panel.add_lines(lines)

    def show_premium(self, snap: SessionSnapshot) -> None:
        """Records each segment's option premium (drawn when its chart next draws)."""
        for seg in snap.segments:
            panel = self._segment_panels.get(seg.segment.value)
            if panel is not None:
                panel.chart.record_premium(seg)

    def show_controls(self) -> None:
        """The form editable again once the session is stopped, and the buttons as the state allows."""
        if not self.is_active() and not self._busy:
            self.form.set_editable(True)
        self.show_buttons()

    @property
    def table_count(self) -> int:
        """Positions, orders and trades: the tables `show_table` shows."""
        return len(self._tables)

    def show_table(self, table: int) -> None:
        """Positions (0), orders (1) or trades (2) of the latest snapshot."""
        snap = self.pacer.snapshot
        if snap is not None:
            model, rows = self._tables[table]
            model.set_rows(rows(snap))

    def _day_positions(self, snap: SessionSnapshot) -> tuple[Position, ...]:
        """Open positions, then today's closed ones unless "Hide closed" is ticked."""
        hide = self.hide_closed.isChecked()
        # The same rows object while nothing changed: the model then skips the update (SpecTableModel.set_rows).
        made = (snap.positions, snap.fills, snap.segments, hide)
        if self._day_rows is not None and all(a is b for a, b in zip(made, self._day_rows[0], strict=True)):
            return self._day_rows[1]
        held = held_positions(snap)
        rows = held if hide else day_positions(held, snap)
        self._day_rows = (made, rows)
        return rows

    def show_header(self, snap: SessionSnapshot) -> None:
        """The header: badge, state word, progress, day P&L, the session's message, the login banner."""
        # Texts are compared before they are set: a label given a new text re-lays out its row.
        self.show_badge()
        word = display_state(snap, self.market_now)
        _set_text(self.state_label, f"state: <b>{word}</b>")
        for panel in self._segment_panels.values():
            panel.set_session_state(word)
        self.progress.setVisible(self._busy or snap.state in (SessionState.STARTING, SessionState.STOPPING))
        day = snap.day_pnl
        _set_text(
            self.pnl_label,
            f"Day P&amp;L <b><span style='color:{pnl_color(self._theme, day)}'>{fmt_rupees(day)}</span></b>",
        )
        if snap.message and not self._busy and snap.state not in (SessionState.RUNNING, SessionState.IDLE):
            _set_text(self.message, snap.message)
            self._session_message = snap.message
        elif word == MARKET_CLOSED and not self._busy and not self.last_error:
            summary = day_summary(snap)
            _set_text(self.message, f"{MARKET_CLOSED} · {summary}")
            self._session_message = self.message.text()
        elif self._session_message and snap.message != self._session_message:
            # The session got over it (logged in again, restarted): its old word goes, the tab's own errors stay.
            if self.message.text() == self._session_message and word != MARKET_CLOSED:
                _set_text(self.message, "")
            self._session_message = ""
        self.login_banner.setVisible(snap.state is SessionState.LOGIN_NEEDED)
        self.show_buttons()

    def drop_old_panels(self, snap: SessionSnapshot) -> None:
        """Restarted with fewer segments: the panels of those it no longer trades go (a frozen one could still show
        a position and its P&L)."""
        current = {s.segment.value for s in snap.segments}
        for name in [n for n in self._segment_panels if current and n not in current]:
            panel = self._segment_panels.pop(name)
            panel.hide()
            panel.setParent(None)
            panel.deleteLater()

    def segment_panels(self) -> list[SegmentPanel]:
        """The segment panels built so far, left to right."""
        return list(self._segment_panels.values())

    def panels_to_build(self) -> bool:
        """A segment of the last snapshot has no panel yet, or one is still being built."""
        snap = self.pacer.snapshot
        missing = snap is not None and any(s.segment.value not in self._segment_panels for s in snap.segments)
        return missing or any(not p.ready for p in self._segment_panels.values())

    def _build_next(self) -> None:
        """One step of building the segment panels: the panel under way first, then the next one missing."""
        snap = self.pacer.snapshot
        under_way = next((p for p in self._segment_panels.values() if not p.ready), None)
        if under_way is not None:
            under_way.build_step()
        elif snap is not None:
            seg = next((s for s in snap.segments if s.segment.value not in self._segment_panels), None)
            if seg is not None:
                panel = SegmentPanel(seg.segment, self._theme, staged=True)
                if snap is not None:
                    panel.set_session_state(display_state(snap, self.market_now))
                self._segment_panels[seg.segment.value] = panel
                self.segments_area.addWidget(panel)
                self.log_panel.set_segments([seg.segment.value])
                panel.show_snapshot(seg)  # its labels now; the chart draws it when built

    def settle_layout(self) -> None:
        """Lays out this tab while it is hidden (desktop.ui.layout.settle_hidden): its charts get their size
        now, not in the frame that brings the tab forward."""
        if self.isVisible():
            return
        stack = self.parentWidget()  # the tab widget's page stack, which sizes only the page in front
        if stack is not None:
            self.setGeometry(stack.contentsRect())
        settle_hidden(self)

    def show_badge(self) -> None:
        """PAPER or LIVE: what the session runs in, or what the form would start it in."""
        snap = self.pacer.snapshot
        mode = (
            snap.mode
            if snap is not None and snap.mode is not None
            else Mode(self.form.mode_box.currentText())
        )
        if self.badge.text() != mode.value:
            # A style sheet re-polishes the widget and its layout: set only when the mode changes.
            self.badge.setText(mode.value)
            self.badge.setStyleSheet(BADGE_STYLE[mode.value])

    def show_buttons(self) -> None:
        """Start, Stop and KILL enabled as the session's state and the form allow."""
        active = self.is_active()
        self.start_button.setEnabled(not active and not self._busy and self.form.params() is not None)
        self.stop_button.setEnabled(active and not self._busy)
        self.kill_button.setEnabled(active)

    def segment_panel(self, name: str) -> SegmentPanel | None:
        """The panel of one segment (once the session has shown it)."""
        return self._segment_panels.get(name)
