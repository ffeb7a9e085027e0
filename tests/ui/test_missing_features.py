"""Issue 25, what a trader expects and was missing: the shortcuts listed, notifications, the login URL from the
first second, a quit question that names the positions, a Settings dialog."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QTableWidget

from desktop.domain import Fill, Mode, Order, OrderStatus, OrderType, Segment, Side
from desktop.engine.snapshots import SessionState
from desktop.ui.dialogs import NewSessionDialog
from desktop.ui.main_window import MainWindow
from desktop.ui.menus import show_shortcuts
from desktop.ui.notify import NOTIFY_KEY, SOUND_KEY, Notice, pnl_icon
from desktop.ui.settings_dialog import DEFAULTS_KEY, default_params
from tests.ui.fakes import FakeEngine, FakeSession, paper_params
from tests.ui.qtkit import answer_next_message_box


def _window(qtbot, tmp_path: Path) -> MainWindow:
    w = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(w)
    return w


def _close(qtbot, w: MainWindow, answer: str | None = None) -> None:
    if answer is not None:
        answer_next_message_box(answer, [])
    w.close()
    qtbot.waitUntil(lambda: w.closed, timeout=5000)


def test_help_lists_every_shortcut_of_the_menus(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    expected = {
        (a.text().replace("&", ""), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
        for a in window.findChildren(QAction)
        if not a.shortcut().isEmpty()
    }
    assert ("Kill this session", "Ctrl+K") in expected and len(expected) >= 15
    dialog = show_shortcuts(window)
    qtbot.addWidget(dialog)
    table = dialog.findChild(QTableWidget, "shortcuts_table")
    shown = {(table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())}
    assert shown == expected
    # Generated from the actions: a shortcut added to a menu is listed without touching the dialog.
    extra = QAction("Zoom the chart", window)
    extra.setShortcut(QKeySequence("Ctrl+Shift+Z"))
    window.menuBar().actions()[2].menu().addAction(extra)
    again = show_shortcuts(window)
    qtbot.addWidget(again)
    table = again.findChild(QTableWidget, "shortcuts_table")
    assert ("Zoom the chart", "Ctrl+Shift+Z") in {
        (table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())
    }
    assert any(a.text() == "&Keyboard shortcuts" for a in window.menuBar().actions()[-1].menu().actions())
    _close(qtbot, window)


def test_quitting_with_open_positions_names_each_of_them(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    a = window.open_session("UK9394", "Computer 1", paper_params())
    b = window.open_session("UK1234", "Computer 2", paper_params(mode=Mode.LIVE))
    a.request_start()
    a.session.hold()
    b.session.start(paper_params(mode=Mode.LIVE))
    b.session.hold("BANKNIFTY26JAN61200PE")
    seen: list[str] = []
    answer_next_message_box("Cancel", seen)
    window.close()
    qtbot.waitUntil(lambda: bool(seen), timeout=3000)
    assert not window.closed
    text = seen[0]
    assert "UK9394 · Computer 1: NIFTY2611325900CE × 65, PAPER" in text
    assert "UK1234 · Computer 2: BANKNIFTY26JAN61200PE × 65, LIVE" in text
    _close(qtbot, window, answer="Keep under stop loss")


def _order(oid: str, status, order_type=OrderType.MARKET, side=Side.BUY, message=""):
    return Order(oid, FakeSession("UK9394", "x").key, Mode.PAPER, "NFO", "NIFTY2611325900CE", side, 65,
                 order_type, status, status_message=message)  # fmt: skip


def _fill(fid: str, oid: str, side=Side.BUY, price="182.35"):
    return Fill(fid, oid, FakeSession("UK9394", "x").key, Mode.PAPER, "NFO", "NIFTY2611325900CE", side, 65,
                Decimal(price), datetime(2026, 1, 8, 10, 0))  # fmt: skip


def test_a_fill_a_stop_loss_hit_a_rejection_an_expired_login_and_a_kill_each_notify(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    session = tab.session
    window._refresh_status()  # the first snapshot is only remembered
    assert window.notifier.shown == []
    session.fills = (_fill("t1", "o1"),)
    session.orders = (_order("o1", OrderStatus.COMPLETE),)
    session.version += 1
    window._refresh_status()
    session.fills += (_fill("t2", "o2", Side.SELL, "173.25"),)
    session.orders += (_order("o2", OrderStatus.COMPLETE, OrderType.SL_M, Side.SELL),)
    session.orders += (_order("o3", OrderStatus.REJECTED, message="Insufficient funds"),)
    session.version += 1
    window._refresh_status()
    session.message = "the login expired: log in again"
    session._set(SessionState.LOGIN_NEEDED)
    window._refresh_status()
    session.message = "kill switch (button)"
    session._set(SessionState.HALTED)
    window._refresh_status()
    kinds = [(n.kind, n.title, n.text) for n in window.notifier.shown]
    assert kinds == [
        ("fill", "Filled · UK9394 · Computer 1", "BUY NIFTY2611325900CE × 65 @ 182.35"),
        ("stop-loss", "Stop loss hit · UK9394 · Computer 1", "SELL NIFTY2611325900CE × 65 @ 173.25"),
        (
            "rejected",
            "Order rejected · UK9394 · Computer 1",
            "BUY NIFTY2611325900CE × 65: Insufficient funds",
        ),
        ("login", "Login expired · UK9394 · Computer 1", "the login expired: log in again"),
        ("kill", "Halted · UK9394 · Computer 1", "kill switch (button)"),
    ]
    window._refresh_status()
    assert len(window.notifier.shown) == 5, "each event once"
    _close(qtbot, window, answer="Keep under stop loss")


def test_notifications_can_be_turned_off_and_sound_on(qtbot, tmp_path, monkeypatch):
    window = _window(qtbot, tmp_path)
    shown: list[tuple[str, str]] = []
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    tray = window.notifier.tray
    if tray is not None:
        monkeypatch.setattr(tray, "showMessage", lambda title, text, *a: shown.append((title, text)))
    notice = Notice("fill", "Filled · x", "BUY")
    window.settings.setValue(NOTIFY_KEY, False)
    window.notifier.notify(notice)
    assert shown == [] and beeps == []
    window.settings.setValue(NOTIFY_KEY, True)
    window.settings.setValue(SOUND_KEY, True)
    window.notifier.notify(notice)
    assert beeps == [1]
    assert shown == ([("Filled · x", "BUY")] if tray is not None else [])
    _close(qtbot, window)


def test_the_tray_icon_shows_the_days_pnl_and_brings_the_window_back(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    tab.session.hold()
    window._refresh_status()
    assert window.notifier.show_pnl({Mode.PAPER: Decimal("125.50")}) == "KiteDesk — day P&L PAPER +₹125.50"
    icon = pnl_icon(Decimal("125.50"), window.theme).pixmap(32, 32).toImage()
    assert icon.pixelColor(4, 16).name() == window.theme.profit
    lost = pnl_icon(Decimal("-464.75"), window.theme).pixmap(32, 32).toImage()
    assert lost.pixelColor(4, 16).name() == window.theme.loss
    window.showMinimized()
    window.notifier.bring_back()
    assert not window.isMinimized()
    _close(qtbot, window, answer="Keep under stop loss")


def test_settings_set_the_theme_notifications_and_what_new_tabs_start_with(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    assert any(a.text() == "Se&ttings…" for a in window.menuBar().actions()[0].menu().actions())
    dialog = window.show_settings()
    qtbot.addWidget(dialog)
    assert dialog.data_folder.text() == str(tmp_path) and dialog.data_folder.isReadOnly()
    assert dialog.notify_box.isChecked() and not dialog.sound_box.isChecked()
    dialog.theme_box.setCurrentIndex(dialog.theme_box.findData("light"))
    dialog.notify_box.setChecked(False)
    form = dialog.defaults_form
    form.edit("lots").setText("0")
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled() and form.error_text("lots") == "Lots must be a whole number ≥ 1"
    form.edit("lots").setText("2")
    form.edit("stop_loss").setText("7.5")
    form.segment_boxes[Segment.SENSEX].setChecked(True)
    assert ok.isEnabled()
    ok.click()
    assert dialog.applied and window.theme.name == "light"
    assert not window.notifier.enabled
    # A new tab's form starts from those parameters, in PAPER.
    answer_dialog = QTimer()
    answer_dialog.setSingleShot(True)

    def accept_new_session() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, NewSessionDialog):
            box.accept()
        else:
            answer_dialog.start(10)

    answer_dialog.timeout.connect(accept_new_session)
    answer_dialog.start(10)
    tab = window.new_session()
    assert tab is not None
    params = tab.form.params()
    assert params.lots == 2 and params.stop_loss == Decimal("7.5") and Segment.SENSEX in params.segments
    assert params.mode is Mode.PAPER
    # Kept for the next run of the window.
    again = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(again)
    assert again.theme.name == "light" and again.default_params().lots == 2 and not again.notifier.enabled
    _close(qtbot, again)
    _close(qtbot, window)


def test_damaged_default_parameters_fall_back_to_the_built_in_ones(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue(DEFAULTS_KEY, '{"lots": "many"')
    assert default_params(settings).lots == 1
    settings.setValue(DEFAULTS_KEY, json.dumps({"segments": ["NIFTY"], "lots": 3, "stop_loss": 5, "itm_offset": 100,
                                               "mode": "LIVE"}))  # fmt: skip
    params = default_params(settings)
    assert params.lots == 3 and params.mode is Mode.PAPER, "a new tab never starts in LIVE"


def test_square_off_at_quit_shows_what_is_still_held_until_it_is_closed(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    tab.session.hold()
    release = threading.Event()
    engine = window.engine

    def slow_close(positions: str = "keep") -> None:
        release.wait(5)  # the exits are on their way
        tab.session.holding = False
        engine.closed = True

    engine.close = slow_close  # type: ignore[method-assign]
    answer_next_message_box("Square off", [])
    window.close()
    qtbot.waitUntil(lambda: "Squaring off" in window.statusBar().currentMessage(), timeout=3000)
    assert "UK9394 · Computer 1: NIFTY2611325900CE × 65, PAPER" in window.statusBar().currentMessage()
    assert not window.closed
    release.set()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)


def test_the_settings_measure_the_recordings_disk_use_off_the_windows_thread(qtbot, tmp_path):
    # A home with years of recordings on a slow disk: the walk takes its time, the window never waits for it.
    window = _window(qtbot, tmp_path)
    release, walked_on = threading.Event(), []
    usage = window.engine.recordings_disk_usage

    def slow_usage() -> dict[str, int]:
        walked_on.append(threading.current_thread())
        release.wait(5)
        return usage()

    window.engine.recordings_disk_usage = slow_usage  # type: ignore[method-assign]
    started = time.monotonic()
    dialog = window.show_settings()
    qtbot.addWidget(dialog)
    opened_in = time.monotonic() - started
    assert "measuring" in dialog.record_boxes["UK9394"].text()
    release.set()
    qtbot.waitUntil(lambda: "3.0 MB" in dialog.record_boxes["UK9394"].text(), timeout=3000)
    assert opened_in < 2.0, f"the window waited {opened_in:.1f} s for the disk walk"
    assert walked_on and walked_on[0] is not threading.main_thread()
    assert "0 B" in dialog.record_boxes["UK1234"].text() and "Total: 3.0 MB" in dialog.total_used.text()
    dialog.reject()
    _close(qtbot, window)


def test_settings_choose_which_accounts_are_recorded_for_how_long_and_show_the_disk_used(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    engine = window.engine
    assert engine.recorded == set()  # off by default for every account
    dialog = window.show_settings()
    qtbot.addWidget(dialog)
    assert set(dialog.record_boxes) == {"UK9394", "UK1234"}
    assert not any(box.isChecked() for box in dialog.record_boxes.values())
    qtbot.waitUntil(lambda: "3.0 MB" in dialog.record_boxes["UK9394"].text(), timeout=3000)
    assert "Total: 3.0 MB" in dialog.total_used.text()
    dialog.record_boxes["UK1234"].setChecked(True)
    dialog.retention_box.setValue(7)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert engine.recorded == {"UK1234"}
    assert ("set_recording", ("UK1234", True, 7)) in engine.calls
    _close(qtbot, window)
    again = _window(qtbot, tmp_path)  # the next start records the same accounts by itself
    assert again.engine.recorded == {"UK1234"}
    _close(qtbot, again)
