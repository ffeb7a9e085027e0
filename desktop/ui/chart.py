"""The live index chart: candles drawn incrementally, both EMAs, trade markers, the held option's stop.

Bars are drawn once each into a cached QPicture at x = 0 and painted translated to their index, so a
new closed bar costs one picture, the forming bar is re-recorded on each refresh, and dropping old bars
from the front (a sliding window) needs no redraw. Only the bars inside the exposed rectangle are painted.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QBrush, QPainter, QPen, QPicture
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from desktop.domain import Bar, Segment
from desktop.engine.snapshots import SegmentSnapshot
from desktop.ui.theme import Theme

BODY_HALF_WIDTH = 0.35
VISIBLE_BARS = 90
_MINUTE = timedelta(minutes=1)
MAX_PREMIUM_SAMPLES = 20_000
PREMIUM_REDRAW_S = 0.5


class CandlestickItem(pg.GraphicsObject):
    """Candles with a per-bar picture cache; `bars_drawn` counts pictures recorded (for tests and the bench)."""

    def __init__(self, theme: Theme) -> None:
        super().__init__()
        self._theme = theme
        # So paint() gets the exposed rectangle (the forming bar's column), not the whole item.
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._bars: list[Bar] = []
        # One picture per closed bar, recorded the first time the bar is painted (None until then), so
        # a day of warm-up history costs nothing until the trader scrolls to it.
        self._pictures: list[QPicture | None] = []
        self._pens: dict[bool, tuple[QPen, QBrush]] = {}
        self._lows = np.empty(0)
        self._highs = np.empty(0)
        self._forming: Bar | None = None
        self._forming_picture: QPicture | None = None
        self._version: int | None = None
        self._closed_range: tuple[float, float] | None = None  # low/high of all closed bars
        self._bounds = QRectF()
        self.bars_drawn = 0

    # ------------------------------------------------------------------ data
    @property
    def bars(self) -> Sequence[Bar]:
        """The closed bars shown, oldest first."""
        return self._bars

    def set_theme(self, theme: Theme) -> None:
        """Drops every cached picture: bars are re-recorded in the new theme's colours as they are painted."""
        self._theme = theme
        self._pens = {}
        self._pictures = [None] * len(self._bars)
        self._forming_picture = self._record(self._forming) if self._forming else None
        self.update()

    def set_bars(self, bars: Sequence[Bar], version: int, forming: Bar | None) -> bool:
        """Shows `bars` (closed) and `forming`; bars drawn before keep their pictures.

        Returns True when the closed bars changed (a chart then updates what depends on them).
        """
        closed_changed = version != self._version
        before = self._bounds
        if closed_changed:
            self._version = version
            self._merge_closed(bars)
        forming_changed = forming != self._forming
        if forming_changed:
            old_forming = self._forming
            self._forming = forming
            self._forming_picture = self._record(forming) if forming is not None else None
        self._bounds = self._full_bounds()
        if closed_changed or self._bounds != before:
            self.prepareGeometryChange()
            self.update()
        elif forming_changed and forming is not None:
            # Only the forming bar moved: repaint its column, not the chart (nor the axes beside it).
            lows = [float(forming.low)] + ([float(old_forming.low)] if old_forming else [])
            highs = [float(forming.high)] + ([float(old_forming.high)] if old_forming else [])
            x = len(self._bars) - 0.5
            self.update(QRectF(x, min(lows), 1.0, max(max(highs) - min(lows), 1e-6)))
        return closed_changed

    def _merge_closed(self, bars: Sequence[Bar]) -> None:
        old = self._bars
        keep = 0
        if old and bars:
            # Where does our last drawn bar sit in the new list? Everything before it is already drawn.
            starts = [b.start for b in bars]
            j = bisect.bisect_left(starts, old[-1].start)
            if j < len(bars) and bars[j] == old[-1]:
                dropped = len(old) - 1 - j  # bars trimmed from the front (sliding window)
                if dropped >= 0 and (dropped == 0 or old[dropped] == bars[0]):
                    self._pictures = self._pictures[dropped:]
                    keep = j + 1
        if keep == 0:
            self._pictures = []
        self._pictures.extend([None] * (len(bars) - keep))
        self._bars = list(bars)
        self._lows = np.fromiter((float(b.low) for b in bars), float, len(bars))
        self._highs = np.fromiter((float(b.high) for b in bars), float, len(bars))
        self._closed_range = (float(self._lows.min()), float(self._highs.max())) if len(bars) else None

    def _full_bounds(self) -> QRectF:
        values = list(self._closed_range or ())
        if self._forming is not None:
            values += [float(self._forming.low), float(self._forming.high)]
        if not values:
            return QRectF()
        n = len(self._bars) + (1 if self._forming is not None else 0)
        lo, hi = min(values), max(values)
        return QRectF(-0.5, lo, n, max(hi - lo, 1e-6))

    def ensure_drawn(self, i0: int, i1: int) -> None:
        """Records the pictures of closed bars i0..i1-1 that have none yet."""
        pictures, bars = self._pictures, self._bars
        for i in range(max(0, i0), min(len(pictures), i1)):
            if pictures[i] is None:
                pictures[i] = self._record(bars[i])

    def _pen(self, up: bool) -> tuple[QPen, QBrush]:
        if up not in self._pens:
            colour = self._theme.candle_up if up else self._theme.candle_down
            self._pens[up] = (pg.mkPen(colour, width=1), pg.mkBrush(colour))
        return self._pens[up]

    def _record(self, bar: Bar) -> QPicture:
        self.bars_drawn += 1
        pen, brush = self._pen(bar.close >= bar.open)
        pic = QPicture()
        p = QPainter(pic)
        p.setPen(pen)
        p.setBrush(brush)
        low, high, o, c = float(bar.low), float(bar.high), float(bar.open), float(bar.close)
        p.drawLine(QPointF(0, low), QPointF(0, high))
        top, bottom = max(o, c), min(o, c)
        p.drawRect(QRectF(-BODY_HALF_WIDTH, bottom, 2 * BODY_HALF_WIDTH, max(top - bottom, 1e-9)))
        p.end()
        return pic

    # ------------------------------------------------------------------ geometry
    def _y_bounds(self, i0: int, i1: int) -> tuple[float, float] | None:
        lows, highs = self._lows[i0:i1], self._highs[i0:i1]
        values: list[float] = []
        if lows.size:
            values += [float(lows.min()), float(highs.max())]
        if self._forming is not None and i1 > len(self._bars):
            values += [float(self._forming.low), float(self._forming.high)]
        return (min(values), max(values)) if values else None

    def dataBounds(  # noqa: N802 - pyqtgraph API
        self,
        ax: int,
        frac: float = 1.0,
        orthoRange: tuple[float, float] | None = None,  # noqa: N803
    ) -> tuple[float, float] | None:
        """Bounds for auto-range; along y only the bars inside `orthoRange` (x) count."""
        n = len(self._bars) + (1 if self._forming is not None else 0)
        if n == 0:
            return None
        if ax == 0:
            return (-0.5, n - 0.5)
        i0, i1 = 0, n
        if orthoRange is not None:
            i0 = max(0, math.floor(orthoRange[0] + 0.5))
            i1 = min(n, math.ceil(orthoRange[1] + 0.5))
            if i0 >= i1:
                return None
        return self._y_bounds(i0, i1)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return QRectF(self._bounds)

    def paint(self, p: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        """Paints the cached pictures of the bars in view (recording any not drawn yet)."""
        rect = option.exposedRect
        left, right = rect.left(), rect.right()
        vb = self.getViewBox()
        if vb is not None:  # pyqtgraph exposes the whole item: clip to the visible time range ourselves
            x0, x1 = vb.viewRange()[0]
            left, right = max(left, x0), min(right, x1)
        n = len(self._pictures)
        i0 = max(0, math.floor(left))
        i1 = min(n, math.ceil(right) + 1)
        self.ensure_drawn(i0, i1)
        pictures = self._pictures
        for i in range(i0, i1):
            p.drawPicture(QPointF(i, 0), pictures[i])  # type: ignore[arg-type]
        if self._forming_picture is not None:
            p.drawPicture(QPointF(n, 0), self._forming_picture)


class TimeAxis(pg.AxisItem):
    """Bottom axis labelling bar indices with the bar's market time."""

    def __init__(self, candles: CandlestickItem) -> None:
        super().__init__(orientation="bottom")
        self._candles = candles

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        bars = self._candles.bars
        if not bars:
            return ["" for _ in values]
        today = bars[-1].start.date()
        out = []
        for v in values:
            i = round(v)
            if not 0 <= i < len(bars):
                out.append("")
                continue
            start = bars[i].start
            # Warm-up history from an earlier day is marked with its date.
            out.append(start.strftime("%H:%M" if start.date() == today else "%d %b %H:%M"))
        return out


def _floats(values: Sequence[object]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)  # type: ignore[arg-type]


class IndexChart(pg.GraphicsLayoutWidget):
    """One segment's index chart (candles, EMAs, markers, crosshair) above the held option's premium."""

    def __init__(self, segment: Segment, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.segment = segment
        self._theme = theme
        self.candles = CandlestickItem(theme)
        self.readout = pg.LabelItem(justify="left")
        self.addItem(self.readout, row=0, col=0)
        # No pyqtgraph context menus: they cost most of a chart's construction and a trader never uses them.
        self.price_plot = self.addPlot(
            row=1, col=0, axisItems={"bottom": TimeAxis(self.candles)}, enableMenu=False
        )
        self.premium_plot = self.addPlot(row=2, col=0, enableMenu=False)
        self.ci.layout.setRowStretchFactor(1, 4)
        self.ci.layout.setRowStretchFactor(2, 1)
        self.premium_plot.setXLink(self.price_plot)
        self.premium_plot.hideAxis("bottom")
        # No grid: pyqtgraph draws it as part of the axes, which would then repaint, tick labels and
        # all, whenever anything inside the plot moves (the forming bar, 15 times a second).
        for plot in (self.price_plot, self.premium_plot):
            plot.getAxis("left").setWidth(64)  # equal widths keep the two plots' time axes aligned
        for plot in (self.price_plot, self.premium_plot):
            plot.setMouseEnabled(x=True, y=False)  # wheel zooms time; price follows the visible bars
            plot.enableAutoRange(y=True)
            plot.setAutoVisible(y=True)
            plot.setClipToView(True)
        # The price axis is fitted by _fit_price_range with some slack: pyqtgraph's auto-range would
        # rescale (and repaint both axes) on nearly every tick of the forming bar.
        self.price_plot.enableAutoRange(y=False)
        self.price_plot.getViewBox().sigXRangeChanged.connect(lambda *_: self._fit_price_range(refit=True))
        self.price_plot.addItem(self.candles)
        self.fast_curve = self.price_plot.plot(connect="finite")
        self.slow_curve = self.price_plot.plot(connect="finite")
        self.entries = pg.ScatterPlotItem(symbol="t1", size=13, hoverable=True, tip=self._marker_tip)
        self.exits = pg.ScatterPlotItem(symbol="t", size=13, hoverable=True, tip=self._marker_tip)
        self.price_plot.addItem(self.entries)
        self.price_plot.addItem(self.exits)
        self.premium_curve = self.premium_plot.plot()
        self.entry_line = pg.InfiniteLine(angle=0, movable=False)
        self.stop_line = pg.InfiniteLine(angle=0, movable=False)
        self.target_line = pg.InfiniteLine(angle=0, movable=False)
        for line in (self.entry_line, self.stop_line, self.target_line):
            line.setVisible(False)
            self.premium_plot.addItem(line, ignoreBounds=False)
        self.v_line = pg.InfiniteLine(angle=90, movable=False)
        self.h_line = pg.InfiniteLine(angle=0, movable=False)
        self.v_line2 = pg.InfiniteLine(angle=90, movable=False)
        self.price_plot.addItem(self.v_line, ignoreBounds=True)
        self.price_plot.addItem(self.h_line, ignoreBounds=True)
        self.premium_plot.addItem(self.v_line2, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        self._starts: list[datetime] = []
        self._fast = np.empty(0)
        self._slow = np.empty(0)
        self._markers: object = None
        self._premium_symbol: str | None = None
        self._premium_x: deque[float] = deque(maxlen=MAX_PREMIUM_SAMPLES)
        self._premium_y: deque[float] = deque(maxlen=MAX_PREMIUM_SAMPLES)
        self._last_sample: tuple[datetime | None, object] = (None, None)
        self._premium_drawn_at = 0.0
        self._framed = False
        self.update_ms: deque[float] = deque(maxlen=2000)
        self.set_theme(theme)

    # ------------------------------------------------------------------ theme
    def set_theme(self, theme: Theme) -> None:
        """Recolours everything (candles are re-recorded)."""
        self._theme = theme
        self.setBackground(theme.chart_bg)
        for plot in (self.price_plot, self.premium_plot):
            for name in ("left", "bottom"):
                ax = plot.getAxis(name)
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
            self._fast = _floats(seg.fast_ema)
            self._slow = _floats(seg.slow_ema)
            x = np.arange(len(self._fast), dtype=float)
            self.fast_curve.setData(x, self._fast, connect="finite")
            self.slow_curve.setData(np.arange(len(self._slow), dtype=float), self._slow, connect="finite")
            self._follow_latest(n_before, len(seg.bars))
            self._markers = None  # marker x positions depend on the bars
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
        lo, hi = bounds
        y0, y1 = vb.viewRange()[1]
        span = max(hi - lo, 1e-6)
        if refit or lo < y0 or hi > y1 or span < 0.6 * (y1 - y0):
            pad = span * 0.08
            vb.setYRange(lo - pad, hi + pad, padding=0)

    def _follow_latest(self, n_before: int, n_now: int) -> None:
        vb = self.price_plot.getViewBox()
        if not self._framed:
            if n_now:
                self._framed = True
                vb.setXRange(max(-0.5, n_now - VISIBLE_BARS), n_now + 3, padding=0)
            return
        x0, x1 = vb.viewRange()[0]
        if x1 >= n_before - 1:  # the trader was watching the latest bar: keep it in view
            shift = n_now - n_before
            if shift:
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

    def _update_premium(self, seg: SegmentSnapshot) -> None:
        if seg.option_symbol != self._premium_symbol and seg.option_symbol is not None:
            self._premium_symbol = seg.option_symbol
            self._premium_x.clear()
            self._premium_y.clear()
        sample = (seg.last_tick_time, seg.option_price)
        if (
            seg.option_symbol
            and seg.option_price is not None
            and seg.last_tick_time
            and sample != self._last_sample
        ):
            self._last_sample = sample
            x = self._x_of(seg.last_tick_time) + seg.last_tick_time.second / 60
            self._premium_x.append(x)
            self._premium_y.append(float(seg.option_price))
            now = time.monotonic()
            if now - self._premium_drawn_at >= PREMIUM_REDRAW_S:
                # Samples are kept at every refresh, drawn twice a second: each redraw rescales the
                # strip and repaints its axis, the costly part of a chart frame.
                self._premium_drawn_at = now
                self.premium_curve.setData(
                    np.fromiter(self._premium_x, float), np.fromiter(self._premium_y, float)
                )
        # The premium strip shows only while there is a premium to show.
        self.premium_plot.setVisible(bool(seg.quantity) or bool(self._premium_x))
        for line, value in (
            (self.entry_line, seg.entry_price),
            (self.stop_line, seg.stop_price),
            (self.target_line, seg.target_price),
        ):
            line.setVisible(value is not None and seg.quantity != 0)
            if value is not None and line.value() != float(value):
                line.setValue(float(value))

    # ------------------------------------------------------------------ crosshair
    def _mouse_moved(self, event: tuple[QPointF]) -> None:
        pos = event[0]
        vb = self.price_plot.getViewBox()
        if not self.price_plot.sceneBoundingRect().contains(pos):
            return
        point = vb.mapSceneToView(pos)
        self.v_line.setPos(point.x())
        self.v_line2.setPos(point.x())
        self.h_line.setPos(point.y())
        self.readout.setText(self.readout_text(round(point.x()), point.y()))

    def readout_text(self, i: int, y: float) -> str:
        """The crosshair's values: the bar under the cursor (O/H/L/C, both EMAs) and the cursor's price."""
        bars = self.candles.bars
        colour = self._theme.chart_fg
        if 0 <= i < len(bars):
            b = bars[i]
            fast = self._fast[i] if i < len(self._fast) else math.nan
            slow = self._slow[i] if i < len(self._slow) else math.nan
            ema = "  ".join(
                f"<span style='color:{c}'>{name} {v:,.2f}</span>"
                for name, v, c in (("fast", fast, self._theme.fast_ema), ("slow", slow, self._theme.slow_ema))
                if not math.isnan(v)
            )
            return (
                f"<span style='color:{colour}'>{self.segment.value} {b.start:%H:%M}  O {b.open:,.2f}  "
                f"H {b.high:,.2f}  L {b.low:,.2f}  C {b.close:,.2f}  · {y:,.2f}</span>  {ema}"
            )
        return f"<span style='color:{colour}'>{self.segment.value}  · {y:,.2f}</span>"
