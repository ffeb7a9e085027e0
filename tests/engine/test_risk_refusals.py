"""Risk refusals are said (issue 25): each refused entry is one INFO line in the segment's log and the note the
segment's panel shows, and the trade cap is risk's, so it holds whatever the strategy."""

from __future__ import annotations

from datetime import timedelta

from desktop.domain import Mode, OptionRight
from desktop.engine.snapshots import AgentState
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from tests.engine.traders import T0, enter, fill


def _try_entry(trader) -> None:
    trader.log.set_market_time(trader.market_time)  # as its ticks set it
    trader.strategy.pending_entry = OptionRight.CE  # as after the strategy's own EnterPosition
    trader.act([EnterPosition(OptionRight.CE, "signal")])


def _refusals(trader) -> list[str]:
    return [line for line in trader.log.path.read_text().splitlines() if "refused" in line]


def test_the_trade_cap_refuses_the_next_entry_with_one_info_line_and_the_panels_note(make) -> None:
    trader, gateway, _ = make(Mode.PAPER, max_trades_per_day=1)
    enter(trader, gateway, "200")
    trader.act([ExitPosition("signal_exit")])  # O3; O2 is the protective stop PAPER rests too
    fill(trader, "O3", 195, "210", "F2")
    assert trader.holding is None and trader.snapshot(AgentState.RUNNING).trades_today == 1
    trader.market_time = T0 + timedelta(minutes=3)
    _try_entry(trader)
    assert [i.reason for i in gateway.placed] == ["entry", "protective_stop", "signal_exit"], (
        "no second entry"
    )
    assert _refusals(trader) == [
        "2026-01-08 10:03:00 - LiveAgent-NIFTY-PAPER-UK9394 - INFO - entry refused by risk: "
        "trade cap 1 reached, no more entries today"
    ]
    assert trader.snapshot(AgentState.RUNNING).risk_note == "trade cap 1 reached, no more entries today"
    assert trader.strategy.pending_entry is None, "the strategy is free for the next signal"
    # The next market day the cap no longer holds, and the note is about yesterday: it goes.
    trader.market_time = T0 + timedelta(days=1)
    assert trader.snapshot(AgentState.RUNNING).risk_note == ""
    assert trader.snapshot(AgentState.RUNNING).trades_today == 0
    _try_entry(trader)
    assert len(gateway.placed) == 4 and gateway.placed[-1].reason == "entry" and len(_refusals(trader)) == 1


def test_a_halted_session_says_so_once_per_refused_entry(make) -> None:
    trader, gateway, _ = make(Mode.PAPER)
    trader.ctx.risk.kill("trader pressed KILL")
    _try_entry(trader)
    _try_entry(trader)
    assert gateway.placed == []
    assert len(_refusals(trader)) == 2 and all(" - INFO - " in line for line in _refusals(trader))
    note = trader.snapshot(AgentState.RUNNING).risk_note
    assert note == "session halted (trader pressed KILL): only exits are allowed"
