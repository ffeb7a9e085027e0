"""A sweep's results: the table (one row per combination, sorted by any column) and the equity curves.

The curves are drawn with pyqtgraph, imported when the first curves are drawn: the first window never loads it
(tests/test_lazy_imports.py), and a backtest is opened long after the first paint.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from desktop.domain import format_rupees
from desktop.engine import ComboResult
from desktop.ui.theme import Theme

# The table's figures after the swept parameters: (header, the figure of a row, how it is shown).
FIGURES: tuple[tuple[str, Any, Any], ...] = (
    ("Trades", lambda r: r.round_trips, str),
    ("Win rate %", lambda r: r.win_rate, lambda v: f"{v}"),
    ("Net P&L", lambda r: r.net, format_rupees),
    ("Max drawdown", lambda r: r.max_drawdown, lambda v: format_rupees(-v) if v else format_rupees(v)),
    ("Sharpe", lambda r: r.sharpe, lambda v: "—" if v is None else f"{v:.2f}".replace("-", "\u2212")),
)
HIGHLIGHT = "#e6781e"  # the chosen combination's curve, as in the CLI's equity.png
OTHERS = "#8c8c8c"


class _SortItem(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers; a missing Sharpe below every other)."""

    def __init__(self, text: str, key: Any) -> None:
        super().__init__(text)
        self.key = key
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _SortItem):
            return bool(_order(self.key) < _order(other.key))
        return super().__lt__(other)


def _order(key: Any) -> tuple[int, Any]:
    if key is None:
        return (0, 0)
    if isinstance(key, int | float | Decimal):
        return (1, key if not isinstance(key, float) or not math.isnan(key) else -math.inf)
    try:
        return (1, Decimal(str(key)))  # a swept value: 3 before 10
    except ArithmeticError:
        return (2, str(key))


class ResultsTable(QTableWidget):
    """One row per finished combination; `result_of(row)` gives back its ComboResult, however sorted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 0, parent)
        self.setObjectName("backtest_results")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.setSortingEnabled(True)
        self._results: dict[int, ComboResult] = {}

    def begin(self, names: list[str], labels: list[str]) -> None:
        """An empty table for a sweep of the parameters `names` (headed by their form `labels`)."""
        self.setSortingEnabled(False)
        self.setRowCount(0)
        self._names = names
        self._results.clear()
        self.setColumnCount(len(names) + len(FIGURES))
        self.setHorizontalHeaderLabels([*labels, *(f[0] for f in FIGURES)])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSortingEnabled(True)

    def add(self, index: int, result: ComboResult) -> None:
        """The row of combination `index` (sorted in where the current sort puts it)."""
        self._results[index] = result
        self.setSortingEnabled(False)  # else the row moves while its cells are set
        row = self.rowCount()
        self.insertRow(row)
        cells = [(result.settings.get(n, ""), result.settings.get(n)) for n in self._names]
        cells += [(show(value(result)), value(result)) for _, value, show in FIGURES]
        for col, (text, key) in enumerate(cells):
            item = _SortItem(text, key)
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.setItem(row, col, item)
        self.setSortingEnabled(True)

    def results(self) -> list[ComboResult]:
        """The rows' results, in the combinations' order."""
        return [self._results[i] for i in sorted(self._results)]

    def result_of(self, row: int) -> ComboResult | None:
        """The result shown in table row `row`."""
        item = self.item(row, 0)
        return None if item is None else self._results.get(int(item.data(Qt.ItemDataRole.UserRole)))

    def selected(self) -> ComboResult | None:
        """The result of the selected row (None when no row is selected)."""
        rows = self.selectionModel().selectedRows()
        return self.result_of(rows[0].row()) if rows else None

    def column_texts(self, col: int) -> list[str]:
        """The texts of one column, top to bottom (as the trader sees the sort)."""
        return [item.text() if (item := self.item(r, col)) else "" for r in range(self.rowCount())]


def equity_plot(parent: QWidget | None, theme: Theme) -> Any:
    """A pyqtgraph plot for equity curves in the window's chart colours (pyqtgraph is imported here, on first
    use)."""
    import pyqtgraph as pg

    plot = pg.PlotWidget(parent, background=theme.chart_bg)
    for name in ("left", "bottom"):
        plot.getAxis(name).setPen(pg.mkPen(theme.chart_fg))
        plot.getAxis(name).setTextPen(pg.mkPen(theme.chart_fg))
    plot.setObjectName("backtest_equity")
    plot.setMenuEnabled(False)
    plot.showGrid(x=False, y=True, alpha=0.2)
    plot.setLabel("left", "net P&L (₹)")
    plot.setLabel("bottom", "fills, in time order (the days joined)")
    return plot


def draw_curves(plot: Any, results: list[ComboResult], chosen: ComboResult | None) -> int:
    """Every result's equity curve in grey, `chosen`'s on top in orange, over a dashed zero line; the x axis is
    the fills' times of every curve in order, so the curves line up in time. Returns the curves drawn."""
    import pyqtgraph as pg

    plot.clear()
    times = sorted({t for r in results for t, _ in r.curve or []})
    position = {t: i for i, t in enumerate(times)}
    plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(OTHERS, width=1, style=Qt.PenStyle.DashLine)))
    drawn = 0
    for result in sorted(results, key=lambda r: r is chosen):  # the chosen one last: on top
        points = result.curve or []
        if not points:
            continue
        mine = result is chosen
        plot.plot(
            [position[t] for t, _ in points],
            [float(v) for _, v in points],
            pen=pg.mkPen(HIGHLIGHT if mine else OTHERS, width=2 if mine else 1),
        )
        drawn += 1
    return drawn
