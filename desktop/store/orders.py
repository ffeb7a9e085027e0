"""Order intents (journaled before sending) and order updates from the broker or the paper gateway."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, bindparam, exists, select
from sqlalchemy.dialects.sqlite import insert

from desktop.domain import (
    Mode,
    Order,
    OrderIntent,
    OrderRole,
    OrderStatus,
    OrderType,
    Segment,
    SessionKey,
    Side,
)
from desktop.store.database import Database, Prepared, Writes, upsert_statement, utc_now
from desktop.store.errors import StoreError
from desktop.store.ids import derived_id
from desktop.store.records import require_broker_id, require_key, require_session_id
from desktop.store.schema import order_intents, orders
from desktop.store.sessions import check_mode

FINAL_STATUSES = tuple(s.value for s in OrderStatus if s.is_final)
# Prepared once (see database.py): an intent is saved before every order, and every order update (several per
# order) reads the saved row's status, fill and intent, then writes the row again.
_INTENT_INSERT = Prepared(insert(order_intents).on_conflict_do_nothing())
_ORDER_BY_ID = Prepared(
    select(orders.c.status, orders.c.filled_quantity, orders.c.intent_id).where(
        orders.c.id == bindparam("record_id")
    )
)
# An order update writes every column (see `record`): on a conflict all but the id are replaced.
_ORDER_UPDATED = tuple(c.name for c in orders.c if c.name != "id")
_ORDER_UPSERT = Prepared(upsert_statement(orders, _ORDER_UPDATED))


class IntentRepository:
    """Write-ahead record of what a session decided to send."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, intent: OrderIntent, *, at: datetime) -> bool:
        """Commits the intent durably (synchronous=FULL) before it may be sent; False if already saved."""
        return self.record_all([(intent, at)])[0]

    def record_all(self, intents: Sequence[tuple[OrderIntent, datetime]]) -> list[bool]:
        """Commits several intents (each with the market time it was decided) in ONE durable transaction: all of
        them or none (the intents an account's dispatcher decided on one frame: one fsync, not one each). Per
        intent, False if it was already saved."""
        if not intents:
            return []
        return self._db.run(self._writing(intents), durable=True, what="order intent")

    def queue_all(
        self, intents: Sequence[tuple[OrderIntent, datetime]], then: Callable[[], None] | None = None
    ) -> Callable[[], list[bool]]:
        """`record_all` in two halves: the transaction queued now, ahead of the background writer's writes, for
        whichever thread leads the next group commit (`Store.commit_waiting`); the result waits until it is on
        disk and returns (or raises) what `record_all` would. Nothing is durable before the result returned.
        `then` runs on the committing thread once it is done (committed or failed): quick, never raising."""
        queued = self._db.enqueue(self._writing(intents), durable=True, what="order intent", then=then)
        return lambda: self._db.wait(queued)

    def _writing(self, intents: Sequence[tuple[OrderIntent, datetime]]) -> Callable[[Writes], list[bool]]:
        """The group commit's work saving `intents` (values converted now, on the caller's thread)."""
        rows = [self._values(intent, at) for intent, at in intents]

        def work(writes: Writes) -> list[bool]:
            # Three statements for the whole group (which are saved already, the new rows, their outbox rows),
            # not two per intent: see `Writes.execute_rows`. The transaction holds the write lock, so nothing
            # saves one of them between the look and the insert.
            for (intent, _at), (key, _, _) in zip(intents, rows, strict=True):
                check_mode(writes, key, intent.mode, "order intent")
            present = writes.present(order_intents, [record_id for _, record_id, _ in rows])
            saved, new, changed = [], [], []
            for key, record_id, values in rows:
                fresh = record_id not in present
                saved.append(fresh)
                if fresh:
                    present.add(record_id)  # the same intent twice in one group: saved once
                    new.append(values)
                    changed.append((key.broker_id, "order_intents", record_id))
            if new and writes.execute_rows(_INTENT_INSERT, new) != len(new):
                raise StoreError("the order intents were not all saved")
            writes.add_all_to_outbox(changed)
            return saved

        return work

    def _values(self, intent: OrderIntent, at: datetime) -> tuple[SessionKey, str, dict[str, Any]]:
        key = require_key(intent.key)
        record_id = derived_id("intent", key.broker_id, key.session_id, intent.intent_id)
        values = dict(
            id=record_id,
            broker_id=key.broker_id,
            device_id=self._db.device_id,
            session_id=key.session_id,
            intent_id=intent.intent_id,
            segment=Segment(intent.segment).value,
            mode=Mode(intent.mode).value,
            exchange=intent.exchange,
            tradingsymbol=intent.tradingsymbol,
            side=Side(intent.side).value,
            quantity=intent.quantity,
            order_type=OrderType(intent.order_type).value,
            price=intent.price,
            trigger_price=intent.trigger_price,
            product=intent.product,
            reason=intent.reason,
            tag=intent.tag,
            created_at=at,
        )
        return key, record_id, values

    def for_session(self, *, broker_id: str, session_id: str) -> list[OrderIntent]:
        """Every intent of one session, in the order they were made."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = select(order_intents).where(
            order_intents.c.broker_id == broker_id, order_intents.c.session_id == session_id
        )
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(order_intents.c.created_at, order_intents.c.intent_id)).all()
        return [_intent(r) for r in rows]

    def unfilled(self, *, broker_id: str, session_id: str) -> list[OrderIntent]:
        """Intents with no order in a final state (never sent, fate unknown, or still open): to reconcile."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        i, o = order_intents.c, orders.c
        settled = exists().where(
            and_(
                o.broker_id == i.broker_id,
                o.session_id == i.session_id,
                o.intent_id == i.intent_id,
                o.status.in_(FINAL_STATUSES),
            )
        )
        query = select(order_intents).where(i.broker_id == broker_id, i.session_id == session_id, ~settled)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(i.created_at, i.intent_id)).all()
        return [_intent(r) for r in rows]


def _role(side: Side, order_type: OrderType) -> OrderRole:
    """The role of an intent read back: not a column of its own, and told apart without the reason text, as
    KiteDesk only buys options to open: a buy is an entry, a stop-loss order the protective stop, a sale an
    exit."""
    if side is Side.BUY:
        return OrderRole.ENTRY
    return OrderRole.STOP if order_type in (OrderType.SL, OrderType.SL_M) else OrderRole.EXIT


def _intent(row: Row[Any]) -> OrderIntent:
    side, order_type = Side(row.side), OrderType(row.order_type)
    return OrderIntent(
        key=SessionKey(row.broker_id, row.session_id),
        segment=Segment(row.segment),
        mode=Mode(row.mode),
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        side=side,
        quantity=row.quantity,
        order_type=order_type,
        price=row.price,
        trigger_price=row.trigger_price,
        product=row.product,
        reason=row.reason,
        intent_id=row.intent_id,
        role=_role(side, order_type),
    )


class OrderRepository:
    """Orders as last reported; a final status, once seen, is never replaced by a late transient one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, order: Order) -> None:
        """Saves an order update (Kite sends updates out of order: a stale one cannot undo a final state)."""
        key = require_key(order.key)
        record_id = derived_id("order", key.broker_id, key.session_id, order.order_id)
        values: dict[str, Any] = {
            "id": record_id,
            "broker_id": key.broker_id,
            "device_id": self._db.device_id,
            "session_id": key.session_id,
            "order_id": order.order_id,
            "intent_id": order.intent_id,
            "mode": Mode(order.mode).value,
            "exchange": order.exchange,
            "tradingsymbol": order.tradingsymbol,
            "side": Side(order.side).value,
            "quantity": order.quantity,
            "order_type": OrderType(order.order_type).value,
            "status": OrderStatus(order.status).value,
            "filled_quantity": order.filled_quantity,
            "average_price": order.average_price,
            "price": order.price,
            "trigger_price": order.trigger_price,
            "tag": order.tag,
            "status_message": order.status_message,
            "timestamp": order.timestamp,
            "updated_at_utc": utc_now(),
        }

        def work(writes: Writes) -> None:
            check_mode(writes, key, order.mode, "order")
            old = writes.execute(_ORDER_BY_ID, {"record_id": record_id}).fetchone()
            if old is not None:
                old_status, old_filled, old_intent_id = old
                if OrderStatus(old_status).is_final and not OrderStatus(order.status).is_final:
                    return  # a late transient update: the final state stands
                values["filled_quantity"] = max(old_filled, order.filled_quantity)
                values["intent_id"] = order.intent_id or old_intent_id
            writes.execute(_ORDER_UPSERT, values)
            writes.add_to_outbox(broker_id=key.broker_id, table_name="orders", record_id=record_id)

        self._db.run(work, durable=False, what="order update")

    def for_session(self, *, broker_id: str, session_id: str) -> list[Order]:
        """Every order of one session."""
        return self._query(broker_id, session_id, open_only=False)

    def open_orders(self, *, broker_id: str, session_id: str) -> list[Order]:
        """A session's orders not yet in a final state (to reconcile with the broker after a restart)."""
        return self._query(broker_id, session_id, open_only=True)

    def _query(self, broker_id: str, session_id: str, *, open_only: bool) -> list[Order]:
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = select(orders).where(orders.c.broker_id == broker_id, orders.c.session_id == session_id)
        if open_only:
            query = query.where(orders.c.status.not_in(FINAL_STATUSES))
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(orders.c.timestamp, orders.c.order_id)).all()
        return [_order(r) for r in rows]


def _order(row: Row[Any]) -> Order:
    return Order(
        order_id=row.order_id,
        key=SessionKey(row.broker_id, row.session_id),
        mode=Mode(row.mode),
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        side=Side(row.side),
        quantity=row.quantity,
        order_type=OrderType(row.order_type),
        status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        average_price=row.average_price if row.average_price is not None else Decimal(0),
        price=row.price,
        trigger_price=row.trigger_price,
        tag=row.tag,
        status_message=row.status_message,
        timestamp=row.timestamp,
        intent_id=row.intent_id,
    )
