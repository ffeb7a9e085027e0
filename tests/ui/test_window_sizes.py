"""The window reads well from 1024×700 up: at 1024×700, 1366×768 and 1920×1080 the segment panels' texts
fit, the tables' columns are not cut, the header keeps its texts (issue 25). Each size is grabbed to a PNG
(in $KITEDESK_SHOTS when set, else the test's temporary folder) for a person to look at."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication, QLabel

from desktop.domain import Segment
from desktop.engine.snapshots import TradeMarker
from desktop.ui.main_window import MainWindow
from desktop.ui.session_tab import SessionTab
from desktop.ui.tables import SpecTableView
from desktop.ui.theme import apply_theme
from tests.ui.fakes import FakeEngine, make_bars, paper_params
from tests.ui.qtkit import answer_next_message_box

SIZES = ((1024, 700), (1366, 768), (1920, 1080))


def _trading(tab: SessionTab) -> None:
    """A session in the middle of a day: 3 segments, one holding an option, notes, a signal."""
    session = tab.session
    session.start(paper_params(segments=(Segment.NIFTY, Segment.BANKNIFTY, Segment.SENSEX)))
    now = datetime(2026, 1, 8, 11, 42, 17)
    segs = []
    for seg in session.segments:
        bars = make_bars(150, base={"NIFTY": 25950, "BANKNIFTY": 61250, "SENSEX": 84900}[seg.segment.value])
        segs.append(replace(
            seg, bars=bars, bars_version=2, fast_ema=tuple(b.close for b in bars),
            slow_ema=tuple(b.close - 3 for b in bars), last_tick_time=now, signal="UP 11:31",
            trades_today=3, note="trade cap 5 reached, no more entries today" if seg.segment is Segment.SENSEX else "",
            markers=(TradeMarker(bars[120].start, bars[120].close, "entry", "BUY"),),
        ))  # fmt: skip
    session.segments = tuple(segs)
    first = session.segments[1]
    session.holding = True
    session.segments = (
        session.segments[0],
        replace(
            first,
            option_symbol="BANKNIFTY26JAN61200CE",
            quantity=30,
            entry_price=Decimal("412.35"),
            option_price=Decimal("1224.50"),
            stop_price=Decimal("391.70"),
            target_price=Decimal("495.00"),
            unrealised_pnl=Decimal("24363.00"),
        ),  # fmt: skip
        session.segments[2],
    )
    session.market_time = now
    session.version += 1


def _cut(label: QLabel) -> bool:
    """The label's text needs more room than the label has (it is cut at its edge or bottom)."""
    doc = QTextDocument()
    doc.setDefaultFont(label.font())
    doc.setDocumentMargin(0)
    doc.setHtml(label.text())
    if label.wordWrap():
        doc.setTextWidth(label.width())
        return doc.size().height() > label.height() + 1
    return doc.idealWidth() > label.width() + 1


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_window_reads_well_at(qtbot, tmp_path: Path, width: int, height: int):
    window = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(window)
    app = QApplication.instance()
    palette, style = app.palette(), app.style().name()
    apply_theme(app, window.theme)  # as kitedesk does: the screenshot shows the window's real colours
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    _trading(tab)
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    tab.refresh(force=True, force_all=True)
    qtbot.waitUntil(lambda: all(tab.segment_panel(s) is not None and tab.segment_panel(s).ready
                                for s in ("NIFTY", "BANKNIFTY", "SENSEX")), timeout=5000)  # fmt: skip
    tab.refresh(force=True, force_all=True)
    qtbot.wait(200)
    window._refresh_status()
    shots = Path(os.environ.get("KITEDESK_SHOTS", tmp_path))
    window.grab().save(str(shots / f"window-{width}x{height}.png"))
    assert window.width() == width and window.height() <= height + 1, "the window fits the screen size"
    for name in ("NIFTY", "BANKNIFTY", "SENSEX"):
        panel = tab.segment_panel(name)
        assert panel is not None
        chart = panel.chart
        assert chart.ci.geometry().height() == chart.height(), f"{name}: the chart fills its pane"
        assert chart.price_plot.geometry().height() > chart.height() / 2, f"{name}: the candles get the pane"
        for label in (panel.state, panel.tick, panel.signal, panel.position, panel.pnl, panel.note):
            assert not _cut(label), f"{name}: {label.text()!r} is cut at {label.width()} px"
    view = tab.bottom_tabs.widget(0).findChild(SpecTableView)
    for c in range(tab.positions_model.columnCount()):
        assert view.columnWidth(c) >= view.sizeHintForColumn(c), f"column {c} is elided"
    for label in (
        tab.state_label,
        tab.pnl_label,
        window.running_label,
        window.pnl_label,
        window.market_label,
    ):
        assert not _cut(label), f"{label.text()!r} is cut"
    app.setPalette(palette)
    app.setStyle(style)
    answer_next_message_box("Keep under stop loss", [])
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)
