"""The window's keyboard shortcuts, named once: the menus bind them and tooltips quote them, so a button's
tooltip cannot name another action's keys (the KILL button's said Ctrl+Shift+K, which kills every session)."""

from __future__ import annotations

NEW_SESSION = "Ctrl+T"
LOGIN = "Ctrl+L"
OPEN_WORKSPACE = "Ctrl+O"
SAVE_WORKSPACE = "Ctrl+S"
EXPORT_TRADES = "Ctrl+E"
SETTINGS = "Ctrl+,"
QUIT = "Ctrl+Q"
START_SESSION = "Ctrl+Return"
STOP_SESSION = "Ctrl+."
KILL_SESSION = "Ctrl+K"
KILL_ALL = "Ctrl+Shift+K"
TOGGLE_THEME = "Ctrl+Shift+L"
RENAME_TAB = "F2"
NEXT_TAB = "Ctrl+Tab"
PREVIOUS_TAB = "Ctrl+Shift+Tab"
CLOSE_TAB = "Ctrl+W"
SHORTCUTS_HELP = "F1"
