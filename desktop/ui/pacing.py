"""Pacing: when the window pulls snapshots and which event-loop pass shows what. The views only show.

`WindowPacer` runs the 15 Hz refresh with its frame budget (the tab in front every tick, one background tab
caught up on a tick the front left mostly free, the status bar a few times a second). `TabPacer` paces one
session tab: it pulls the session's snapshot, hands it to the tab's `show_*` methods, and spreads the costly
parts (charts that changed, tables, panels under construction, a state change) over passes of the window's
`StepQueue`. Each split is there because doing the parts in one pass was measured as a visible stall.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QTimer, Slot

from desktop.domain import Mode, StrategyParams
from desktop.engine import LogLine, OnStop, SegmentSnapshot, SessionSnapshot
from desktop.ui.day_view import display_state
from desktop.ui.notify import session_name
from desktop.ui.session_prompts import SQUARE_OFF
from desktop.ui.steps import StepQueue
from desktop.ui.sync_status import show_sync
from desktop.ui.window_chrome import show_totals

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.session_tab import SessionTab

REFRESH_HZ = 15
STATUS_EVERY = 4  # status-bar totals at REFRESH_HZ / 4
BACKGROUND_EVERY = 3  # one background tab catches up its charts and tables every 3rd tick (5 Hz in all)
FRAME_BUDGET_MS = 6.0  # a tick whose front-tab refresh took longer leaves the background for the next one
MAX_PENDING_LOG_LINES = 5000


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
    def exit_position(self, tradingsymbol: str) -> Any: ...  # a Future of a ManualOutcome
    def cancel_order(self, tradingsymbol: str, order_id: str) -> Any: ...
    def move_stop(self, tradingsymbol: str, level: Decimal) -> Any: ...


class WindowPacer(QObject):
    """The window's 15 Hz pull: the visible tab shows its session's latest snapshot; totals a few times a second.

    Background tabs keep their charts and tables current in small steps (one tab per few ticks, on a tick the
    front tab left mostly free), so bringing one forward is a paint, not a catch-up.
    """

    def __init__(self, window: MainWindow, steps: StepQueue) -> None:
        super().__init__(window)
        self._window = window
        self._steps = steps
        self._tick = 0
        self._background_turn = 0
        self._background_owed = False
        self.timer = QTimer(self)
        self.timer.setInterval(1000 // REFRESH_HZ)
        self.timer.timeout.connect(window.refresh)  # through the window: a bench may time or replace it
        self.timer.start()

    def refresh(self) -> None:
        """One tick: the front tab, perhaps one background tab, and every STATUS_EVERY ticks the status bar."""
        window = self._window
        if window.closing:
            return
        tab = window.current_tab()
        t0 = time.perf_counter()
        if tab is not None:
            tab.refresh()
        spent_ms = (time.perf_counter() - t0) * 1000
        self._tick += 1
        if self._tick % BACKGROUND_EVERY == 0:
            self._background_owed = True
        if self._background_owed and spent_ms < FRAME_BUDGET_MS:
            self._background_owed = False
            self._catch_up_one_background_tab(tab)
        if self._tick % STATUS_EVERY == 0 or tab is None:
            for other in window.session_tabs():
                if other is not tab:
                    other.flush_logs()  # hidden tabs: their log lines in fewer, larger batches
            self.refresh_status()

    def _catch_up_one_background_tab(self, front: SessionTab | None) -> None:
        others = [t for t in self._window.session_tabs() if t is not front]
        if not others:
            return
        self._background_turn = (self._background_turn + 1) % len(others)
        other = others[self._background_turn]
        # A step of its own: the front tab's refresh may have been cheap while the charts' updates it
        # queued (one per pass) were not, and a background tab's catch-up ran in the same pass as them.
        self._steps.add(other, other.catch_up_now)

    def refresh_status(self) -> None:
        """Pulls every session's latest snapshot for the status bar's totals and the notifications."""
        window = self._window
        words: list[str] = []  # each session's state word, as its header and segments show it
        pnl: dict[Mode, Decimal] = {}  # real money and paper are never added up
        try:
            now: datetime | None = window.engine.market_time()
        except Exception:
            now = None
        for tab in window.session_tabs():
            snap = tab.session.snapshot()
            tab.market_now = now  # the tab's header and segments say "market closed" by the same clock
            words.append(display_state(snap, now))
            window.notifier.observe(tab.session.key, snap, session_name(tab.session.user_id, tab.label))
            if snap.mode is not None:  # None: never started, nothing traded
                pnl[snap.mode] = pnl.get(snap.mode, Decimal(0)) + snap.day_pnl
        show_totals(window, now, words, pnl, window.engine.kill_reason())
        show_sync(window.sync_label, window.engine.sync_statuses(), window.theme)

    def front_tab_changed(self) -> None:
        """Only the tab in front draws charts and tables; the others keep their headers current."""
        front = self._window.current_tab()
        for tab in self._window.session_tabs():
            if tab is not front:
                tab.drawing = False
        if front is not None and not front.drawing:
            front.pacer.stagger_chart_paints()
            # It starts drawing in a step of the window's queue, not in the sweep that lays out and paints
            # the page it comes forward with (a refresh due in that sweep added its charts and tables).
            self._steps.add(front, front.pacer.start_drawing)
        # No refresh here: the tab kept up in the background, so this frame only paints it; the next
        # tick (within 1/15 s) brings it fully current.

    def stop(self) -> None:
        """No more ticks (the window is closing)."""
        self.timer.stop()


class TabPacer(QObject):
    """Paces one session tab: pulls its session's snapshots and calls the tab's `show_*` methods, one costly
    part per event-loop pass of the window's StepQueue. It holds no trading state, only what is due."""

    def __init__(self, view: SessionTab, session: SessionLike, steps: StepQueue) -> None:
        super().__init__(view)
        self._view = view
        self._session = session
        self.steps = steps
        self.snapshot: SessionSnapshot | None = None  # the last snapshot shown
        self.version: int | None = None
        self.drawing = True  # False while another tab is in front (the window's pacer sets it)
        self.build_scheduled = False  # a step of building the segment panels is due
        self.tables_due = False  # the tables' update is scheduled (passes of its own)
        self._tables_turn = 0  # the table that the scheduled update shows next
        self._state_refresh_due = False  # a refresh for a state change is queued
        self._body_turn = 0  # bumps on each refresh of the body: a chain of chart updates still running stops
        self._pending_logs: list[LogLine] = []
        session.sig_log_line.connect(self._on_log_line)
        session.sig_state_changed.connect(self._on_state_changed)

    def later(self, step: Any) -> None:
        """Runs `step` in a pass of the window's queue of its own (dropped if the tab goes first)."""
        self.steps.add(self._view, step)

    # ------------------------------------------------------------------ engine signals
    @Slot(object)
    def _on_log_line(self, line: object) -> None:
        # Batched: the refresh timer appends them, so a burst of lines costs one repaint.
        if isinstance(line, list | tuple):
            self._pending_logs.extend(line)
        else:
            self._pending_logs.append(line)  # type: ignore[arg-type]
        if len(self._pending_logs) > MAX_PENDING_LOG_LINES:
            del self._pending_logs[:-MAX_PENDING_LOG_LINES]

    @Slot(str)
    def _on_state_changed(self, _state: str) -> None:
        # A step of the window's queue, not at once: the signal comes from an engine thread at any moment,
        # and its refresh (the first bars of a starting session: 10-15 ms) ran in the same sweep as a
        # session starting and a chart painting.
        if not self._state_refresh_due:
            self._state_refresh_due = True
            self.later(self._state_refresh_step)

    def _state_refresh_step(self) -> None:
        self._state_refresh_due = False
        self.refresh(force=True)

    def flush_logs(self) -> None:
        """Shows the log lines that arrived since the last refresh."""
        if self._pending_logs:
            lines, self._pending_logs = self._pending_logs, []
            self._view.show_log_lines(lines)

    # ------------------------------------------------------------------ refresh
    def refresh(self, force: bool = False, force_all: bool = False) -> None:
        """Pulls the session's latest snapshot and shows it; a hidden tab updates only its header."""
        self.flush_logs()
        snap = self._session.snapshot()
        if not force and snap is self.snapshot:
            return
        self.version = snap.version
        self.snapshot = snap
        view = self._view
        view.drop_old_panels(snap)
        view.show_header(snap)
        view.funds_label.show_funds(snap.funds)
        # Panels are built early (drawn only when in front), in small steps of their own (build_step).
        self.schedule_build()
        view.show_premium(snap)
        if not self.drawing and not force_all:
            return  # a background tab catches up in small steps (catch_up), called at a low rate
        self._show_body(snap, force_all)

    def start_drawing(self) -> None:
        """The tab is in front again: its refreshes draw charts and tables."""
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
        snap = self.snapshot
        if snap is not None:
            self._show_body(snap, False)
        # Axes made stale meanwhile are regenerated here, one per call, not in the frame that shows the tab.
        for panel in self._view.segment_panels():
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
            for table in range(self._view.table_count):
                self._view.show_table(table)
        elif not self.tables_due:
            # The tables in passes of their own, one table each, after the charts': a first trade gave the
            # three tables their first rows (columns measured and widened) in the pass that also drew it on
            # the chart, and the three together took 10-12 ms of one pass.
            self.tables_due = True
            self.later(self._tables_step)
        self._view.show_controls()

    def _tables_step(self) -> bool:
        """One table per step (True while more remain), each from the snapshot of its own pass."""
        self._view.show_table(self._tables_turn)
        self._tables_turn += 1
        if self._tables_turn < self._view.table_count:
            return True
        self._tables_turn = 0
        self.tables_due = False
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
            panel = self._view.segment_panel(seg.segment.value)
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
                self.later(partial(self._next_segments, segments, turn, full_done))
                return

    def _next_segments(self, segments: list[SegmentSnapshot], turn: int, full_done: bool) -> None:
        # What is left after this chart, if anything, is queued again as a step of its own.
        if turn == self._body_turn:  # else a newer refresh shows newer snapshots
            self._show_segments(segments, False, True, turn, full_done)

    # ------------------------------------------------------------------ building the panels
    def schedule_build(self) -> None:
        """Queues the building of the segment panels still missing or under way, one step per pass.

        A segment panel is built in steps of 5-15 ms (its labels, the parts of its chart, its first drawing):
        a whole panel in one pass froze the window as a session started.
        """
        if not self.build_scheduled and self._view.panels_to_build():
            self.build_scheduled = True
            self.later(self._build_step)

    def _build_step(self) -> bool:
        view = self._view
        view._build_next()  # looked up at each step: a test may count them
        self.build_scheduled = view.panels_to_build()
        if not self.build_scheduled and not view.isVisible():
            # Built behind another tab: laid out in a step of its own, not in the click that shows it.
            self.later(view.settle_layout)
        return self.build_scheduled

    def stagger_chart_paints(self, first_ms: int = 20) -> None:
        """Coming forward: the charts paint one per event-loop pass, after the rest of the tab.

        The first chart is released `first_ms` after the tab's first frame was asked for; each next one
        once the one before it has painted (IndexChartView.defer_paint).
        """
        charts = [panel.chart for panel in self._view.segment_panels()]
        for i, chart in enumerate(charts):
            following = charts[i + 1] if i + 1 < len(charts) else None
            chart.defer_paint(then=following.release_paint if following is not None else None)
        if charts:
            QTimer.singleShot(first_ms, charts[0], charts[0].release_paint)
