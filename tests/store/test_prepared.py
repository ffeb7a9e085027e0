"""Prepared statements (the group commit's writes on the driver's cursor) store exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from desktop.store import Store
from desktop.store.database import Prepared, RefusedValue, Writes
from desktop.store.schema import fills, journal, order_intents, orders, outbox, positions
from tests.store.conftest import new_session

FILL = {
    "id": "f" * 32,
    "broker_id": "AB1234",
    "device_id": "d" * 32,
    "session_id": "s1",
    "fill_id": "F1",
    "order_id": "O1",
    "mode": "PAPER",
    "exchange": "NFO",
    "tradingsymbol": "NIFTY2611325000CE",
    "side": "BUY",
    "quantity": 65,
    "price": Decimal("100.05"),
    "timestamp": datetime(2026, 1, 5, 9, 15, 0, 250),
    "trade_date": date(2026, 1, 5),
    "tag": "kd1",
}


def _stored(store: Any, table: str, key: str, value: str) -> dict[str, Any]:
    """The row whose `key` column is `value` as SQLite holds it: each column's storage class and its text
    (the row's sequence number left out: it depends on what else the file holds)."""
    with store._db.read() as conn:
        names = [c[1] for c in conn.exec_driver_sql(f"PRAGMA table_info({table})").all() if c[1] != "seq"]
        picks = ", ".join(f"typeof({c}), quote({c})" for c in names)
        row = conn.execute(text(f"SELECT {picks} FROM {table} WHERE {key} = :v"), {"v": value}).one()
    return dict(zip(names, zip(row[::2], row[1::2], strict=True), strict=True))


AT = datetime(2026, 1, 5, 9, 15, 7)
RECORD = {"broker_id": "AB1234", "device_id": "d" * 32, "session_id": "s1"}


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (fills, FILL),
        (
            order_intents,
            {
                "id": "i" * 32, "broker_id": "AB1234", "device_id": "d" * 32, "session_id": "s1",
                "intent_id": "I1", "segment": "NIFTY", "mode": "LIVE", "exchange": "NFO",
                "tradingsymbol": "NIFTY2611325000CE", "side": "SELL", "quantity": 130, "order_type": "SL-M",
                "price": None, "trigger_price": Decimal("95.5"), "product": "MIS", "reason": "protective_stop",
                "tag": "kd1", "created_at": AT,
            },
        ),
        (
            orders,
            {
                "id": "o" * 32, **RECORD, "order_id": "O1", "intent_id": "I1", "mode": "PAPER", "exchange": "NFO",
                "tradingsymbol": "NIFTY2611325000CE", "side": "BUY", "quantity": 65, "order_type": "MARKET",
                "status": "COMPLETE", "filled_quantity": 65, "average_price": Decimal("100.05"), "price": None,
                "trigger_price": None, "tag": "kd1", "status_message": "", "timestamp": AT,
                "updated_at_utc": datetime(2026, 1, 5, 3, 45, 7, 123456),
            },
        ),
        (
            positions,
            {
                "id": "p" * 32, **RECORD, "mode": "PAPER", "exchange": "NFO", "tradingsymbol": "NIFTY2611325000CE",
                "quantity": -65, "average_price": Decimal("100.05"), "last_price": Decimal("98"),
                "realised_pnl": Decimal("-1234.50"), "updated_at_utc": AT,
            },
        ),
        (
            journal,
            {
                "id": "j" * 32, **RECORD, "segment": None, "kind": "entry_sent",
                "payload_json": '{"qty": 65}', "market_time": AT, "recorded_at_utc": datetime(2026, 1, 5, 3, 45),
            },
        ),
        (
            outbox,
            {"broker_id": "AB1234", "table_name": "fills", "record_id": "f" * 32, "changed_at_utc": AT},
        ),
    ],
)  # fmt: skip
def test_a_prepared_insert_stores_each_column_as_sqlalchemy_does(
    store: Any, tmp_path: Path, table: Any, values: dict[str, Any]
) -> None:
    key = "record_id" if table is outbox else "id"
    new_session(store, "AB1234", session_id="s1")
    with store._db.write(durable=False, what="test") as conn:
        conn.execute(insert(table), values)
    with Store.open(tmp_path / "twin") as twin:
        new_session(twin, "AB1234", session_id="s1")
        twin._db.run(lambda w: w.execute(Prepared(insert(table)), values), durable=False, what="test")
        by_prepared = _stored(twin, table.name, key, values[key])

    assert by_prepared == _stored(store, table.name, key, values[key])


def test_a_prepared_insert_compiles_for_the_columns_it_is_given(store: Any) -> None:
    stmt = Prepared(insert(fills))
    assert (
        stmt.bind({"id": "x", "quantity": 1})[0] == "INSERT INTO fills (id, quantity) VALUES (:id, :quantity)"
    )
    sql, params = stmt.bind({"id": "y", "price": Decimal("1.50"), "trade_date": date(2026, 1, 5)})
    assert sql == "INSERT INTO fills (id, price, trade_date) VALUES (:id, :price, :trade_date)"
    assert params == {"id": "y", "price": "1.50", "trade_date": "2026-01-05"}


def test_a_value_a_column_cannot_take_is_refused_before_sqlite_sees_it() -> None:
    with pytest.raises(RefusedValue, match="money must be a Decimal"):
        Prepared(insert(fills)).bind({"id": "x", "price": 100.05})


def test_writes_returns_the_drivers_cursor_with_rowcount_and_rows(store: Any) -> None:
    new_session(store, "AB1234", session_id="s1")

    def work(w: Writes) -> tuple[int, list[tuple[Any, ...]]]:
        added = w.execute(Prepared(insert(fills).prefix_with("OR IGNORE")), FILL).rowcount
        again = w.execute(Prepared(insert(fills).prefix_with("OR IGNORE")), FILL).rowcount
        rows = w.execute(
            Prepared(text("SELECT quantity, price FROM fills WHERE id = :id")), {"id": FILL["id"]}
        )
        return added + again, rows.fetchall()

    assert store._db.run(work, durable=False, what="test") == (1, [(65, "100.05")])
