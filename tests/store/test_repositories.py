"""Each repository writes what the engine does and reads it back for crash recovery."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from desktop.domain import Instrument, Mode, OrderStatus, Position, Segment, SessionKey, Side
from desktop.store import AccountRequiredError, StoreError
from desktop.store.trades import round_trip_pnl
from tests.store.conftest import DAY, SYMBOL, make_fill, make_intent, make_order, new_session


def test_session_is_read_back_with_its_parameters(store):
    key = new_session(store, "AB1234", mode=Mode.LIVE, label="expiry day")
    record = store.sessions.get(broker_id="AB1234", session_id=key.session_id)
    assert record is not None
    assert (record.label, record.mode, record.state) == ("expiry day", Mode.LIVE, "running")
    assert record.params == {"lots": 1, "stop_loss": "20.5"}
    assert record.device_id == store.device_id


def test_session_state_and_stop_time_are_recorded(store):
    key = new_session(store, "AB1234")
    store.sessions.set_state(key, "stopped", stopped_at=DAY + timedelta(hours=6))
    record = store.sessions.get(broker_id="AB1234", session_id=key.session_id)
    assert record is not None and record.state == "stopped" and record.stopped_at == DAY + timedelta(hours=6)


def test_session_cannot_change_mode(store):
    key = new_session(store, "AB1234", mode=Mode.PAPER)
    with pytest.raises(StoreError, match="cannot become LIVE"):
        new_session(store, "AB1234", mode=Mode.LIVE, session_id=key.session_id)


def test_records_of_an_unrecorded_session_are_refused(store):
    key = SessionKey.new("AB1234")
    with pytest.raises(StoreError, match="record the session first"):
        store.fills.record(make_fill(key))


def test_paper_fill_cannot_enter_a_live_session(store):
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    with pytest.raises(StoreError, match="PAPER fill cannot belong to a LIVE session"):
        store.fills.record(make_fill(key, mode=Mode.PAPER))
    assert store.fills.for_session(broker_id="AB1234", session_id=key.session_id) == []


def test_a_mix_of_paper_and_live_is_refused_also_once_the_sessions_mode_is_remembered(store):
    live, paper = new_session(store, "AB1234", mode=Mode.LIVE), new_session(store, "AB1234", mode=Mode.PAPER)
    assert store.fills.record(make_fill(live, mode=Mode.LIVE))  # both modes now known without a query
    assert store.fills.record(make_fill(paper, mode=Mode.PAPER))
    with pytest.raises(StoreError, match="PAPER order intent cannot belong to a LIVE session"):
        store.intents.record(make_intent(live, mode=Mode.PAPER), at=DAY)
    with pytest.raises(StoreError, match="LIVE position cannot belong to a PAPER session"):
        store.positions.upsert(Position(paper, Mode.LIVE, "NFO", SYMBOL, 65, Decimal(1)))
    assert store.intents.for_session(broker_id="AB1234", session_id=live.session_id) == []
    assert store.positions.for_session(broker_id="AB1234", session_id=paper.session_id) == []


def test_repeated_fill_is_saved_once(store):
    key = new_session(store, "AB1234")
    fill = make_fill(key)
    assert store.fills.record(fill) is True
    assert store.fills.record(fill) is False
    assert store.fills.for_session(broker_id="AB1234", session_id=key.session_id) == [fill]


def test_intent_is_unfilled_until_its_order_is_final(store):
    key = new_session(store, "AB1234")
    intent = make_intent(key)
    assert store.intents.record(intent, at=DAY)
    assert store.intents.unfilled(broker_id="AB1234", session_id=key.session_id) == [intent]
    store.orders.record(make_order(key, intent, status=OrderStatus.OPEN))
    assert store.intents.unfilled(broker_id="AB1234", session_id=key.session_id) == [intent]
    store.orders.record(make_order(key, intent, status=OrderStatus.COMPLETE, filled=65))
    assert store.intents.unfilled(broker_id="AB1234", session_id=key.session_id) == []
    assert store.intents.for_session(broker_id="AB1234", session_id=key.session_id) == [intent]


def test_late_transient_update_does_not_undo_a_final_order(store):
    key = new_session(store, "AB1234")
    intent = make_intent(key)
    store.intents.record(intent, at=DAY)
    store.orders.record(make_order(key, intent, status=OrderStatus.COMPLETE, filled=65))
    store.orders.record(make_order(key, intent, status=OrderStatus.OPEN))
    [order] = store.orders.for_session(broker_id="AB1234", session_id=key.session_id)
    assert order.status is OrderStatus.COMPLETE and order.filled_quantity == 65
    assert order.average_price == Decimal("100.05")
    assert store.orders.open_orders(broker_id="AB1234", session_id=key.session_id) == []


def test_an_order_update_replaces_the_saved_order_in_one_row(store):
    key = new_session(store, "AB1234")
    intent = make_intent(key)
    store.intents.record(intent, at=DAY)
    store.orders.record(make_order(key, intent, status=OrderStatus.OPEN))
    modified = replace(
        make_order(key, intent, status=OrderStatus.TRIGGER_PENDING),
        trigger_price=Decimal("95.10"),
        status_message="stop moved",
    )
    store.orders.record(modified)
    assert store.orders.for_session(broker_id="AB1234", session_id=key.session_id) == [modified]


def test_a_position_upsert_replaces_its_quantity_and_prices(store):
    key = new_session(store, "AB1234")
    store.positions.upsert(
        Position(key, Mode.PAPER, "NFO", SYMBOL, 65, Decimal("100.05"), Decimal("101"), Decimal("0"))
    )
    later = Position(
        key, Mode.PAPER, "NFO", SYMBOL, 130, Decimal("102.50"), Decimal("104.25"), Decimal("12.00")
    )
    store.positions.upsert(later)
    assert store.positions.for_session(broker_id="AB1234", session_id=key.session_id) == [later]


def test_open_positions_leave_out_flat_ones(store):
    key = new_session(store, "AB1234")
    long = Position(key, Mode.PAPER, "NFO", SYMBOL, 65, Decimal("100.05"), Decimal("101"), Decimal("0"))
    flat = Position(
        key, Mode.PAPER, "NFO", "NIFTY2611325100PE", 0, Decimal("0"), Decimal("0"), Decimal("-12.50")
    )
    store.positions.upsert(long)
    store.positions.upsert(flat)
    assert store.positions.open_positions(broker_id="AB1234", session_id=key.session_id) == [long]
    closed = Position(key, Mode.PAPER, "NFO", SYMBOL, 0, Decimal("0"), Decimal("110"), Decimal("643.50"))
    store.positions.upsert(closed)
    assert store.positions.open_positions(broker_id="AB1234", session_id=key.session_id) == []
    assert len(store.positions.for_session(broker_id="AB1234", session_id=key.session_id)) == 2


def test_journal_reads_back_in_order_after_a_sequence_number(store):
    key = new_session(store, "AB1234")
    seqs = [
        store.journal.append(
            key, segment=Segment.NIFTY, kind="bar", payload={"close": Decimal(f"{n}.05")}, market_time=DAY
        )
        for n in range(5)
    ]
    store.journal.append(key, segment=None, kind="stopped", payload={}, market_time=DAY)
    entries = store.journal.for_session(broker_id="AB1234", session_id=key.session_id, after_seq=seqs[1])
    assert [e.payload.get("close") for e in entries] == ["2.05", "3.05", "4.05", None]
    assert entries[-1].segment is None and entries[0].segment is Segment.NIFTY


def test_journal_refuses_a_payload_that_is_not_json(store):
    key = new_session(store, "AB1234")
    with pytest.raises(StoreError, match="cannot store"):
        store.journal.append(key, segment=None, kind="bad", payload={"x": object()}, market_time=DAY)
    assert store.journal.for_session(broker_id="AB1234", session_id=key.session_id) == []


def test_instruments_cache_is_per_account_and_day(store):
    nifty = Instrument(1, 2, SYMBOL, "NIFTY", "NFO", "NFO-OPT", "CE", date(2026, 1, 13), Decimal("25000"), 65)
    index = Instrument(256265, 1001, "NIFTY 50", "NIFTY 50", "NSE", "INDICES", "EQ")
    assert store.instruments.save(broker_id="AB1234", day=date(2026, 1, 5), instruments=[nifty, index]) == 2
    assert store.instruments.load(broker_id="AB1234", day=date(2026, 1, 5)) == [nifty, index]
    assert store.instruments.load(broker_id="CD5678", day=date(2026, 1, 5)) is None
    assert store.instruments.load(broker_id="AB1234", day=date(2026, 1, 6)) is None
    assert store.instruments.prune(broker_id="AB1234", before=date(2026, 1, 6)) == 1


def test_outbox_resumes_after_the_acknowledged_change(store):
    key = new_session(store, "AB1234")
    store.fills.record(make_fill(key))
    first = store.outbox.pending(broker_id="AB1234")
    assert [e.table_name for e in first] == ["sessions", "fills"]
    store.outbox.acknowledge(broker_id="AB1234", up_to_seq=first[0].seq)
    store.outbox.acknowledge(broker_id="AB1234", up_to_seq=0)  # never moves back
    assert [e.seq for e in store.outbox.pending(broker_id="AB1234")] == [first[1].seq]
    assert store.outbox.acknowledged(broker_id="AB1234") == first[0].seq


def test_every_record_carries_a_uuid_and_this_device(store):
    key = new_session(store, "AB1234")
    store.fills.record(make_fill(key))
    store.journal.append(key, segment=None, kind="started", payload={}, market_time=DAY)
    with store._db.read() as conn:  # white-box: the columns the sync depends on
        for table in ("sessions", "fills", "journal"):
            rows = conn.exec_driver_sql(f"SELECT id, device_id FROM {table}").all()
            assert rows and all(len(r.id) == 32 and r.device_id == store.device_id for r in rows)


@pytest.mark.parametrize("bad", [None, "", "   "])
def test_trading_reads_refuse_a_missing_account(store, bad):
    with pytest.raises(AccountRequiredError):
        store.fills.for_session(broker_id=bad, session_id="s1")


def test_round_trip_pnl_is_set_on_the_closing_fill():
    key = SessionKey("AB1234", "s1")
    buy = make_fill(key, side=Side.BUY, quantity=65, price="100.05")
    part = make_fill(key, side=Side.SELL, quantity=30, price="110.00")
    rest = make_fill(key, side=Side.SELL, quantity=35, price="90.00")
    pnl = round_trip_pnl([buy, part, rest])
    expected = Decimal(30 * 110 + 35 * 90) - Decimal("100.05") * 65
    assert pnl == {("s1", rest.fill_id): expected.quantize(Decimal("0.01"))}


def test_a_flipping_fill_closes_one_round_trip_and_opens_the_next():
    key = SessionKey("AB1234", "s1")
    buy = make_fill(key, side=Side.BUY, quantity=50, price="10")
    flip = make_fill(key, side=Side.SELL, quantity=100, price="12")
    cover = make_fill(key, side=Side.BUY, quantity=50, price="11")
    pnl = round_trip_pnl([buy, flip, cover])
    assert pnl == {("s1", flip.fill_id): Decimal("100.00"), ("s1", cover.fill_id): Decimal("50.00")}


def test_round_trip_opened_before_the_range_still_gets_its_pnl(store):
    key = new_session(store, "AB1234", mode=Mode.LIVE)
    store.fills.record(make_fill(key, mode=Mode.LIVE, side=Side.BUY, price="100", at=DAY))
    sell = make_fill(key, mode=Mode.LIVE, side=Side.SELL, price="101.50", at=DAY + timedelta(days=1))
    store.fills.record(sell)
    day2 = (DAY + timedelta(days=1)).date()
    [row] = store.trades.for_account(broker_id="AB1234", mode=Mode.LIVE, date_from=day2, date_to=day2)
    assert row.fill == sell and row.round_trip_pnl == Decimal("97.50")
    assert store.trades.for_account(broker_id="AB1234", mode=Mode.PAPER) == []


def test_account_trades_refuse_a_backwards_day_range(store):
    with pytest.raises(StoreError, match="after the end day"):
        store.trades.for_account(
            broker_id="AB1234", mode=Mode.LIVE, date_from=date(2026, 1, 6), date_to=date(2026, 1, 5)
        )


def test_money_as_a_float_is_refused(store):
    key = new_session(store, "AB1234")
    with pytest.raises(StoreError, match="money must be a Decimal"):
        store.positions.upsert(Position(key, Mode.PAPER, "NFO", SYMBOL, 65, 100.05))  # type: ignore[arg-type]
    assert store.positions.for_session(broker_id="AB1234", session_id=key.session_id) == []


def test_intents_recorded_together_are_all_saved_in_one_transaction_or_none(store):
    key = new_session(store, "AB1234", mode=Mode.PAPER)
    intents = [make_intent(key, mode=Mode.PAPER) for _ in range(3)]
    batches = store._db.batches
    assert store.intents.record_all([(i, DAY) for i in intents]) == [True, True, True]
    assert store._db.batches == batches + 1
    saved = {
        i.intent_id for i in store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    assert {i.intent_id for i in intents} <= saved
    live = make_intent(key, mode=Mode.LIVE)  # this session trades PAPER: refused, and takes its group with it
    fresh = make_intent(key, mode=Mode.PAPER)
    with pytest.raises(StoreError):
        store.intents.record_all([(fresh, DAY), (live, DAY)])
    saved = {
        i.intent_id for i in store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    assert fresh.intent_id not in saved
