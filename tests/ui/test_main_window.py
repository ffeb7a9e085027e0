"""The main window: tabs (open, close with a position, rename), state restored on the next start, export."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from desktop.domain import Mode
from desktop.ui.main_window import MainWindow
from tests.ui.fakes import FakeEngine, paper_params
from tests.ui.qtkit import answer_next_message_box


@pytest.fixture
def engine(tmp_path: Path) -> FakeEngine:
    return FakeEngine(tmp_path)


def _window(qtbot, engine: FakeEngine, demo: bool = False) -> MainWindow:
    window = MainWindow(engine, demo=demo)
    qtbot.addWidget(window)
    return window


def _shutdown(qtbot, window: MainWindow, answer: str | None = None) -> None:
    if answer is not None:  # a session still holds a position: quitting asks what to do with it
        answer_next_message_box(answer, [])
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)


def test_same_account_opens_in_two_independent_tabs(qtbot, engine):
    window = _window(qtbot, engine)
    a = window.open_session("UK9394", "Computer 1", paper_params())
    b = window.open_session("UK9394", "Computer 3", paper_params(lots=3))
    assert window.tabs.count() == 2
    assert a.session.key != b.session.key
    a.request_start()
    assert b.session.calls == []  # starting one tab never touches the other
    assert window.tabs.tabText(1) == "UK9394 · Computer 3"
    _shutdown(qtbot, window)


def test_closing_a_tab_with_an_open_position_asks_and_cancel_keeps_it(qtbot, engine):
    window = _window(qtbot, engine)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    tab.session.hold()
    seen: list[str] = []
    answer_next_message_box("Cancel", seen)
    assert not window.close_tab(0)
    assert window.tabs.count() == 1
    assert "open position" in seen[0]
    assert not [c for c in engine.calls if c[0] == "close_session"]
    _shutdown(qtbot, window, answer="Keep under stop loss")
    assert engine.calls[-1] == ("close", "keep")


def test_closing_a_tab_with_an_open_position_squares_off_on_a_worker(qtbot, engine):
    window = _window(qtbot, engine)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    tab.session.hold()
    answer_next_message_box("Square off", [])
    assert window.close_tab(0)
    assert window.tabs.count() == 0
    qtbot.waitUntil(lambda: window.jobs.busy == 0, timeout=3000)
    assert ("close_session", (tab.session.key, "square_off")) in engine.calls
    assert engine.call_threads["close_session"] != threading.current_thread().name
    _shutdown(qtbot, window)


def test_closing_a_flat_tab_does_not_ask(qtbot, engine):
    window = _window(qtbot, engine)
    tab = window.open_session("UK1234", "Computer 2", paper_params())
    assert window.close_tab(0)  # no dialog: a modal here would hang the test
    qtbot.waitUntil(lambda: window.jobs.busy == 0, timeout=3000)
    assert ("close_session", (tab.session.key, "square_off")) in engine.calls
    _shutdown(qtbot, window)


def test_rename_changes_tab_title_and_saved_label(qtbot, engine, monkeypatch):
    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params())
    tab = window.session_tabs()[0]
    tab.set_label("Morning run")
    assert window.tabs.tabText(0) == "UK9394 · Morning run"
    assert window.workspace().sessions[0].label == "Morning run"
    assert tab.session.calls == [("rename", "Morning run")]  # its record too: a kept position follows the tab
    _shutdown(qtbot, window)


def test_a_label_another_tab_of_the_account_has_is_refused_in_words(qtbot, engine, monkeypatch, tmp_path):
    # A restart finds a session by account and label: two tabs alike would take over each other's position.
    from PySide6.QtWidgets import QInputDialog

    from desktop.engine.workspace import WorkspaceError
    from desktop.ui import main_window

    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params())
    other_account = window.open_session("UK1234", "Computer 3", paper_params())
    second = window.open_session("UK9394", "Computer 3", paper_params())
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Computer 1", True))
    seen: list[str] = []
    answer_next_message_box("OK", seen)
    window.rename_tab(window.tabs.indexOf(second))
    assert second.label == "Computer 3" and second.session.calls == []
    assert seen == [
        "UK9394 already has a tab labelled 'Computer 1': each session of an account needs a label of its own"
    ]
    window.rename_tab(window.tabs.indexOf(other_account))  # another account's tab may have it
    assert other_account.label == "Computer 1"
    engine.resumable.add(
        ("UK9394", "Kept")
    )  # a closed tab that kept its position: a new tab "Kept" takes it over
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Kept", True))
    answer_next_message_box("OK", seen)
    window.rename_tab(window.tabs.indexOf(second))
    assert second.label == "Computer 3" and "open a new tab labelled 'Kept' to take it over" in seen[-1]

    path = tmp_path / "ws.toml"
    path.write_text(
        '[[session]]\nprofile = "UK9394"\nlabel = "Computer 3"\nsegments = ["NIFTY"]\nlots = 1\n'
        "stop_loss = 5\nitm_offset = 100\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceError, match="UK9394 already has a tab labelled 'Computer 3'"):
        window.open_workspace(path)
    assert len(window.session_tabs()) == 3  # a workspace clashing with an open tab opens nothing

    real = main_window.NewSessionDialog

    class Dialog(real):  # the New session dialog, accepted with its default label
        def exec(self):  # type: ignore[no-untyped-def]
            return self.DialogCode.Accepted

        def choice(self):  # type: ignore[no-untyped-def]
            return "UK9394", self.label.text()

    monkeypatch.setattr(main_window, "NewSessionDialog", Dialog)
    window.session_tabs()[0].set_label("Session 1")
    tab = window.new_session()
    assert tab is not None and tab.label == "Session 2"  # the first label no tab has
    _shutdown(qtbot, window)


def test_a_workspace_naming_an_unknown_account_opens_nothing_and_says_which(qtbot, engine, tmp_path):
    from desktop.engine.workspace import WorkspaceError

    window = _window(qtbot, engine)
    path = tmp_path / "ws.toml"
    table = 'segments = ["NIFTY"]\nlots = 1\nstop_loss = 5\nitm_offset = 100\n'
    path.write_text(
        f'[[session]]\nprofile = "UK9394"\n{table}[[session]]\nprofile = "ZZ0001"\n{table}', encoding="utf-8"
    )
    with pytest.raises(WorkspaceError, match="ZZ0001 is not an account on this computer"):
        window.open_workspace(path)
    assert window.session_tabs() == []

    def refuse(user_id: str, label: str):  # type: ignore[no-untyped-def]
        raise RuntimeError("its profile file is unreadable")

    engine.open_session = refuse  # type: ignore[method-assign]
    path.write_text(f'[[session]]\nprofile = "UK9394"\n{table}', encoding="utf-8")
    window.open_workspace(path)
    qtbot.waitUntil(lambda: "not opened" in window.statusBar().currentMessage(), timeout=3000)
    assert "UK9394 · UK9394 not opened: its profile file is unreadable" in window.statusBar().currentMessage()
    _shutdown(qtbot, window)


def test_tabs_params_theme_and_geometry_come_back_on_next_start(qtbot, engine):
    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params(lots=2))
    window.open_session("UK1234", "Computer 2", paper_params(mode=Mode.PAPER, stop_loss=3))
    window.set_theme("light")
    window.show()
    window.resize(701, 503)  # within the offscreen screen: restoreGeometry clamps to the screen
    _shutdown(qtbot, window)
    assert engine.closed and engine.calls[-1] == ("close", "keep")

    again = _window(qtbot, FakeEngine(engine.home()))
    tabs = again.restore_tabs()
    assert [(t.session.user_id, t.label) for t in tabs] == [
        ("UK9394", "Computer 1"),
        ("UK1234", "Computer 2"),
    ]
    assert tabs[0].form.params().lots == 2 and tabs[1].form.params().stop_loss == 3
    assert tabs[0].session.calls == []  # restored, never started by itself
    assert again.theme.name == "light"
    assert (again.size().width(), again.size().height()) == (701, 503)
    _shutdown(qtbot, again)


def test_a_live_tab_never_started_is_saved_unconfirmed_and_reopens_asking_on_start(qtbot, engine, tmp_path):
    from desktop.engine.workspace import WorkspaceError, load_workspace, save_workspace

    window = _window(qtbot, engine)
    tab = window.open_session("UK9394", "Computer 3", paper_params(mode=Mode.LIVE))
    assert tab.form.params() is not None and tab.form.params().mode is Mode.LIVE  # selected, never confirmed
    path = tmp_path / "ws.toml"
    save_workspace(path, window.workspace())
    assert "confirm_live" not in path.read_text(encoding="utf-8")
    with pytest.raises(WorkspaceError, match="LIVE mode sends real orders"):
        load_workspace(path)  # what `kitedesk run` reads: it will not trade real money unconfirmed
    assert window.close_tab(0)  # flat: closes without asking
    assert window.open_workspace(path, start=True) == 1
    qtbot.waitUntil(lambda: len(window.session_tabs()) == 1, timeout=3000)
    qtbot.wait(300)
    reopened = window.session_tabs()[0]
    assert reopened is not tab
    assert reopened.form.params().mode is Mode.LIVE and reopened.session.calls == []  # asks on Start
    _shutdown(qtbot, window)


def test_an_older_tabs_file_with_two_labels_alike_still_restores_every_tab(qtbot, engine):
    from desktop.ui.main_window import TABS_FILE

    window = _window(qtbot, engine)
    table = 'segments = ["NIFTY"]\nlots = 1\nstop_loss = 5\nitm_offset = 100\n'
    entry = f'[[session]]\nprofile = "UK9394"\nlabel = "Session 2"\n{table}'
    (window._settings_dir / TABS_FILE).write_text(entry + entry, encoding="utf-8")
    tabs = window.restore_tabs()
    assert [t.label for t in tabs] == [
        "Session 2",
        "Session 2 (2)",
    ]  # the first keeps it: it takes its session over
    _shutdown(qtbot, window)


def test_demo_window_shows_the_simulation_banner(qtbot, engine):
    window = _window(qtbot, engine, demo=True)
    window.show()
    assert window.banner.isVisible() and "SIMULATION" in window.banner.text()
    normal = _window(qtbot, FakeEngine(engine.home()))
    normal.show()
    assert not normal.banner.isVisible()
    _shutdown(qtbot, window)
    _shutdown(qtbot, normal)


def test_status_bar_counts_running_sessions_and_sums_pnl(qtbot, engine):
    window = _window(qtbot, engine)
    a = window.open_session("UK9394", "Computer 1", paper_params())
    window.open_session("UK1234", "Computer 2", paper_params())
    a.request_start()
    a.session.hold()
    window._refresh_status()
    assert window.running_label.text() == "1 running / 2"
    assert "+₹125.50" in window.pnl_label.text()
    assert window.sync_label.text() == "sync: off"
    live = window.open_session("UK1234", "Computer 3", paper_params(mode=Mode.LIVE))
    live.session.start(paper_params(mode=Mode.LIVE))  # confirmed elsewhere: the fake only records it
    live.session.hold()
    window._refresh_status()
    text = window.pnl_label.text()
    assert "LIVE" in text and "PAPER" in text and "+₹251.00" not in text  # real money and paper never added
    assert text.index("LIVE") < text.index("+₹125.50") < text.index("PAPER") < text.rindex("+₹125.50")
    _shutdown(qtbot, window, answer="Square off")
    assert engine.calls[-1] == ("close", "square_off")


def test_kill_all_shows_every_session_halted_until_the_trader_resumes_trading(qtbot, engine):
    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params())
    window._refresh_status()
    assert window.kill_label.isHidden()
    engine.kill_all("panic")
    window._refresh_status()
    assert not window.kill_label.isHidden() and "ALL HALTED" in window.kill_label.text()
    seen: list[str] = []
    answer_next_message_box("Cancel", seen)
    assert not window.rearm_kill_switch() and engine.kill_reason() == "panic"
    assert "halted by Kill all (panic)" in seen[0]
    answer_next_message_box("Yes", seen)
    assert window.rearm_kill_switch()
    assert ("rearm_kill_switch", None) in engine.calls and window.kill_label.isHidden()
    _shutdown(qtbot, window)


def test_export_writes_this_sessions_trades_for_the_date_range(qtbot, engine, tmp_path):
    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params())
    dialog = window.export_trades()
    out = tmp_path / "t.csv"
    dialog.path.setText(str(out))
    dialog.export()
    qtbot.waitUntil(lambda: dialog.exported is not None, timeout=3000)
    ((_, kwargs),) = [c for c in engine.calls if c[0] == "export_trades"]
    assert kwargs["broker_id"] == "UK9394" and kwargs["session_label"] == "Computer 1"
    assert kwargs["date_from"] == kwargs["date_to"] == date(2026, 1, 8)
    assert kwargs["out"] == out and kwargs["mode"] is Mode.PAPER  # the session's mode
    assert engine.call_threads["export_trades"] != threading.current_thread().name
    assert dialog.status.text() == f"exported 7 trades to {out}"
    dialog.whole_account.setChecked(True)
    dialog.export()
    qtbot.waitUntil(lambda: len([c for c in engine.calls if c[0] == "export_trades"]) == 2, timeout=3000)
    assert engine.calls[-1][1]["session_label"] is None
    dialog.close()
    _shutdown(qtbot, window)


def test_export_refuses_a_backwards_date_range_in_words(qtbot, engine, tmp_path):
    window = _window(qtbot, engine)
    dialog = window.export_trades()
    dialog.date_from.setDate(dialog.date_to.date().addDays(1))
    dialog.export()
    assert dialog.status.text() == "the start date is after the end date"
    assert not [c for c in engine.calls if c[0] == "export_trades"]
    dialog.close()
    _shutdown(qtbot, window)


def test_closing_with_no_tabs_starts_empty_next_time_without_complaint(qtbot, engine):
    window = _window(qtbot, engine)
    window.open_session("UK9394", "Computer 1", paper_params())
    _shutdown(qtbot, window)
    emptied = _window(qtbot, FakeEngine(engine.home()))
    assert len(emptied.restore_tabs()) == 1
    assert emptied.close_tab(0)
    qtbot.waitUntil(lambda: emptied.jobs.busy == 0, timeout=3000)
    _shutdown(qtbot, emptied)
    again = _window(qtbot, FakeEngine(engine.home()))
    assert again.restore_tabs() == []
    assert again.statusBar().currentMessage() == ""
    _shutdown(qtbot, again)


def _shortcut(window: MainWindow, keys: str):
    from PySide6.QtGui import QAction, QKeySequence

    found = [a for a in window.findChildren(QAction) if a.shortcut() == QKeySequence(keys)]
    assert len(found) == 1, f"{keys} should be bound once"
    return found[0]


def test_shortcuts_drive_the_common_actions(qtbot, engine):
    window = _window(qtbot, engine)
    a = window.open_session("UK9394", "Computer 1", paper_params())
    b = window.open_session("UK1234", "Computer 2", paper_params())
    assert window.current_tab() is b
    _shortcut(window, "Ctrl+Tab").trigger()
    assert window.current_tab() is a
    _shortcut(window, "Ctrl+Return").trigger()
    assert a.session.calls[0][0] == "start" and b.session.calls == []
    _shortcut(window, "Ctrl+K").trigger()
    qtbot.waitUntil(lambda: a.session.calls[-1][0] == "kill", timeout=3000)
    _shortcut(window, "Ctrl+Shift+K").trigger()
    qtbot.waitUntil(lambda: any(c[0] == "kill_all" for c in engine.calls), timeout=3000)
    _shortcut(window, "Ctrl+Shift+L").trigger()
    assert window.theme.name == "light"
    for keys in ("Ctrl+T", "Ctrl+W", "Ctrl+E", "Ctrl+L", "Ctrl+O", "Ctrl+S", "Ctrl+Q", "Ctrl+."):
        _shortcut(window, keys)
    qtbot.waitUntil(lambda: window.jobs.busy == 0, timeout=3000)
    _shutdown(qtbot, window)


def test_a_workspace_still_opening_stops_opening_tabs_once_the_window_closes(qtbot, engine, tmp_path):
    from desktop.resources import resource_path

    window = MainWindow(engine)
    qtbot.addWidget(window)
    expected = window.open_workspace(resource_path("demo_workspace.toml"))
    assert expected == 3 and len(window.session_tabs()) == 1  # the others open in later passes
    window._closing = True  # as shutdown() sets it
    qtbot.wait(200)
    assert len(window.session_tabs()) == 1


def test_a_started_workspace_opens_every_tab_before_starting_its_sessions_one_per_pass(qtbot, engine):
    from desktop.resources import resource_path

    window = MainWindow(engine)
    qtbot.addWidget(window)
    events: list[str] = []
    original_open = engine.open_session

    def open_session(user_id: str, label: str):  # type: ignore[no-untyped-def]
        session = original_open(user_id, label)
        original_start = session.start
        session.start = lambda params: (events.append(f"start {label}"), original_start(params))  # type: ignore[method-assign]
        events.append(f"open {label}")
        return session

    engine.open_session = open_session  # type: ignore[method-assign]
    assert window.open_workspace(resource_path("demo_workspace.toml"), start=True) == 3
    assert events == ["open Computer 1"]  # the rest come in later passes
    qtbot.waitUntil(lambda: len(events) == 6, timeout=3000)
    labels = ["Computer 1", "Computer 2", "Computer 3"]
    assert events == [f"open {x}" for x in labels] + [f"start {x}" for x in labels]
    assert all(s.calls[0][0] == "start" for s in engine.opened)
    _shutdown(qtbot, window)


def test_a_background_tab_catches_up_in_a_pass_of_its_own_after_the_front_tabs_refresh(qtbot, engine):
    from desktop.ui.pacing import BACKGROUND_EVERY

    window = MainWindow(engine)
    qtbot.addWidget(window)
    window.timer.stop()  # the test drives the refresh itself
    window.open_session("UK9394", "Computer 1", paper_params())
    back = window.open_session("UK1234", "Computer 2", paper_params())
    window.tabs.setCurrentIndex(0)  # Computer 2 is now in the background
    turns: list[str] = []
    back.catch_up_now = lambda: turns.append("caught up")  # type: ignore[method-assign]
    for _ in range(BACKGROUND_EVERY):
        window.refresh()
    assert turns == []  # not inside the front tab's refresh
    qtbot.waitUntil(lambda: turns == ["caught up"], timeout=2000)
    _shutdown(qtbot, window)


def test_a_workspaces_next_session_starts_once_the_one_before_has_loaded(qtbot, engine):
    from desktop.engine.snapshots import SessionState
    from desktop.resources import resource_path

    window = MainWindow(engine)
    qtbot.addWidget(window)
    original_open = engine.open_session
    starts: list[str] = []

    def open_session(user_id: str, label: str):  # type: ignore[no-untyped-def]
        session = original_open(user_id, label)
        original_start = session.start

        def start(params):  # type: ignore[no-untyped-def]
            original_start(params)
            session.state = SessionState.STARTING  # loading its instruments and history
            starts.append(label)

        session.start = start  # type: ignore[method-assign]
        return session

    engine.open_session = open_session  # type: ignore[method-assign]
    window.open_workspace(resource_path("demo_workspace.toml"), start=True)
    qtbot.waitUntil(lambda: starts == ["Computer 1"], timeout=3000)
    qtbot.wait(300)
    assert starts == ["Computer 1"]  # the second waits while the first loads
    engine.opened[0].state = SessionState.RUNNING
    qtbot.waitUntil(lambda: starts == ["Computer 1", "Computer 2"], timeout=3000)
    engine.opened[1].state = SessionState.RUNNING
    qtbot.waitUntil(lambda: len(starts) == 3, timeout=3000)
    _shutdown(qtbot, window)


def test_a_tab_brought_forward_starts_drawing_a_pass_after_the_switch(qtbot, engine):
    window = MainWindow(engine)
    qtbot.addWidget(window)
    first = window.open_session("UK9394", "Computer 1", paper_params())
    second = window.open_session("UK1234", "Computer 2", paper_params())
    assert second.drawing and not first.drawing
    window.tabs.setCurrentWidget(first)
    assert not first.drawing and not second.drawing  # the switch's own sweep only lays out and paints
    qtbot.waitUntil(lambda: first.drawing, timeout=2000)
    assert not second.drawing
    _shutdown(qtbot, window)


def test_where_are_my_logs_says_where_the_secrets_really_are(qtbot, engine):
    # It said "in your system keyring" also when there was none and the secrets were in memory only.
    window = _window(qtbot, engine)
    seen: list[str] = []
    answer_next_message_box("Close", seen)
    window.show_where()
    assert len(seen) == 1
    assert str(engine.home()) in seen[0] and str(engine.logs_dir()) in seen[0]
    assert engine.secrets_location() in seen[0] and "in your system keyring" not in seen[0]
    _shutdown(qtbot, window)
