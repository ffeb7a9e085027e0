"""One segment of a session: agent state, last tick, signal, position, and its live index chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from desktop.domain import Segment
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.ui.fence import GeometryFence
from desktop.ui.tables import fmt_money, fmt_rupees, fmt_time
from desktop.ui.theme import Theme, pnl_color

if TYPE_CHECKING:
    from desktop.ui.chart import IndexChart

_STATE_COLOURS = {
    AgentState.RUNNING: "profit",
    AgentState.FAILED: "loss",
}


def _set_text(label: QLabel, text: str) -> None:
    """Sets a label's text only when it changed (each new text repaints the label)."""
    if label.text() != text:
        label.setText(text)


class SegmentPanel(QWidget):
    """Labels above an IndexChart; `show_snapshot` is called by the session tab's refresh."""

    def __init__(
        self, segment: Segment, theme: Theme, parent: QWidget | None = None, staged: bool = False
    ) -> None:
        """`staged`: the chart is only a shell until `build_step()` has been called until it returns False."""
        super().__init__(parent)
        self.segment = segment
        self._theme = theme
        self._last: SegmentSnapshot | None = None
        self._charted: SegmentSnapshot | None = None  # the snapshot the chart shows
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        # The labels change 15 times a second. Their box has a fixed height and they claim no width, so a
        # new text never changes the layout: the chart below keeps its size (a resized chart re-lays out
        # and repaints everything, axes included), and, fenced, only the label itself repaints.
        head = QWidget()
        grid = QGridLayout(head)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(2)
        self.title = QLabel(f"<b>{segment.value}</b>")
        self.state = QLabel("—")
        self.tick = QLabel("last tick —")
        self.signal = QLabel("signal —")
        self.position = QLabel("flat")
        self.pnl = QLabel("")
        self.note = QLabel("")
        for label in (self.state, self.tick, self.signal, self.position, self.pnl, self.note):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        grid.addWidget(self.title, 0, 0)
        grid.addWidget(self.state, 0, 1)
        grid.addWidget(self.tick, 0, 2)
        grid.addWidget(self.signal, 0, 3)
        # The held option's line is the longest (symbol, entry, LTP, SL, target): it gets the full width.
        grid.addWidget(self.position, 1, 0, 1, 4)
        grid.addWidget(self.pnl, 2, 0, 1, 2)
        grid.addWidget(self.note, 2, 2, 1, 2)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 2)
        grid.setColumnStretch(3, 3)
        line = self.fontMetrics().height()
        lay.addWidget(GeometryFence(head, 3 * line + 2 * grid.verticalSpacing() + 2))
        # pyqtgraph (and numpy) are imported with the first chart, not for the first window.
        from desktop.ui.chart import IndexChart

        self.chart: IndexChart = IndexChart(segment, theme, staged=staged)
        self.chart.setMinimumHeight(220)
        lay.addWidget(self.chart, 1)

    @property
    def ready(self) -> bool:
        """The chart is built and shows the last snapshot given."""
        return self.chart.ready and self._charted is self._last

    def build_step(self) -> bool:
        """One step of a staged panel (5-15 ms: a part of the chart, or its first drawing); True while more remain."""
        if not self.chart.ready:
            self.chart.build_step()
            return True
        if self._charted is not self._last and self._last is not None:
            self._charted = self._last
            self.chart.update_from(self._last)
        return False

    def set_theme(self, theme: Theme) -> None:
        """Recolours the labels and the chart."""
        self._theme = theme
        self.chart.set_theme(theme)
        if self._last is not None:
            last, self._last = self._last, None
            self.show_snapshot(last)

    def needs_full_update(self, seg: SegmentSnapshot) -> bool:
        """Showing `seg` would redraw the chart's axes and curves (a bar closed)."""
        return seg is not self._last and self.chart.ready and self.chart.needs_full_update(seg)

    def show_snapshot(self, seg: SegmentSnapshot) -> bool:
        """Shows `seg`; the chart redraws only what changed. False when `seg` was already shown."""
        if seg is self._last:
            return False
        self._last = seg
        colour = getattr(self._theme, _STATE_COLOURS.get(seg.state, "text"))
        state = seg.state.value + (f": {seg.failure}" if seg.failure else "")
        _set_text(self.state, f"<span style='color:{colour}'>● {state}</span>")
        self.state.setToolTip(seg.failure or "")
        _set_text(self.tick, f"last tick {fmt_time(seg.last_tick_time) or '—'}")
        _set_text(self.signal, f"signal {seg.signal or '—'}")
        if seg.quantity and seg.option_symbol:
            parts = [f"<b>{seg.option_symbol}</b> × {seg.quantity}", f"entry {fmt_money(seg.entry_price)}"]
            if seg.option_price is not None:
                parts.append(f"LTP {fmt_money(seg.option_price)}")
            if seg.stop_price is not None:
                parts.append(
                    f"<span style='color:{self._theme.stop_line}'>SL {fmt_money(seg.stop_price)}</span>"
                )
            if seg.target_price is not None:
                parts.append(f"target {fmt_money(seg.target_price)}")
            _set_text(self.position, " · ".join(parts))
        else:
            _set_text(self.position, f"flat · trades today {seg.trades_today}")
        total = seg.realised_pnl + seg.unrealised_pnl
        _set_text(
            self.pnl,
            f"<span style='color:{pnl_color(self._theme, total)}'>P&amp;L {fmt_rupees(total)}</span>",
        )
        if self.note.text() != seg.note:  # its line is kept even when empty: no relayout when a note comes
            self.note.setText(seg.note)
            self.note.setToolTip(seg.note)  # a long note is cut at the panel's edge; the tip shows it all
        if self.chart.ready:  # else its last build step draws the latest snapshot
            self._charted = seg
            self.chart.update_from(seg)
        return True
