"""The tables, as SQLAlchemy Core metadata (the migrations create them; a test keeps both equal).

Every synced record has `id` (a UUID, see ids.py), `broker_id` (the account) and `device_id` (the
computer that wrote it), and each write also appends a row to `outbox`, whose autoincrement `seq`
is the local change sequence the sync resumes from. Trading rows carry `session_id` and `mode`, point
at their session through (broker_id, session_id) so a row can never name another account's session,
and every index leads with `broker_id`. Money is kept as exact decimal text, never as a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class DecimalText(TypeDecorator[Decimal]):
    """An exact Decimal stored as text (SQLite's NUMERIC would round it through a float)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        """Decimal to text; anything else is refused (a float here would be a money bug)."""
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__}")
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Text back to an exact Decimal."""
        return None if value is None else Decimal(value)


metadata = MetaData()

ID = 32  # uuid hex


def _record_columns() -> list[Column[Any]]:
    """The columns every synced record has."""
    return [
        Column("id", String(ID), primary_key=True),
        Column("broker_id", String(32), nullable=False),
        Column("device_id", String(ID), nullable=False),
    ]


def _session_fk(table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["broker_id", "session_id"],
        ["sessions.broker_id", "sessions.session_id"],
        name=f"fk_{table}_session",
    )


store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

profiles = Table(
    "profiles",
    metadata,
    *_record_columns(),
    Column("user_name", String(200), nullable=False, server_default=""),
    Column("api_key", String(64), nullable=False, server_default=""),  # public app id, not a secret
    Column("updated_at_utc", DateTime, nullable=False),
    UniqueConstraint("broker_id", name="uq_profiles_broker"),
)

sessions = Table(
    "sessions",
    metadata,
    *_record_columns(),
    Column("session_id", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("params_json", Text, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("state", String(32), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("stopped_at", DateTime, nullable=True),
    Column("updated_at_utc", DateTime, nullable=False),
    UniqueConstraint("broker_id", "session_id", name="uq_sessions_broker_session"),
    Index("ix_sessions_broker_label", "broker_id", "label"),
    Index("ix_sessions_broker_started", "broker_id", "started_at"),
)

order_intents = Table(
    "order_intents",
    metadata,
    *_record_columns(),
    Column("session_id", String(64), nullable=False),
    Column("intent_id", String(64), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("tradingsymbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("order_type", String(8), nullable=False),
    Column("price", DecimalText, nullable=True),
    Column("trigger_price", DecimalText, nullable=True),
    Column("product", String(8), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("tag", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    _session_fk("order_intents"),
    UniqueConstraint("broker_id", "session_id", "intent_id", name="uq_intents_broker_session_intent"),
)

orders = Table(
    "orders",
    metadata,
    *_record_columns(),
    Column("session_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("intent_id", String(64), nullable=False, server_default=""),
    Column("mode", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("tradingsymbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("order_type", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filled_quantity", Integer, nullable=False),
    Column("average_price", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=True),
    Column("trigger_price", DecimalText, nullable=True),
    Column("tag", String(20), nullable=False),
    Column("status_message", Text, nullable=False),
    Column("timestamp", DateTime, nullable=True),
    Column("updated_at_utc", DateTime, nullable=False),
    _session_fk("orders"),
    UniqueConstraint("broker_id", "session_id", "order_id", name="uq_orders_broker_session_order"),
    Index("ix_orders_broker_session_intent", "broker_id", "session_id", "intent_id"),
)

fills = Table(
    "fills",
    metadata,
    *_record_columns(),
    Column("session_id", String(64), nullable=False),
    Column("fill_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("tradingsymbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("timestamp", DateTime, nullable=False),
    Column("trade_date", Date, nullable=False),
    Column("tag", String(20), nullable=False),
    _session_fk("fills"),
    UniqueConstraint("broker_id", "session_id", "fill_id", name="uq_fills_broker_session_fill"),
    Index("ix_fills_broker_mode_date", "broker_id", "mode", "trade_date"),
    Index("ix_fills_broker_session_time", "broker_id", "session_id", "timestamp"),
)

positions = Table(
    "positions",
    metadata,
    *_record_columns(),
    Column("session_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("tradingsymbol", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("average_price", DecimalText, nullable=False),
    Column("last_price", DecimalText, nullable=False),
    Column("realised_pnl", DecimalText, nullable=False),
    Column("updated_at_utc", DateTime, nullable=False),
    _session_fk("positions"),
    UniqueConstraint(
        "broker_id", "session_id", "exchange", "tradingsymbol", name="uq_positions_broker_session_symbol"
    ),
)

journal = Table(
    "journal",
    metadata,
    # The local order of events; `id` is the global identity.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(ID), nullable=False, unique=True),
    Column("broker_id", String(32), nullable=False),
    Column("device_id", String(ID), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("segment", String(16), nullable=True),  # None for session-wide events
    Column("kind", String(64), nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("market_time", DateTime, nullable=False),
    Column("recorded_at_utc", DateTime, nullable=False),
    _session_fk("journal"),
    Index("ix_journal_broker_session_seq", "broker_id", "session_id", "seq"),
    sqlite_autoincrement=True,  # a seq is never reused, even after deletes
)

instrument_dumps = Table(
    "instrument_dumps",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("broker_id", String(32), nullable=False),
    Column("trading_day", Date, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("csv_zlib", LargeBinary, nullable=False),  # a cache: re-downloadable, so never synced
    Column("fetched_at_utc", DateTime, nullable=False),
    UniqueConstraint("broker_id", "trading_day", name="uq_instrument_dumps_broker_day"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("broker_id", String(32), nullable=False),
    Column("table_name", String(32), nullable=False),
    Column("record_id", String(ID), nullable=False),
    Column("changed_at_utc", DateTime, nullable=False),
    Index("ix_outbox_broker_seq", "broker_id", "seq"),
    sqlite_autoincrement=True,  # the sync's resume point must only ever grow
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("broker_id", String(32), primary_key=True),
    Column("last_seq", Integer, nullable=False),
)
