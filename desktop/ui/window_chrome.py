"""The window's fixed parts: the simulation banner, the tab bar with its "+" button, the empty-window hint and
the status bar, built onto the window as `build_menus` builds its menus, and the `show_*` calls that fill the
status bar with what the window's pacer pulled from the sessions' snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QTabWidget, QToolButton, QVBoxLayout, QWidget

from desktop.domain import Mode
from desktop.ui.day_view import state_counts
from desktop.ui.tables import fmt_rupees
from desktop.ui.theme import SIMULATION_BANNER_STYLE, pnl_color

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


def build_central(w: MainWindow, demo: bool) -> tuple[QLabel, QTabWidget, QLabel]:
    """The banner (demo only), the session tabs and the hint shown while none is open."""
    central = QWidget()
    lay = QVBoxLayout(central)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(0)
    banner = QLabel("SIMULATION — demo accounts on the built-in Kite simulator; no real orders")
    banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
    banner.setStyleSheet(SIMULATION_BANNER_STYLE)
    banner.setVisible(demo)
    lay.addWidget(banner)
    tabs = QTabWidget()
    tabs.setTabsClosable(True)
    tabs.setMovable(True)
    tabs.setDocumentMode(True)
    tabs.tabCloseRequested.connect(w.close_tab)
    tabs.tabBarDoubleClicked.connect(w.rename_tab)
    tabs.currentChanged.connect(w._front_tab_changed)
    plus = QToolButton()
    plus.setText("+")
    plus.setToolTip("New session (Ctrl+T)")
    plus.clicked.connect(w.new_session)
    tabs.setCornerWidget(plus, Qt.Corner.TopRightCorner)
    empty_hint = QLabel("No session open. File → New session (Ctrl+T) to trade an account.")
    empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
    lay.addWidget(empty_hint)
    lay.addWidget(tabs, 1)
    w.setCentralWidget(central)
    return banner, tabs, empty_hint


def build_status_bar(w: MainWindow) -> None:
    """Market clock, sessions by state, day P&L per mode, sync, the Kill all warning and a busy bar."""
    sb = w.statusBar()
    w.market_label = QLabel("market —")
    w.running_label = QLabel("0 running")
    w.pnl_label = QLabel("Day P&L —")
    w.sync_label = QLabel("sync: off")
    w.kill_label = QLabel()  # shown while Kill all holds every session halted
    w.kill_label.setVisible(False)
    w.busy = QProgressBar()
    w.busy.setRange(0, 0)
    w.busy.setMaximumWidth(120)
    w.busy.setVisible(False)
    for label in (w.kill_label, w.market_label, w.running_label, w.pnl_label, w.sync_label):
        sb.addPermanentWidget(label)
    sb.addWidget(w.busy)


def show_totals(
    w: MainWindow,
    now: datetime | None,
    words: Sequence[str],
    pnl: dict[Mode, Decimal],
    kill_reason: str | None,
) -> None:
    """The status bar's figures: `words` are each session's state word, `pnl` the day's P&L per mode (real
    money and paper are never added up), `kill_reason` why Kill all holds every session, if it does."""
    w.market_label.setText(f"market {now:%a %d %b %H:%M:%S}" if now else "market —")
    w.running_label.setText(state_counts(list(words)))
    figures = " · ".join(
        f"{mode.value} <span style='color:{pnl_color(w.theme, pnl[mode])}'><b>{fmt_rupees(pnl[mode])}</b></span>"
        for mode in (Mode.LIVE, Mode.PAPER)
        if mode in pnl
    )
    w.pnl_label.setText(f"Day P&L {figures or '—'}")
    w.notifier.show_pnl(pnl)
    w.kill_label.setVisible(kill_reason is not None)
    if kill_reason is not None:
        w.kill_label.setText(
            f"<span style='color:{w.theme.loss}'><b>ALL HALTED</b></span> by Kill all · "
            "Trading → Resume trading"
        )
        w.kill_label.setToolTip(f"Every session was halted: {kill_reason}")


def show_square_off_progress(bar: QStatusBar, held: Sequence[str]) -> None:
    """While quitting with Square off: the positions still held, one per line, until every one is closed."""
    text = (
        f"Squaring off: {len(held)} position{'s' if len(held) != 1 else ''} still held — " + "; ".join(held)
        if held
        else "Squared off: every position is closed; stopping sessions…"
    )
    bar.showMessage(text)
