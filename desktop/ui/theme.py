"""Dark and light themes: one palette per theme, P&L colours, and the PAPER/LIVE badge styles."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one theme (hex strings, so widgets, style sheets and charts share them)."""

    name: str
    window: str
    base: str
    alt_base: str
    text: str
    muted: str
    button: str
    highlight: str
    profit: str
    loss: str
    chart_bg: str
    chart_fg: str
    candle_up: str
    candle_down: str
    fast_ema: str
    slow_ema: str
    stop_line: str
    entry_marker: str
    exit_marker: str


DARK = Theme(
    name="dark",
    window="#1e2126",
    base="#16181c",
    alt_base="#1c1f24",
    text="#e6e6e6",
    muted="#9aa0a6",
    button="#2a2e35",
    highlight="#2f6fd0",
    profit="#3ddc84",
    loss="#ff5c5c",
    chart_bg="#121418",
    chart_fg="#b8bcc4",
    candle_up="#26a69a",
    candle_down="#ef5350",
    fast_ema="#ffca28",
    slow_ema="#42a5f5",
    stop_line="#ff7043",
    entry_marker="#00e676",
    exit_marker="#ff4081",
)

LIGHT = Theme(
    name="light",
    window="#f3f4f6",
    base="#ffffff",
    alt_base="#f7f8fa",
    text="#1b1d21",
    muted="#5f6670",
    button="#e4e7eb",
    highlight="#2f6fd0",
    profit="#0a8f3c",
    loss="#c62828",
    chart_bg="#ffffff",
    chart_fg="#30343a",
    candle_up="#0f9d58",
    candle_down="#d32f2f",
    fast_ema="#e08a00",
    slow_ema="#1565c0",
    stop_line="#e64a19",
    entry_marker="#00a152",
    exit_marker="#c2185b",
)

THEMES = {t.name: t for t in (DARK, LIGHT)}

# The badge must never be mistaken: LIVE is white on solid red, PAPER dark on amber, in both themes.
BADGE_STYLE = {
    "LIVE": "background:#d50000;color:#ffffff;font-weight:bold;padding:3px 10px;border-radius:4px;",
    "PAPER": "background:#ffb300;color:#1b1d21;font-weight:bold;padding:3px 10px;border-radius:4px;",
}
SIMULATION_BANNER_STYLE = "background:#6a1b9a;color:#ffffff;font-weight:bold;padding:4px;"
LOGIN_BANNER_STYLE = "background:#ff8f00;color:#1b1d21;font-weight:bold;padding:6px;"


def pnl_color(theme: Theme, value: Decimal | int | float | None) -> str:
    """Green for a profit, red for a loss, the plain text colour for zero or unknown."""
    if value is None or value == 0:
        return theme.text
    return theme.profit if value > 0 else theme.loss


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Switches the whole application to `theme` (Fusion style, so palettes apply everywhere)."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: theme.window,
        QPalette.ColorRole.WindowText: theme.text,
        QPalette.ColorRole.Base: theme.base,
        QPalette.ColorRole.AlternateBase: theme.alt_base,
        QPalette.ColorRole.Text: theme.text,
        QPalette.ColorRole.Button: theme.button,
        QPalette.ColorRole.ButtonText: theme.text,
        QPalette.ColorRole.Highlight: theme.highlight,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: theme.base,
        QPalette.ColorRole.ToolTipText: theme.text,
        QPalette.ColorRole.PlaceholderText: theme.muted,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(theme.muted))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(theme.muted))
    app.setPalette(pal)
