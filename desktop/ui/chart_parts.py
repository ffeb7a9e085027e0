"""The parts of the index chart that stand on their own: a widget whose paint can be held back, the crosshair's
readout, how an axis is rendered ahead of its paint, and how a price range is fitted with slack."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPaintEvent, QPicture
from PySide6.QtWidgets import QWidget

from desktop.domain import Bar
from desktop.ui.theme import Theme

STAGGER_STEP_MS = 15  # from one chart's first paint to the next chart's release
DEFER_FALLBACK_MS = 1500  # a deferred chart paints by then even if the chain before it never ran

# Level labels toward the strip's right end (its title is at the left): the entry and the stop above their
# lines, the target below its own; the entry's further left, so a stop close to the entry does not put both
# on one spot. The strip's range keeps a label's height of room beyond its highest and lowest lines.
LABEL_PX = 16  # a level label's height on the premium strip
LABEL_BELOW = {"position": 0.98, "anchors": [(1, 0), (1, 0)]}
LABEL_ABOVE_MID = {"position": 0.72, "anchors": [(1, 1), (1, 1)]}
LABEL_ABOVE = {"position": 0.98, "anchors": [(1, 1), (1, 1)]}


def render_axis(axis: pg.AxisItem) -> None:
    """What `pg.AxisItem.paint` does when its cached picture is stale, done ahead of the paint."""
    picture = QPicture()
    painter = QPainter(picture)
    try:
        if axis.style["tickFont"]:
            painter.setFont(axis.style["tickFont"])
        specs = axis.generateDrawSpecs(painter)
        if specs is not None:
            axis.drawPicture(painter, *specs)
    finally:
        painter.end()
    axis.picture = picture


def fit_y(vb: pg.ViewBox, lo: float, hi: float, refit: bool) -> None:
    """Shows lo..hi: the range grows at once but shrinks only when they fill under 60 % of it, so that
    most updates leave the axis (and its tick labels) as they were."""
    y0, y1 = vb.viewRange()[1]
    span = max(hi - lo, 1e-6)
    if refit or lo < y0 or hi > y1 or span < 0.6 * (y1 - y0):
        pad = span * 0.08
        vb.setYRange(lo - pad, hi + pad, padding=0)


def floats(values: Sequence[object]) -> np.ndarray:
    """Values as floats, None as NaN (a gap in a curve)."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)  # type: ignore[arg-type]


class ReadoutItem(pg.LabelItem):
    """The crosshair's readout above the price plot: always two lines high, as wide as its pane, wrapped.

    pyqtgraph's LabelItem asks its layout for its text's full width: a long readout widened the chart's column
    past its pane (the newest candles went out of sight) and the plot jumped as texts came and went.
    """

    LINES = 2

    def __init__(self) -> None:
        super().__init__(" ", justify="left")
        self.setFlag(self.GraphicsItemFlag.ItemClipsChildrenToShape)

    def _height(self) -> float:
        return math.ceil(self.LINES * QFontMetricsF(self.item.font()).lineSpacing()) + 9  # + the text margins

    def updateMin(self) -> None:  # noqa: N802 - pyqtgraph API
        height = self._height()
        self.setMinimumWidth(0)
        self.setMinimumHeight(height)
        self.setMaximumHeight(height)
        self._sizeHint = {
            Qt.SizeHint.MinimumSize: (0, height),
            Qt.SizeHint.PreferredSize: (0, height),
            Qt.SizeHint.MaximumSize: (-1, height),
            Qt.SizeHint.MinimumDescent: (0, 0),
        }
        self.updateGeometry()

    def show_fitting(self, variants: Sequence[str]) -> None:
        """Shows the first of `variants` (longest first) that fits in two lines of the pane; else the last,
        cut at the pane's edge."""
        limit = self._height()
        for text in variants:
            self.setText(text)
            if self.item.boundingRect().height() <= limit:
                return

    def resizeEvent(self, ev: object) -> None:  # noqa: N802 - Qt API
        self.item.setTextWidth(max(self.rect().width(), 40.0))  # wraps at the pane's edge
        self.item.setPos(0, 0)


class PaintGatedLayout(pg.GraphicsLayoutWidget):
    """A graphics layout that can paint only its background until released, one chart after another."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._paint_deferred = False
        self._after_paint: Callable[[], None] | None = None

    def held_background(self) -> str:
        """The colour shown while the paint is held back."""
        return "#000000"

    def defer_paint(
        self, then: Callable[[], None] | None = None, fallback_ms: int = DEFER_FALLBACK_MS
    ) -> None:
        """Paints only the background until `release_paint()` (or `fallback_ms` at the latest), then the chart.

        A tab brought forward paints everything at once; charts are most of that work, so the tab releases
        them one at a time. `then` runs STAGGER_STEP_MS after this chart has painted for real, so the next
        chart paints in a later event-loop pass even when this one was slow (fixed delays collapsed: two
        charts whose timers had both expired painted in the same frame). Until released the chart shows
        its empty background, never stale pixels.
        """
        self._paint_deferred = True
        self._after_paint = then
        QTimer.singleShot(fallback_ms, self, self.release_paint)  # dropped with the chart if its tab closes

    def release_paint(self) -> None:
        """Ends `defer_paint`: the chart paints in the next frame."""
        if self._paint_deferred:
            self._paint_deferred = False
            self.viewport().update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        if self._paint_deferred:
            painter = QPainter(self.viewport())
            painter.fillRect(event.rect(), QColor(self.held_background()))
            painter.end()
            return
        super().paintEvent(event)
        if self._after_paint is not None:
            then, self._after_paint = self._after_paint, None
            QTimer.singleShot(STAGGER_STEP_MS, self, then)


def legend_text(theme: Theme) -> str:
    """What the readout row shows while the mouse is away: which colour is which EMA."""
    return (
        f"<span style='color:{theme.fast_ema}'>━ fast EMA</span>&nbsp;&nbsp;"
        f"<span style='color:{theme.slow_ema}'>━ slow EMA</span>&nbsp;&nbsp;"
        f"<span style='color:{theme.entry_marker}'>▲ entry</span>&nbsp;&nbsp;"
        f"<span style='color:{theme.exit_marker}'>▼ exit</span>"
    )


def readout_variants(
    segment: str, bars: Sequence[Bar], fast: np.ndarray, slow: np.ndarray, theme: Theme, i: int, y: float
) -> list[str]:
    """The crosshair's readout at bar `i` and price `y`, from the fullest to the shortest."""
    colour = theme.chart_fg
    if not 0 <= i < len(bars):
        return [f"<span style='color:{colour}'>{segment}  · {y:,.2f}</span>"]
    b = bars[i]
    fast_i = fast[i] if i < len(fast) else math.nan
    slow_i = slow[i] if i < len(slow) else math.nan
    ema = "  ".join(
        f"<span style='color:{c}'>{name} {v:,.2f}</span>"
        for name, v, c in (("fast", fast_i, theme.fast_ema), ("slow", slow_i, theme.slow_ema))
        if not math.isnan(v)
    )
    ohlc = f"O {b.open:,.2f}  H {b.high:,.2f}  L {b.low:,.2f}  C {b.close:,.2f}"
    head = f"<span style='color:{colour}'>{segment} {b.start:%H:%M}  "
    return [
        f"{head}{ohlc}  · {y:,.2f}</span>  {ema}",
        f"{head}{ohlc}</span>  {ema}",
        f"{head}{ohlc}</span>",
        f"<span style='color:{colour}'>{b.start:%H:%M}  C {b.close:,.2f}</span>",
    ]
