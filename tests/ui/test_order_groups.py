"""Issue 23: the orders table shows a sliced order as one group, its parent row (the group's totals) followed by
its slices marked "slice 1/3", and keeps the group together whatever column the trader sorts by."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester

from desktop.domain import Mode, Order, OrderStatus, OrderType, SessionKey, Side
from desktop.ui.session_tab import SessionTab
from desktop.ui.tables import ORDER_COLUMNS, SpecTableView
from desktop.ui.theme import DARK
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeSession, paper_params

KEY = SessionKey("UK9394", "s1")
BIG = "NIFTY2611325900CE"


def _order(oid: str, qty: int, filled: int, avg: str, status: OrderStatus, minute: int, intent: str,
           symbol: str = BIG, side: Side = Side.BUY) -> Order:  # fmt: skip
    return Order(
        oid, KEY, Mode.PAPER, "NFO", symbol, side, qty, OrderType.MARKET, status, filled, Decimal(avg),
        timestamp=datetime(2026, 1, 8, 10, minute), intent_id=intent,
    )  # fmt: skip


def _orders_view(tab: SessionTab) -> SpecTableView | None:
    return next((v for v in tab.findChildren(SpecTableView) if v.source_model is tab.orders_model), None)


def _texts(view, column: str) -> list[str]:
    c = next(i for i, col in enumerate(ORDER_COLUMNS) if col.title == column)
    proxy = view.model()
    return [proxy.index(r, c).data() for r in range(proxy.rowCount())]


def test_slices_of_one_order_read_as_one_group_kept_together_whatever_the_sort(qtbot):
    session = FakeSession("UK9394", "Slices")
    tab = SessionTab(session, DARK, JobRunner(), ["itm_momentum"])
    qtbot.addWidget(tab)
    tab.form.set_params(paper_params())
    tab.request_start()
    QAbstractItemModelTester(tab.orders_model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    early = _order("P-1", 75, 75, "101.00", OrderStatus.COMPLETE, 1, "i-early", "NIFTY2611325000PE")
    slices = [
        _order("P-2", 1800, 1800, "182.00", OrderStatus.COMPLETE, 5, "i-big"),
        _order("P-3", 1800, 900, "182.50", OrderStatus.OPEN, 5, "i-big"),
        _order("P-4", 900, 0, "0", OrderStatus.OPEN, 6, "i-big"),
    ]
    late = _order("P-5", 75, 75, "99.00", OrderStatus.COMPLETE, 9, "i-late", "NIFTY2611325100PE", Side.SELL)
    session.orders = (early, *slices, late)
    session.version += 1
    tab.refresh(force_all=True)  # a hidden tab shows its tables when told to catch up
    qtbot.waitUntil(lambda: tab.orders_model.rowCount() == 6 and _orders_view(tab) is not None, timeout=3000)
    view = _orders_view(tab)
    assert view is not None
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by time, oldest first
    assert _texts(view, "Order id") == ["P-1", "3 slices", "slice 1/3 · P-2", "slice 2/3 · P-3", "slice 3/3 · P-4",
                                        "P-5"]  # fmt: skip
    parent = 1
    assert _texts(view, "Qty")[parent] == "4500" and _texts(view, "Filled")[parent] == "2700"
    # The group's average is the value-weighted average of what its slices filled: (1800×182 + 900×182.5) / 2700.
    assert _texts(view, "Avg")[parent] == "182.17"
    assert _texts(view, "Status")[parent] == "1 COMPLETE, 2 OPEN"
    assert _texts(view, "Time")[parent] == "10:05:00"
    assert view.model().index(parent, 0).data(Qt.ItemDataRole.FontRole).bold()
    assert view.model().index(2, 0).data(Qt.ItemDataRole.FontRole) is None
    # Sorted by quantity, either way: the group moves as one, its parent first and its slices in order.
    for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
        view.sortByColumn(next(i for i, c in enumerate(ORDER_COLUMNS) if c.title == "Qty"), order)
        ids = _texts(view, "Order id")
        at = ids.index("3 slices")
        assert ids[at : at + 4] == ["3 slices", "slice 1/3 · P-2", "slice 2/3 · P-3", "slice 3/3 · P-4"], ids
        assert ids.index("P-1") in ((0, 1) if order is Qt.SortOrder.AscendingOrder else (4, 5)), ids
    # Sorted by time descending: the late order, then the group (at its first slice's time), then the early one.
    view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert _texts(view, "Order id") == ["P-5", "3 slices", "slice 1/3 · P-2", "slice 2/3 · P-3", "slice 3/3 · P-4",
                                        "P-1"]  # fmt: skip
    # The last slice fills: the parent's totals follow, the rows stay where they are.
    session.orders = (early, slices[0], replace(slices[1], filled_quantity=1800, status=OrderStatus.COMPLETE),
                      replace(slices[2], filled_quantity=900, average_price=Decimal("183"),
                              status=OrderStatus.COMPLETE), late)  # fmt: skip
    session.version += 1
    tab.refresh(force_all=True)  # a hidden tab shows its tables when told to catch up
    qtbot.waitUntil(lambda: _texts(view, "Status")[1] == "COMPLETE", timeout=3000)
    assert _texts(view, "Filled")[1] == "4500" and _texts(view, "Avg")[1] == "182.40"
    assert len(_texts(view, "Order id")) == 6
