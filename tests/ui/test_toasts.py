"""In-window notifications (desktop/ui/toast.py): with no system tray (offscreen, a bare X server) a fill still
shows, as a toast in the window's corner that hides by itself; with a tray, the setting adds them."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLineEdit, QWidget

from desktop.ui.main_window import MainWindow
from desktop.ui.notify import IN_WINDOW_KEY, Notice, Notifier
from desktop.ui.theme import DARK
from desktop.ui.toast import MAX_TOASTS, ToastStack
from tests.ui.fakes import FakeEngine, paper_params
from tests.ui.qtkit import answer_next_message_box

FILL = Notice("fill", "Filled · UK9394 · Computer 1", "BUY NIFTY2611325900CE × 65 @ 182.35")


def _host(qtbot) -> QWidget:
    w = QWidget()
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    return w


def test_a_toast_shows_in_the_bottom_right_corner_and_hides_by_itself(qtbot):
    host = _host(qtbot)
    stack = ToastStack(host, DARK, timeout_ms=300)
    toast = stack.show_notice(FILL.title, FILL.text, FILL.kind)
    assert toast.isVisible() and toast.parentWidget() is host
    assert "Filled" in toast.title.text() and toast.text.text() == FILL.text
    geo = toast.geometry()
    assert host.rect().contains(geo), "inside the window"
    assert geo.right() > host.width() - 40 and geo.bottom() > host.height() - 80, "in its bottom-right corner"
    qtbot.waitUntil(lambda: stack.visible() == [], timeout=2000)


def test_toasts_stack_newest_lowest_and_never_more_than_a_few(qtbot):
    host = _host(qtbot)
    stack = ToastStack(host, DARK)
    shown = [stack.show_notice(f"Filled · {i}", "BUY", "fill") for i in range(MAX_TOASTS + 2)]
    visible = stack.visible()
    assert visible == shown[-MAX_TOASTS:], "the oldest go first"
    tops = [t.geometry().top() for t in visible]
    assert tops == sorted(tops) and len(set(tops)) == MAX_TOASTS, "stacked, none on another"
    host.resize(1200, 700)
    assert visible[-1].geometry().right() > 1200 - 40, "it follows the window's corner"


def test_a_toast_never_takes_the_focus_from_what_the_trader_types(qtbot):
    host = _host(qtbot)
    edit = QLineEdit(host)
    edit.show()
    host.activateWindow()
    edit.setFocus()
    stack = ToastStack(host, DARK)
    toast = stack.show_notice(FILL.title, FILL.text, FILL.kind)
    assert toast.focusPolicy() == Qt.FocusPolicy.NoFocus
    assert toast.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    qtbot.keyClicks(edit, "195")
    assert edit.text() == "195"
    qtbot.mouseClick(toast, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stack.visible() == [], timeout=2000)


def test_without_a_tray_a_fill_notification_is_a_toast(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "desktop.ui.notify.QSystemTrayIcon.isSystemTrayAvailable", staticmethod(lambda: False)
    )
    host = _host(qtbot)
    notifier = Notifier(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), host, DARK)
    assert notifier.tray is None and notifier.in_window
    notifier.notify(FILL)
    [toast] = notifier.toasts.visible()
    assert toast.text.text() == FILL.text


def test_with_a_tray_toasts_come_only_when_the_setting_asks(qtbot, tmp_path):
    host = _host(qtbot)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    notifier = Notifier(settings, host, DARK)
    shown: list[str] = []
    notifier.tray = type("Tray", (), {"showMessage": lambda self, title, *a: shown.append(title)})()  # type: ignore[assignment]
    notifier.notify(FILL)
    assert shown == [FILL.title] and notifier.toasts.visible() == []
    settings.setValue(IN_WINDOW_KEY, True)
    notifier.notify(FILL)
    assert len(shown) == 2 and len(notifier.toasts.visible()) == 1


def test_the_windows_fill_notification_is_drawn_offscreen(qtbot, tmp_path, monkeypatch):
    """The offscreen screenshot of a fill's toast in a window with a session (docs/screenshots when asked)."""
    monkeypatch.setattr(
        "desktop.ui.notify.QSystemTrayIcon.isSystemTrayAvailable", staticmethod(lambda: False)
    )
    window = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    window.notifier.notify(FILL)
    qtbot.wait(50)
    [toast] = window.notifier.toasts.visible()
    image = window.grab().toImage()
    assert not image.isNull() and image.width() >= 1366
    # The toast's accent stripe (the theme's highlight) is painted at its place in the window's picture.
    geo = toast.geometry()
    left = image.pixelColor(geo.left() + 1, geo.center().y()).name()
    assert left == DARK.highlight, left
    out = os.environ.get("KITEDESK_SHOTS")
    if out:
        image.save(str(Path(out) / "notification.png"))
    answer_next_message_box("Keep under stop loss", [])
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)
