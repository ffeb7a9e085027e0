"""The main window's menus and shortcuts, and the Help dialogs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import shortcuts as keys
from desktop.ui.session_tab import SessionTab
from desktop.ui.sync_dialog import show_sync_settings

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


def _action(
    window: MainWindow, menu: Any, text: str, slot: Callable[[], Any], shortcut: str | None = None
) -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_menus(w: MainWindow) -> None:
    """File, Trading, View, Tools and Help, with the keyboard shortcuts of the common actions."""
    bar = w.menuBar()
    file = bar.addMenu("&File")
    _action(w, file, "&New session…", w.new_session, keys.NEW_SESSION)
    _action(w, file, "&Log in / profiles…", lambda: w.show_login(), keys.LOGIN)
    file.addSeparator()
    _action(w, file, "&Open workspace…", w.open_workspace_dialog, keys.OPEN_WORKSPACE)
    _action(w, file, "&Save workspace…", w.save_workspace_dialog, keys.SAVE_WORKSPACE)
    _action(w, file, "&Export trades…", w.export_trades, keys.EXPORT_TRADES)
    _action(w, file, "Se&ttings…", w.show_settings, keys.SETTINGS)
    _action(w, file, "S&ync settings…", lambda: show_sync_settings(w))
    file.addSeparator()
    _action(w, file, "&Quit", w.close, keys.QUIT)
    trading = bar.addMenu("&Trading")
    _action(
        w,
        trading,
        "&Start this session",
        lambda: w.on_current_tab(SessionTab.request_start),
        keys.START_SESSION,
    )
    _action(
        w, trading, "S&top this session", lambda: w.on_current_tab(SessionTab.request_stop), keys.STOP_SESSION
    )
    _action(
        w, trading, "&Kill this session", lambda: w.on_current_tab(SessionTab.request_kill), keys.KILL_SESSION
    )
    trading.addSeparator()
    _action(w, trading, "Kill &all sessions", w.kill_all, keys.KILL_ALL)
    _action(w, trading, "&Resume trading after Kill all…", w.rearm_kill_switch)
    view = bar.addMenu("&View")
    _action(w, view, "&Dark theme", lambda: w.set_theme("dark"))
    _action(w, view, "&Light theme", lambda: w.set_theme("light"))
    _action(w, view, "&Toggle theme", w.toggle_theme, keys.TOGGLE_THEME)
    view.addSeparator()
    _action(w, view, "&Rename this tab…", lambda: w.rename_tab(w.tabs.currentIndex()), keys.RENAME_TAB)
    _action(w, view, "Ne&xt tab", lambda: w.step_tab(1), keys.NEXT_TAB)
    _action(w, view, "&Previous tab", lambda: w.step_tab(-1), keys.PREVIOUS_TAB)
    _action(w, view, "Close this &tab", lambda: w.close_tab(w.tabs.currentIndex()), keys.CLOSE_TAB)
    tools = bar.addMenu("T&ools")
    _action(w, tools, "&Backtest…", lambda: _show_backtest(w))
    help_ = bar.addMenu("&Help")
    _action(w, help_, "&Keyboard shortcuts", lambda: show_shortcuts(w), keys.SHORTCUTS_HELP)
    _action(w, help_, "&Where are my logs and data?", w.show_where)
    _action(w, help_, "&About KiteDesk", w.show_about)


def _show_backtest(window: MainWindow) -> Any:
    # Imported on use: the dialog brings the engine's backtest (the replay), which the first window never needs.
    from desktop.ui.backtest_dialog import show_backtest

    return show_backtest(window)


def show_where(parent: QWidget, home: Path, logs: Path, secrets: str) -> None:
    """Help → where the logs and the data live, and where the API secrets really are (`secrets`: the
    engine's sentence: the system keyring, or memory only when there is none)."""
    box = QMessageBox(parent)
    box.setWindowTitle("Logs and data")
    box.setText(
        f"Data (database, profiles, window state):\n{home}\n\nLogs (one folder per session):\n{logs}\n\n"
        f"{secrets}"
    )
    open_button = box.addButton("Open data folder", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Close)
    box.exec()
    if box.clickedButton() is open_button:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(home)))


def show_about(parent: QWidget) -> None:
    """Help → About."""
    QMessageBox.about(
        parent,
        "About KiteDesk",
        "KiteDesk — several isolated strategy sessions for Zerodha Kite Connect in one window.\n"
        "PAPER or LIVE per session; the demo runs on a built-in Kite-compatible simulator.",
    )


def shortcut_rows(window: QWidget) -> list[tuple[str, str, str]]:
    """(menu, action, keys) of every menu action that has a shortcut, read from the menus themselves, so the
    list cannot drift from what the keys do."""
    rows: list[tuple[str, str, str]] = []
    menu_bar = window.menuBar() if isinstance(window, QMainWindow) else None
    if menu_bar is None:
        return rows
    for top in menu_bar.actions():
        menu = top.menu()
        if not isinstance(menu, QMenu):
            continue
        for action in menu.actions():
            keys_text = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if keys_text:
                rows.append((top.text().replace("&", ""), action.text().replace("&", ""), keys_text))
    return rows


def show_shortcuts(window: QWidget) -> QDialog:
    """Help → Keyboard shortcuts: every shortcut of the menus, by menu."""
    dialog = QDialog(window)
    dialog.setWindowTitle("Keyboard shortcuts")
    lay = QVBoxLayout(dialog)
    table = QTableWidget(0, 3)
    table.setObjectName("shortcuts_table")
    table.setHorizontalHeaderLabels(["Menu", "Action", "Keys"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for menu, action, keys_text in shortcut_rows(window):
        row = table.rowCount()
        table.insertRow(row)
        for col, text in enumerate((menu, action, keys_text)):
            table.setItem(row, col, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    lay.addWidget(table)
    lay.addWidget(
        QLabel(
            f"A tab's KILL button is {keys.KILL_SESSION}; Kill all sessions (every tab) is {keys.KILL_ALL}."
        )
    )
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    lay.addWidget(buttons)
    dialog.resize(520, 480)
    dialog.setModal(False)
    dialog.show()
    return dialog
