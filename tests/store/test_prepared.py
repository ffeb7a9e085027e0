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
from desktop.store.schema import fills, order_intents
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


def _stored(store: Any, table: str, record_id: str) -> dict[str, Any]:
    """One row as SQLite holds it: each column's storage class and its text."""
    with store._db.read() as conn:
        columns = [c[1] for c in conn.exec_driver_sql(f"PRAGMA table_info({table})").all()]
        picks = ", ".join(f"typeof({c}), quote({c})" for c in columns if c != "id")
        row = conn.execute(text(f"SELECT {picks} FROM {table} WHERE id = :id"), {"id": record_id}).one()
    return dict(zip(columns[1:], zip(row[::2], row[1::2], strict=True), strict=True))


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
                "tag": "kd1", "created_at": datetime(2026, 1, 5, 9, 15, 7),
            },
        ),
    ],
)  # fmt: skip
def test_a_prepared_insert_stores_each_column_as_sqlalchemy_does(
    store: Any, tmp_path: Path, table: Any, values: dict[str, Any]
) -> None:
    new_session(store, "AB1234", session_id="s1")
    with store._db.write(durable=False, what="test") as conn:
        conn.execute(insert(table), values)
    with Store.open(tmp_path / "twin") as twin:
        new_session(twin, "AB1234", session_id="s1")
        twin._db.run(lambda w: w.execute(Prepared(insert(table)), values), durable=False, what="test")
        by_prepared = _stored(twin, table.name, values["id"])

    assert by_prepared == _stored(store, table.name, values["id"])


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
