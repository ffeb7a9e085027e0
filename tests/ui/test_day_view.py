"""Issue 25, "wrong or contradictory on screen": one state everywhere, the right shortcut named, the close,
closed positions kept for the day, one money format for the window and headless output."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import QSettings

from desktop.cli.run import status_line
from desktop.domain import Fill, Mode, Segment, Side, format_rupees
from desktop.engine.snapshots import AgentState, SegmentSnapshot, SessionSnapshot, SessionState
from desktop.ui import shortcuts
from desktop.ui.main_window import MainWindow
from desktop.ui.notify import notices_between
from desktop.ui.segment_panel import SegmentPanel
from desktop.ui.session_prompts import held_positions
from desktop.ui.session_tab import SessionTab
from desktop.ui.tables import POSITION_COLUMNS, SpecTableModel, SpecTableView, position_key
from desktop.ui.theme import DARK
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeEngine, FakeSession, paper_params
from tests.ui.qtkit import answer_next_message_box


def _tab(qtbot) -> tuple[SessionTab, FakeSession, JobRunner]:
    session = FakeSession("UK9394", "Computer 3")
    jobs = JobRunner()
    tab = SessionTab(session, DARK, jobs, ["itm_momentum"])
    qtbot.addWidget(tab)
    tab.form.set_params(paper_params())
    return tab, session, jobs


def _panels(qtbot, tab: SessionTab, *names: str) -> list:
    qtbot.waitUntil(lambda: all(tab.segment_panel(n) is not None for n in names), timeout=3000)
    return [tab.segment_panel(n) for n in names]


def test_after_a_kill_header_segments_and_status_bar_all_say_halted(qtbot, tmp_path: Path):
    engine = FakeEngine(tmp_path)
    window = MainWindow(engine)
    qtbot.addWidget(window)
    tabs = [window.open_session("UK9394", f"Computer {i}", paper_params()) for i in (1, 2, 3)]
    for tab in tabs:
        tab.request_start()
    window._refresh_status()
    assert window.running_label.text() == "3 running / 3"
    killed = tabs[1]
    killed.request_kill()
    qtbot.waitUntil(
        lambda: killed.session.state is SessionState.HALTED and window.jobs.busy == 0, timeout=3000
    )
    killed.refresh(force=True)
    window._refresh_status()
    assert "halted" in killed.state_label.text()
    for panel in _panels(qtbot, killed, "NIFTY", "BANKNIFTY"):
        # The agents still run (they manage exits), but the session is halted: so is each segment's row.
        assert "● halted" in panel.state.text() and "running" not in panel.state.text()
    assert window.running_label.text() == "2 running · 1 halted / 3"
    for other in (tabs[0], tabs[2]):
        other.refresh(force=True)
        assert all("● running" in p.state.text() for p in _panels(qtbot, other, "NIFTY", "BANKNIFTY"))
    answer_next_message_box("Keep under stop loss", [])
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)


def test_the_kill_buttons_tooltip_names_this_sessions_shortcut(qtbot, tmp_path: Path):
    tab, _, _ = _tab(qtbot)
    tip = tab.kill_button.toolTip()
    assert "Ctrl+K" in tip and "Ctrl+Shift+K" not in tip
    window = MainWindow(FakeEngine(tmp_path))
    qtbot.addWidget(window)
    actions = {
        a.text().replace("&", ""): a.shortcut().toString()
        for a in window.findChildren(type(window.menuBar().actions()[0]))
    }
    assert actions["Kill this session"] == "Ctrl+K" == shortcuts.KILL_SESSION
    assert actions["Kill all sessions"] == "Ctrl+Shift+K"
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)


def test_after_the_close_a_session_says_market_closed_with_the_days_summary(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.market_time = datetime(2026, 1, 8, 15, 29, 59)
    session.realised = Decimal("-464.75")
    session.segments = tuple(replace(s, trades_today=2) for s in session.segments)
    session.version += 1
    tab.refresh()
    assert "running" in tab.state_label.text() and "market closed" not in tab.message.text()
    session.market_time = datetime(2026, 1, 8, 15, 30)
    session.version += 1
    tab.refresh()
    assert "market closed" in tab.state_label.text()
    text = tab.message.text()
    assert "Day's summary: 4 trades" in text and "realised −₹464.75" in text
    for panel in _panels(qtbot, tab, "NIFTY", "BANKNIFTY"):
        assert "● market closed" in panel.state.text()


def _fill(fid: str, side: Side, qty: int, price: str, symbol: str = "NIFTY2611325900CE") -> Fill:
    return Fill(fid, "o" + fid, FakeSession("UK9394", "x").key, Mode.PAPER, "NFO", symbol, side, qty,
                Decimal(price), datetime(2026, 1, 8, 10, 0))  # fmt: skip


def test_closed_positions_stay_for_the_day_greyed_with_their_realised_pnl(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.fills = (_fill("1", Side.BUY, 65, "182.35"), _fill("2", Side.SELL, 65, "175.20"))
    session.version += 1
    tab.refresh(force=True, force_all=True)
    assert tab.positions_model.rowCount() == 1
    row = tab.positions_model.row(0)
    assert (row.tradingsymbol, row.quantity, row.realised_pnl) == ("NIFTY2611325900CE", 0, Decimal("-464.75"))
    qty = tab.positions_model.index(0, 2)
    assert tab.positions_model.data(qty, 9).color().name() == DARK.muted  # ForegroundRole: greyed
    realised = tab.positions_model.index(0, 6)
    assert tab.positions_model.data(realised, 9).color().name() == DARK.loss  # the P&L keeps its colour
    # A position held now comes first; the closed one stays below it.
    session.hold("NIFTY2611326000CE")
    session.fills += (_fill("3", Side.BUY, 65, "150.00", "NIFTY2611326000CE"),)
    tab.refresh(force=True, force_all=True)
    assert [tab.positions_model.row(i).quantity for i in range(2)] == [65, 0]
    tab.hide_closed.setChecked(True)
    assert [tab.positions_model.row(i).quantity for i in range(tab.positions_model.rowCount())] == [65]
    tab.hide_closed.setChecked(False)
    assert tab.positions_model.rowCount() == 2


def test_one_money_format_for_the_window_and_headless_output(qtbot):
    assert format_rupees(Decimal("-464.75")) == "−₹464.75"
    assert format_rupees(Decimal("1234.5")) == "+₹1,234.50"
    assert format_rupees(Decimal(0)) == "₹0.00"
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    session.realised = Decimal("-464.75")
    session.version += 1
    tab.refresh()
    line = status_line(session.snapshot())
    assert "P&L −₹464.75" in line and "₹-" not in line
    assert "−₹464.75" in tab.pnl_label.text()


def test_a_price_that_grows_widens_its_column_instead_of_eliding(qtbot):
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model)
    qtbot.addWidget(view)
    view.resize(700, 200)
    view.show()
    session = FakeSession("UK9394", "x")
    session.start(paper_params())
    session.hold()
    (pos,) = held_positions(session.snapshot())
    model.set_rows((pos,))
    ltp = 4
    before = view.columnWidth(ltp)
    model.set_rows((replace(pos, last_price=Decimal("122345.60")),))  # LTP read "1,22…"
    assert view.columnWidth(ltp) >= view.sizeHintForColumn(ltp) > before
    assert view.columnWidth(0) >= view.sizeHintForColumn(0)  # the symbol takes the spare width, never elided
    spare = view.viewport().width() - sum(view.columnWidth(c) for c in range(1, model.columnCount()))
    assert view.columnWidth(0) == max(spare, view.sizeHintForColumn(0))


def test_a_column_the_trader_resized_keeps_its_width_next_time(qtbot, tmp_path: Path):
    settings = QSettings(str(tmp_path / "w.ini"), QSettings.Format.IniFormat)
    model = SpecTableModel(POSITION_COLUMNS, position_key, DARK)
    view = SpecTableView(model, name="positions", settings=settings)
    qtbot.addWidget(view)
    view.horizontalHeader().resizeSection(6, 222)  # as a drag of its edge does
    session = FakeSession("UK9394", "x")
    session.start(paper_params())
    session.hold()
    model.set_rows(held_positions(session.snapshot()))
    assert view.columnWidth(6) == 222  # not fitted over the trader's width
    settings.sync()
    again = SpecTableView(SpecTableModel(POSITION_COLUMNS, position_key, DARK), name="positions",
                          settings=QSettings(str(tmp_path / "w.ini"), QSettings.Format.IniFormat))  # fmt: skip
    qtbot.addWidget(again)
    assert again.column_widths()["Realised"] == 222


@dataclass(frozen=True, slots=True)
class _NewerSegment(SegmentSnapshot):
    """A segment snapshot of an engine that reports protection and risk refusals (fields added there)."""

    protection: str = ""
    risk_note: str = ""


def test_a_segment_shows_its_protection_and_risk_refusal_first_when_the_engine_reports_them(qtbot):
    panel = SegmentPanel(Segment.NIFTY, DARK)
    qtbot.addWidget(panel)
    plain = SegmentSnapshot(Segment.NIFTY, AgentState.RUNNING, note="warming up")
    panel.show_snapshot(plain)  # an engine without the fields: its note alone
    assert panel.note.text() == "warming up"
    newer = _NewerSegment(
        Segment.NIFTY, AgentState.RUNNING, note="warming up", protection="UNPROTECTED: the SL order was rejected",
        risk_note="trade cap 5 reached, no more entries today",
    )  # fmt: skip
    panel.show_snapshot(newer)
    text = panel.note.text()
    assert text.index("UNPROTECTED") < text.index("trade cap 5 reached") < text.index("warming up")
    assert DARK.loss in text and "<b>" in text


def test_a_position_left_unprotected_notifies(qtbot):
    key = FakeSession("UK9394", "x").key
    seg = _NewerSegment(Segment.NIFTY, AgentState.RUNNING)
    before = SessionSnapshot(key, "x", Mode.LIVE, SessionState.RUNNING, segments=(seg,))
    after = replace(before, segments=(replace(seg, protection="UNPROTECTED: the SL order was rejected"),))
    (notice,) = notices_between(before, after, "UK9394 · x")
    assert notice.kind == "unprotected" and notice.text == "NIFTY: UNPROTECTED: the SL order was rejected"
    assert notices_between(after, after, "UK9394 · x") == []


def test_each_position_row_shows_its_own_contracts_realised_pnl(qtbot):
    tab, session, _ = _tab(qtbot)
    tab.request_start()
    # NIFTY: one contract bought and sold at a loss, then another bought and still held.
    session.fills = (
        _fill("1", Side.BUY, 65, "182.35", "NIFTY26D0824350PE"),
        _fill("2", Side.SELL, 65, "140.05", "NIFTY26D0824350PE"),
        _fill("3", Side.BUY, 65, "182.35"),
    )
    session.hold()  # the engine's row carries the segment's realised P&L for the day
    session.segments = (replace(session.segments[0], realised_pnl=Decimal("-2749.50")), *session.segments[1:])
    tab.refresh(force=True, force_all=True)
    rows = {tab.positions_model.row(i).tradingsymbol: tab.positions_model.row(i) for i in range(2)}
    assert rows["NIFTY26D0824350PE"].realised_pnl == Decimal("-2749.50")
    assert rows["NIFTY2611325900CE"].realised_pnl == Decimal(0), "nothing of this contract was sold yet"
    closed = tab.positions_model.index(list(rows).index("NIFTY26D0824350PE"), 5)
    assert tab.positions_model.data(closed) == "0.00"  # MTM of a closed row: never "-0.00"


def test_the_market_clock_at_the_close_says_market_closed_in_every_place_even_without_a_last_tick(
    qtbot, tmp_path
):
    engine = FakeEngine(tmp_path)
    engine.market_time = lambda: datetime(2026, 1, 8, 15, 30)  # type: ignore[method-assign]
    window = MainWindow(engine)
    qtbot.addWidget(window)
    tab = window.open_session("UK9394", "Computer 1", paper_params())
    tab.request_start()
    tab.session.market_time = datetime(2026, 1, 8, 15, 29, 58)  # the day's last tick came before 15:30
    tab.session.version += 1
    window._refresh_status()
    tab.refresh(force=True)
    assert window.running_label.text() == "1 market closed / 1"
    assert "market closed" in tab.state_label.text() and "Day's summary" in tab.message.text()
    assert all("● market closed" in p.state.text() for p in _panels(qtbot, tab, "NIFTY", "BANKNIFTY"))
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=5000)
