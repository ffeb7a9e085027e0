"""The live index chart: incremental candles (candles.py), both EMAs, trade markers, crosshair, and a strip
with the held option's premium, entry and stop-loss level.

Work per refresh is proportional to what changed: the forming bar repaints its own column; curves and
axes change only when a bar closes; the price range is refitted with slack, not on every tick.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QFontMetricsF, QResizeEvent
from PySide6.QtWidgets import QWidget

from desktop.domain import Segment
from desktop.engine import SegmentSnapshot
from desktop.ui.candles import CandlestickItem, TimeAxis
from desktop.ui.chart_parts import (
    LABEL_ABOVE,
    LABEL_ABOVE_MID,
    LABEL_BELOW,
    LABEL_PX,
    PaintGatedLayout,
    ReadoutItem,
    fit_y,
    floats,
    legend_text,
    readout_variants,
    render_axis,
)
from desktop.ui.plot import AXIS_WIDTH, LightPlot
from desktop.ui.theme import Theme

VISIBLE_BARS = 90
# Room kept right of the forming bar. The view jumps ahead only when the forming bar reaches the right
# edge, not on every closed bar: each move of the time range regenerates both plots' axes (tick labels
# and all) and repaints the whole chart, which was most of a bar close's cost.
FOLLOW_MARGIN_BARS = 10
_MINUTE = timedelta(minutes=1)
MAX_PREMIUM_SAMPLES = 5_000
PREMIUM_REDRAW_S = 0.5
FIRST_DATA_FALLBACK_MS = 10_000  # a staged chart with no bars by then paints empty (axes and all)


class IndexChartView(PaintGatedLayout):
    """One segment's index chart (candles, EMAs, markers, crosshair) above the held option's premium."""

    def __init__(
        self, segment: Segment, theme: Theme, parent: QWidget | None = None, staged: bool = False
    ) -> None:
        super().__init__(parent)
        self.segment = segment
        self._theme = theme
        self._starts: list[datetime] = []
        self._fast = np.empty(0)
        self._slow = np.empty(0)
        self._markers: object = None
        self._premium_symbol: str | None = None
        self._premium_t: deque[datetime] = deque(maxlen=MAX_PREMIUM_SAMPLES)
        self._premium_pending = False
        self._premium_y: deque[float] = deque(maxlen=MAX_PREMIUM_SAMPLES)
        self._last_sample: tuple[datetime | None, object] = (None, None)
        self._premium_drawn_at = 0.0
        self._premium_levels: list[float] = []  # the entry, stop and target lines shown on the strip
        self._framed = False
        self.update_ms: deque[float] = deque(maxlen=2000)
        # Built in steps of 2-7 ms each: a whole chart is ~20 ms of GUI-thread work (plots, axes, items), and
        # a staged chart lets its panel spread that over event-loop passes.
        self._steps: deque[Callable[[], None]] = deque(
            [self._build_price_plot, self._build_overlays, self._build_premium_plot, self._finish_build]
        )
        if staged:
            # Until its first bars arrive the chart paints only its background: an empty chart's first paint
            # (axes, tick labels) cost 15-30 ms, repeated moments later with the bars, while the session's
            # threads were starting and every call back into Python waited for the GIL.
            self._awaiting_data = True
            self.defer_paint(fallback_ms=FIRST_DATA_FALLBACK_MS)
        else:
            self._awaiting_data = False
            while self.build_step():
                pass

    @property
    def ready(self) -> bool:
        """Every construction step has run: the chart can show snapshots."""
        return not self._steps

    def build_step(self) -> bool:
        """Runs the next construction step; True while more remain."""
        if self._steps:
            self._steps.popleft()()
        return bool(self._steps)

    def _build_price_plot(self) -> None:
        self.candles = CandlestickItem(self._theme)
        self.readout = ReadoutItem()
        self.addItem(self.readout, row=0, col=0)
        # Light plots, not pyqtgraph's PlotItems (plot.py): no context menus or settings forms to build.
        self.price_plot = LightPlot(bottom=TimeAxis(self.candles))
        self.addItem(self.price_plot, row=1, col=0)
        self.price_plot.setMouseEnabled(x=True, y=False)  # wheel zooms time; price follows the visible bars
        self.price_plot.setAutoVisible(y=True)
        self.price_plot.setClipToView(True)
        # The price axis is fitted by _fit_price_range with some slack: pyqtgraph's auto-range would
        # rescale (and repaint both axes) on nearly every tick of the forming bar.
        self.price_plot.enableAutoRange(y=False)
        self.price_plot.getViewBox().sigXRangeChanged.connect(lambda *_: self._fit_price_range(refit=True))
        self.price_plot.addItem(self.candles)

    def _build_overlays(self) -> None:
        self.fast_curve = self.price_plot.plot(connect="finite")
        self.slow_curve = self.price_plot.plot(connect="finite")
        self.entries = pg.ScatterPlotItem(symbol="t1", size=13, hoverable=True, tip=self._marker_tip)
        self.exits = pg.ScatterPlotItem(symbol="t", size=13, hoverable=True, tip=self._marker_tip)
        self.price_plot.addItem(self.entries)
        self.price_plot.addItem(self.exits)
        self.v_line = pg.InfiniteLine(angle=90, movable=False)
        self.h_line = pg.InfiniteLine(angle=0, movable=False)
        for line in (self.v_line, self.h_line):
            line.setVisible(False)  # until the mouse is over the chart
            self.price_plot.addItem(line, ignoreBounds=True)

    def _build_premium_plot(self) -> None:
        self.premium_plot = LightPlot()  # no time axis: it shares the price plot's
        self.addItem(self.premium_plot, row=2, col=0)
        self.ci.layout.setRowStretchFactor(1, 4)
        self.ci.layout.setRowStretchFactor(2, 0)
        self.premium_plot.setVisible(False)  # until there is a premium to show (_update_premium)
        self.premium_plot.setMaximumHeight(0)
        self.premium_plot.setXLink(self.price_plot)
        # No grid: pyqtgraph draws it as part of the axes, which would then repaint, tick labels and
        # all, whenever anything inside the plot moves (the forming bar, 15 times a second).
        self.premium_plot.setMouseEnabled(x=True, y=False)
        # Fitted like the price axis (_fit_premium_range): auto-range rescaled it, and regenerated its axis,
        # at each redraw of the strip (8 ms of a 10 ms redraw).
        self.premium_plot.enableAutoRange(y=False)
        self.premium_plot.getViewBox().sigXRangeChanged.connect(
            lambda *_: self._fit_premium_range(refit=True)
        )
        self.premium_plot.setClipToView(True)
        self.premium_curve = self.premium_plot.plot()
        # Each level says what it is.
        self.entry_line = pg.InfiniteLine(
            angle=0, movable=False, label="entry {value:,.2f}", labelOpts=LABEL_ABOVE_MID
        )
        self.stop_line = pg.InfiniteLine(
            angle=0, movable=False, label="SL {value:,.2f}", labelOpts=LABEL_ABOVE
        )
        self.target_line = pg.InfiniteLine(
            angle=0, movable=False, label="target {value:,.2f}", labelOpts=LABEL_BELOW
        )
        # The strip's name: which option's premium it draws.
        self.premium_title = pg.LabelItem("", justify="left", parent=self.premium_plot)
        self.premium_title.setPos(AXIS_WIDTH + 2, -3)
        self.premium_title.setZValue(10)
        for line in (self.entry_line, self.stop_line, self.target_line):
            line.setVisible(False)
            self.premium_plot.addItem(line, ignoreBounds=False)
        self.v_line2 = pg.InfiniteLine(angle=90, movable=False)
        self.v_line2.setVisible(False)
        self.premium_plot.addItem(self.v_line2, ignoreBounds=True)

    def _finish_build(self) -> None:
        # The layout is sized to the view once all its rows are in: a view resized while only the readout's
        # row (two lines high at most) was in kept the chart that high until its next resize.
        self.ci.setGeometry(QRectF(0, 0, self.width(), self.height()))
        self._mouse_proxy = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        self.set_theme(self._theme)

    def prerender_axes(self, budget: int = 1) -> int:
        """Regenerates up to `budget` axes whose tick labels are stale (a background tab, at a low rate).

        Regenerating an axis (tick values, label texts and their sizes) costs 1.5-3 ms; a chart brought
        forward with all its axes stale spent 5-10 ms of its first frame on them. Returns how many were done.
        """
        done = 0
        if not self.ready:
            return 0
        for plot in (self.price_plot, self.premium_plot):
            if not plot.isVisible():
                continue
            for axis in plot.axes():
                if done < budget and axis.isVisible() and axis.picture is None:
                    render_axis(axis)
                    done += 1
        return done

    def held_background(self) -> str:
        """The colour a held-back paint fills the chart with: its background in the current theme."""
        return self._theme.chart_bg

    # ------------------------------------------------------------------ theme
    def set_theme(self, theme: Theme) -> None:
        """Recolours everything (candles are re-recorded)."""
        self._theme = theme
        if not self.ready:
            return  # the last construction step applies it (the step is taken off the list as it runs)
        self.setBackground(theme.chart_bg)
        for plot in (self.price_plot, self.premium_plot):
            for ax in plot.axes():
                ax.setPen(pg.mkPen(theme.chart_fg))
                ax.setTextPen(pg.mkPen(theme.chart_fg))
        self.candles.set_theme(theme)
        self.fast_curve.setPen(pg.mkPen(theme.fast_ema, width=1))
        self.slow_curve.setPen(pg.mkPen(theme.slow_ema, width=1))
        self.entries.setBrush(pg.mkBrush(theme.entry_marker))
        self.entries.setPen(pg.mkPen(theme.chart_fg))
        self.exits.setBrush(pg.mkBrush(theme.exit_marker))
        self.exits.setPen(pg.mkPen(theme.chart_fg))
        self.premium_curve.setPen(pg.mkPen(theme.chart_fg, width=1))
        self.entry_line.setPen(pg.mkPen(theme.chart_fg, width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.stop_line.setPen(pg.mkPen(theme.stop_line, width=1))
        self.target_line.setPen(pg.mkPen(theme.profit, width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        for line, colour in ((self.entry_line, theme.chart_fg), (self.stop_line, theme.stop_line),
                             (self.target_line, theme.profit)):  # fmt: skip
            line.label.setColor(colour)
        self._show_premium_title()
        self.clear_crosshair()  # the readout row shows the EMA legend in the new colours
        cross = pg.mkPen(theme.muted, width=1, style=pg.QtCore.Qt.PenStyle.DotLine)
        for line in (self.v_line, self.h_line, self.v_line2):
            line.setPen(cross)

    # ------------------------------------------------------------------ updates
    def needs_full_update(self, seg: SegmentSnapshot) -> bool:
        """True when `seg` closed a bar (or loaded history): the costly kind of update, axes included."""
        return seg.bars_version != self.candles._version

    def update_from(self, seg: SegmentSnapshot) -> None:
        """Brings the chart up to `seg`: work proportional to what changed, not to the history."""
        t0 = time.perf_counter()
        n_before = len(self.candles.bars)
        if self.candles.set_bars(seg.bars, seg.bars_version, seg.forming_bar):
            self._starts = [b.start for b in seg.bars]
            self._fast = floats(seg.fast_ema)
            self._slow = floats(seg.slow_ema)
            x = np.arange(len(self._fast), dtype=float)
            self.fast_curve.setData(x, self._fast, connect="finite")
            self.slow_curve.setData(np.arange(len(self._slow), dtype=float), self._slow, connect="finite")
            self._follow_latest(n_before, len(seg.bars))
            self.price_plot.getAxis("bottom").bars_changed()
            self._markers = None  # marker x positions depend on the bars
            # Record the new bars in view now, a bar or two per close (in the background too), so the
            # frame that shows this chart only replays pictures: a tab brought forward after a while
            # would otherwise record every bar that closed meanwhile inside that one paint.
            x0, x1 = self.price_plot.getViewBox().viewRange()[0]
            self.candles.ensure_drawn(math.floor(x0), math.ceil(x1) + 1)
        if self._awaiting_data and seg.bars:
            self._awaiting_data = False
            self.release_paint()
        if seg.markers is not self._markers:
            self._markers = seg.markers
            self._draw_markers(seg)
        self._fit_price_range()
        self._update_premium(seg)
        self.update_ms.append((time.perf_counter() - t0) * 1000)

    def _x_of(self, t: datetime) -> float:
        """The x (bar index) of a market time: its bar, or the forming bar past the last closed one."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0:
            return 0.0
        if i == len(self._starts) - 1 and t - self._starts[i] >= _MINUTE:
            return float(i + 1)  # after the last closed bar: the forming bar
        return float(i)

    def _fit_price_range(self, refit: bool = False) -> None:
        """Keeps the visible bars in view: grows at once, shrinks only when they fill under 60 % of it."""
        vb = self.price_plot.getViewBox()
        bounds = self.candles.dataBounds(1, orthoRange=tuple(vb.viewRange()[0]))
        if bounds is None:
            return
        fit_y(vb, *bounds, refit)

    def _fit_premium_range(self, refit: bool = False) -> None:
        """The same for the premium strip: its samples in view and the entry, stop and target lines shown."""
        vb = self.premium_plot.getViewBox()
        xs, ys = self.premium_curve.getData()
        values = list(self._premium_levels)
        if xs is not None and len(xs):
            x0, x1 = vb.viewRange()[0]
            in_view = ys[(xs >= x0) & (xs <= x1)]
            if len(in_view):
                values += [float(in_view.min()), float(in_view.max())]
        if values:
            lo, hi = min(values), max(values)
            # Room for a level's label above the highest and below the lowest line (one text line each way):
            # "entry 155.40" was cut at the strip's bottom edge.
            room = (hi - lo) * LABEL_PX / max(vb.height() - 2 * LABEL_PX, LABEL_PX)
            fit_y(vb, lo - room, hi + room, refit)

    def _follow_latest(self, n_before: int, n_now: int) -> None:
        vb = self.price_plot.getViewBox()
        if not self._framed:
            if n_now:
                self._framed = True
                vb.setXRange(max(-0.5, n_now - VISIBLE_BARS), n_now + FOLLOW_MARGIN_BARS, padding=0)
            return
        x0, x1 = vb.viewRange()[0]
        # The trader was watching the latest bar, and the forming bar (at n_now) is about to leave the view:
        # jump ahead so that it has FOLLOW_MARGIN_BARS of room again.
        if x1 >= n_before - 1 and n_now + 1 > x1:
            shift = n_now + FOLLOW_MARGIN_BARS - x1
            vb.setXRange(x0 + shift, x1 + shift, padding=0)

    def _draw_markers(self, seg: SegmentSnapshot) -> None:
        for kind, item in (("entry", self.entries), ("exit", self.exits)):
            ms = [m for m in seg.markers if m.kind == kind]
            item.setData(
                x=[self._x_of(m.time) for m in ms],
                y=[float(m.index_price) for m in ms],
                data=[m.label for m in ms],
            )

    @staticmethod
    def _marker_tip(x: float, y: float, data: object) -> str:
        return str(data)

    def record_premium(self, seg: SegmentSnapshot) -> None:
        """Keeps the held option's premium sample (also while the tab is in the background), no drawing."""
        if seg.option_symbol != self._premium_symbol and seg.option_symbol is not None:
            self._premium_symbol = seg.option_symbol
            if self.ready:
                self._show_premium_title()
            self._premium_t.clear()
            self._premium_y.clear()
            self._premium_pending = True
        sample = (seg.last_tick_time, seg.option_price)
        if (
            seg.option_symbol
            and seg.option_price is not None
            and seg.last_tick_time
            and sample != self._last_sample
        ):
            self._last_sample = sample
            self._premium_t.append(seg.last_tick_time)
            self._premium_y.append(float(seg.option_price))
            self._premium_pending = True

    def _update_premium(self, seg: SegmentSnapshot) -> None:
        self.record_premium(seg)
        now = time.monotonic()
        refit = False
        if self._premium_pending and now - self._premium_drawn_at >= PREMIUM_REDRAW_S:
            # Drawn twice a second. x is placed by time at draw time, so samples kept in the background
            # land on the right bars.
            self._premium_drawn_at = now
            self._premium_pending = False
            xs = np.fromiter(
                (self._x_of(t) + t.second / 60 for t in self._premium_t), float, len(self._premium_t)
            )
            self.premium_curve.setData(xs, np.fromiter(self._premium_y, float, len(self._premium_y)))
            refit = True
        # The premium strip shows only while there is a premium to show.
        shown = bool(seg.quantity) or bool(self._premium_t)
        if shown != self.premium_plot.isVisible():
            # A hidden item keeps its row in a graphics layout: the strip's row goes to nothing with it,
            # else the candles sat above an empty fifth of the pane.
            self.premium_plot.setVisible(shown)
            self.premium_plot.setMaximumHeight(1e6 if shown else 0)
            self.ci.layout.setRowStretchFactor(2, 1 if shown else 0)
        levels: list[float] = []
        for line, value in (
            (self.entry_line, seg.entry_price),
            (self.stop_line, seg.stop_price),
            (self.target_line, seg.target_price),
        ):
            shown = value is not None and seg.quantity != 0
            line.setVisible(shown)
            if value is None:
                continue
            if shown:
                levels.append(float(value))
            if line.value() != float(value):
                line.setValue(float(value))
        if refit or levels != self._premium_levels:
            self._premium_levels = levels
            self._fit_premium_range()

    # ------------------------------------------------------------------ crosshair
    def premium_title_text(self, width: float) -> str:
        """ "NIFTY26JAN25900CE premium", the symbol elided in its middle to fit `width` pixels."""
        if not self._premium_symbol:
            return ""
        metrics = QFontMetricsF(self.premium_title.item.font())
        room = max(width - metrics.horizontalAdvance(" premium") - 12, 30)
        symbol = metrics.elidedText(self._premium_symbol, Qt.TextElideMode.ElideMiddle, room)
        return f"{symbol} premium"

    def _show_premium_title(self) -> None:
        width = self.premium_plot.getViewBox().width() or self.width()
        self.premium_title.setText(self.premium_title_text(width), color=self._theme.chart_fg, size="8pt")

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        # pyqtgraph resizes the view while it is being built, and while closing, once its items are deleted.
        if hasattr(self, "_steps") and self.ready and not self.closed:
            self._show_premium_title()

    def legend_text(self) -> str:
        """What the readout row shows while the mouse is away: which colour is which EMA."""
        return legend_text(self._theme)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt API
        super().leaveEvent(event)
        self.clear_crosshair()

    def clear_crosshair(self) -> None:
        """The mouse left the chart: the readout and the crosshair go (the row shows the legend)."""
        if not self.ready:
            return
        self.readout.show_fitting([self.legend_text()])
        for line in (self.v_line, self.h_line, self.v_line2):
            line.setVisible(False)

    def _mouse_moved(self, event: tuple[QPointF]) -> None:
        pos = event[0]
        vb = self.price_plot.getViewBox()
        if not self.price_plot.sceneBoundingRect().contains(pos):
            self.clear_crosshair()
            return
        for line in (self.v_line, self.h_line, self.v_line2):
            line.setVisible(True)
        point = vb.mapSceneToView(pos)
        self.v_line.setPos(point.x())
        self.v_line2.setPos(point.x())
        self.h_line.setPos(point.y())
        self.readout.show_fitting(self.readout_variants(round(point.x()), point.y()))

    def readout_text(self, i: int, y: float) -> str:
        """The crosshair's values: the bar under the cursor (O/H/L/C, both EMAs) and the cursor's price."""
        return self.readout_variants(i, y)[0]

    def readout_variants(self, i: int, y: float) -> list[str]:
        """The readout from the fullest to the shortest: a narrow pane shows the longest that fits."""
        return readout_variants(
            self.segment.value, self.candles.bars, self._fast, self._slow, self._theme, i, y
        )
