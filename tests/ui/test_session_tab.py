"""A session tab: start/stop/kill, the LIVE confirmation, the badge, the open-position question, re-login."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace
from datetime import datetime

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QTabWidget

from desktop.domain import Mode, Segment
from desktop.engine.snapshots import LogLine, SessionState
from desktop.ui.session_prompts import live_confirmation_text
from desktop.ui.session_tab import SessionTab
from desktop.ui.steps import STEP_GAP_MS
from desktop.ui.theme import DARK
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeSession, paper_params
from tests.ui.qtkit import answer_next_message_box


class _ResizeSpy(QObject):
    """Records the resize events of the widgets it watches."""

    def __init__(self) -> None:
        super().__init__()
        self.resized: list[QObject] = []

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Resize:
            self.resized.append(obj)
        return False


def _tab(qtbot, session: FakeSession | None = None) -> tuple[SessionTab, FakeSession, JobRunner]:
    session = session or FakeSession("UK9394", "Computer 3")
    jobs = JobRunner()
    tab = SessionTab(session, DARK, jobs, ["itm_momentum"])
    qtbot.addWidget(tab)
    tab.form.set_params(paper_params())
    return tab, session, jobs


def test_paper_start_sends_the_forms_parameters(qtbot):
    tab, session, _ = _tab(qtbot)
    assert tab.request_start()
    assert session.calls == [("start", paper_params())]
    assert tab.badge.text() == "PAPER"
    assert not tab.start_button.isEnabled() and tab.stop_button.isEnabled()
    assert not tab.form.edit("lots").isEnabled()  # locked while running


def test_live_start_asks_naming_account_and_segments_and_cancel_starts_nothing(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.form.mode_box.setCurrentText("LIVE")
    assert tab.badge.text() == "LIVE"
    seen: list[str] = []
    answer_next_message_box("Cancel", seen)
    assert not tab.request_start()
    assert session.calls == []
    assert "UK9394" in seen[0] and "Computer 3" in seen[0] and "NIFTY, BANKNIFTY" in seen[0]
    assert tab.last_error == "LIVE start cancelled"


def test_live_start_confirmed_starts_in_live_mode(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.form.mode_box.setCurrentText("LIVE")
    seen: list[str] = []
    answer_next_message_box("Start LIVE", seen)
    assert tab.request_start()
    ((name, params),) = session.calls
    assert name == "start" and params.mode is Mode.LIVE
    assert "LIVE" in tab.badge.styleSheet() or tab.badge.text() == "LIVE"
    assert "#d50000" in tab.badge.styleSheet()  # solid red: cannot be mistaken for PAPER


def test_confirmation_text_names_every_segment():
    text = live_confirmation_text("UK1234", "Computer 2", paper_params())
    assert "UK1234 (Computer 2)" in text and "NIFTY, BANKNIFTY" in text and "Real orders" in text


def test_invalid_form_cannot_start(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.form.edit("lots").setText("0")
    assert not tab.start_button.isEnabled()
    assert not tab.request_start()
    assert "Lots must be a whole number ≥ 1" in tab.last_error
    assert session.calls == []


def test_stop_runs_on_a_worker_thread_and_unlocks_the_form(qtbot):
    tab, session, jobs = _tab(qtbot)
    tab.request_start()
    assert not tab.progress.isVisibleTo(tab)
    tab.request_stop()
    qtbot.waitUntil(lambda: session.state is SessionState.STOPPED and jobs.busy == 0, timeout=3000)
    assert session.calls[-1] == ("stop", "square_off")
    assert session.call_threads[-1] != threading.current_thread().name
    tab.refresh()
    assert tab.form.edit("lots").isEnabled() and tab.start_button.isEnabled()
    assert not tab.progress.isVisibleTo(tab)
    jobs.wait()


def test_the_start_shortcut_does_nothing_while_the_session_runs_or_stops(qtbot):
    # Ctrl+Return calls request_start whatever the buttons show: during a Stop it waited on the session's lock on
    # the window's thread, then started trading again.
    tab, session, jobs = _tab(qtbot)
    release = threading.Event()
    original_stop = session.stop
    session.stop = lambda positions="square_off": (release.wait(5), original_stop(positions))  # type: ignore[method-assign]
    assert tab.request_start()
    assert not tab.request_start(), "already running"
    tab.request_stop()  # on a worker, held back
    assert not tab.request_start(), "stopping"
    assert [c[0] for c in session.calls] == ["start"]
    assert "stopping" in tab.message.text()
    release.set()
    qtbot.waitUntil(lambda: session.state is SessionState.STOPPED and jobs.busy == 0, timeout=3000)
    tab.refresh(force=True)
    assert tab.request_start(), "stopped: it may start again"
    jobs.wait()


def test_stop_with_open_position_asks_and_can_keep_it(qtbot):
    tab, session, jobs = _tab(qtbot)
    tab.request_start()
    session.hold()
    seen: list[str] = []
    answer_next_message_box("Keep under stop loss", seen)
    tab.request_stop()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert "open position" in seen[0]
    assert session.calls[-1] == ("stop", "keep")
    jobs.wait()


def test_stop_while_a_resumed_session_is_starting_says_it_may_take_over_a_position(qtbot):
    tab, session, jobs = _tab(qtbot)
    tab.request_start()
    session._set(SessionState.STARTING)  # loading, its last run's kept position not taken over yet
    session.holding = True  # as SessionEngine.has_open_position says while a resumed session starts
    tab.refresh(force=True)
    seen: list[str] = []
    answer_next_message_box("Cancel", seen)
    tab.request_stop()
    assert "is still starting and may take over a position its last run kept" in seen[0]
    assert [c[0] for c in session.calls] == ["start"]
    jobs.wait()


def test_stop_with_open_position_cancelled_keeps_running(qtbot):
    tab, session, jobs = _tab(qtbot)
    tab.request_start()
    session.hold()
    answer_next_message_box("Cancel", [])
    tab.request_stop()
    assert [c[0] for c in session.calls] == ["start"]
    assert jobs.busy == 0


def test_kill_switch_halts_without_asking(qtbot):
    tab, session, jobs = _tab(qtbot)
    tab.request_start()
    tab.request_kill()
    qtbot.waitUntil(lambda: session.state is SessionState.HALTED and jobs.busy == 0, timeout=3000)
    assert session.calls[-1][0] == "kill"
    jobs.wait()


def test_expired_login_shows_banner_and_resumes_after_login(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.show()
    tab.request_start()
    session.sig_login_needed.emit()
    assert tab.login_banner.isVisible()
    requested: list[str] = []
    tab.sig_login_requested.connect(requested.append)
    tab.login_button.click()
    assert requested == ["UK9394"]
    tab.login_completed()
    assert not tab.login_banner.isVisible()
    assert session.calls[-1][0] == "resume_after_login"
    assert session.calls[0][0] == "start" and len(session.calls) == 2  # state kept: no restart


def test_the_sessions_message_goes_once_it_is_over_but_the_tabs_own_errors_stay(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.message = "Kite login expired: log in again"
    session._set(SessionState.LOGIN_NEEDED)
    tab.refresh(force=True)
    assert tab.message.text() == "Kite login expired: log in again"
    session.message = ""
    session._set(SessionState.RUNNING)  # logged in again
    tab.refresh(force=True)
    assert tab.message.text() == ""
    tab._show_error("could not resume: the feed refused")
    tab.refresh(force=True)
    assert "could not resume: the feed refused" in tab.message.text()


def test_segments_show_held_position_and_positions_table(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.hold()
    tab.refresh()
    qtbot.waitUntil(lambda: tab.segment_panel("NIFTY") is not None, timeout=2000)
    panel = tab.segment_panel("NIFTY")
    assert (
        panel is not None
        and "NIFTY2611325900CE" in panel.position.text()
        and "SL 173.25" in panel.position.text()
    )
    qtbot.waitUntil(lambda: tab.positions_model.rowCount() == 1, timeout=2000)
    assert tab.positions_model.row(0).tradingsymbol == "NIFTY2611325900CE"
    assert "+₹125.50" in tab.pnl_label.text()


def test_a_restart_with_fewer_segments_drops_the_panels_of_the_others(qtbot):
    tab, session, jobs = _tab(qtbot)  # NIFTY and BANKNIFTY
    tab.request_start()
    qtbot.waitUntil(lambda: tab.segment_panel("BANKNIFTY") is not None, timeout=2000)
    tab.request_stop()
    qtbot.waitUntil(lambda: session.state is SessionState.STOPPED and jobs.busy == 0, timeout=3000)
    tab.refresh(force=True)
    tab.form.segment_boxes[Segment.BANKNIFTY].setChecked(False)
    assert tab.request_start()
    assert tab.segment_panel("BANKNIFTY") is None and tab.segment_panel("NIFTY") is not None
    jobs.wait()


def test_log_lines_are_batched_and_filtered_by_segment_and_level(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.sig_log_line.emit(LogLine("NIFTY", "INFO", "nifty entry"))
    session.sig_log_line.emit(LogLine("BANKNIFTY", "WARNING", "banknifty slow feed"))
    session.sig_log_line.emit(LogLine("NIFTY", "DEBUG", "nifty detail"))
    assert tab.log_panel.visible_text() == ""  # nothing drawn until the refresh
    tab.refresh()
    assert tab.log_panel.visible_text().splitlines() == ["nifty entry", "banknifty slow feed"]
    tab.log_panel.segment_box.setCurrentText("BANKNIFTY")
    assert tab.log_panel.visible_text() == "banknifty slow feed"
    tab.log_panel.segment_box.setCurrentText("all")
    tab.log_panel.level_box.setCurrentText("WARNING")
    assert tab.log_panel.visible_text() == "banknifty slow feed"
    tab.log_panel.level_box.setCurrentText("DEBUG")
    assert "nifty detail" in tab.log_panel.visible_text()


def test_loading_shows_progress_until_running(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.state = SessionState.STARTING  # instruments and warm-up history loading in the agents
    tab.refresh()
    assert tab.progress.isVisibleTo(tab) and "starting" in tab.state_label.text()
    session.state = SessionState.RUNNING
    tab.refresh()
    assert not tab.progress.isVisibleTo(tab)


def test_charts_that_changed_are_shown_one_per_event_loop_pass(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()  # NIFTY and BANKNIFTY, both shown

    def both_drawn() -> bool:
        tab.refresh()  # the window's 15 Hz timer does this
        return len(tab._segment_panels) == 2 and all(
            p.ready and p.chart.candles.bars for p in tab._segment_panels.values()
        )

    qtbot.waitUntil(both_drawn, timeout=2000)
    nifty, banknifty = tab.segment_panel("NIFTY"), tab.segment_panel("BANKNIFTY")
    session.segments = tuple(
        replace(s, last_tick_time=datetime(2026, 1, 8, 9, 30, 5)) for s in session.segments
    )
    session.version += 1
    tab.refresh()
    assert "09:30:05" in nifty.tick.text()
    assert "09:30:05" not in banknifty.tick.text()  # its turn comes in a later pass
    qtbot.waitUntil(lambda: "09:30:05" in banknifty.tick.text(), timeout=2000)


def test_a_hidden_tab_catches_up_every_chart_one_per_event_loop_pass(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    qtbot.waitUntil(
        lambda: len(tab._segment_panels) == 2 and all(p.ready for p in tab._segment_panels.values())
    )
    tab.drawing = False  # another tab is in front
    session.segments = tuple(
        replace(s, last_tick_time=datetime(2026, 1, 8, 9, 31, 0)) for s in session.segments
    )
    session.version += 1
    tab.refresh()
    tab.catch_up()
    shown = ["09:31:00" in p.tick.text() for p in tab._segment_panels.values()]
    assert shown == [True, False]  # the second chart's turn is the next pass
    qtbot.waitUntil(
        lambda: all("09:31:00" in p.tick.text() for p in tab._segment_panels.values()), timeout=2000
    )


def test_a_starting_session_builds_its_panels_in_small_steps_never_in_the_pass_that_starts_it(qtbot):
    tab, session, _ = _tab(qtbot)
    steps: list[tuple[int, bool]] = []  # (panels, the newest one is ready) after each step
    original = tab._build_next

    def counted() -> bool:
        more = original()
        panels = list(tab._segment_panels.values())
        steps.append((len(panels), bool(panels) and panels[-1].ready))
        return more

    tab._build_next = counted  # type: ignore[method-assign]
    tab.request_start()  # NIFTY and BANKNIFTY
    tab.refresh(force=True)
    assert tab._segment_panels == {}  # starting (and its state change) built nothing
    qtbot.waitUntil(
        lambda: bool(steps) and steps[-1] == (2, True) and not tab.pacer.build_scheduled, timeout=3000
    )
    assert set(tab._segment_panels) == {"NIFTY", "BANKNIFTY"}
    # A panel: created, four chart steps, its first drawing; the second is begun once the first is done.
    assert [n for n, _ in steps] == [1] * 6 + [2] * 6
    assert [ready for _, ready in steps] == [False] * 5 + [True] + [False] * 5 + [True]
    assert all(p.chart.candles.bars for p in tab._segment_panels.values())


def test_the_tables_update_in_an_event_loop_pass_after_the_charts(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    qtbot.waitUntil(
        lambda: tab.segment_panel("NIFTY") is not None and tab.segment_panel("NIFTY").ready, timeout=3000
    )
    assert tab.positions_model.rowCount() == 0
    session.hold()
    tab.refresh()
    assert "NIFTY2611325900CE" in tab.segment_panel("NIFTY").position.text()  # the chart's panel: now
    assert tab.positions_model.rowCount() == 0  # the tables: not in this pass
    qtbot.waitUntil(lambda: tab.positions_model.rowCount() == 1, timeout=2000)


def test_the_tables_update_one_per_event_loop_pass(qtbot, monkeypatch):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    qtbot.waitUntil(lambda: len(tab._segment_panels) == 2 and not tab.pacer.build_scheduled, timeout=3000)
    qtbot.waitUntil(lambda: not tab.pacer.tables_due, timeout=2000)
    shown: list[tuple[str, float]] = []
    for name in ("positions", "orders", "trades"):
        model = getattr(tab, f"{name}_model")
        original = model.set_rows
        monkeypatch.setattr(
            model, "set_rows", lambda rows, n=name, o=original: (shown.append((n, time.monotonic())), o(rows))
        )
    session.hold()
    tab.refresh()
    qtbot.waitUntil(lambda: len(shown) == 3, timeout=2000)
    assert [n for n, _ in shown] == ["positions", "orders", "trades"]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(shown)]
    assert all(gap >= STEP_GAP_MS / 1000 * 0.9 for gap in gaps)  # each in a later pass of the window's queue
    assert tab.positions_model.rowCount() == 1


def test_a_new_tabs_table_pages_are_added_in_a_later_pass(qtbot):
    tab, _, _ = _tab(qtbot)
    assert tab.bottom_tabs.count() == 0  # not in the pass that built the tab
    qtbot.waitUntil(lambda: tab.bottom_tabs.count() == 4, timeout=2000)
    assert [tab.bottom_tabs.tabText(i) for i in range(4)] == ["Positions", "Orders", "Trades", "Log"]


def test_a_state_change_is_shown_in_a_later_pass_not_inside_the_signal(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.state = SessionState.HALTED
    session.sig_state_changed.emit(SessionState.HALTED.value)  # as an engine thread's signal arrives
    assert "halted" not in tab.state_label.text()
    qtbot.waitUntil(lambda: "halted" in tab.state_label.text(), timeout=2000)


def test_a_tab_built_behind_another_is_laid_out_before_the_click_that_shows_it(qtbot):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.resize(1500, 900)
    tab = SessionTab(FakeSession("UK9394", "Computer 3"), DARK, JobRunner(), ["itm_momentum"])
    tab.form.set_params(paper_params())
    tabs.addTab(QLabel("another session"), "front")
    tabs.addTab(tab, "behind")
    tabs.setCurrentIndex(1)  # a new tab is shown once, before its session starts
    tabs.show()
    qtbot.waitExposed(tabs)
    tabs.setCurrentIndex(0)
    tab.request_start()
    qtbot.waitUntil(lambda: len(tab._segment_panels) == 2 and not tab.pacer.build_scheduled, timeout=3000)
    charts = [p.chart for p in tab._segment_panels.values()]
    pending = Qt.WidgetAttribute.WA_PendingResizeEvent
    qtbot.waitUntil(lambda: not any(c.testAttribute(pending) for c in charts), timeout=2000)
    spy = _ResizeSpy()
    for chart in charts:
        chart.installEventFilter(spy)
    tabs.setCurrentIndex(1)
    qtbot.wait(50)
    assert spy.resized == []  # laid out already: the click only paints
    assert all(c.isVisible() for c in charts)
