"""The protective orders sent while the journal cannot be written (issue 16, defect 3), probed as a bad disk, a
locked database and a trader would: a kill switch pressed before the outage, a protective sale that sells part, an
entry that fills while the store cannot write."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.domain import Mode, OptionRight, OrderRole, OrderStatus, OrderType, Side, Tick
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.engine.trader import SegmentTrader
from desktop.store.errors import StoreWriteError
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


LPP = "Cancelled by the exchange: the triggered stop-loss order's limit is outside the limit price protection"


def test_a_protective_sale_that_sells_part_during_an_outage_leaves_the_rest_under_one_stop_journalled_in_order(
    make,
) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")  # 195 held, stop O2
    option_tick(trader, "199", 1)
    before = journalled(store, trader)
    disk_full(store)
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message=LPP))
    [sale] = sales(gateway)  # O3: sold at once, unjournalled
    fill(trader, "O3", 65, "180", "F2")
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.CANCELLED, filled_quantity=65,
                            status_message="Cancelled by the exchange"))  # fmt: skip
    assert trader.holding is not None and trader.holding.quantity == 130
    for second in range(2, 20):
        option_tick(trader, "190", second)  # the rest protected again, still unjournalled
    stops = [i for i in gateway.placed[2:] if i.order_type is OrderType.SL]
    more_sales = sales(gateway)[1:]
    assert (len(stops), len(more_sales)) in ((1, 0), (0, 1)), f"{stops} {more_sales}"
    sold_or_stopped = (stops or more_sales)[0]
    assert sold_or_stopped.quantity == 130, "nothing sold short, nothing left naked"
    disk_freed(store)
    for second in range(20, 80):
        option_tick(trader, "190", second)
    assert journalled(store, trader) == before + [i.intent_id for i in gateway.unjournalled]
    assert [i.intent_id for i in gateway.unjournalled] == [i.intent_id for i in gateway.placed[2:]]
    assert trader.orders.held == [] and trader.orders.outage is None
    h = trader.holding
    assert h is not None and h.quantity == 130 and h.stop_order is not None and h.stop_order.resting
    assert trader.realised == Decimal("-1300.00")


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.PAPER])
def test_an_entry_that_fills_while_the_store_cannot_write_is_protected_at_once(make, mode: Mode) -> None:
    # The entry's intent was journalled; then the disk filled (or another program locked the database) before its
    # fill came. The fill waited for the store ("durable first"), and with it the position and its stop: the options
    # bought were at the broker with no stop-loss order for as long as the store could not write (chaos seed 51's
    # 37 market minutes). A sale's fill may wait (the sale did its work); an entry's may not: its stop goes out now,
    # and the fill is recorded (once) when the store writes again. A PAPER session takes the same path.
    trader, gateway, store = make(mode)
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    [entry] = gateway.placed

    def full(*a: object, **k: object) -> bool:
        raise StoreWriteError("the fill was not saved: the disk is full")

    store.fills.record = full  # type: ignore[method-assign]
    disk_full(store)
    fill(trader, "O1", 195, "200", "F1")
    index_tick(trader, 1)
    h = trader.holding
    assert h is not None and h.quantity == 195, "the position the broker holds is managed"
    assert h.stop_order is not None and h.stop_order.resting, "the options bought have a stop-loss order"
    assert [(i.order_type, i.quantity) for i in gateway.placed[1:]] == [(OrderType.SL, 195)]
    assert trader.owes_recovery(), "a fill not durable yet: the next start takes the session over"
    fill(trader, "O1", 195, "200", "F1")  # reported again meanwhile: still one fill
    del store.fills.record
    disk_freed(store)
    for second in range(2, 60):
        index_tick(trader, second)
    fills = store.fills.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    assert [f.fill_id for f in fills] == ["F1"], "recorded once"
    assert trader.holding is not None and trader.holding.quantity == 195, "acted on once"
    assert [i.intent_id for i in gateway.placed] == journalled(store, trader)
    assert len(gateway.placed) == 2 and trader.orders.unsaved_fills == []
    fill(trader, "O2", 195, "186", "F2")
    assert trader.holding is None and trader.realised == Decimal("-2730.00")


def test_an_entry_that_fills_while_another_program_locks_the_database_is_protected_within_a_second(
    make,
) -> None:
    # A locked database holds a write ~20 s before it fails (the chaos harness's db_lock): the entry's fill, recorded
    # on the agent's thread before anything acted on it, kept the options bought with no stop that long (25 market
    # minutes at the chaos run's 74x).
    trader, gateway, store = make()
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    record = store.fills.record
    unlocked = threading.Event()
    placed_at: list[float] = []

    def locked(*a: object, **k: object) -> bool:
        assert unlocked.wait(10), "the test never unlocked the database"
        return record(*a, **k)

    place = gateway.place

    def timed(intent):  # type: ignore[no-untyped-def]
        placed_at.append(time.monotonic())
        return place(intent)

    gateway.place = timed  # type: ignore[method-assign]
    store.fills.record = locked  # type: ignore[method-assign]
    began = time.monotonic()
    timer = threading.Timer(3.0, unlocked.set)  # the lock lets go 3 s later (the test's 20 s)
    timer.start()
    try:
        fill(trader, "O1", 195, "200", "F1")
    finally:
        timer.join()
        del store.fills.record
    assert placed_at and gateway.placed[-1].order_type is OrderType.SL, "the options bought are protected"
    assert placed_at[0] - began < 2, f"the stop waited {placed_at[0] - began:.1f} s for the locked database"
    deadline, second = time.monotonic() + 10, 1
    # its write lands once unlocked (real time)
    while trader.orders.unsaved_fills and time.monotonic() < deadline:
        index_tick(trader, second)
        second += 1
        time.sleep(0.05)
    fills = store.fills.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    assert [f.fill_id for f in fills] == ["F1"] and trader.orders.unsaved_fills == []
    assert trader.holding is not None and trader.holding.quantity == 195 and len(gateway.placed) == 2


def test_the_day_s_square_off_goes_out_while_the_store_cannot_write_and_its_fill_counts_once_it_can(
    make,
) -> None:
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)

    def full(*a: object, **k: object) -> bool:
        raise StoreWriteError("the fill was not saved: the disk is full")

    disk_full(store)
    store.fills.record = full  # type: ignore[method-assign]
    late = (T0.replace(hour=15, minute=16) - T0).total_seconds()
    option_tick(trader, "210", late)  # past the square-off time: sold, though the journal cannot be written
    [sale] = sales(gateway)
    assert sale.reason == "square_off" and gateway.unjournalled == [sale]
    assert gateway.cancelled == ["O2"], "the stop cancelled as the sale goes"
    trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED))
    fill(trader, "O3", 195, "210", "F2")
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.COMPLETE, filled_quantity=195))
    for second in range(1, 20):
        option_tick(trader, "210", late + second)
    assert len(gateway.placed) == 3, "nothing sold twice while the fill waits for the store"
    del store.fills.record
    disk_freed(store)
    for second in range(20, 80):
        option_tick(trader, "210", late + second)
    assert trader.holding is None and trader.realised == Decimal("1950.00")
    assert journalled(store, trader) == [i.intent_id for i in gateway.placed]
    fills = store.fills.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    assert [f.fill_id for f in fills] == ["F1", "F2"]
    assert not trader.ctx.risk.halted and trader.orders.outage is None and len(gateway.placed) == 3


def test_a_stop_s_fill_that_waits_for_the_store_is_not_taken_for_a_sale_outside_kitedesk(make) -> None:
    # The stop sold 65 of 195 while the disk was full: its fill waits for the store, so the position still says 195.
    # The broker's positions (read every 30 s) show 130 twice: taken for "sold outside KiteDesk", the position was
    # cut to 130 and the stop resized to a total of 130; then the fill was recorded and sold 65 more of it here. The
    # broker held 130 with a stop for 65: 65 options naked and forgotten for the day.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)

    def full(*a: object, **k: object) -> bool:
        raise StoreWriteError("the fill was not saved: the disk is full")

    store.fills.record = full  # type: ignore[method-assign]
    fill(trader, "O2", 65, "186", "F2")  # the stop sold part (a thin book): waits for the store
    gateway.net = 130  # what the broker's positions show
    for second in range(2, 6):
        trader.outside.next_check = 0.0  # the positions read again (every 30 s in real time)
        option_tick(trader, "187", second)
    del store.fills.record
    for second in range(6, 10):
        trader.outside.next_check = 0.0
        option_tick(trader, "187", second)
    h = trader.holding
    assert h is not None and h.quantity == 130, "what the broker holds"
    stop = h.stop_order
    assert stop is not None and stop.resting
    resized = dict(gateway.resized)
    left = resized.get(stop.order_id, stop.intent.quantity) - stop.filled
    assert left == 130, f"the stop sells {left} of the 130 held"
    assert trader.realised == Decimal("-910.00")


def test_a_fill_written_while_another_program_locks_the_database_holds_the_agent_a_second_at_most(
    make,
) -> None:
    # The e2e Ctrl-C run under a lock: the square-off's fill was recorded on the agent's thread, which waited the lock's
    # ~20 s ("exit order ... still open after 30 s" once it woke): no order update, kill switch, cancel of the stop by
    # the exchange or tick was handled meanwhile. Like an intent's, a fill's write is waited for a second at most;
    # the fill is recorded (once) and acted on when it lands.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    trader.act([ExitPosition("signal_exit")])
    [sale] = sales(gateway)
    record = store.fills.record
    unlocked = threading.Event()

    def locked(*a: object, **k: object) -> bool:
        assert unlocked.wait(10), "the test never unlocked the database"
        return record(*a, **k)

    store.fills.record = locked  # type: ignore[method-assign]
    timer = threading.Timer(4.0, unlocked.set)
    timer.start()
    try:
        began = time.monotonic()
        fill(trader, "O3", 195, "199", "F2")
        waited = time.monotonic() - began
        assert waited < 2, f"the agent waited {waited:.1f} s for the locked database"
        assert trader.orders.unsaved_fills, "not recorded yet: nothing acted on it"
    finally:
        timer.join()
        deadline = time.monotonic() + 10
        second = 2
        while trader.orders.unsaved_fills and time.monotonic() < deadline:
            option_tick(trader, "199", second)
            second += 1
            time.sleep(0.05)
        del store.fills.record
    fills = store.fills.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    assert [f.fill_id for f in fills] == ["F1", "F2"]
    assert trader.holding is None and trader.realised == Decimal("-195.00")


def test_back_to_back_outages_with_a_trigger_a_chase_and_a_part_sale_leave_nothing_naked_or_sold_twice(make):
    # Locked (each write waits), then full (each write refused), then locked again: the stop the exchange cancelled is
    # placed again, triggers, is chased, cancelled and the position sold at a limit; that sale sells part and ends;
    # the rest is protected again. Every order goes out at once, is journalled once in the order it was sent, and
    # together the sales never sell more than was bought.
    trader, gateway, store = make()
    enter(trader, gateway, "200")  # 195 held, stop O2 at 186
    option_tick(trader, "199", 1)
    before = journalled(store, trader)
    unlocked = threading.Event()

    def locked(*a: object, **k: object) -> list[bool]:
        assert unlocked.wait(10), "the test never unlocked the database"
        raise StoreWriteError("the order intent was not saved: the database stayed locked")

    store.intents.record_all = locked  # type: ignore[method-assign]
    try:
        trader.on_order(
            replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message="Cancelled by exchange")
        )
        assert gateway.placed[-1].order_type is OrderType.SL, "a new stop at once (O3)"
        disk_full(store)
    finally:
        unlocked.set()
    option_tick(trader, "190", 2)
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.OPEN))  # O3 triggered, unfilled
    for second in range(3, 20):
        option_tick(trader, "185", second)  # chased, then cancelled and sold at a limit
    assert "O3" in gateway.cancelled and sales(gateway), "the unfilled stop cancelled and the position sold"
    trader.on_order(replace(gateway.orders()[2], status=OrderStatus.CANCELLED))
    sale = gateway.orders()[-1]
    assert sale.side is Side.SELL and sale.order_type is not OrderType.SL
    fill(trader, sale.order_id, 65, "184", "F2")
    trader.on_order(replace(sale, status=OrderStatus.CANCELLED, filled_quantity=65))
    unlocked.clear()
    store.intents.record_all = locked  # type: ignore[method-assign]
    try:
        for second in range(20, 30):
            option_tick(trader, "186.5", second)  # the rest protected again (or sold) while locked
    finally:
        unlocked.set()
        del store.intents.record_all
    deadline = time.monotonic() + 10
    second = 30
    while (trader.orders.held or trader.orders.outage) and time.monotonic() < deadline:
        option_tick(trader, "186.5", second)
        second += 1
        time.sleep(0.05)
    h = trader.holding
    assert h is not None and h.quantity == 130
    stop = h.stop_order
    sent_after = [i.intent_id for i in gateway.placed[2:]]
    assert journalled(store, trader) == before + sent_after, "each journalled once, in the order sent"
    working_sales = [o for o in trader.orders.tracked.values() if o.role is not OrderRole.ENTRY and o.resting]
    covering = sum(o.intent.quantity - o.filled for o in {id(o): o for o in working_sales}.values())
    assert stop is not None and stop.resting or trader.orders.open_exit() is not None, (
        "the 130 left are protected"
    )
    assert covering <= 130, f"resting sales sell {covering} of the 130 held: short"
    assert trader.orders.outage is None and not trader.ctx.risk.halted


def test_a_long_lock_never_piles_up_journal_or_fill_threads(make) -> None:
    # Every tick of a long lock tries the journal and the fills again: at most one write of each runs at a time for
    # the segment, and none is left running once the lock lets go.
    trader, gateway, store = make()
    enter(trader, gateway, "200")
    option_tick(trader, "199", 1)
    record_all, record = store.intents.record_all, store.fills.record
    unlocked = threading.Event()

    def locked_intents(*a: object, **k: object) -> list[bool]:
        assert unlocked.wait(10), "the test never unlocked the database"
        return record_all(*a, **k)

    def locked_fill(*a: object, **k: object) -> bool:
        assert unlocked.wait(10), "the test never unlocked the database"
        return record(*a, **k)

    def writers() -> tuple[int, int]:
        names = [th.name for th in threading.enumerate()]
        return (names.count("kitedesk-journal-NIFTY"), names.count("kitedesk-fill-NIFTY"))

    store.intents.record_all = locked_intents  # type: ignore[method-assign]
    store.fills.record = locked_fill  # type: ignore[method-assign]
    most = (0, 0)
    try:
        trader.on_order(replace(gateway.orders()[1], status=OrderStatus.CANCELLED, status_message=LPP))
        fill(trader, "O3", 65, "190", "F2")  # the sale sells part: its fill waits too
        for second in range(2, 400):
            option_tick(trader, "190", second)
            now = writers()
            most = (max(most[0], now[0]), max(most[1], now[1]))
    finally:
        unlocked.set()
        del store.intents.record_all, store.fills.record
    assert most[0] <= 1 and most[1] <= 1, f"journal and fill threads at once: {most}"
    deadline, second = time.monotonic() + 10, 400
    while (trader.orders.held or trader.orders.unsaved_fills) and time.monotonic() < deadline:
        option_tick(trader, "190", second)
        second += 1
        time.sleep(0.05)
    assert writers() == (0, 0) and trader.orders.held == [] and trader.orders.unsaved_fills == []
    assert journalled(store, trader) == [i.intent_id for i in gateway.placed]
