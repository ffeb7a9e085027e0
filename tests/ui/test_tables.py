"""Positions, orders and trades tables: sorted by value, P&L coloured, updated without resets."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QAbstractItemModelTester

from desktop.domain import Mode, Position, SessionKey
from desktop.ui.tables import (
    POSITION_COLUMNS,
    SpecTableModel,
    SpecTableView,
    fmt_money,
    fmt_rupees,
    position_key,
)
from desktop.ui.theme import DARK

KEY = SessionKey("UK9394", "s1")


def _pos(symbol: str, avg: str, ltp: str, qty: int = 65) -> Position:
    return Position(KEY, Mode.PAPER, "NFO", symbol, qty, Decimal(avg), Decimal(ltp))


def _column(title: str) -> int:
    return [c.title for c in POSITION_COLUMNS].index(title)


def test_positions_sort_by_pnl_value_not_text(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model)
    qtbot.addWidget(view)
    model.set_rows(
        (_pos("A", "100", "101"), _pos("B", "100", "99.9"), _pos("C", "100", "120"))
    )  # +65, -6.5, +1300
    col = _column("MTM P&L")
    view.sortByColumn(col, Qt.SortOrder.AscendingOrder)
    proxy = view.model()
    shown = [proxy.index(r, 0).data() for r in range(3)]
    assert shown == ["B", "A", "C"]


def test_pnl_cells_are_green_for_profit_and_red_for_loss(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    model.set_rows((_pos("A", "100", "101"), _pos("B", "100", "99")))
    col = _column("MTM P&L")
    up = model.index(0, col).data(Qt.ItemDataRole.ForegroundRole).color()
    down = model.index(1, col).data(Qt.ItemDataRole.ForegroundRole).color()
    assert up == QColor(DARK.profit) and down == QColor(DARK.loss)
    assert model.index(0, col).data() == "65.00"


def test_new_rows_are_inserted_and_changed_rows_repainted_without_reset(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    events: list[str] = []
    model.modelReset.connect(lambda: events.append("reset"))
    model.rowsInserted.connect(lambda *_: events.append("insert"))
    model.dataChanged.connect(lambda *_: events.append("changed"))
    a = _pos("A", "100", "101")
    model.set_rows((a,))
    model.set_rows((replace(a, last_price=Decimal("102")), _pos("B", "50", "51")))
    assert events == ["insert", "changed", "insert"]
    assert model.rowCount() == 2


def test_same_rows_object_costs_nothing(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    rows = (_pos("A", "100", "101"),)
    model.set_rows(rows)
    events: list[str] = []
    model.dataChanged.connect(lambda *_: events.append("changed"))
    model.modelReset.connect(lambda: events.append("reset"))
    model.set_rows(rows)
    assert events == []


def test_rupees_are_signed_for_pnl():
    assert fmt_rupees(Decimal("-643.5")) == "−₹643.50"
    assert fmt_rupees(Decimal("1234.5")) == "+₹1,234.50"
    assert fmt_rupees(Decimal(0)) == "₹0.00"


def test_a_row_gone_is_removed_not_reset(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    model.set_rows((_pos("A", "100", "101"), _pos("B", "1", "1")))
    events: list[tuple[str, int, int]] = []
    model.modelReset.connect(lambda: events.append(("reset", 0, 0)))
    model.rowsRemoved.connect(lambda _p, first, last: events.append(("remove", first, last)))
    model.set_rows((_pos("B", "1", "1"),))
    assert events == [("remove", 0, 0)] and model.rowCount() == 1 and model.row(0).tradingsymbol == "B"


def test_a_row_new_in_the_middle_is_inserted_there_and_only_it_is_measured(qtbot, monkeypatch):
    # A session's orders are its segments' lists one after another: a new NIFTY order comes before the
    # BANKNIFTY ones.
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model)
    qtbot.addWidget(view)
    model.set_rows((_pos("NIFTY-A", "100", "101"), _pos("BANKNIFTY-A", "1", "1")))
    events: list[tuple[str, int, int]] = []
    model.modelReset.connect(lambda: events.append(("reset", 0, 0)))
    model.rowsInserted.connect(lambda _p, first, last: events.append(("insert", first, last)))
    measured: list[int] = []
    size_hint = view.sizeHintForIndex
    monkeypatch.setattr(view, "sizeHintForIndex", lambda i: measured.append(i.row()) or size_hint(i))
    model.set_rows((_pos("NIFTY-A", "100", "101"), _pos("NIFTY-B", "5", "6"), _pos("BANKNIFTY-A", "1", "1")))
    assert events == [("insert", 1, 1)]
    assert [model.row(r).tradingsymbol for r in range(3)] == ["NIFTY-A", "NIFTY-B", "BANKNIFTY-A"]
    proxy = view.model()
    assert {proxy.index(r, 0).data() for r in set(measured)} == {"NIFTY-B"}  # the new row, no other


_SYMBOLS = st.lists(st.sampled_from("ABCDEFGHIJ"), unique=True, max_size=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_SYMBOLS, after=_SYMBOLS, sort_column=st.sampled_from([-1, 0, 5]))
def test_any_change_of_rows_keeps_the_model_and_a_sorted_view_consistent(
    qtbot, qtlog, before, after, sort_column
):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model)
    qtbot.addWidget(view)
    if sort_column >= 0:
        view.sortByColumn(sort_column, Qt.SortOrder.DescendingOrder)
    # Qt's own checker of the model's signals against its contents: every problem is a warning.
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    price = {s: str(100 + i) for i, s in enumerate("ABCDEFGHIJ")}
    model.set_rows(tuple(_pos(s, "100", price[s]) for s in before))
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.set_rows(tuple(_pos(s, "100", str(int(price[s]) + 1)) for s in after))  # every price moved too
    assert [model.row(r).tradingsymbol for r in range(model.rowCount())] == after
    assert [model.index(r, _column("LTP")).data() for r in range(len(after))] == [
        f"{int(price[s]) + 1:.2f}" for s in after
    ]
    proxy = view.model()
    assert sorted(proxy.index(r, 0).data() for r in range(proxy.rowCount())) == sorted(after)
    assert resets == []
    assert [m.message for m in qtlog.records if m.context.category == "qt.modeltest"] == []  # "FAIL! ..."
    del tester


def test_columns_widen_to_rows_added_while_the_table_is_hidden(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model)
    qtbot.addWidget(view)  # never shown: a page behind another tab
    short, long = _pos("NIFTY26JAN25900CE", "100", "101"), _pos("BANKNIFTY26JAN62200CE_WEEKLY", "200", "201")
    model.set_rows((short,))
    narrow = view.columnWidth(0)
    model.set_rows((short, long))
    wide = view.columnWidth(0)
    # The Symbol column also takes the spare width, so it may have been wide enough already.
    assert wide >= narrow and wide >= view.fontMetrics().horizontalAdvance(long.tradingsymbol)
    model.set_rows((long,))  # the first row gone: columns never narrow
    assert view.columnWidth(0) == wide
    fitted = [view.sizeHintForColumn(c) for c in range(model.columnCount())]
    assert all(view.columnWidth(c) >= fitted[c] for c in range(model.columnCount()))  # nothing elided


def test_money_is_grouped_the_indian_way_as_kite_shows_it() -> None:
    assert fmt_rupees(Decimal("245431.6")) == "+₹2,45,431.60"
    assert fmt_rupees(Decimal("-12345678.5")) == "−₹1,23,45,678.50"
    assert fmt_money(Decimal("999.5")) == "999.50" and fmt_money(Decimal("100000")) == "1,00,000.00"
    assert fmt_money(Decimal("-0.001")) == "0.00" and fmt_money(Decimal("-1000")) == "-1,000.00"
