"""The parts of a session tab built once: the header, the login banner, the parameters with Start/Stop/KILL,
and the tables below the charts. Built onto the tab (as `build_menus` builds the window's menus); the tab
declares what each adds, and shows snapshots in them."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import shortcuts as keys
from desktop.ui.funds_view import FundsLabel
from desktop.ui.log_panel import LogPanel
from desktop.ui.manual_actions import ManualActions
from desktop.ui.order_groups import GroupedSortProxy, group_orders, is_group_parent, order_row_key
from desktop.ui.params_form import ParamsForm
from desktop.ui.tables import (
    ORDER_COLUMNS,
    POSITION_COLUMNS,
    TRADE_COLUMNS,
    SpecTableModel,
    SpecTableView,
    fill_key,
    position_key,
)
from desktop.ui.theme import LOGIN_BANNER_STYLE, Theme
from desktop.ui.trades_page import TradesPage

if TYPE_CHECKING:
    from desktop.ui.session_tab import SessionTab


def build_header(tab: SessionTab) -> QHBoxLayout:
    """The account, the PAPER/LIVE badge, the state word, a progress bar, the message, the account's funds and the
    day P&L."""
    head = QHBoxLayout()
    tab.account = QLabel(f"<b>{tab.session.user_id}</b> · {tab.label}")
    # A bigger font, not a style sheet: a style sheet would freeze the label's colours at this theme.
    big = tab.account.font()
    big.setPointSizeF(big.pointSizeF() * 1.25)
    tab.account.setFont(big)
    tab.badge = QLabel("")
    tab.badge.setObjectName("mode_badge")
    tab.state_label = QLabel("idle")
    # Loading instruments and warm-up history, or stopping: an indeterminate bar while it lasts.
    tab.progress = QProgressBar()
    tab.progress.setRange(0, 0)
    tab.progress.setMaximumWidth(110)
    tab.progress.setMaximumHeight(12)
    tab.progress.setTextVisible(False)
    tab.progress.setVisible(False)
    tab.pnl_label = QLabel("")
    tab.pnl_label.setFont(big)
    tab.message = QLabel("")
    tab.message.setWordWrap(True)
    tab.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
    for w in (tab.account, tab.badge, tab.state_label, tab.progress):
        head.addWidget(w)
    head.addWidget(tab.message, 1)
    tab.funds_label = FundsLabel()
    head.addWidget(tab.funds_label)
    head.addSpacing(12)
    head.addWidget(tab.pnl_label)
    return head


def build_login_banner(tab: SessionTab) -> QWidget:
    """Shown while the account's login has expired: says so, with a button to log in again."""
    tab.login_banner = QWidget()
    banner = QHBoxLayout(tab.login_banner)
    banner.setContentsMargins(0, 0, 0, 0)
    tab.login_banner_text = QLabel(f"{tab.session.user_id}: the login expired. Trading is paused.")
    tab.login_banner_text.setStyleSheet(LOGIN_BANNER_STYLE)
    tab.login_button = QPushButton("Log in again")
    tab.login_button.clicked.connect(lambda: tab.sig_login_requested.emit(tab.session.user_id))
    banner.addWidget(tab.login_banner_text, 1)
    banner.addWidget(tab.login_button)
    tab.login_banner.setVisible(False)
    return tab.login_banner


def build_controls(tab: SessionTab, strategies: list[str]) -> QWidget:
    """The parameters form and the Start, Stop and KILL buttons, in a scroll area."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 4, 0)
    tab.form = ParamsForm(strategies)
    tab.form.sig_validity_changed.connect(lambda _ok: tab.show_buttons())
    tab.form.mode_box.currentTextChanged.connect(lambda _t: tab.show_badge())
    lay.addWidget(tab.form)
    buttons = QHBoxLayout()
    tab.start_button = QPushButton("Start")
    tab.start_button.setToolTip(f"Start trading with these parameters ({keys.START_SESSION})")
    tab.stop_button = QPushButton("Stop")
    tab.stop_button.setToolTip(f"Stop this session ({keys.STOP_SESSION})")
    tab.kill_button = QPushButton("KILL")
    tab.kill_button.setToolTip(
        f"Kill this session: cancel its pending orders, square off, halt ({keys.KILL_SESSION}). "
        "Every session at once: Trading → Kill all sessions"
    )
    tab.kill_button.setStyleSheet("QPushButton{background:#b71c1c;color:white;font-weight:bold;}")
    tab.start_button.clicked.connect(tab.request_start)
    tab.stop_button.clicked.connect(tab.request_stop)
    tab.kill_button.clicked.connect(tab.request_kill)
    for b in (tab.start_button, tab.stop_button, tab.kill_button):
        buttons.addWidget(b)
    lay.addLayout(buttons)
    lay.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(box)
    scroll.setWidgetResizable(True)
    scroll.setMinimumWidth(270)  # 1024 px wide windows keep room for three segments
    return scroll


def build_tables(tab: SessionTab, theme: Theme, settings: QSettings | None) -> QTabWidget:
    """The positions, orders and trades models and the tab widget that will show them with the log."""
    tab.positions_model = SpecTableModel(
        POSITION_COLUMNS, position_key, theme, muted_row=lambda p: p.quantity == 0
    )
    tab.hide_closed = QCheckBox("Hide closed")
    tab.hide_closed.setToolTip("Hide the positions closed today (quantity 0); Kite keeps them for the day")
    tab.hide_closed.toggled.connect(lambda _on: tab.show_table(0))
    # A sliced order reads as one: its parent row (bold, the group's totals) with its slices under it.
    tab.orders_model = SpecTableModel(
        ORDER_COLUMNS, order_row_key, theme, arrange=group_orders, strong_row=is_group_parent
    )
    tab.trades_model = SpecTableModel(TRADE_COLUMNS, fill_key, theme)
    tabs = QTabWidget()
    # Document mode draws no frame around the pages. Fusion draws that frame through a clip made of the
    # four border strips, 3-4 ms each time the tab widget repaints (several times after a tab switch,
    # and on each relayout: a new row, a scroll bar appearing), which made fencing the pages unneeded.
    tabs.setDocumentMode(True)
    tab.log_panel = LogPanel()
    tab.bottom_tabs = tabs
    # The pages come in a step of their own (a third of building a tab): a tab opened in one pass of
    # 50-60 ms, and three tabs of a workspace open one after another.
    tab.pacer.later(partial(add_table_pages, tab, settings))
    return tabs


def add_table_pages(tab: SessionTab, settings: QSettings | None) -> None:
    """The table pages and the log: a step of their own (a third of building a tab)."""
    tabs = tab.bottom_tabs
    page = QWidget()
    page_layout = QVBoxLayout(page)
    page_layout.setContentsMargins(0, 2, 0, 0)
    page_layout.setSpacing(2)
    positions = SpecTableView(tab.positions_model, name="positions", settings=settings)
    orders = SpecTableView(tab.orders_model, name="orders", settings=settings, proxy=GroupedSortProxy())
    # Exit now / Move stop… / Cancel: right-click menus and buttons (desktop/ui/manual_actions.py).
    manual = ManualActions(tab, positions, orders)
    bar = manual.position_bar()
    bar.insertWidget(0, tab.hide_closed)
    page_layout.addLayout(bar)
    page_layout.addWidget(positions, 1)
    tabs.addTab(page, "Positions")
    tabs.addTab(manual.orders_page(), "Orders")
    trades = SpecTableView(tab.trades_model, name="trades", settings=settings)
    # With "All computers": the account's trades of every computer, a Device column (tab.findChild finds it).
    tabs.addTab(TradesPage(tab, trades, settings), "Trades")
    tabs.addTab(tab.log_panel, "Log")
