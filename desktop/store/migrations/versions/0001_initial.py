"""The first schema: profiles, sessions, intents, orders, fills, positions, journal, instruments, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-05-10

Frozen: later changes go in new revisions, never here (databases in the field are at this revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.String(40)  # exact decimal text


def _record() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("broker_id", sa.String(32), nullable=False),
        sa.Column("device_id", sa.String(32), nullable=False),
    ]


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["broker_id", "session_id"], ["sessions.broker_id", "sessions.session_id"], name=f"fk_{table}_session"
    )


def upgrade() -> None:
    """Creates every table of the first schema."""
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "profiles",
        *_record(),
        sa.Column("user_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("api_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("updated_at_utc", sa.DateTime, nullable=False),
        sa.UniqueConstraint("broker_id", name="uq_profiles_broker"),
    )
    op.create_table(
        "sessions",
        *_record(),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("params_json", sa.Text, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("stopped_at", sa.DateTime, nullable=True),
        sa.Column("updated_at_utc", sa.DateTime, nullable=False),
        sa.UniqueConstraint("broker_id", "session_id", name="uq_sessions_broker_session"),
    )
    op.create_index("ix_sessions_broker_label", "sessions", ["broker_id", "label"])
    op.create_index("ix_sessions_broker_started", "sessions", ["broker_id", "started_at"])
    op.create_table(
        "order_intents",
        *_record(),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("trigger_price", MONEY, nullable=True),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        _session_fk("order_intents"),
        sa.UniqueConstraint("broker_id", "session_id", "intent_id", name="uq_intents_broker_session_intent"),
    )
    op.create_table(
        "orders",
        *_record(),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filled_quantity", sa.Integer, nullable=False),
        sa.Column("average_price", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("trigger_price", MONEY, nullable=True),
        sa.Column("tag", sa.String(20), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("timestamp", sa.DateTime, nullable=True),
        sa.Column("updated_at_utc", sa.DateTime, nullable=False),
        _session_fk("orders"),
        sa.UniqueConstraint("broker_id", "session_id", "order_id", name="uq_orders_broker_session_order"),
    )
    op.create_index("ix_orders_broker_session_intent", "orders", ["broker_id", "session_id", "intent_id"])
    op.create_table(
        "fills",
        *_record(),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("fill_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("trade_date", sa.Date, nullable=False),
        sa.Column("tag", sa.String(20), nullable=False),
        _session_fk("fills"),
        sa.UniqueConstraint("broker_id", "session_id", "fill_id", name="uq_fills_broker_session_fill"),
    )
    op.create_index("ix_fills_broker_mode_date", "fills", ["broker_id", "mode", "trade_date"])
    op.create_index("ix_fills_broker_session_time", "fills", ["broker_id", "session_id", "timestamp"])
    op.create_table(
        "positions",
        *_record(),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("average_price", MONEY, nullable=False),
        sa.Column("last_price", MONEY, nullable=False),
        sa.Column("realised_pnl", MONEY, nullable=False),
        sa.Column("updated_at_utc", sa.DateTime, nullable=False),
        _session_fk("positions"),
        sa.UniqueConstraint(
            "broker_id", "session_id", "exchange", "tradingsymbol", name="uq_positions_broker_session_symbol"
        ),
    )
    op.create_table(
        "journal",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("broker_id", sa.String(32), nullable=False),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(16), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload_json", sa.Text, nullable=False),
        sa.Column("market_time", sa.DateTime, nullable=False),
        sa.Column("recorded_at_utc", sa.DateTime, nullable=False),
        _session_fk("journal"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_journal_broker_session_seq", "journal", ["broker_id", "session_id", "seq"])
    op.create_table(
        "instrument_dumps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("broker_id", sa.String(32), nullable=False),
        sa.Column("trading_day", sa.Date, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("csv_zlib", sa.LargeBinary, nullable=False),
        sa.Column("fetched_at_utc", sa.DateTime, nullable=False),
        sa.UniqueConstraint("broker_id", "trading_day", name="uq_instrument_dumps_broker_day"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("broker_id", sa.String(32), nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("changed_at_utc", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_broker_seq", "outbox", ["broker_id", "seq"])
    op.create_table(
        "sync_cursors",
        sa.Column("broker_id", sa.String(32), primary_key=True),
        sa.Column("last_seq", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    """Drops every table (children first)."""
    for table in (
        "sync_cursors",
        "outbox",
        "instrument_dumps",
        "journal",
        "positions",
        "fills",
        "orders",
        "order_intents",
        "sessions",
        "profiles",
        "store_meta",
    ):
        op.drop_table(table)
