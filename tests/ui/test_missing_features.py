"""Issue 25, what a trader expects and was missing: the shortcuts listed, notifications, the login URL from the
first second, a quit question that names the positions, a Settings dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QTableWidget

from desktop.domain import Mode
from desktop.ui.main_window import MainWindow
from desktop.ui.menus import show_shortcuts
from tests.ui.fakes import FakeEngine, paper_params
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
