"""Issue 25, funds: a session tab's header shows its account's available and used margin as the engine last
fetched them, says "paper" for a PAPER session, and says when the last refresh failed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from desktop.engine import Funds
from desktop.engine.funds import PAPER_FUNDS
from desktop.ui.funds_view import PAPER_TEXT
from desktop.ui.session_tab import SessionTab
from desktop.ui.theme import DARK
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeSession, paper_params


def test_the_header_shows_the_accounts_funds_and_follows_each_new_answer(qtbot):
    session = FakeSession("UK9394", "Funds")
    tab = SessionTab(session, DARK, JobRunner(), ["itm_momentum"])
    qtbot.addWidget(tab)
    tab.form.set_params(paper_params())
    tab.refresh()
    assert tab.funds_label.text() == ""  # not started: no funds said
    tab.request_start()
    session.funds = Funds(Decimal("245431.60"), Decimal("145706.55"), datetime(2026, 1, 8, 10, 15, 2))
    session.version += 1
    tab.refresh()
    assert tab.funds_label.text() == "Funds ₹2,45,431.60 available · ₹1,45,706.55 used"
    assert "10:15:02" in tab.funds_label.toolTip() and "after each fill" in tab.funds_label.toolTip()
    # After a fill the engine fetched again: the header follows.
    session.funds = Funds(Decimal("-120.50"), Decimal("3120.50"), datetime(2026, 1, 8, 10, 15, 40))
    session.version += 1
    tab.refresh()
    assert tab.funds_label.text() == "Funds \u2212₹120.50 available · ₹3,120.50 used"
    # A failed refresh keeps the last amounts and says they are not fresh, why in the tooltip.
    session.funds = replace(session.funds, error="Kite did not answer (timeout)")
    session.version += 1
    tab.refresh()
    assert tab.funds_label.text().endswith("used (not refreshed)")
    assert "Kite did not answer (timeout)" in tab.funds_label.toolTip()
    # A PAPER session blocks no margin at the broker: it says paper.
    session.funds = PAPER_FUNDS
    session.version += 1
    tab.refresh()
    assert tab.funds_label.text() == PAPER_TEXT == "Funds: paper"
    assert tab.funds_label.isVisibleTo(tab)
