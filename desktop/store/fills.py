"""Fills (executions), saved durably, and each session's net positions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.sqlite import insert

from desktop.domain import Fill, Mode, Position, SessionKey, Side
from desktop.store.database import Database, Prepared, Writes, upsert_statement, utc_now
from desktop.store.errors import StoreError
from desktop.store.ids import derived_id
from desktop.store.records import require_broker_id, require_key, require_session_id
from desktop.store.schema import fills, positions
from desktop.store.sessions import check_mode

# Prepared once (see database.py): a fill is saved before the engine acts on it, a position after every fill
# and price change.
_FILL_INSERT = Prepared(insert(fills).on_conflict_do_nothing())
_POSITION_UPSERT = Prepared(
    upsert_statement(
        positions, ("mode", "quantity", "average_price", "last_price", "realised_pnl", "updated_at_utc")
    )
)


class FillRepository:
    """Executions: written once (a repeated fill is ignored), read per session."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, fill: Fill) -> bool:
        """Commits the fill durably (synchronous=FULL) before the engine acts on it; False if already saved."""
        return self._db.run(self._writing(fill), durable=True, what="fill")

    def queue(self, fill: Fill, then: Callable[[], None] | None = None) -> Callable[[], bool]:
        """`record` in two halves, as `IntentRepository.queue_all`: the write queued now, ahead of the background
        writer's writes, for whichever thread leads the next group commit (`Store.commit_waiting`); the result
        waits until it is on disk and returns (or raises) what `record` would. Nothing is durable before the result
        returned. `then` runs on the committing thread once it is done (committed or failed): quick, never raising."""
        queued = self._db.enqueue(self._writing(fill), durable=True, what="fill", then=then)
        return lambda: self._db.wait(queued)

    def _writing(self, fill: Fill) -> Callable[[Writes], bool]:
        """The transaction's work saving `fill` (checked and converted now, on the caller's thread)."""
        key = require_key(fill.key)
        _check_fill(fill)
        record_id = derived_id("fill", key.broker_id, key.session_id, fill.fill_id)
        values = dict(
            id=record_id,
            broker_id=key.broker_id,
            device_id=self._db.device_id,
            session_id=key.session_id,
            fill_id=fill.fill_id,
            order_id=fill.order_id,
            mode=Mode(fill.mode).value,
            exchange=fill.exchange,
            tradingsymbol=fill.tradingsymbol,
            side=Side(fill.side).value,
            quantity=fill.quantity,
            price=fill.price,
            timestamp=fill.timestamp,
            trade_date=fill.timestamp.date(),
            tag=key.order_tag,
        )

        def work(writes: Writes) -> bool:
            check_mode(writes, key, fill.mode, "fill")
            added = writes.execute(_FILL_INSERT, values).rowcount
            if added:
                writes.add_to_outbox(broker_id=key.broker_id, table_name="fills", record_id=record_id)
            return bool(added)

        return work

    def for_session(self, *, broker_id: str, session_id: str) -> list[Fill]:
        """Every fill of one session, oldest first."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = select(fills).where(fills.c.broker_id == broker_id, fills.c.session_id == session_id)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(fills.c.timestamp, fills.c.fill_id)).all()
        return [fill_from_row(r) for r in rows]


def fill_from_row(row: Row[Any]) -> Fill:
    """The domain Fill of a `fills` row."""
    return Fill(
        fill_id=row.fill_id,
        order_id=row.order_id,
        key=SessionKey(row.broker_id, row.session_id),
        mode=Mode(row.mode),
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        side=Side(row.side),
        quantity=row.quantity,
        price=row.price,
        timestamp=row.timestamp,
    )


class PositionRepository:
    """A session's net position per contract, as the engine last computed it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, position: Position) -> None:
        """Saves a session's position in one contract (replacing the previous one)."""
        key = require_key(position.key)
        record_id = derived_id(
            "position", key.broker_id, key.session_id, position.exchange, position.tradingsymbol
        )
        values = {
            "id": record_id,
            "broker_id": key.broker_id,
            "device_id": self._db.device_id,
            "session_id": key.session_id,
            "exchange": position.exchange,
            "tradingsymbol": position.tradingsymbol,
            "mode": Mode(position.mode).value,
            "quantity": position.quantity,
            "average_price": position.average_price,
            "last_price": position.last_price,
            "realised_pnl": position.realised_pnl,
            "updated_at_utc": utc_now(),
        }

        def work(writes: Writes) -> None:
            check_mode(writes, key, position.mode, "position")
            writes.execute(_POSITION_UPSERT, values)
            writes.add_to_outbox(broker_id=key.broker_id, table_name="positions", record_id=record_id)

        self._db.run(work, durable=False, what="position")

    def for_session(self, *, broker_id: str, session_id: str) -> list[Position]:
        """Every position of one session, flat ones included."""
        return self._query(broker_id, session_id, open_only=False)

    def open_positions(self, *, broker_id: str, session_id: str) -> list[Position]:
        """A session's positions with a non-zero quantity (what a restart must manage or square off)."""
        return self._query(broker_id, session_id, open_only=True)

    def _query(self, broker_id: str, session_id: str, *, open_only: bool) -> list[Position]:
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = select(positions).where(
            positions.c.broker_id == broker_id, positions.c.session_id == session_id
        )
        if open_only:
            query = query.where(positions.c.quantity != 0)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(positions.c.exchange, positions.c.tradingsymbol)).all()
        return [
            Position(
                key=SessionKey(r.broker_id, r.session_id),
                mode=Mode(r.mode),
                exchange=r.exchange,
                tradingsymbol=r.tradingsymbol,
                quantity=r.quantity,
                average_price=r.average_price,
                last_price=r.last_price,
                realised_pnl=r.realised_pnl,
            )
            for r in rows
        ]


def _check_fill(fill: Fill) -> None:
    """The last line of defence: a fill the trades table and the P&L could not count is refused in words."""
    q, price = fill.quantity, fill.price
    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
        raise StoreError(f"the fill was not saved: quantity must be a whole number ≥ 1, not {q!r}")
    if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
        raise StoreError(f"the fill was not saved: price must be an amount ≥ 0, not {price!r}")
