"""Push and pull against a real PostgreSQL with real stores: two computers of UK9394, one of UK1234."""

from __future__ import annotations

import csv
import sqlite3
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from desktop.domain import Mode, Order, OrderStatus, OrderType, SessionKey, Side
from desktop.store import DB_FILENAME
from desktop.store.export import export_trades
from desktop.store.schema import fills, orders, sync_cursors
from desktop.store.store import Store
from desktop.sync import syncer
from desktop.sync.central import SYNCED_TABLES, add_account
from desktop.sync.syncer import columns, database, open_central, pending_count, push_batch, sync_once
from tests.sync.conftest import T0, Central, open_home, trade

pytestmark = pytest.mark.postgres


def _count(central: Central, table: str, broker_id: str) -> int:
    with central.admin() as conn:
        row = conn.execute(
            f"SELECT count(*) FROM kitedesk.{table} WHERE broker_id = %s", (broker_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _export(store: Store, broker: str, out: Path, *, all_devices: bool) -> list[dict[str, str]]:
    export_trades(store, broker_id=broker, out=out, mode=Mode.PAPER, all_devices=all_devices)
    with out.open(newline="") as f:
        return list(csv.DictReader(f))


def test_two_computers_of_one_account_see_each_others_trades_and_nothing_of_another_account(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url_9394 = add_account(central.admin_url, "UK9394")
    url_1234 = add_account(central.admin_url, "UK1234")
    c1, c3, other = (open_home(homes, tmp_path, n) for n in ("computer1", "computer3", "uk1234"))
    trade(c1, "UK9394", label="NIFTY A", n_fills=4)
    trade(c3, "UK9394", label="NIFTY B", n_fills=2)
    trade(other, "UK1234", label="X", n_fills=6)

    assert sync_once(c1, url_9394, "UK9394")[0] > 0
    assert sync_once(other, url_1234, "UK1234")[0] > 0
    pushed3, pulled3 = sync_once(c3, url_9394, "UK9394")
    assert pushed3 > 0 and pulled3 > 0
    sync_once(c1, url_9394, "UK9394")  # now gets computer 3's rows

    assert _count(central, "fills", "UK9394") == 6
    assert _count(central, "fills", "UK1234") == 6
    for store in (c1, c3):
        rows = _export(store, "UK9394", tmp_path / f"{store.home.name}.csv", all_devices=True)
        assert len(rows) == 6
        assert {r["broker_id"] for r in rows} == {"UK9394"}
        assert {r["session_label"] for r in rows} == {"NIFTY A", "NIFTY B"}
    # Pulled rows read back exactly as written (money, times, labels): both computers export the same rows
    # (trades at the same second may come in another order: each computer lists its own first).
    lines = [sorted((tmp_path / f"{n}.csv").read_text().splitlines()) for n in ("computer1", "computer3")]
    assert lines[0] == lines[1]
    own = _export(c1, "UK9394", tmp_path / "own.csv", all_devices=False)
    assert {r["session_label"] for r in own} == {"NIFTY A"} and len(own) == 4
    # Money arrives exact.
    assert {Decimal(r["price"]) for r in own} == {Decimal("101.05") + i for i in range(4)}
    assert pending_count(c1, "UK9394") == 0


def test_pulled_rows_never_drive_this_computers_trading(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    c1, c3 = open_home(homes, tmp_path, "c1"), open_home(homes, tmp_path, "c3")
    key = trade(c1, "UK9394", label="NIFTY A")  # "running" on computer 1: resumable there, not on computer 3
    sync_once(c1, url, "UK9394")
    sync_once(c3, url, "UK9394")
    assert [s.key for s in c3.sessions.list_sessions(broker_id="UK9394", all_devices=True)] == [key]
    assert c3.sessions.list_sessions(broker_id="UK9394", label="NIFTY A") == []
    assert [s.key for s in c1.sessions.list_sessions(broker_id="UK9394", label="NIFTY A")] == [key]
    # Pulled rows are not queued to be pushed back.
    assert pending_count(c3, "UK9394") == 0


def test_a_reply_lost_after_commit_makes_the_resend_a_no_op(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    c1 = open_home(homes, tmp_path, "c1")
    trade(c1, "UK9394", n_fills=6)
    sync_once(c1, url, "UK9394")
    with central.admin() as conn:
        before = conn.execute("SELECT max(change_seq), count(*) FROM kitedesk.fills").fetchone()
        orders_before = conn.execute("SELECT max(change_seq) FROM kitedesk.orders").fetchone()
    # The commit happened but the cursor never moved (the reply was lost): everything is sent again.
    with database(c1).write(durable=True, what="test") as conn:
        conn.execute(update(sync_cursors).values(last_seq=0))
    assert pending_count(c1, "UK9394") > 0
    sync_once(c1, url, "UK9394")
    with central.admin() as conn:
        assert conn.execute("SELECT max(change_seq), count(*) FROM kitedesk.fills").fetchone() == before
        assert conn.execute("SELECT max(change_seq) FROM kitedesk.orders").fetchone() == orders_before
    assert pending_count(c1, "UK9394") == 0


def test_an_order_never_goes_back_from_complete_to_open(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    c1, c3 = open_home(homes, tmp_path, "c1"), open_home(homes, tmp_path, "c3")
    key = SessionKey.new("UK9394")
    for store in (c1, c3):
        store.sessions.record_session(
            key, label="S", params={}, mode=Mode.PAPER, state="running", started_at=T0
        )
    done = Order(
        "O1",
        key,
        Mode.PAPER,
        "NFO",
        "NIFTY2610625000CE",
        Side.BUY,
        65,
        OrderType.MARKET,
        OrderStatus.COMPLETE,
        65,
        Decimal("100.5"),
    )
    c1.orders.record(done)
    sync_once(c1, url, "UK9394")
    # Computer 3 saw only an older OPEN update, written later by its clock.
    c3.orders.record(replace(done, status=OrderStatus.OPEN, filled_quantity=0, average_price=Decimal(0)))
    sync_once(c3, url, "UK9394")
    with central.admin() as conn:
        assert conn.execute("SELECT status, filled_quantity FROM kitedesk.orders").fetchall() == [
            ("COMPLETE", 65)
        ]


def test_two_computers_pushing_one_sessions_rows_at_once_store_each_row_once(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    c1, c3 = open_home(homes, tmp_path, "c1"), open_home(homes, tmp_path, "c3")
    key = SessionKey.new("UK9394")
    for store in (c1, c3):
        trade(store, "UK9394", session_id=key.session_id, n_fills=40)
    errors: list[BaseException] = []

    def push(store: Store) -> None:
        try:
            from desktop.sync.syncer import open_central

            with open_central(url) as conn:
                while push_batch(store, conn, "UK9394", limit=7):
                    pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(s,)) for s in (c1, c3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _count(central, "fills", "UK9394") == 40
    assert _count(central, "orders", "UK9394") == 40
    assert _count(central, "sessions", "UK9394") == 1
    assert _count(central, "journal", "UK9394") == 2  # a random id each: two distinct events


def test_a_session_of_this_computer_is_never_fed_another_computers_rows(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    # Only a copied database file makes two computers record one session; recovery must replay this one's.
    url = add_account(central.admin_url, "UK9394")
    c1, c3 = open_home(homes, tmp_path, "c1"), open_home(homes, tmp_path, "c3")
    key = SessionKey.new("UK9394")
    trade(c1, "UK9394", session_id=key.session_id, n_fills=2)
    trade(c3, "UK9394", session_id=key.session_id, n_fills=4)
    sync_once(c1, url, "UK9394")
    sync_once(c3, url, "UK9394")
    entries = c3.journal.for_session(broker_id="UK9394", session_id=key.session_id)
    assert [e.device_id for e in entries] == [c3.device_id]
    assert _count(central, "journal", "UK9394") == 2


def test_a_new_tab_never_takes_over_a_session_another_computer_runs(
    central: Central, homes: dict[str, Store], tmp_path: Path, qapp: object
) -> None:
    from desktop.engine.engine import Engine, MemorySecretStore

    url = add_account(central.admin_url, "UK9394")
    c1 = open_home(homes, tmp_path, "c1")
    trade(c1, "UK9394", label="NIFTY A")  # running on computer 1: a crash there would be resumed there
    sync_once(c1, url, "UK9394")
    with Store.open(tmp_path / "c3") as c3:
        sync_once(c3, url, "UK9394")
        assert c3.sessions.list_sessions(broker_id="UK9394", all_devices=True)
    engine = Engine(tmp_path / "c3", secrets=MemorySecretStore())
    try:
        assert not engine.label_resumes("UK9394", "NIFTY A")
    finally:
        engine.close()


@pytest.mark.parametrize("temp_allowed", [True, False])
def test_a_push_by_copy_or_as_arrays_keeps_the_same_rules(
    central: Central, homes: dict[str, Store], tmp_path: Path, temp_allowed: bool
) -> None:
    # A push stages its rows in temporary tables (binary COPY); a server that refuses temporary tables to
    # the account's login gets them as arrays. Either way: a re-push is a no-op, a fact is never rewritten,
    # an order never goes back from COMPLETE to OPEN.
    if not temp_allowed:
        with central.admin() as conn:
            conn.execute(f'REVOKE TEMPORARY ON DATABASE "{central.dbname}" FROM PUBLIC')
    url = add_account(central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394", n_fills=3)
    with open_central(url) as conn:
        assert push_batch(store, conn, "UK9394") > 0
        assert syncer._STAGED[conn] is temp_allowed
        with database(store).write(durable=False, what="test") as local:
            local.execute(update(fills).values(price=Decimal("1.00")))
            local.execute(update(orders).values(status="OPEN", updated_at_utc=datetime(2030, 1, 1)))
            local.execute(delete(sync_cursors))  # everything is sent again
        assert push_batch(store, conn, "UK9394") > 0
    with central.admin() as conn:
        statuses = {r[0] for r in conn.execute("SELECT status FROM kitedesk.orders").fetchall()}
        fills_ = conn.execute("SELECT count(*), sum(quantity), min(price) FROM kitedesk.fills").fetchone()
    assert statuses == {"COMPLETE"}
    assert fills_ == (3, 195, Decimal("101.05"))


def test_a_pulled_row_is_stored_exactly_as_its_own_computer_stored_it(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    # Rows are pulled in the text SQLite holds (money digits, SQLAlchemy's time format), with no conversion
    # in Python: the bytes on the pulling computer must be those of the computer that recorded them, or
    # text comparisons and sorting of times would disagree between the two.
    url = add_account(central.admin_url, "UK9394")
    c1, c3 = open_home(homes, tmp_path, "c1"), open_home(homes, tmp_path, "c3")
    key = trade(c1, "UK9394", n_fills=5)
    c1.orders.record(
        Order(
            order_id="SL-1",
            key=key,
            mode=Mode.PAPER,
            exchange="NFO",
            tradingsymbol="NIFTY2610625000CE",
            side=Side.SELL,
            quantity=65,
            order_type=OrderType.SL,
            status=OrderStatus.TRIGGER_PENDING,
            price=Decimal("95.10"),
            trigger_price=Decimal("95.5"),
            timestamp=T0 + timedelta(microseconds=7),
        )
    )
    sync_once(c1, url, "UK9394")
    assert sync_once(c3, url, "UK9394")[1] > 0
    for name in SYNCED_TABLES:
        cols = ", ".join(f'"{c}"' for c in columns(name))
        query = f"SELECT {cols} FROM {name} ORDER BY id"  # noqa: S608 - ours
        with sqlite3.connect(c1.home / DB_FILENAME) as a, sqlite3.connect(c3.home / DB_FILENAME) as b:
            mine, pulled = a.execute(query).fetchall(), b.execute(query).fetchall()
        assert mine and pulled == mine, name
        assert [tuple(map(type, r)) for r in pulled] == [tuple(map(type, r)) for r in mine], name
