"""Never naked when the journal cannot be written (issue 16, defect 3; chaos seed 51). A gap made the exchange cancel
a triggered stop while the store could not write (a locked database, then a full disk): every stop-loss order and
every sale that would have protected the position was refused by the write-ahead rule ("cannot be journalled ...
not sent"), for 37 market minutes. A protective order (a stop, the sale of a position no stop protects) is sent at
once, its intent held and journalled, in order, once the store writes again; entries stay refused meanwhile."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from desktop.domain import OptionRight, OrderStatus, OrderType, Side, Tick
from desktop.engine.snapshots import AgentState
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.engine.trader import SegmentTrader
from desktop.store import Store
from desktop.store.errors import StoreWriteError
from tests.engine.traders import T0, RecordingGateway, enter, fill

LPP = "Cancelled by the exchange: the triggered stop-loss order's limit is outside the limit price protection"


def option_tick(trader: SegmentTrader, price: str, seconds: float) -> None:
    h = trader.holding
    assert h is not None
    trader.on_ticks([Tick(h.token, Decimal(price), T0 + timedelta(seconds=seconds))])


def index_tick(trader: SegmentTrader, seconds: float) -> None:
    trader.on_ticks(
        [Tick(trader.segment.spec.index_token, Decimal("25000"), T0 + timedelta(seconds=seconds))]
    )


def disk_full(store: Store) -> None:
    """Every order intent is refused, as the store refuses it on a full disk (the journal of intents cannot be
    written); `disk_freed` lets it write again."""

    def refuse(*a: object, **k: object) -> list[bool]:
        raise StoreWriteError("the order intent was not saved: the disk is full")

    store.intents.record_all = refuse  # type: ignore[method-assign]


def disk_freed(store: Store) -> None:
    del store.intents.record_all  # the repository's own method again


def journalled(store: Store, trader: SegmentTrader) -> list[str]:
    """The session's intents in the order they were written to the journal."""
    with closing(sqlite3.connect(store.path)) as db:
        rows = db.execute(
            "SELECT intent_id FROM order_intents WHERE session_id = ? ORDER BY rowid",
            (trader.ctx.key.session_id,),
        ).fetchall()
    return [r[0] for r in rows]


def sales(gateway: RecordingGateway) -> list:
    return [i for i in gateway.placed if i.side is Side.SELL and i.order_type is not OrderType.SL]


def lock_intents(store: Any, refuse: bool = False) -> threading.Event:
    """Intent writes wait, as on a database another program locks, until the returned event is set; then they write
    (or, `refuse`, fail as the lock's timeout would)."""
    record_all = store.intents.record_all
    unlocked = threading.Event()

    def locked(*a: object, **k: object) -> list[bool]:
        assert unlocked.wait(10), "the test never unlocked the database"
        if refuse:
            raise StoreWriteError("the order intent was not saved: the database is locked")
        return record_all(*a, **k)

    store.intents.record_all = locked
    return unlocked


def test_a_stop_the_exchange_cancelled_is_placed_again_at_once_while_the_journal_cannot_be_written(
    make,
) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")  # stop O2 at 186
    option_tick(trader, "199", 1)
    disk_full(store)
    trader.on_order(
        replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
    )
    assert len(gateway.placed) == 3
    stop = gateway.placed[-1]
    assert (stop.order_type, stop.side, stop.quantity, stop.trigger_price) == (
        OrderType.SL, Side.SELL, 195, Decimal("186.00")
    ), "a new stop-loss order at once, not after the outage"  # fmt: skip
    assert gateway.unjournalled == [stop] and [i for i, _ in trader.orders.held] == [stop]
    assert trader.snapshot(AgentState.RUNNING).protection == "", "the position is protected"
    text = trader.log.path.read_text(encoding="utf-8")
    assert (
        "the protective_stop order to SELL 195" in text and "is sent anyway to protect the position" in text
    )
    assert trader.ctx.risk.halted, "no new entries while the journal cannot be written"


def test_a_sale_of_a_position_whose_stop_level_is_above_the_price_is_sent_at_once_while_the_journal_fails(
    make,
):
    # Seed 51's log: "the stop 236.75 is at or above the last price 151.2: selling the position now", then "the
    # stop_loss order ... cannot be journalled", and again, for 37 market minutes.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.REJECTED, status_message="RMS: margin"))
    disk_full(store)
    option_tick(trader, "180", 3)  # the stop placed again 2 s later: its level 186 is above the price now
    [sale] = sales(gateway)
    assert (sale.quantity, sale.reason) == (195, "stop_loss")
    assert gateway.unjournalled == [sale]
    assert trader.orders.open_exit() is not None, "the sale works at the broker"


def test_a_triggered_stop_the_exchange_cancelled_is_followed_by_a_sale_at_once_while_the_journal_fails(make):
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    disk_full(store)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message=LPP))
    [sale] = sales(gateway)
    assert (sale.order_type, sale.quantity, sale.reason) == (OrderType.MARKET, 195, "stop_loss")
    assert gateway.unjournalled == [sale]


def test_entries_and_a_signal_exit_under_a_resting_stop_wait_for_the_journal(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    disk_full(store)
    trader.on_order(
        replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
    )
    assert gateway.placed[-1].order_type is OrderType.SL and gateway.unjournalled, "protected at once"
    placed = len(gateway.placed)
    trader.act([ExitPosition("signal_exit")])  # the new stop rests: it protects; the signal's sale waits
    assert len(gateway.placed) == placed
    fill(trader, "O3", 195, "186", "F2")  # the stop sold it
    assert trader.holding is None and trader.realised == Decimal("-2730.00")
    for second in (2, 12, 40):
        index_tick(trader, second)
        trader.strategy.pending_entry = OptionRight.CE
        trader.act([EnterPosition(OptionRight.CE, "test")])
    assert len(gateway.placed) == placed, "no entry is sent while the journal cannot be written"
    assert all(i.side is Side.SELL for i in gateway.unjournalled)


def test_the_orders_sent_while_the_journal_failed_are_journalled_in_order_once_it_writes_again(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    before = journalled(store, trader)
    assert before == [i.intent_id for i in gateway.placed]
    disk_full(store)
    trader.on_order(
        replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
    )
    trader.on_order(
        replace(gateway.orders()[2], status=OrderStatus.CANCELLED, status_message=LPP)
    )  # then a gap
    held = gateway.unjournalled
    assert [(i.order_type, i.reason) for i in held] == [
        (OrderType.SL, "protective_stop"),
        (OrderType.MARKET, "stop_loss"),
    ]
    for second in range(2, 30):
        option_tick(trader, "90", second)
    assert journalled(store, trader) == before and trader.ctx.risk.halted
    assert len(gateway.placed) == 4, "nothing sent twice while it waits"
    disk_freed(store)
    for second in range(30, 80):
        option_tick(trader, "90", second)
    assert journalled(store, trader) == before + [i.intent_id for i in held], "journalled, in the order sent"
    assert trader.orders.held == [] and trader.orders.outage is None
    assert not trader.ctx.risk.halted, "the session takes entries again"
    assert len(gateway.placed) == 4, "journalled, never sent again"
    text = trader.log.path.read_text(encoding="utf-8")
    assert text.count("is sent anyway to protect the position") == 1, "said once an outage"
    assert "the 2 orders sent while it could not be are journalled now" in text
    key = trader.ctx.key
    kinds = [n.kind for n in store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)]
    assert "journal_writable" in kinds


def test_a_locked_database_holds_the_stop_back_a_second_at_most_not_the_lock_s_twenty(make) -> None:
    # The chaos harness's db_lock: another program holds the database, and a write waits ~20 s (the busy timeout and
    # its retries) before it fails. Seed 51's first stop-loss order after the exchange ended the stop waited that long
    # at 74x: 25 market minutes naked before the write-ahead rule even refused it.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    unlocked = lock_intents(store)
    try:
        began = time.monotonic()
        trader.on_order(
            replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
        )
        waited = time.monotonic() - began
        assert len(gateway.placed) == 3 and gateway.placed[-1].order_type is OrderType.SL
        assert waited < 2, f"the stop waited {waited:.1f} s for a locked database"
        assert gateway.unjournalled == gateway.placed[-1:] and trader.ctx.risk.halted
        option_tick(
            trader, "199", 2
        )  # its write still waits: nothing more is written meanwhile, nothing sent
        assert len(gateway.placed) == 3
    finally:
        unlocked.set()
        del store.intents.record_all
    second = 3
    deadline = time.monotonic() + 10
    while trader.orders.held and time.monotonic() < deadline:  # its write lands once unlocked (real time)
        option_tick(trader, "199", second)
        second += 1
        time.sleep(0.05)
    assert journalled(store, trader) == [i.intent_id for i in gateway.placed], "each intent journalled once"
    assert trader.orders.held == [] and not trader.ctx.risk.halted


def test_the_account_s_dispatcher_never_waits_for_a_locked_journal(make) -> None:
    # An entry decided on the dispatcher (the feed's thread, every segment of the account behind it) while the
    # journal is down starts the journal's write and is refused at once: the answer comes on a later call.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    disk_full(store)
    trader.on_order(
        replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
    )
    fill(trader, "O3", 195, "186", "F2")  # the new stop sold it: flat, the journal still down
    unlocked = lock_intents(store, refuse=True)
    try:
        trader.market_time = T0 + timedelta(seconds=10)  # the journal is due to be tried again: on this call
        trader.strategy.pending_entry = OptionRight.CE
        began = time.monotonic()
        assert trader.entries.ready(EnterPosition(OptionRight.CE, "test"), on_dispatcher=True) is None
        assert time.monotonic() - began < 0.3, "the dispatcher waited for the store"
    finally:
        unlocked.set()
    deadline = time.monotonic() + 10
    while trader.orders._writing is not None and time.monotonic() < deadline:  # its write ends (refused)
        index_tick(trader, 11)
        time.sleep(0.05)
    assert trader.orders._writing is None, "the write the dispatcher started ended (refused)"
    assert trader.orders.outage is not None and all(i.side is Side.SELL for i in gateway.placed[1:])


def test_a_signal_exit_waiting_on_a_locked_journal_does_not_keep_the_agent_from_protecting_the_position(make):
    # Chaos seed 51 (second run): a signal exit's intent waited ~20 s on a locked database (25 market minutes at 74x)
    # while the exchange cancelled the triggered stop; the sale that followed came only after that wait.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    unlocked = lock_intents(store)
    try:
        began = time.monotonic()
        trader.act(
            [ExitPosition("signal_exit")]
        )  # under the resting stop: waits for the journal, a second at most
        assert time.monotonic() - began < 2 and len(gateway.placed) == 2, "not sent, not waited for 20 s"
        assert gateway.cancelled == [], "the stop still protects"
        trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message=LPP))
        [sale] = sales(gateway)
        assert (sale.order_type, sale.reason) == (OrderType.MARKET, "stop_loss") and gateway.unjournalled == [
            sale
        ]
        assert time.monotonic() - began < 3
    finally:
        unlocked.set()
        del store.intents.record_all
    second = 2
    deadline = time.monotonic() + 10
    while trader.orders.held and time.monotonic() < deadline:
        option_tick(trader, "150", second)
        second += 1
        time.sleep(0.05)
    assert sale.intent_id in journalled(store, trader) and trader.orders.outage is None


def test_a_stopping_segment_journals_what_it_holds_if_the_store_writes_and_says_so_if_not(make) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    disk_full(store)
    trader.on_order(
        replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
    )
    assert trader.orders.held and trader.owes_recovery(), "the next start must take the session over"
    trader.orders.last_flush(wait=1.0)  # still refused: said, plainly
    assert (
        "1 order sent while the journal could not be written is not journalled" in trader.log.path.read_text()
    )
    disk_freed(store)
    trader.orders.last_flush(wait=1.0)  # the store writes again as it stops: journalled, whatever the pause
    assert trader.orders.held == [] and gateway.placed[-1].intent_id in journalled(store, trader)


def test_fills_that_came_and_wait_for_the_store_are_not_asked_for_again_every_patience(make) -> None:
    # Chaos seed 51: "exit order ... ended COMPLETE with 65 filled, but 0 fills came: asking for them again" every 30 s
    # for half an hour, while the fill had come and only waited for a full disk.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.act([ExitPosition("signal_exit")])
    sale = gateway.orders()[-1]
    trader.on_order(replace(sale, status=OrderStatus.COMPLETE, filled_quantity=195))

    def full(*a: object, **k: object) -> bool:
        raise StoreWriteError("the fill was not saved: the disk is full")

    store.fills.record = full  # type: ignore[method-assign]
    fill(trader, sale.order_id, 195, "199", "F2")
    asked: list[str] = []
    gateway.report_fills = asked.append  # type: ignore[method-assign]
    for second in range(2, 100):
        option_tick(trader, "199", second)
    assert asked == [] and "asking for them again" not in trader.log.path.read_text(encoding="utf-8")
    del store.fills.record
    option_tick(trader, "199", 100)
    assert trader.holding is None and trader.realised == Decimal("-195.00")
