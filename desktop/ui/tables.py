"""Positions, orders and trades as sortable table models driven by a column spec (vn.py's BaseMonitor idea)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from difflib import SequenceMatcher
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSettings,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from desktop.domain import Fill, Order, Position, format_rupees, group_indian
from desktop.ui.theme import Theme, pnl_color

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex


def fmt_money(value: Decimal | None) -> str:
    """Rupees with Indian digit grouping and paise, as Kite shows them: 1,12,345.60 (blank when unknown)."""
    return "" if value is None else group_indian(value)


fmt_rupees = format_rupees  # one money format for the window and headless output (desktop.domain)


def fmt_time(value: datetime | None) -> str:
    """HH:MM:SS of a market time (blank when unknown)."""
    return "" if value is None else value.strftime("%H:%M:%S")


def _sort_key(value: Any) -> Any:
    """A value Qt can compare: numbers as float (sorting only, never for money), the rest as text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal | int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its title, how to read the value from a row, how to show it, and optional P&L colouring."""

    title: str
    value: Callable[[Any], Any]
    fmt: Callable[[Any], str] = lambda v: "" if v is None else str(getattr(v, "value", v))
    numeric: bool = False
    pnl: bool = False  # colour the cell green/red by sign


class SpecTableModel(QAbstractTableModel):
    """Rows of frozen objects shown through a column spec; updates touch only what changed."""

    def __init__(
        self,
        columns: Sequence[Column],
        row_key: Callable[[Any], Hashable],
        theme: Theme,
        parent: QWidget | None = None,
        muted_row: Callable[[Any], bool] | None = None,
        arrange: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
        strong_row: Callable[[Any], bool] | None = None,
    ) -> None:
        """`muted_row`: rows it is true for are greyed (a position closed today), their P&L still coloured.
        `arrange`: turns the rows given to `set_rows` into the rows shown (the orders' slices grouped under their
        parent: desktop/ui/order_groups.py); `strong_row`: rows shown in bold (a group's parent)."""
        super().__init__(parent)
        self._muted_row = muted_row
        self._arrange = arrange
        self._strong_row = strong_row
        self._index_of: dict[Hashable, int] | None = None  # key -> row, made when first asked after a change
        self._columns = tuple(columns)
        self._row_key = row_key
        self._rows: list[Any] = []
        self._keys: list[Hashable] = []
        self._source: object = None
        self.theme = theme

    # ------------------------------------------------------------------ updates
    def set_rows(self, rows: Sequence[Any]) -> None:
        """Shows `rows`: same tuple object → nothing to do; otherwise rows are matched by key, and only new
        rows are inserted, gone rows removed and changed rows repainted (never a reset).

        A session's orders and trades are its segments' lists one after another, so a new NIFTY order lands
        in the middle: a reset there re-measured every cell of the table (18 ms for 13 orders) where one
        inserted row costs one row's measuring.
        """
        if rows is self._source:
            return
        self._source = rows
        self._index_of = None
        if self._arrange is not None:
            rows = self._arrange(rows)
        new_keys = [self._row_key(r) for r in rows]
        if new_keys[: len(self._keys)] == self._keys:  # the common case, without a diff: rows appended
            self._repaint_changed(rows, 0, 0, len(self._keys))
            if len(rows) > len(self._keys):
                self._insert(len(self._keys), rows[len(self._keys) :], new_keys[len(self._keys) :])
            return
        ops = SequenceMatcher(None, self._keys, new_keys, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in reversed(ops):  # from the end: the indices of the rest stay valid
            if tag == "equal":
                self._repaint_changed(rows, i1, j1, i2 - i1)
                continue
            if i2 > i1:  # "delete" or "replace"
                self.beginRemoveRows(QModelIndex(), i1, i2 - 1)
                del self._rows[i1:i2], self._keys[i1:i2]
                self.endRemoveRows()
            if j2 > j1:  # "insert" or "replace"
                self._insert(i1, rows[j1:j2], new_keys[j1:j2])

    def _insert(self, at: int, rows: Sequence[Any], keys: list[Hashable]) -> None:
        self.beginInsertRows(QModelIndex(), at, at + len(rows) - 1)
        self._rows[at:at] = rows
        self._keys[at:at] = keys
        self.endInsertRows()

    def _repaint_changed(self, rows: Sequence[Any], at: int, src: int, n: int) -> None:
        """Takes rows[src:src+n] for model rows at..at+n (same keys); repaints those whose values changed."""
        old_rows = self._rows
        last = len(self._columns) - 1
        for k in range(n):
            new, old = rows[src + k], old_rows[at + k]
            # Identity first: the engine shares unchanged rows between snapshots, so most are skipped
            # without comparing their fields.
            if new is not old:
                old_rows[at + k] = new
                if new != old:
                    self.dataChanged.emit(self.index(at + k, 0), self.index(at + k, last))

    def row(self, i: int) -> Any:
        """The object shown in row `i` (model order)."""
        return self._rows[i]

    def find_row(self, key: Hashable) -> Any:
        """The row shown under `key`, or None."""
        if self._index_of is None:
            self._index_of = {k: i for i, k in enumerate(self._keys)}
        i = self._index_of.get(key)
        return None if i is None else self._rows[i]

    def sort_value(self, row: Any, column: int) -> Any:
        """What `row` sorts by in `column` (SORT_ROLE's value)."""
        return _sort_key(self._columns[column].value(row))

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._columns)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._columns[section].title
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        col = self._columns[index.column()]
        value = col.value(self._rows[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            return col.fmt(value)
        if role == SORT_ROLE:
            return _sort_key(value)
        if role == Qt.ItemDataRole.FontRole and self._strong_row is not None:
            if self._strong_row(self._rows[index.row()]):
                font = QFont()
                font.setBold(True)
                return font
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            row = self._rows[index.row()]
            if col.pnl and value is not None and value != 0:
                return QBrush(QColor(pnl_color(self.theme, value)))
            if self._muted_row is not None and self._muted_row(row):
                return QBrush(QColor(self.theme.muted))
        return None

    def column_title(self, column: int) -> str:
        """The title of a column (the key its remembered width is saved under)."""
        return self._columns[column].title


def _side_text(v: Any) -> str:
    return str(getattr(v, "value", v))


POSITION_COLUMNS = (
    Column("Symbol", lambda p: p.tradingsymbol),
    Column("Mode", lambda p: p.mode),
    Column("Qty", lambda p: p.quantity, numeric=True),
    Column("Avg", lambda p: p.average_price, fmt_money, numeric=True),
    Column("LTP", lambda p: p.last_price, fmt_money, numeric=True),
    Column("MTM P&L", lambda p: p.unrealised_pnl, fmt_money, numeric=True, pnl=True),
    Column("Realised", lambda p: p.realised_pnl, fmt_money, numeric=True, pnl=True),
)
ORDER_COLUMNS = (
    Column("Time", lambda o: o.timestamp, fmt_time),
    Column("Order id", lambda o: o.order_id),
    Column("Symbol", lambda o: o.tradingsymbol),
    Column("Side", lambda o: o.side, _side_text),
    Column("Type", lambda o: o.order_type, _side_text),
    Column("Qty", lambda o: o.quantity, numeric=True),
    Column("Filled", lambda o: o.filled_quantity, numeric=True),
    Column("Avg", lambda o: o.average_price, fmt_money, numeric=True),
    Column("Trigger", lambda o: o.trigger_price, fmt_money, numeric=True),
    Column("Status", lambda o: o.status, _side_text),
    Column("Message", lambda o: o.status_message),
)
TRADE_COLUMNS = (
    Column("Time", lambda f: f.timestamp, fmt_time),
    Column("Trade id", lambda f: f.fill_id),
    Column("Order id", lambda f: f.order_id),
    Column("Symbol", lambda f: f.tradingsymbol),
    Column("Side", lambda f: f.side, _side_text),
    Column("Qty", lambda f: f.quantity, numeric=True),
    Column("Price", lambda f: f.price, fmt_money, numeric=True),
)


def position_key(p: Position) -> Hashable:
    """Positions are one per contract within a session."""
    return (p.exchange, p.tradingsymbol)


def order_key(o: Order) -> Hashable:
    """Orders are keyed by the broker's order id."""
    return o.order_id


def fill_key(f: Fill) -> Hashable:
    """Trades are keyed by the broker's trade id."""
    return f.fill_id


class SpecTableView(QTableView):
    """A read-only, sortable view of a SpecTableModel (sorting through a proxy on the raw values).

    Columns fit their texts (widened as rows arrive and values grow, never narrowed), the Symbol column takes
    the spare width, and a column the trader resized keeps that width, remembered in `settings` under `name`.
    """

    def __init__(
        self,
        model: SpecTableModel,
        parent: QWidget | None = None,
        name: str = "",
        settings: QSettings | None = None,
        proxy: QSortFilterProxyModel | None = None,
    ) -> None:
        """`proxy`: how rows sort (the orders table keeps a sliced order's rows together); by column value else."""
        super().__init__(parent)
        self._name = name
        self._settings = settings
        self._by_hand: dict[int, int] = {}  # columns the trader sized: column → width
        self._sizing = False  # our own resizes (not the trader's) are under way
        self.source_model = model
        proxy = proxy if proxy is not None else QSortFilterProxyModel()
        proxy.setParent(self)
        proxy.setSourceModel(model)
        proxy.setSortRole(SORT_ROLE)
        proxy.setDynamicSortFilter(True)
        self.setModel(proxy)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        # Columns are widened to fit new rows when they arrive, not on every change: in ResizeToContents
        # mode each new price (15 times a second) would re-measure every cell of the table and re-lay it
        # out. Only the new rows are measured (resizeColumnsToContents measures the rows in view, which
        # in a hidden page is one row of a 30-pixel view). The trader can still widen a column by hand.
        # A changed value (a price crossing 1,000) is measured too, for its row only: LTP read "1,22…".
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        self._stretch = next(
            (c for c in range(model.columnCount()) if model.column_title(c) == "Symbol"), None
        )
        self._symbol_width = 0  # the widest symbol's text: the Symbol column is never narrower
        self._fitted = False
        self._restore_widths()
        header.sectionResized.connect(self._on_section_resized)
        model.rowsInserted.connect(lambda _parent, first, last: self._fit_rows(first, last))
        model.modelReset.connect(lambda: self._fit_rows(0, model.rowCount() - 1))
        model.dataChanged.connect(lambda first, last, _roles=(): self._fit_rows(first.row(), last.row()))
        self._fit_rows(0, model.rowCount() - 1)  # a page added after its first rows arrived
        if not model.rowCount():
            self._fit_headers()

    def _fit_headers(self) -> None:
        """An empty table: each column as wide as its title (not the header's default 100 px)."""
        header = self.horizontalHeader()
        for c in range(header.count()):
            if c not in self._by_hand and c != self._stretch:
                self._resize(c, header.sectionSizeHint(c))
        self._spread()

    def _settings_key(self) -> str:
        return f"tables/{self._name}/widths"

    def _restore_widths(self) -> None:
        if self._settings is None or not self._name:
            return
        saved = self._settings.value(self._settings_key())
        if not isinstance(saved, dict):
            return
        for c in range(self.source_model.columnCount()):
            raw = saved.get(self.source_model.column_title(c))
            try:
                width = int(str(raw))
            except ValueError:
                continue
            if c != self._stretch and 20 <= width <= 2000:  # a damaged file's value is ignored
                self._by_hand[c] = width
                self._resize(c, width)

    def _resize(self, column: int, width: int) -> None:
        self._sizing = True
        try:
            self.horizontalHeader().resizeSection(column, width)
        finally:
            self._sizing = False

    def _on_section_resized(self, column: int, _old: int, new: int) -> None:
        """The trader dragged a column's edge: that width stays (never auto-fitted again) and is remembered."""
        if self._sizing or column == self._stretch:
            return
        self._by_hand[column] = new
        if self._settings is not None and self._name:
            widths = {self.source_model.column_title(c): w for c, w in self._by_hand.items()}
            self._settings.setValue(self._settings_key(), widths)

    def column_widths(self) -> dict[str, int]:
        """Each column's width now, by title."""
        header = self.horizontalHeader()
        return {self.source_model.column_title(c): header.sectionSize(c) for c in range(header.count())}

    def _fit_rows(self, first: int, last: int) -> None:
        """Widens (never narrows) each column to the texts of source rows first..last."""
        if last < first:
            return
        header, proxy = self.horizontalHeader(), self.model()
        grid = 1 if self.showGrid() else 0  # as QTableView.sizeHintForColumn: a pixel short elides the text
        for c in range(self.source_model.columnCount()):
            if c in self._by_hand:
                continue
            if c == self._stretch:
                width = self._symbol_width or header.sectionSizeHint(c)
            else:
                width = header.sectionSize(c) if self._fitted else header.sectionSizeHint(c)
            for r in range(first, last + 1):
                index = proxy.mapFromSource(self.source_model.index(r, c))  # type: ignore[attr-defined]
                width = max(width, self.sizeHintForIndex(index).width() + grid)
            if c == self._stretch:
                self._symbol_width = width
            elif width != header.sectionSize(c):
                self._resize(c, width)
        self._fitted = True
        self._spread()

    def _spread(self) -> None:
        """The Symbol column takes the width the others leave (never less than its widest text)."""
        c = self._stretch
        if c is None or c in self._by_hand:
            return
        header = self.horizontalHeader()
        others = sum(header.sectionSize(i) for i in range(header.count()) if i != c)
        width = max(self._symbol_width or header.sectionSizeHint(c), self.viewport().width() - others)
        if width != header.sectionSize(c):
            self._resize(c, width)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._spread()
