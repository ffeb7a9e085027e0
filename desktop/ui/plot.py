"""`LightPlot`: a view box with a left axis and, optionally, a bottom axis; what the index chart uses of
pyqtgraph's `PlotItem`, at a fifth of its construction cost.

A `PlotItem` also builds a context menu with its whole settings form, four axes, title and axis labels and
an auto-range button: ~10 ms of GUI-thread work each (measured), two per chart, three charts per
session. The chart needs none of that, and a window opening three sessions froze for it (issue 6).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsGridLayout, QGraphicsItem

AXIS_WIDTH = 64  # equal widths keep stacked plots' time axes aligned


class LightPlot(pg.GraphicsWidget):
    """A ViewBox (no menu) with a fixed-width left axis and an optional bottom axis, in a grid."""

    def __init__(self, bottom: pg.AxisItem | None = None, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.vb = pg.ViewBox(parent=self, enableMenu=False)
        grid = QGraphicsGridLayout()
        grid.setContentsMargins(1, 1, 1, 1)
        grid.setHorizontalSpacing(0)
        grid.setVerticalSpacing(0)
        self.setLayout(grid)
        self._axes: dict[str, pg.AxisItem] = {"left": pg.AxisItem("left", parent=self)}
        if bottom is not None:
            self._axes["bottom"] = bottom
            bottom.setParentItem(self)
        for name, axis in self._axes.items():
            axis.linkToView(self.vb)
            axis.setZValue(-1000)  # under the view's contents, as in PlotItem
            if name == "left":
                axis.setWidth(AXIS_WIDTH)
        grid.addItem(self._axes["left"], 0, 0)
        grid.addItem(self.vb, 0, 1)
        if bottom is not None:
            grid.addItem(bottom, 1, 1)
        grid.setColumnStretchFactor(1, 100)
        grid.setRowStretchFactor(0, 100)
        self._clip_to_view = False

    def getViewBox(self) -> pg.ViewBox:  # noqa: N802 - PlotItem's name
        """The view box holding the items."""
        return self.vb

    def getAxis(self, name: str) -> pg.AxisItem:  # noqa: N802 - PlotItem's name
        """The "left" or "bottom" axis (KeyError for one this plot does not have)."""
        return self._axes[name]

    def axes(self) -> list[pg.AxisItem]:
        """The axes this plot has."""
        return list(self._axes.values())

    def addItem(self, item: QGraphicsItem, ignoreBounds: bool = False) -> None:  # noqa: N802,N803 - PlotItem's
        """Adds an item to the view box (`ignoreBounds`: not counted when auto-ranging)."""
        if self._clip_to_view and isinstance(item, pg.PlotDataItem):
            item.setClipToView(True)
        self.vb.addItem(item, ignoreBounds=ignoreBounds)

    def plot(self, **kwargs: Any) -> pg.PlotDataItem:
        """A new curve in this plot."""
        item = pg.PlotDataItem(**kwargs)
        self.addItem(item)
        return item

    def setClipToView(self, clip: bool) -> None:  # noqa: N802 - PlotItem's name
        """Curves draw only their visible part (this plot's curves, now and later)."""
        self._clip_to_view = clip
        for item in self.vb.addedItems:
            if isinstance(item, pg.PlotDataItem):
                item.setClipToView(clip)

    def setXLink(self, other: LightPlot) -> None:  # noqa: N802 - PlotItem's name
        """This plot's time range follows `other`'s."""
        self.vb.setXLink(other.vb)

    def setMouseEnabled(self, x: bool, y: bool) -> None:  # noqa: N802 - PlotItem's name
        """Which directions the mouse pans and zooms."""
        self.vb.setMouseEnabled(x=x, y=y)

    def enableAutoRange(self, y: bool) -> None:  # noqa: N802 - PlotItem's name
        """Whether the price range follows the data."""
        self.vb.enableAutoRange(y=y)

    def setAutoVisible(self, y: bool) -> None:  # noqa: N802 - PlotItem's name
        """Auto-range the price over the visible time range only."""
        self.vb.setAutoVisible(y=y)
