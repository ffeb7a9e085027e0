"""The protective orders sent while the journal cannot be written (issue 16, defect 3), probed as a bad disk, a
locked database and a trader would: a kill switch pressed before the outage, ... (adversary's findings)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from desktop.domain import OrderStatus, OrderType, Side, Tick
from desktop.engine.trader import SegmentTrader
from tests.engine.test_journal_outage import disk_freed, disk_full, journalled
from tests.engine.traders import T0, RecordingGateway, enter, fill


def option_tick(trader: SegmentTrader, price: str, seconds: float) -> None:
    h = trader.holding
    token = h.token if h is not None else trader.segment.spec.index_token
    trader.on_ticks([Tick(token, Decimal(price), T0 + timedelta(seconds=seconds))])


def index_tick(trader: SegmentTrader, seconds: float) -> None:
    trader.on_ticks(
        [Tick(trader.segment.spec.index_token, Decimal("25000"), T0 + timedelta(seconds=seconds))]
    )


def sales(gateway: RecordingGateway) -> list:
    return [i for i in gateway.placed if i.side is Side.SELL and i.order_type is not OrderType.SL]


def test_a_kill_switch_pressed_before_the_journal_failed_stays_on_once_the_journal_writes_again(make) -> None:
    # The trader's kill switch (SessionEngine.kill: risk.kill, then the agent's Kill command) sells the position; its
    # sale's intent cannot be journalled (a full disk): it is sent anyway, and the journal's own halt replaced the
    # kill switch's reason. Once the journal writes again, that halt is lifted: the session must stay halted by
    # the trader's kill switch (exits only), not become RUNNING.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.ctx.risk.kill("kill switch")
    disk_full(store)
    trader.cancel_open_entries(then_exit="kill")
    assert trader.exit("kill"), "the kill's sale is sent while the journal cannot be written"
    [sale] = sales(gateway)
    assert gateway.unjournalled == [sale]
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED))  # the stop, cancelled to sell
    fill(trader, "O3", 195, "199", "F2")
    assert trader.holding is None
    disk_freed(store)
    for second in range(2, 60):
        index_tick(trader, second)
    assert sale.intent_id in journalled(store, trader) and trader.orders.outage is None
    assert trader.ctx.risk.halted, "the trader's kill switch was lifted by the journal's recovery"
    assert trader.ctx.risk.halt_reason == "kill switch"
