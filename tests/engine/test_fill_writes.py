"""A fill's write joins the next group commit, run by the store writer's leader thread, instead of a thread and a
transaction of its own (issue 18: ~30 fills at a minute's close, each starting a thread); the rules stay: a sale's
fill is on disk before the position learns of it, a held-up store holds the agent a second at most, and the fill
is recorded once the store writes, counted once."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from decimal import Decimal

from desktop.domain import OptionRight, OrderStatus, OrderType
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.store.errors import StoreWriteError
from tests.engine.test_journal_outage import option_tick
from tests.engine.traders import enter, fill, with_leader


def _saved(store, trader) -> list[str]:  # type: ignore[no-untyped-def]
    key = trader.ctx.key
    return [f.fill_id for f in store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)]


def test_fills_are_committed_by_the_leader_before_a_sale_counts_and_no_thread_is_started(
    make, monkeypatch
) -> None:
    trader, gateway, store = make()
    writer, ran = with_leader(trader, store, store.fills)
    started: list[str] = []
    start = threading.Thread.start

    def starting(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", starting)
    try:
        enter(trader, gateway, "200")  # the entry's fill: acted on (its stop placed), then recorded
        assert _saved(store, trader) == ["F1"] and trader.holding is not None
        option_tick(trader, "199", 1)
        trader.act([ExitPosition("signal_exit")])
        sale = gateway.orders()[-1]
        trader.on_order(replace(sale, status=OrderStatus.COMPLETE, filled_quantity=195))
        saved_when_sold: list[list[str]] = []
        sold = trader.keeper.sold

        def selling(*a, **k):  # type: ignore[no-untyped-def]
            saved_when_sold.append(_saved(store, trader))
            return sold(*a, **k)

        trader.keeper.sold = selling  # type: ignore[method-assign]
        fill(trader, sale.order_id, 195, "199", "F2")
        fill(trader, sale.order_id, 195, "199", "F2")  # the same fill again (a replayed update): counted once
        assert saved_when_sold == [["F1", "F2"]], (
            "the sale's fill was on disk before the position learnt of it"
        )
        assert trader.holding is None and trader.realised == Decimal("-195.00")
        assert set(ran) <= {"kitedesk-store-leader", "kitedesk-store-writer"} and len(ran) == 2, ran
        assert not any(n.startswith("kitedesk-fill") for n in started), started
    finally:
        writer.close()
    assert _saved(store, trader) == ["F1", "F2"]


def test_a_held_up_group_commit_holds_a_sales_fill_a_second_at_most_and_it_is_recorded_once_after(
    make,
) -> None:
    trader, gateway, store = make()
    writer, _ = with_leader(trader, store, store.fills)
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.act([ExitPosition("signal_exit")])
    sale = gateway.orders()[-1]
    trader.on_order(replace(sale, status=OrderStatus.COMPLETE, filled_quantity=195))
    gate, inside = threading.Event(), threading.Event()

    def held(_writes: object) -> None:
        inside.set()
        assert gate.wait(10)

    holder = threading.Thread(target=store._db.run, args=(held,), kwargs={"durable": True, "what": "held"})
    holder.start()
    try:
        assert inside.wait(5)
        began = time.monotonic()
        fill(trader, sale.order_id, 195, "199", "F2")
        waited = time.monotonic() - began
        assert 0.9 < waited < 2, f"the fill held the agent {waited:.2f} s"
        assert trader.holding is not None, "a sale's fill not on disk yet is not counted"
        option_tick(trader, "199", 2)  # still held up: looked at, not waited for again
        assert trader.holding is not None
    finally:
        gate.set()
        holder.join(10)
    second, deadline = 3, time.monotonic() + 10
    while trader.holding is not None and time.monotonic() < deadline:
        option_tick(trader, "199", second)
        second += 1
        time.sleep(0.05)
    writer.close()
    assert trader.holding is None and trader.realised == Decimal("-195.00"), "counted once, once on disk"
    assert _saved(store, trader) == ["F1", "F2"]


def test_an_entrys_fill_whose_group_commit_fails_is_protected_at_once_and_recorded_once_the_disk_writes(
    make,
) -> None:
    # The adversary tests of a full disk (test_journal_outage_adversary.py) make `fills.record` refuse: the path
    # with no store writer. With one, the app's path, the fill's write goes in the leader's group commit: the same
    # rule must hold when that transaction fails (its stop out now, the fill recorded once when the disk writes).
    trader, gateway, store = make()
    writer, _ = with_leader(trader, store, store.fills)
    writing = store.fills._writing
    full = [True]

    def on_a_full_disk(f):  # type: ignore[no-untyped-def]
        work = writing(f)

        def run(writes):  # type: ignore[no-untyped-def]
            if full[0]:
                raise StoreWriteError("the fill was not saved: the disk is full")
            return work(writes)

        return run

    store.fills._writing = on_a_full_disk
    try:
        trader.strategy.pending_entry = OptionRight.CE
        trader.act([EnterPosition(OptionRight.CE, "test")])
        fill(trader, "O1", 195, "200", "F1")
        option_tick(trader, "200", 1)
        h = trader.holding
        assert h is not None and h.quantity == 195, "the position the broker holds is managed"
        assert h.stop_order is not None and h.stop_order.resting, "the options bought have a stop-loss order"
        assert [(i.order_type, i.quantity) for i in gateway.placed[1:]] == [(OrderType.SL, 195)]
        assert trader.owes_recovery() and _saved(store, trader) == []
        full[0] = False
        second, deadline = 2, time.monotonic() + 10
        while trader.orders.unsaved_fills and time.monotonic() < deadline:
            option_tick(trader, "200", second)
            second += 1
            time.sleep(0.02)
        assert _saved(store, trader) == ["F1"], "recorded once, once the disk writes"
        assert trader.holding is not None and trader.holding.quantity == 195, "acted on once"
        assert len(gateway.placed) == 2
    finally:
        writer.close()
