"""Manual actions on a session tab (desktop/ui/manual_actions.py): right-click menus and buttons on the positions
and orders tables, the LIVE confirmation naming session, symbol, quantity and price, the Move stop dialog's
validation, and the outcome shown in the tab."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace
from decimal import Decimal

import pytest
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMenu

from desktop.domain import Mode, Order, OrderStatus, OrderType, Side
from desktop.engine import ManualRefused
from desktop.ui.manual_actions import (
    CANCEL,
    EXIT_NOW,
    MOVE_STOP,
    ManualActions,
    MoveStopDialog,
    await_outcome,
)
from desktop.ui.session_tab import SessionTab
from desktop.ui.theme import DARK
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeSession, paper_params
from tests.ui.qtkit import answer_next_message_box

SYMBOL = "NIFTY2611325900CE"


def _held_tab(qtbot, mode: Mode = Mode.PAPER) -> tuple[SessionTab, FakeSession, JobRunner, ManualActions]:
    session = FakeSession("UK9394", "Computer 3")
    jobs = JobRunner()
    tab = SessionTab(session, DARK, jobs, ["itm_momentum"])
    qtbot.addWidget(tab)
    tab.show()
    tab.start_with(paper_params(mode=mode))
    session.hold(SYMBOL)  # 65 at 182.35, last 184.20, stop 173.25
    qtbot.waitUntil(lambda: tab.findChild(ManualActions) is not None, timeout=3000)
    manual = tab.findChild(ManualActions)
    _shown(qtbot, tab, lambda: tab.positions_model.rowCount() == 1)
    return tab, session, jobs, manual


def _shown(qtbot, tab: SessionTab, done) -> None:
    """Refreshes the tab (as the window's timer does) until `done()`."""

    def check() -> bool:
        tab.refresh()
        return bool(done())

    qtbot.waitUntil(check, timeout=3000)


def _menu_texts(manual: ManualActions, view) -> dict[str, bool]:
    rect = view.visualRect(view.model().index(0, 0))
    view.customContextMenuRequested.emit(QPoint(rect.center()))
    menu = manual.last_menu
    assert menu is not None
    texts = {a.text(): a.isEnabled() for a in menu.actions()}
    menu.close()
    return texts


def test_exit_now_in_paper_sends_at_once_and_shows_the_outcome(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot)
    assert not manual.exit_button.isEnabled(), "nothing selected yet"
    manual.positions_view.selectRow(0)
    assert manual.exit_button.isEnabled() and manual.move_button.isEnabled()
    session.manual_answer = "exit sent: SELL 65 NIFTY2611325900CE at market"
    manual.exit_button.click()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert session.calls[-1] == ("exit_position", SYMBOL)
    assert tab.message.text() == "exit sent: SELL 65 NIFTY2611325900CE at market"


def test_exit_now_in_live_asks_naming_session_symbol_quantity_and_price_and_no_sends_nothing(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot, Mode.LIVE)
    manual.positions_view.selectRow(0)
    seen: list[str] = []
    answer_next_message_box("No", seen)
    manual.exit_button.click()
    assert "UK9394 · Computer 3" in seen[0] and "SELL 65 NIFTY2611325900CE" in seen[0] and "184.20" in seen[0]
    assert [c[0] for c in session.calls] == ["start"]
    answer_next_message_box("Yes", seen)
    manual.exit_button.click()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert session.calls[-1] == ("exit_position", SYMBOL)


def test_the_position_menu_offers_exit_and_move_stop_only_for_what_is_held(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot)
    assert _menu_texts(manual, manual.positions_view) == {EXIT_NOW: True, MOVE_STOP: True}
    closed = replace(manual.positions_view.source_model.row(0), quantity=0)  # a row kept for the day, greyed
    menu = QMenu()
    manual._position_menu(menu, closed)
    assert {a.text(): a.isEnabled() for a in menu.actions()} == {EXIT_NOW: False, MOVE_STOP: False}
    first = session.segments[0]
    session.segments = (replace(first, quantity=0, option_symbol=None), *session.segments[1:])
    session.holding = False
    session.version += 1
    _shown(qtbot, tab, lambda: tab.positions_model.rowCount() == 0)
    assert not manual.exit_button.isEnabled()


def test_a_refusal_is_shown_in_the_trader_words(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot)
    session.manual_answer = ManualRefused("the exit of 65 NIFTY2611325900CE was not sent: Markets are closed")
    manual.request_exit(manual.positions_view.source_model.row(0))
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert "Markets are closed" in tab.last_error


def _answer_move_stop(level: str, seen: list[str]) -> None:
    def fill(left: int = 200) -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, MoveStopDialog):
            if left:
                QTimer.singleShot(10, lambda: fill(left - 1))
            return
        dialog.edit.setText(level)
        seen.append(dialog.error.text())
        ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if ok.isEnabled():
            ok.click()
        else:
            dialog.reject()

    QTimer.singleShot(0, fill)


def test_move_stop_asks_the_level_then_confirms_in_live_and_sends_it(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot, Mode.LIVE)
    manual.positions_view.selectRow(0)
    seen: list[str] = []
    _answer_move_stop("178.50", seen)
    answer_next_message_box("Yes", seen)
    manual.move_button.click()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert session.calls[-1] == ("move_stop", (SYMBOL, Decimal("178.50")))
    assert "from 173.25 to 178.50" in seen[1] and "UK9394 · Computer 3" in seen[1]


def test_move_stop_refuses_a_level_at_or_above_the_last_price_or_off_the_tick(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot)
    position = manual.positions_view.source_model.row(0)
    dialog = MoveStopDialog(tab, position, Decimal("173.25"))
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isEnabled(), "the current stop is a valid start"
    for text, why in (
        ("184.20", "below the last price"),
        ("180.02", "0.05 tick"),
        ("abc", "price in rupees"),
    ):
        dialog.edit.setText(text)
        assert not ok.isEnabled() and why in dialog.error.text()
    dialog.edit.setText("180.05")
    assert ok.isEnabled() and dialog.level == Decimal("180.05")
    seen: list[str] = []
    _answer_move_stop("190", seen)
    manual.request_move_stop(position)
    assert "below the last price" in seen[0]
    assert [c[0] for c in session.calls] == ["start"], "an invalid level sends nothing"


def _order(order_id: str, kind: OrderType, status: OrderStatus, session: FakeSession) -> Order:
    return Order(order_id, session.key, Mode.LIVE, "NFO", SYMBOL, Side.BUY if kind is OrderType.MARKET else Side.SELL,
                 65, kind, status, trigger_price=Decimal("173.25") if kind is OrderType.SL else None)  # fmt: skip


def test_cancel_is_offered_for_a_working_entry_not_for_the_stop_and_asks_in_live(qtbot):
    tab, session, jobs, manual = _held_tab(qtbot, Mode.LIVE)
    session.orders = (_order("E1", OrderType.MARKET, OrderStatus.OPEN, session),)
    session.version += 1
    tab.bottom_tabs.setCurrentIndex(1)
    _shown(qtbot, tab, lambda: tab.orders_model.rowCount() == 1)
    assert _menu_texts(manual, manual.orders_view) == {CANCEL: True}
    seen: list[str] = []
    answer_next_message_box("Yes", seen)
    manual.cancel_button.click()
    qtbot.waitUntil(lambda: jobs.busy == 0, timeout=3000)
    assert (
        "cancel order E1: BUY 65 NIFTY2611325900CE at market" in seen[0] and "UK9394 · Computer 3" in seen[0]
    )
    assert session.calls[-1] == ("cancel_order", (SYMBOL, "E1"))

    session.orders = (_order("S1", OrderType.SL, OrderStatus.TRIGGER_PENDING, session),)
    session.version += 1
    _shown(qtbot, tab, lambda: tab.orders_model.row(0).order_id == "S1")
    assert _menu_texts(manual, manual.orders_view) == {CANCEL: False}
    assert not manual.cancel_button.isEnabled()
    assert "protects the position" in manual.cancel_button.toolTip()


def test_an_action_the_segment_never_takes_is_withdrawn_and_said():
    idle: Future[object] = Future()
    with pytest.raises(ManualRefused, match="nothing was done"):
        await_outcome(idle, wait_s=0.05)
    assert idle.cancelled(), "withdrawn: the agent will not do it late"
    running: Future[object] = Future()
    running.set_running_or_notify_cancel()
    with pytest.raises(ManualRefused, match="still under way"):
        await_outcome(running, wait_s=0.05)
