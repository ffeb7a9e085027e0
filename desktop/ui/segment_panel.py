"""One segment of a session: agent state, last tick, signal, position, and its live index chart."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from desktop.domain import Segment
from desktop.engine import AgentState, SegmentSnapshot
from desktop.ui.day_view import segment_display_state
from desktop.ui.fence import GeometryFence
from desktop.ui.tables import fmt_money, fmt_rupees, fmt_time
from desktop.ui.theme import Theme, pnl_color

if TYPE_CHECKING:
    pass


def _set_text(label: QLabel, text: str) -> None:
    """Sets a label's text only when it changed (each new text repaints the label)."""
    if label.text() != text:
        label.setText(text)


class SegmentPanel(QWidget):
    """Labels above an IndexChartView; `show_snapshot` is called by the session tab's refresh."""

    def __init__(
        self, segment: Segment, theme: Theme, parent: QWidget | None = None, staged: bool = False
    ) -> None:
        """`staged`: the chart is only a shell until `build_step()` has been called until it returns False."""
        super().__init__(parent)
        self.segment = segment
        self._theme = theme
        self._last: SegmentSnapshot | None = None
        self._charted: SegmentSnapshot | None = None  # the snapshot the chart shows
        self._session_word = "running"  # the session's state word (desktop.ui.day_view.display_state)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        # The labels change 15 times a second. Their box has a fixed height and they claim no width, so a
        # new text never changes the layout: the chart below keeps its size (a resized chart re-lays out
        # and repaints everything, axes included), and, fenced, only the label itself repaints. The box is
        # re-arranged only when the panel's width changes (_arrange): three rows when wide, more when narrow
        # (three panels at 1024 px cut "running", "last tick" and the notes).
        self._head = QWidget()
        self._grid = QGridLayout(self._head)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(14)
        self._grid.setVerticalSpacing(2)
        self.title = QLabel(f"<b>{segment.value}</b>")
        self.state = QLabel("—")
        self.tick = QLabel("last tick —")
        self.signal = QLabel("signal —")
        self.position = QLabel("flat")
        self.pnl = QLabel("")
        self.note = QLabel("")
        for label in (self.state, self.tick, self.signal, self.position, self.pnl, self.note):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        for label in (self.position, self.note):
            label.setWordWrap(True)  # the held option's line and a note wrap onto a second line
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._wide: bool | None = None
        self._fence = GeometryFence(self._head, self._head_height(wide=True))
        lay.addWidget(self._fence)
        self._arrange(wide=True)
        # pyqtgraph (and numpy) are imported with the first chart, not for the first window.
        from desktop.ui.chart import IndexChartView

        self.chart = IndexChartView(segment, theme, staged=staged)
        self.chart.setMinimumHeight(220)
        lay.addWidget(self.chart, 1)

    # The longest texts a row must hold: a panel narrower than its wide layout needs goes to the narrow one.
    _WIDE_ROW0 = "BANKNIFTY  ● market closed  last tick 15:29:59  signal DOWN 15:29"
    _WIDE_POSITION = (
        "BANKNIFTY26JAN61200CE × 30 · entry 1,412.35 · LTP 1,224.50 · SL 1,391.70 · target 1,495.00"
    )

    def _head_height(self, wide: bool) -> int:
        line = self.fontMetrics().lineSpacing()
        rows = 3 if wide else 7  # narrow: title·state / tick·signal / position (2) / P&L / note (2)
        return rows * line + (rows - 1) * self._grid.verticalSpacing() + 4

    def _arrange(self, wide: bool) -> None:
        """Places the labels for a wide or a narrow panel (only when that changes: a resize, never a text)."""
        if wide == self._wide:
            return
        self._wide = wide
        grid = self._grid
        for label in (self.title, self.state, self.tick, self.signal, self.position, self.pnl, self.note):
            grid.removeWidget(label)
        for c in range(4):
            grid.setColumnStretch(c, 0)
        if wide:
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
        else:
            grid.addWidget(self.title, 0, 0)
            grid.addWidget(self.state, 0, 1)
            grid.addWidget(self.tick, 1, 0)
            grid.addWidget(self.signal, 1, 1)
            grid.addWidget(self.position, 2, 0, 2, 2)
            grid.addWidget(self.pnl, 4, 0, 1, 2)
            grid.addWidget(self.note, 5, 0, 2, 2)
            grid.setColumnStretch(0, 1)
            grid.setColumnStretch(1, 1)
        self._fence.setFixedHeight(self._head_height(wide))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        metrics = self.fontMetrics()
        needed = max(
            metrics.horizontalAdvance(self._WIDE_ROW0) + 3 * 14,
            metrics.horizontalAdvance(self._WIDE_POSITION),
        )
        self._arrange(wide=event.size().width() - 4 >= needed)
        super().resizeEvent(event)

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

    def set_session_state(self, word: str) -> None:
        """The session's state word: a running agent of a halted session shows "halted", as the header does."""
        if word != self._session_word:
            self._session_word = word
            if self._last is not None:
                self._show_state(self._last)

    def _show_state(self, seg: SegmentSnapshot) -> None:
        word = segment_display_state(self._session_word, seg)
        colour_name = "loss" if seg.state is AgentState.FAILED else "profit" if word == "running" else "muted"
        colour = getattr(self._theme, colour_name)
        state = word + (f": {seg.failure}" if seg.failure else "")
        _set_text(self.state, f"<span style='color:{colour}'>● {state}</span>")
        self.state.setToolTip(seg.failure or "")

    def note_html(self, seg: SegmentSnapshot) -> str:
        """The segment's notes, most urgent first: its position's protection ("UNPROTECTED: …", "stop triggered,
        chasing") in red, why risk refused its last entry in the stop colour, then the engine's own note.

        `protection` and `risk_note` are read with a default: snapshots from an engine without them show the
        note alone.
        """
        parts = []
        protection = str(getattr(seg, "protection", "") or "")
        risk = str(getattr(seg, "risk_note", "") or "")
        if protection:
            parts.append(f"<b><span style='color:{self._theme.loss}'>⚠ {html.escape(protection)}</span></b>")
        if risk:
            parts.append(f"<span style='color:{self._theme.stop_line}'>{html.escape(risk)}</span>")
        note = seg.note
        if protection and note.startswith(
            protection
        ):  # the engine's note leads with it for text-only readers
            note = note[len(protection) :].lstrip("; ")
        if note and note != risk:
            parts.append(html.escape(note))
        return " · ".join(parts)

    def needs_full_update(self, seg: SegmentSnapshot) -> bool:
        """Showing `seg` would redraw the chart's axes and curves (a bar closed)."""
        return seg is not self._last and self.chart.ready and self.chart.needs_full_update(seg)

    def show_snapshot(self, seg: SegmentSnapshot) -> bool:
        """Shows `seg`; the chart redraws only what changed. False when `seg` was already shown."""
        if seg is self._last:
            return False
        self._last = seg
        self._show_state(seg)
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
        note = self.note_html(seg)
        if self.note.text() != note:  # its line is kept even when empty: no relayout when a note comes
            self.note.setText(note)
            self.note.setToolTip(note)  # a long note is cut at the panel's edge; the tip shows it all
        if self.chart.ready:  # else its last build step draws the latest snapshot
            self._charted = seg
            self.chart.update_from(seg)
        return True
