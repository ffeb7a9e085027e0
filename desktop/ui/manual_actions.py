"""Manual actions on a session tab's positions and orders: "Exit now" and "Move stop…" on a position, "Cancel" on
a working order; from the right-click menu of each table and from buttons above them.

The window only asks and shows: each action is the session's public method (`exit_position`, `move_stop`,
`cancel_order`, desktop.engine), done on the segment agent's thread through the same gateway, risk counters and
journal as the strategy's own orders; its outcome (a future) is awaited off the GUI thread and shown in the tab's
message line. In LIVE each asks first, naming the session, the symbol, the quantity and the price; the default
answer is No. The protective stop-loss order is never cancelled from here (it would leave the position naked):
move it, or exit the position.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode, Order, OrderStatus, OrderType, Position
from desktop.engine import ManualRefused, SessionSnapshot, parse_stop_level
from desktop.ui.tables import fmt_money

if TYPE_CHECKING:
    from desktop.ui.session_tab import SessionTab

WORKING = (OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.TRIGGER_PENDING)
STOP_TYPES = (OrderType.SL, OrderType.SL_M)
WAIT_S = 30.0  # the agent does it before its next tick: seconds at most, unless the broker is slow
EXIT_NOW, MOVE_STOP, CANCEL = "Exit now", "Move stop…", "Cancel order"


def row_at(view: QTableView, row: int) -> Any:
    """The model's object shown in the view's `row` (through its sorting proxy)."""
    proxy = view.model()
    index = proxy.index(row, 0)
    if isinstance(proxy, QSortFilterProxyModel):
        index = proxy.mapToSource(index)
    return view.source_model.row(index.row()) if index.isValid() else None  # type: ignore[attr-defined]


def selected_row(view: QTableView) -> Any:
    """The object of the view's current row, or None."""
    rows = view.selectionModel().selectedRows() if view.selectionModel() is not None else []
    return row_at(view, rows[0].row()) if rows else None


def cancellable(order: Any) -> str:
    """ "" when `order` may be cancelled by hand, else why not (in words for a tooltip)."""
    if not isinstance(order, Order):
        return "select one order (a sliced order: one of its slices cancels all of them)"
    if order.status not in WORKING:
        return f"order {order.order_id} is {order.status.value.lower()}"
    if order.order_type in STOP_TYPES:
        return "the stop-loss order protects the position: use Move stop… or Exit now"
    return ""


class ManualActions(QObject):
    """The manual actions of one session tab (a child of the tab; find it with `tab.findChild(ManualActions)`)."""

    def __init__(self, tab: SessionTab, positions: QTableView, orders: QTableView) -> None:
        super().__init__(tab)
        self.tab = tab
        self.positions_view, self.orders_view = positions, orders
        self.exit_button = QPushButton(EXIT_NOW)
        self.exit_button.setToolTip("Sell the selected position now at market (with market protection)")
        self.move_button = QPushButton(MOVE_STOP)
        self.move_button.setToolTip(
            "Move the selected position's stop-loss (a sell stop below the last price)"
        )
        self.cancel_button = QPushButton(CANCEL)
        self.cancel_button.setToolTip("Cancel the selected working entry or exit order")
        self.exit_button.clicked.connect(lambda: self._on_position(self.request_exit))
        self.move_button.clicked.connect(lambda: self._on_position(self.request_move_stop))
        self.cancel_button.clicked.connect(self._cancel_selected)
        for view, menu in ((positions, self._position_menu), (orders, self._order_menu)):
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            view.customContextMenuRequested.connect(lambda pos, v=view, m=menu: self._show_menu(v, m, pos))
            view.selectionModel().selectionChanged.connect(lambda *_: self.show_buttons())
            view.model().modelReset.connect(self.show_buttons)
        self.last_menu: QMenu | None = None  # the menu last shown (tests read its actions)
        self.show_buttons()

    def position_bar(self) -> QHBoxLayout:
        """The buttons above the positions table."""
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(self.exit_button)
        bar.addWidget(self.move_button)
        return bar

    def orders_page(self) -> QWidget:
        """The orders table with its Cancel button above it."""
        page = QWidget()
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(self.cancel_button)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.orders_view, 1)
        return page

    # -- what is selected ----------------------------------------------------------------------

    def show_buttons(self) -> None:
        """The buttons enabled for what is selected."""
        p = selected_row(self.positions_view)
        held = isinstance(p, Position) and p.quantity > 0
        self.exit_button.setEnabled(held)
        self.move_button.setEnabled(held)
        why = cancellable(selected_row(self.orders_view))
        self.cancel_button.setEnabled(not why)
        self.cancel_button.setToolTip(why or "Cancel the selected working entry or exit order")

    def _on_position(self, action: Callable[[Position], None]) -> None:
        p = selected_row(self.positions_view)
        if isinstance(p, Position) and p.quantity > 0:
            action(p)

    def _cancel_selected(self) -> None:
        order = selected_row(self.orders_view)
        if not cancellable(order):
            self.request_cancel(order)

    def _show_menu(self, view: QTableView, build: Callable[[QMenu, Any], None], pos: QPoint) -> None:
        index = view.indexAt(pos)
        if not index.isValid():
            return
        view.selectRow(index.row())
        menu = QMenu(view)
        build(menu, row_at(view, index.row()))
        self.last_menu = menu
        menu.popup(view.viewport().mapToGlobal(pos))

    def _position_menu(self, menu: QMenu, p: Any) -> None:
        held = isinstance(p, Position) and p.quantity > 0
        actions: tuple[tuple[str, Callable[[Position], None]], ...] = (
            (EXIT_NOW, self.request_exit),
            (MOVE_STOP, self.request_move_stop),
        )
        for text, action in actions:
            item = menu.addAction(text, partial(action, p))
            item.setEnabled(held)

    def _order_menu(self, menu: QMenu, order: Any) -> None:
        why = cancellable(order)
        item = menu.addAction(CANCEL, lambda: self.request_cancel(order))
        item.setEnabled(not why)
        item.setToolTip(why)
        menu.setToolTipsVisible(True)

    # -- the actions ----------------------------------------------------------------------------

    def request_exit(self, p: Position) -> None:
        """Exit now: a market sell of the whole position (asked first in LIVE)."""
        what = f"SELL {p.quantity} {p.tradingsymbol} at market (last price {fmt_money(p.last_price)})"
        if self._live() and not self._confirm("Exit now", what):
            return
        self._run(lambda: self.tab.session.exit_position(p.tradingsymbol), f"exit of {p.tradingsymbol}…")

    def request_cancel(self, order: Order) -> None:
        """Cancel a working entry or exit (asked first in LIVE)."""
        price = fmt_money(order.price) if order.price else "market"
        what = f"cancel order {order.order_id}: {order.side.value} {order.quantity} {order.tradingsymbol} at {price}"
        if self._live() and not self._confirm("Cancel order", what):
            return
        self._run(
            lambda: self.tab.session.cancel_order(order.tradingsymbol, order.order_id),
            f"cancel of {order.order_id}…",
        )

    def request_move_stop(self, p: Position) -> None:
        """Move stop…: asks for the new level (validated), then confirms in LIVE."""
        stop = _stop_of(self.tab.snapshot(), p.tradingsymbol)
        dialog = MoveStopDialog(self.tab, p, stop)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.level is None:
            return
        level = dialog.level
        what = f"move the stop of {p.quantity} {p.tradingsymbol} from {fmt_money(stop)} to {fmt_money(level)}"
        if self._live() and not self._confirm("Move stop", what):
            return
        self._run(lambda: self.tab.session.move_stop(p.tradingsymbol, level), f"stop of {p.tradingsymbol}…")

    def _live(self) -> bool:
        snap = self.tab.snapshot()
        return snap is not None and snap.mode is Mode.LIVE

    def _confirm(self, title: str, what: str) -> bool:
        """The LIVE question, naming the session; the default answer is No."""
        who = f"{self.tab.session.user_id} · {self.tab.label}"
        answer = QMessageBox.question(
            self.tab,
            f"{title} — LIVE",
            f"LIVE session {who}:\n{what}?\n\nThis sends a real order to Kite.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _run(self, send: Callable[[], Any], busy: str) -> None:
        """Sends the action (it returns a future at once) and shows its outcome when it comes."""
        tab = self.tab
        try:
            future = send()
        except Exception as e:  # the segment is not running: said, nothing sent
            tab._show_error(str(e))
            return
        tab.message.setText(busy)

        def failed(exc: BaseException) -> None:
            text = str(exc) if isinstance(exc, ManualRefused) else f"{type(exc).__name__}: {exc}"
            tab._show_error(text or "no answer from the segment (see its log)")

        # A thread of its own: waiting up to WAIT_S for a slow broker must not hold one of the pool's few threads.
        tab._jobs.submit_detached(
            partial(await_outcome, future), lambda outcome: tab.message.setText(outcome.text), failed
        )


def await_outcome(future: Future[Any], wait_s: float = WAIT_S) -> Any:
    """The action's outcome (a worker thread). No answer in `wait_s`: one not started yet is withdrawn (nothing is
    done late); one under way (a slow broker) is said to be, so the trader checks the order book."""
    try:
        return future.result(timeout=wait_s)
    except TimeoutError:
        if future.cancel():
            raise ManualRefused(f"no answer from the segment in {wait_s:.0f} s: nothing was done") from None
        raise ManualRefused(
            f"still under way after {wait_s:.0f} s (a slow broker?): check the segment's log and the order book"
        ) from None


class MoveStopDialog(QDialog):
    """The new stop level: OK only for a price on the 0.05 tick below the last price; the error says why."""

    def __init__(self, parent: QWidget, position: Position, stop: Decimal | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Move stop · {position.tradingsymbol}")
        self.level: Decimal | None = None
        self._ltp = position.last_price or None
        form = QFormLayout(self)
        form.addRow("Position", QLabel(f"{position.tradingsymbol} × {position.quantity}"))
        form.addRow("Last price", QLabel(fmt_money(position.last_price)))
        form.addRow("Stop now", QLabel(fmt_money(stop) if stop is not None else "—"))
        self.edit = QLineEdit(str(stop) if stop is not None else "")
        self.edit.setPlaceholderText("e.g. 182.50")
        form.addRow("New stop", self.edit)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.edit.textChanged.connect(self._validate)
        self._validate(self.edit.text())

    def _validate(self, text: str) -> None:
        try:
            self.level = parse_stop_level(text, self._ltp)
            self.error.setText("")
        except ManualRefused as e:
            self.level = None
            self.error.setText(str(e) if text.strip() else "")
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(self.level is not None)


def _stop_of(snap: SessionSnapshot | None, symbol: str) -> Decimal | None:
    if snap is None:
        return None
    return next((s.stop_price for s in snap.segments if s.option_symbol == symbol), None)
