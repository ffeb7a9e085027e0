"""A sale's intent (an exit, a stop) joins the next group commit, run by the store writer's leader thread, instead of
a thread and a transaction of its own (issue 18); the write-ahead rule and the journal-outage rules stay: it is on
disk before its order, a sale waits a second at most for a store that is held up, and a protective order is sent
then anyway, its intent held and journalled once the store writes again."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from desktop.domain import OrderRole, OrderStatus, OrderType
from desktop.engine.strategy.base import ExitPosition
from tests.engine.test_journal_outage import journalled, option_tick
from tests.engine.traders import T0, enter, with_leader


def test_a_sales_intent_is_committed_by_the_leader_before_its_order_and_no_thread_is_started(make) -> None:
    trader, gateway, store = make()
    writer, ran = with_leader(trader, store, store.intents)
    before = set(threading.enumerate())
    try:
        enter(trader, gateway, "200")  # the entry (its own write), then its stop: a sale's intent
        option_tick(trader, "205", 1)
        trader.act([ExitPosition("signal_exit")])  # the stop cancelled, the sale sent
        sells = [i for i in gateway.placed if i.role is not OrderRole.ENTRY]
        assert [i.order_type for i in sells] == [OrderType.SL, OrderType.MARKET]
        assert gateway.unjournalled == [], (
            "every sale's intent was on disk before its order (RecordingGateway)"
        )
        # The entry's own write on this thread; the stop's and the sale's by the store writer's threads (the leader,
        # or the writer when it leads a group commit first: the waited-for writes always go first).
        assert ran[0] == "MainThread" and len(ran) == 3, ran
        assert set(ran[1:]) <= {"kitedesk-store-leader", "kitedesk-store-writer"}, ran
        # No thread of its own for a sale's intent (a thread an earlier test left ending meanwhile is no matter).
        started = {t.name for t in set(threading.enumerate()) - before}
        assert started <= {"kitedesk-store-leader", "kitedesk-store-writer"}, started
    finally:
        writer.close()
    assert journalled(store, trader) == [i.intent_id for i in gateway.placed]


def test_a_held_up_group_commit_holds_a_stop_back_a_second_at_most_and_its_intent_is_journalled_after(
    make,
) -> None:
    # Another write holds the store (as a database another program locks holds it ~20 s): the new stop's intent cannot
    # be committed, so the stop goes after a second at most, its intent held; once the store writes, it is journalled.
    trader, gateway, store = make()
    writer, _ = with_leader(trader, store, store.intents)
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    gate, inside = threading.Event(), threading.Event()

    def held(_writes: object) -> None:
        inside.set()
        assert gate.wait(10)

    holder = threading.Thread(target=store._db.run, args=(held,), kwargs={"durable": True, "what": "held"})
    holder.start()
    try:
        assert inside.wait(5)
        began = time.monotonic()
        trader.on_order(
            replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
        )
        waited = time.monotonic() - began
        assert len(gateway.placed) == 3 and gateway.placed[-1].order_type is OrderType.SL
        assert 0.9 < waited < 2, f"the stop waited {waited:.2f} s for a held-up store"
        assert gateway.unjournalled == gateway.placed[-1:] and trader.ctx.risk.halted
        trader.act([ExitPosition("signal_exit")])  # under the stop just placed: it waits for the journal
        assert len(gateway.placed) == 3
    finally:
        gate.set()
        holder.join(10)
    second, deadline = 2, time.monotonic() + 10
    while trader.orders.held and time.monotonic() < deadline:  # its write lands once the store lets go
        option_tick(trader, "199", second)
        second += 1
        time.sleep(0.05)
    writer.close()
    assert journalled(store, trader) == [i.intent_id for i in gateway.placed], "each intent journalled once"
    assert trader.orders.held == [] and not trader.ctx.risk.halted


def test_a_real_full_disk_under_the_leader_sends_the_stop_and_the_sale_at_once_and_journals_them_after(
    make, tmp_path, monkeypatch
) -> None:
    # The journal-outage tests refuse `record_all`, which a sale's intent on the leader never calls (`queue_all`):
    # here SQLite itself answered SQLITE_FULL (max_page_count) and the store, paused, refuses the leader's queue.
    import sqlite3
    from contextlib import closing

    import desktop.store.database as database
    from desktop.store import DB_FILENAME, Store, StoreWriteError
    from tests.engine.test_journal_outage import LPP

    monkeypatch.setattr(database, "RETRY_AFTER_S", 2.0)
    home = tmp_path / "full"
    Store.open(home).close()
    with closing(sqlite3.connect(home / DB_FILENAME)) as conn:
        limit = int(conn.execute("PRAGMA page_count").fetchone()[0]) + 16
    store = Store.open(home, extra_pragmas={"max_page_count": limit})
    try:
        trader, gateway, _ = make(store=store)
        writer, _ = with_leader(trader, store, store.intents)
        closing_writer = writer
        enter(trader, gateway, "200")
        option_tick(trader, "199", 1)
        before = journalled(store, trader)
        assert before == [i.intent_id for i in gateway.placed]
        key = trader.ctx.key
        try:
            for _ in range(1000):  # the disk fills up: the store refuses writes for a while (RETRY_AFTER_S)
                store.journal.append(key, segment=None, kind="pad", payload={"p": "p" * 1500}, market_time=T0)
        except StoreWriteError:
            pass
        began = time.monotonic()
        trader.on_order(
            replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
        )
        trader.on_order(replace(gateway.orders()[2], status=OrderStatus.CANCELLED, status_message=LPP))
        assert time.monotonic() - began < 1.5
        sent = gateway.placed[2:]
        assert [(i.order_type, i.reason) for i in sent] == [
            (OrderType.SL, "protective_stop"),
            (OrderType.MARKET, "stop_loss"),
        ], "both protective orders sent at once"
        held = gateway.unjournalled
        assert held == sent, "refused by the paused store at once: held, in order"
        assert trader.ctx.risk.halted
        with closing(sqlite3.connect(home / DB_FILENAME)) as conn:  # room again
            conn.execute("DELETE FROM journal WHERE kind = 'pad'")
            conn.execute("DELETE FROM outbox WHERE table_name = 'journal'")
            conn.commit()
        second, deadline = 2, time.monotonic() + 15
        while (trader.orders.held or trader.orders.outage) and time.monotonic() < deadline:
            option_tick(trader, "90", second)
            second += 1
            time.sleep(0.02)
        writer.close()
        assert journalled(store, trader) == before + [i.intent_id for i in sent], (
            "journalled once, in send order"
        )
        assert not trader.ctx.risk.halted and len(gateway.placed) == 4
    finally:
        if "closing_writer" in locals():
            closing_writer.close()
        store.close()
