"""One session's tab: header with the PAPER/LIVE badge, parameters, Start/Stop/Kill, segments, tables, log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from operator import attrgetter
from typing import Any, Protocol

from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode, Position, StrategyParams
from desktop.engine import OnStop
from desktop.engine.params import ParamsError, parse_params
from desktop.engine.snapshots import LogLine, SegmentSnapshot, SessionSnapshot, SessionState
from desktop.ui import shortcuts as keys
from desktop.ui.day_view import MARKET_CLOSED, day_positions, day_summary, display_state
from desktop.ui.fence import GeometryFence
from desktop.ui.layout import settle_hidden
from desktop.ui.log_panel import LogPanel
from desktop.ui.params_form import ParamsForm, in_form_words
from desktop.ui.segment_panel import SegmentPanel
from desktop.ui.steps import StepQueue
from desktop.ui.tables import (
    ORDER_COLUMNS,
    POSITION_COLUMNS,
    TRADE_COLUMNS,
    SpecTableModel,
    SpecTableView,
    fill_key,
    fmt_rupees,
    order_key,
    position_key,
)
from desktop.ui.theme import BADGE_STYLE, LOGIN_BANNER_STYLE, Theme, pnl_color
from desktop.ui.workers import JobRunner

# A segment panel is built in steps of 5-15 ms (its labels, the parts of its chart, its first drawing), one
# step per event-loop pass through the window's StepQueue: a whole panel in one pass froze the window as a
# session started.
ACTIVE_STATES = (SessionState.STARTING, SessionState.RUNNING, SessionState.HALTED, SessionState.LOGIN_NEEDED)
SQUARE_OFF, KEEP = OnStop.SQUARE_OFF, OnStop.KEEP  # what stopping does with an open position


def _set_text(label: QLabel, text: str) -> None:
    """Sets a label's text only when it changed (a new text costs a relayout of the label's row)."""
    if label.text() != text:
        label.setText(text)


class SessionLike(Protocol):
    """What a tab needs of a SessionEngine (desktop.engine's public API)."""

    key: Any
    label: str
    user_id: str
    params: StrategyParams | None  # what it was last started with
    sig_state_changed: Any
    sig_login_needed: Any
    sig_log_line: Any

    def start(self, params: StrategyParams) -> None: ...
    def stop(self, on_stop: OnStop = SQUARE_OFF) -> None: ...
    def kill(self, reason: str = "kill switch") -> None: ...
    def has_open_position(self) -> bool: ...
    def snapshot(self) -> SessionSnapshot: ...
    def resume_after_login(self) -> None: ...
    def rename(self, label: str) -> None: ...


def held_positions(snap: SessionSnapshot) -> tuple[Position, ...]:
    """The session's positions: the engine's list, or one row per segment holding an option."""
    if snap.positions:
        return snap.positions
    return tuple(
        Position(
            key=snap.key,
            mode=snap.mode or Mode.PAPER,
            exchange=seg.segment.spec.option_exchange,
            tradingsymbol=seg.option_symbol,
            quantity=seg.quantity,
            average_price=seg.entry_price or Decimal(0),
            last_price=seg.option_price or seg.entry_price or Decimal(0),
            realised_pnl=seg.realised_pnl,
        )
        for seg in snap.segments
        if seg.quantity and seg.option_symbol
    )


def live_confirmation_text(user_id: str, label: str, params: StrategyParams) -> str:
    """What the trader confirms before LIVE: the account, the tab and every segment, in words."""
    segments = ", ".join(s.value for s in params.segments)
    return (
        f"Start LIVE trading on account {user_id} ({label})?\n\n"
        f"Segments: {segments}\nLots: {params.lots} · stop loss {params.stop_loss}% · "
        f"ITM offset {params.itm_offset} points\n\nReal orders will be sent to the exchange."
    )


def open_position_lines(tabs: Sequence[SessionTab]) -> list[str]:
    """One line per position held: session, symbol, quantity, mode ("UK9394 · Computer 1: NIFTY…CE × 65, LIVE")."""
    lines = []
    for tab in tabs:
        if not tab.session.has_open_position():
            continue
        snap = tab.session.snapshot()
        held = [p for p in held_positions(snap) if p.quantity]
        who = f"{tab.session.user_id} · {tab.label}"
        if not held:  # still starting: it may take over what its last run kept
            lines.append(f"{who}: may take over a position its last run kept")
        lines += [f"{who}: {p.tradingsymbol} × {p.quantity}, {p.mode.value}" for p in held]
    return lines


def ask_open_position(
    parent: QWidget, what: str, starting: bool = False, positions: Sequence[str] = ()
) -> OnStop | None:
    """Asks what to do with an open position: SQUARE_OFF, KEEP (under its stop loss) or None (cancel).
    `starting`: the session is still starting and may be taking over a position its last run kept.
    `positions`: the positions in question, one line each, named in the question."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Open position")
    held = (
        "is still starting and may take over a position its last run kept"
        if starting
        else "has an open position"
    )
    listed = "".join(f"\n  • {line}" for line in positions)
    box.setText(f"{what} {held}.{listed}\n\nSquare it off now, or keep it under its stop loss?")
    square = box.addButton("Square off", QMessageBox.ButtonRole.AcceptRole)
    keep = box.addButton("Keep under stop loss", QMessageBox.ButtonRole.ActionRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    return SQUARE_OFF if clicked is square else KEEP if clicked is keep else None


class SessionTab(QWidget):
    """The view of one SessionEngine; it owns no trading state, it only shows snapshots and sends commands."""

    sig_login_requested = Signal(str)
    """The trader clicked "Log in again" for this account (user id)."""
    sig_label_changed = Signal(str)
    """The session's label changed (tab title)."""

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
        self._settings = settings
        self._steps = steps if steps is not None else StepQueue(parent=self)
        self.session = session
        self._theme = theme
        self._jobs = jobs
        self._version: int | None = None
        self._pending_logs: list[LogLine] = []
        self._snapshot: SessionSnapshot | None = None
        self._segment_panels: dict[str, SegmentPanel] = {}
        self._session_message = ""  # the session's own message shown in the header, if any
        self._build_scheduled = False  # a step of building the segment panels is due
        self._tables_due = False  # the tables' update is scheduled (passes of its own)
        self._tables_turn = 0  # the table that the scheduled update shows next
        self._state_refresh_due = False  # a refresh for a state change is queued
        self._body_turn = 0  # bumps on each refresh of the body: a chain of chart updates still running stops
        self._busy = False
        self._day_rows: tuple[tuple[Any, ...], tuple[Position, ...]] | None = (
            None  # the positions shown, and of what
        )
        self.last_error = ""
        self.drawing = True  # False while another tab is in front (the main window sets it)
        self.market_now: datetime | None = (
            None  # the market's clock, when the window knows it (its status bar)
        )

        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        # The header's texts change while trading: a fixed height keeps those changes from resizing the
        # charts below, and the fence keeps them from re-laying out (and repainting) the window (fence.py).
        header = QWidget()
        header_layout = self._build_header()
        header_layout.setContentsMargins(0, 0, 0, 0)
        header.setLayout(header_layout)
        height = max(self.account.sizeHint().height(), 2 * self.message.fontMetrics().height()) + 4
        root.addWidget(GeometryFence(header, height))
        self.login_banner = QWidget()
        banner = QHBoxLayout(self.login_banner)
        banner.setContentsMargins(0, 0, 0, 0)
        self.login_banner_text = QLabel(f"{session.user_id}: the login expired. Trading is paused.")
        self.login_banner_text.setStyleSheet(LOGIN_BANNER_STYLE)
        self.login_button = QPushButton("Log in again")
        self.login_button.clicked.connect(lambda: self.sig_login_requested.emit(self.session.user_id))
        banner.addWidget(self.login_banner_text, 1)
        banner.addWidget(self.login_button)
        self.login_banner.setVisible(False)
        root.addWidget(self.login_banner)

        body = QSplitter(Qt.Orientation.Horizontal)
        root.addWidget(body, 1)
        body.addWidget(self._build_controls(strategies))
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
        right.addWidget(self._build_tables())
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setSizes([640, 240])
        body.addWidget(right)
        body.setStretchFactor(1, 1)
        body.setSizes([300, 1200])

        session.sig_log_line.connect(self._on_log_line)
        session.sig_state_changed.connect(self._on_state_changed)
        session.sig_login_needed.connect(self._on_login_needed)
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _build_header(self) -> QHBoxLayout:
        head = QHBoxLayout()
        self.account = QLabel(f"<b>{self.session.user_id}</b> · {self.label}")
        # A bigger font, not a style sheet: a style sheet would freeze the label's colours at this theme.
        big = self.account.font()
        big.setPointSizeF(big.pointSizeF() * 1.25)
        self.account.setFont(big)
        self.badge = QLabel("")
        self.badge.setObjectName("mode_badge")
        self.state_label = QLabel("idle")
        # Loading instruments and warm-up history, or stopping: an indeterminate bar while it lasts.
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(110)
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.pnl_label = QLabel("")
        self.pnl_label.setFont(big)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        for w in (self.account, self.badge, self.state_label, self.progress):
            head.addWidget(w)
        head.addWidget(self.message, 1)
        head.addWidget(self.pnl_label)
        return head

    def _build_controls(self, strategies: list[str]) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 4, 0)
        self.form = ParamsForm(strategies)
        self.form.sig_validity_changed.connect(lambda _ok: self._update_buttons())
        self.form.mode_box.currentTextChanged.connect(lambda _t: self._show_badge())
        lay.addWidget(self.form)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip(f"Start trading with these parameters ({keys.START_SESSION})")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip(f"Stop this session ({keys.STOP_SESSION})")
        self.kill_button = QPushButton("KILL")
        self.kill_button.setToolTip(
            f"Kill this session: cancel its pending orders, square off, halt ({keys.KILL_SESSION}). "
            "Every session at once: Trading → Kill all sessions"
        )
        self.kill_button.setStyleSheet("QPushButton{background:#b71c1c;color:white;font-weight:bold;}")
        self.start_button.clicked.connect(self.request_start)
        self.stop_button.clicked.connect(self.request_stop)
        self.kill_button.clicked.connect(self.request_kill)
        for b in (self.start_button, self.stop_button, self.kill_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(box)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(270)  # 1024 px wide windows keep room for three segments
        return scroll

    def _build_tables(self) -> QTabWidget:
        self.positions_model = SpecTableModel(
            POSITION_COLUMNS, position_key, self._theme, muted_row=lambda p: p.quantity == 0
        )
        self.hide_closed = QCheckBox("Hide closed")
        self.hide_closed.setToolTip(
            "Hide the positions closed today (quantity 0); Kite keeps them for the day"
        )
        self.hide_closed.toggled.connect(lambda _on: self._show_table(0))
        self.orders_model = SpecTableModel(ORDER_COLUMNS, order_key, self._theme)
        self.trades_model = SpecTableModel(TRADE_COLUMNS, fill_key, self._theme)
        # Each table with the part of a snapshot it shows, in the order they update.
        self._tables: tuple[tuple[SpecTableModel, Callable[[SessionSnapshot], Sequence[Any]]], ...] = (
            (self.positions_model, self._day_positions),
            (self.orders_model, attrgetter("orders")),
            (self.trades_model, attrgetter("fills")),
        )
        tabs = QTabWidget()
        # Document mode draws no frame around the pages. Fusion draws that frame through a clip made of the
        # four border strips, 3-4 ms each time the tab widget repaints (several times after a tab switch,
        # and on each relayout: a new row, a scroll bar appearing), which made fencing the pages unneeded.
        tabs.setDocumentMode(True)
        self.log_panel = LogPanel()
        self.bottom_tabs = tabs
        # The pages come in a step of their own (a third of building a tab): a tab opened in one pass of
        # 50-60 ms, and three tabs of a workspace open one after another.
        self._steps.add(self, self._add_table_pages)
        return tabs

    def _add_table_pages(self) -> None:
        tabs = self.bottom_tabs
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(0, 2, 0, 0)
        page_layout.setSpacing(2)
        page_layout.addWidget(self.hide_closed)
        page_layout.addWidget(
            SpecTableView(self.positions_model, name="positions", settings=self._settings), 1
        )
        tabs.addTab(page, "Positions")
        tabs.addTab(SpecTableView(self.orders_model, name="orders", settings=self._settings), "Orders")
        tabs.addTab(SpecTableView(self.trades_model, name="trades", settings=self._settings), "Trades")
        tabs.addTab(self.log_panel, "Log")

    # ------------------------------------------------------------------ engine signals
    @Slot(object)
    def _on_log_line(self, line: object) -> None:
        # Batched: the refresh timer appends them, so a burst of lines costs one repaint.
        if isinstance(line, list | tuple):
            self._pending_logs.extend(line)
        else:
            self._pending_logs.append(line)  # type: ignore[arg-type]
        if len(self._pending_logs) > 5000:
            del self._pending_logs[:-5000]

    @Slot(str)
    def _on_state_changed(self, _state: str) -> None:
        # A step of the window's queue, not at once: the signal comes from an engine thread at any moment,
        # and its refresh (the first bars of a starting session: 10-15 ms) ran in the same sweep as a
        # session starting and a chart painting.
        if not self._state_refresh_due:
            self._state_refresh_due = True
            self._steps.add(self, self._state_refresh_step)

    def _state_refresh_step(self) -> None:
        self._state_refresh_due = False
        self.refresh(force=True)

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
        snap = self._snapshot
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
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Start LIVE trading?")
        box.setText(live_confirmation_text(self.session.user_id, self.label, params))
        start = box.addButton("Start LIVE", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is start

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
        self._update_buttons()

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

    def flush_logs(self) -> None:
        """Appends the log lines that arrived since the last refresh."""
        if self._pending_logs:
            lines, self._pending_logs = self._pending_logs, []
            self.log_panel.add_lines(lines)

    def snapshot(self) -> SessionSnapshot | None:
        """The last snapshot shown."""
        return self._snapshot

    def refresh(self, force: bool = False, force_all: bool = False) -> None:
        """Pulls the session's latest snapshot and shows it; a hidden tab updates only its header."""
        self.flush_logs()
        snap = self.session.snapshot()
        if not force and snap is self._snapshot:
            return
        self._version = snap.version
        self._snapshot = snap
        self._drop_old_panels(snap)
        self._show_header(snap)
        # Panels are built early (drawn only when in front), in small steps of their own (_build_next).
        self._schedule_build()
        for seg in snap.segments:
            panel = self._segment_panels.get(seg.segment.value)
            if panel is not None:
                panel.chart.record_premium(seg)
        if not self.drawing and not force_all:
            return  # a background tab catches up in small steps (catch_up), called at a low rate
        self._show_body(snap, force_all)

    def start_drawing(self) -> None:
        """This tab is in front again: its refreshes draw charts and tables (the main window calls it)."""
        self.drawing = True

    def catch_up_now(self) -> None:
        """Pulls the latest snapshot (header, premium samples) and catches the body up: a background tab's turn."""
        self.refresh()
        self.catch_up()

    def catch_up(self) -> None:
        """Background work at a low rate: charts (one bar-close redraw per call, one chart per event-loop
        pass) and tables (a pass of their own) follow the session.

        Nothing is painted while the tab is hidden, so bringing it forward only paints, with no backlog of
        curves, axes and table rows to rebuild in that one frame.
        """
        snap = self._snapshot
        if snap is not None:
            self._show_body(snap, False)
        # Axes made stale meanwhile are regenerated here, one per call, not in the frame that shows the tab.
        for panel in self._segment_panels.values():
            if panel.chart.prerender_axes(budget=1):
                break

    def _show_body(self, snap: SessionSnapshot, force_all: bool) -> None:
        self._body_turn += 1
        # In front, each chart that changed is shown in its own event-loop pass (one after the other, a
        # millisecond apart): Qt paints a chart while processing its scene's changes, and two charts that
        # changed in one pass painted back to back (a bar close and a trade: 40-60 ms in one go).
        # Hidden, the same: a background tab catching up is not painted, but its charts' updates (a bar
        # close, a trade's marks and premium strip) and its tables cost as much and ran in one pass.
        self._show_segments(list(snap.segments), force_all, not force_all, self._body_turn)
        if force_all:
            for table in range(len(self._tables)):
                self._show_table(table)
        elif not self._tables_due:
            # The tables in passes of their own, one table each, after the charts': a first trade gave the
            # three tables their first rows (columns measured and widened) in the pass that also drew it on
            # the chart, and the three together took 10-12 ms of one pass.
            self._tables_due = True
            self._steps.add(self, self._tables_step)
        if not self.is_active() and not self._busy:
            self.form.set_editable(True)
        self._update_buttons()

    def _show_table(self, table: int) -> None:
        """Positions (0), orders (1) or trades (2) of the latest snapshot."""
        snap = self._snapshot
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

    def _tables_step(self) -> bool:
        """One table per step (True while more remain), each from the snapshot of its own pass."""
        self._show_table(self._tables_turn)
        self._tables_turn += 1
        if self._tables_turn < len(self._tables):
            return True
        self._tables_turn = 0
        self._tables_due = False
        return False

    def _show_segments(
        self,
        segments: list[SegmentSnapshot],
        force_all: bool,
        one_per_pass: bool,
        turn: int,
        full_done: bool = False,
    ) -> None:
        while segments:
            seg = segments.pop(0)
            panel = self._segment_panels.get(seg.segment.value)
            if panel is None:
                continue  # built by a later refresh (one per refresh)
            if panel.needs_full_update(seg):
                # Segments close their bars in the same minute: one chart's full redraw per refresh
                # spreads that work over consecutive frames instead of one long stall.
                if full_done and not force_all:
                    continue
                full_done = True
            changed = panel.show_snapshot(seg)
            if changed and one_per_pass and segments:
                # The rest in later passes, through the window's StepQueue: the timers of a chart chain, the
                # tables and a background tab, when due together, ran in one sweep (a first trade: 60 ms).
                self._steps.add(self, partial(self._next_segments, segments, turn, full_done))
                return

    def _next_segments(self, segments: list[SegmentSnapshot], turn: int, full_done: bool) -> None:
        # What is left after this chart, if anything, is queued again as a step of its own.
        if turn == self._body_turn:  # else a newer refresh shows newer snapshots
            self._show_segments(segments, False, True, turn, full_done)

    def _show_header(self, snap: SessionSnapshot) -> None:
        # Texts are compared before they are set: a label given a new text re-lays out its row.
        self._show_badge()
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
        self._update_buttons()

    def _drop_old_panels(self, snap: SessionSnapshot) -> None:
        """Restarted with fewer segments: the panels of those it no longer trades go (a frozen one could still show
        a position and its P&L)."""
        current = {s.segment.value for s in snap.segments}
        for name in [n for n in self._segment_panels if current and n not in current]:
            panel = self._segment_panels.pop(name)
            panel.hide()
            panel.setParent(None)
            panel.deleteLater()

    def _panels_to_build(self) -> bool:
        snap = self._snapshot
        missing = snap is not None and any(s.segment.value not in self._segment_panels for s in snap.segments)
        return missing or any(not p.ready for p in self._segment_panels.values())

    def _schedule_build(self) -> None:
        if not self._build_scheduled and self._panels_to_build():
            self._build_scheduled = True
            self._steps.add(self, self._build_next)

    def _build_next(self) -> bool:
        """One step of building the segment panels (the panel under way first, then the next one missing);
        True while more remain."""
        snap = self._snapshot
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
        self._build_scheduled = self._panels_to_build()
        if not self._build_scheduled and not self.isVisible():
            # Built behind another tab: laid out in a step of its own, not in the click that shows it.
            self._steps.add(self, self.settle_layout)
        return self._build_scheduled

    def settle_layout(self) -> None:
        """Lays out this tab while it is hidden (desktop.ui.layout.settle_hidden): its charts get their size
        now, not in the frame that brings the tab forward."""
        if self.isVisible():
            return
        stack = self.parentWidget()  # the tab widget's page stack, which sizes only the page in front
        if stack is not None:
            self.setGeometry(stack.contentsRect())
        settle_hidden(self)

    def _show_badge(self) -> None:
        snap = self._snapshot
        mode = (
            snap.mode
            if snap is not None and snap.mode is not None
            else Mode(self.form.mode_box.currentText())
        )
        if self.badge.text() != mode.value:
            # A style sheet re-polishes the widget and its layout: set only when the mode changes.
            self.badge.setText(mode.value)
            self.badge.setStyleSheet(BADGE_STYLE[mode.value])

    def _update_buttons(self) -> None:
        active = self.is_active()
        self.start_button.setEnabled(not active and not self._busy and self.form.params() is not None)
        self.stop_button.setEnabled(active and not self._busy)
        self.kill_button.setEnabled(active)

    def stagger_chart_paints(self, first_ms: int = 20) -> None:
        """Coming forward: the charts paint one per event-loop pass, after the rest of the tab.

        The first chart is released `first_ms` after the tab's first frame was asked for; each next one
        once the one before it has painted (IndexChart.defer_paint).
        """
        charts = [panel.chart for panel in self._segment_panels.values()]
        for i, chart in enumerate(charts):
            following = charts[i + 1] if i + 1 < len(charts) else None
            chart.defer_paint(then=following.release_paint if following is not None else None)
        if charts:
            QTimer.singleShot(first_ms, charts[0], charts[0].release_paint)

    def segment_panel(self, name: str) -> SegmentPanel | None:
        """The panel of one segment (once the session has shown it)."""
        return self._segment_panels.get(name)
