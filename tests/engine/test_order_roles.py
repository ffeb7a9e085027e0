"""An order's role, not its reason text, tells risk an exit from an entry (issue 17 §1): a strategy plug-in may
name its exits as it likes, and every one of them is an exit that risk never refuses nor counts as an entry."""

from __future__ import annotations

from datetime import timedelta

from desktop.domain import Mode, OptionRight, OrderIntent, OrderRole, Segment, SessionKey, Side
from desktop.engine.risk import RiskManager
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from tests.engine.builders import at, make_params
from tests.engine.traders import T0, enter, fill

KEY = SessionKey("UK9394", "s1")


def test_a_plug_in_exit_with_any_reason_text_is_an_exit(make) -> None:
    # Four orders a minute: the entry, PAPER's resting stop, its cancel and the exit fill the window, so an entry
    # in the same minute is refused. Before roles, "take_profit" was checked as an entry: refused (the segment was
    # open) and so never counted, and the next entry slipped past the order-rate limit.
    trader, gateway, _ = make(Mode.PAPER, max_orders_per_minute=4)
    enter(trader, gateway, "200")
    trader.act([ExitPosition("take_profit")])  # a reason no list in KiteDesk knows
    assert [i.reason for i in gateway.placed] == ["entry", "protective_stop", "take_profit"]
    fill(trader, "O3", 195, "210", "F2")
    assert trader.holding is None and trader.ctx.risk.open_positions == 0
    trader.market_time = T0 + timedelta(seconds=30)
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "signal")])
    assert len(gateway.placed) == 3, "the exit counted toward the order rate like every other order"
    assert (
        trader.entries.risk_note is not None
        and trader.entries.risk_note[1] == "max orders per minute (4) reached"
    )


def test_the_trader_gives_each_order_its_role_and_the_journal_gives_it_back(make) -> None:
    trader, gateway, store = make(Mode.PAPER)
    enter(trader, gateway, "200")
    trader.act([ExitPosition("take_profit")])
    assert [(i.reason, i.role) for i in gateway.placed] == [
        ("entry", OrderRole.ENTRY), ("protective_stop", OrderRole.STOP), ("take_profit", OrderRole.EXIT)
    ]  # fmt: skip
    key = trader.ctx.key
    saved = store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    assert {i.intent_id: i.role for i in saved} == {i.intent_id: i.role for i in gateway.placed}  # same time


def test_risk_reads_the_role_not_the_reason() -> None:
    r = RiskManager(make_params(segments=["NIFTY"]))
    r.kill("trader pressed kill")

    def intent(reason: str, role: OrderRole) -> OrderIntent:
        side = Side.BUY if role is OrderRole.ENTRY else Side.SELL
        return OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611325000CE", side, 65, reason=reason,
                           role=role)  # fmt: skip

    for reason in ("take_profit", "whatever the plug-in says", ""):
        assert r.check(intent(reason, OrderRole.EXIT), at(10, 0)).allowed
    assert r.check(intent("stop_loss", OrderRole.STOP), at(10, 0)).allowed
    assert r.open_positions == 0, "no exit is an entry on its way"
    # An entry is an entry whatever its text: a reason that reads like an exit does not get past a halt.
    assert not r.check(intent("signal_exit", OrderRole.ENTRY), at(10, 1)).allowed
