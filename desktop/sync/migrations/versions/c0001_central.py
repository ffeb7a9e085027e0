"""The central schema: the local store's synced tables keyed (broker_id, id), under row-level security.

Revision ID: c0001
Revises:
Create Date: 2026-12-07

Written out in SQL, not derived from the local metadata: a migration must not change when the local
schema does (tests/sync/test_central_schema.py checks that every local synced column has a home here).
Every table's primary key and every index lead with broker_id, so the schema can be hash-distributed by
broker_id (Citus) without a rewrite. `change_seq` comes from one sequence, set by a trigger that first
takes a per-account transaction lock: an account's rows become visible in change_seq order, so a pull
that resumes "after change_seq N" never skips a row committed late.
"""

from __future__ import annotations

from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None

_COMMON = """
    broker_id text NOT NULL,
    id text NOT NULL,
    device_id text NOT NULL,
"""
_TAIL = """
    change_seq bigint NOT NULL,
    pushed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broker_id, id)
"""

TABLES: dict[str, str] = {
    "profiles": """
    user_name text NOT NULL DEFAULT '',
    api_key text NOT NULL DEFAULT '',
    updated_at_utc timestamp NOT NULL,
""",
    "sessions": """
    session_id text NOT NULL,
    label text NOT NULL,
    params_json text NOT NULL,
    mode text NOT NULL,
    state text NOT NULL,
    started_at timestamp NOT NULL,
    stopped_at timestamp,
    updated_at_utc timestamp NOT NULL,
""",
    "order_intents": """
    session_id text NOT NULL,
    intent_id text NOT NULL,
    segment text NOT NULL,
    mode text NOT NULL,
    exchange text NOT NULL,
    tradingsymbol text NOT NULL,
    side text NOT NULL,
    quantity integer NOT NULL,
    order_type text NOT NULL,
    price numeric,
    trigger_price numeric,
    product text NOT NULL,
    reason text NOT NULL,
    tag text NOT NULL,
    created_at timestamp NOT NULL,
""",
    "orders": """
    session_id text NOT NULL,
    order_id text NOT NULL,
    intent_id text NOT NULL DEFAULT '',
    mode text NOT NULL,
    exchange text NOT NULL,
    tradingsymbol text NOT NULL,
    side text NOT NULL,
    quantity integer NOT NULL,
    order_type text NOT NULL,
    status text NOT NULL,
    filled_quantity integer NOT NULL,
    average_price numeric NOT NULL,
    price numeric,
    trigger_price numeric,
    tag text NOT NULL,
    status_message text NOT NULL,
    "timestamp" timestamp,
    updated_at_utc timestamp NOT NULL,
""",
    "fills": """
    session_id text NOT NULL,
    fill_id text NOT NULL,
    order_id text NOT NULL,
    mode text NOT NULL,
    exchange text NOT NULL,
    tradingsymbol text NOT NULL,
    side text NOT NULL,
    quantity integer NOT NULL,
    price numeric NOT NULL,
    "timestamp" timestamp NOT NULL,
    trade_date date NOT NULL,
    tag text NOT NULL,
""",
    "positions": """
    session_id text NOT NULL,
    mode text NOT NULL,
    exchange text NOT NULL,
    tradingsymbol text NOT NULL,
    quantity integer NOT NULL,
    average_price numeric NOT NULL,
    last_price numeric NOT NULL,
    realised_pnl numeric NOT NULL,
    updated_at_utc timestamp NOT NULL,
""",
    "journal": """
    session_id text NOT NULL,
    segment text,
    kind text NOT NULL,
    payload_json text NOT NULL,
    market_time timestamp NOT NULL,
    recorded_at_utc timestamp NOT NULL,
""",
}

# Extra read paths, each led by broker_id (the pull's (broker_id, change_seq) index is on every table).
_INDEXES = {
    "sessions": ["(broker_id, session_id)"],
    "orders": ["(broker_id, session_id, order_id)"],
    "fills": ["(broker_id, session_id, fill_id)", "(broker_id, mode, trade_date)"],
    "journal": ["(broker_id, session_id, market_time)"],
}

_FUNCTIONS = r"""
-- The account bound to the role running the query. Reads the mapping table the roles cannot read or
-- write; answers only for the login role itself, so a role cannot learn another role's account, and a
-- SET ROLE (current_user no longer the session's login) sees nothing.
CREATE FUNCTION kitedesk.broker_of(role_name name) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.broker_id FROM kitedesk.account_roles AS a
    WHERE a.role_name = $1 AND $1 = session_user
$$;
REVOKE ALL ON FUNCTION kitedesk.broker_of(name) FROM PUBLIC;

-- Stamps each written row with the next change_seq, after taking the account's transaction lock (held
-- to commit): an account's writers take turns, so its rows commit in change_seq order.
CREATE FUNCTION kitedesk.stamp_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(73094, pg_catalog.hashtext(NEW.broker_id));
    NEW.change_seq := pg_catalog.nextval('kitedesk.change_seq');
    NEW.pushed_at := pg_catalog.now();
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION kitedesk.stamp_change() FROM PUBLIC;

-- An order's state rank: a later state wins, never OPEN over COMPLETE.
CREATE FUNCTION kitedesk.order_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE $1
        WHEN 'COMPLETE' THEN 4 WHEN 'CANCELLED' THEN 4 WHEN 'REJECTED' THEN 4
        WHEN 'OPEN' THEN 3 WHEN 'TRIGGER PENDING' THEN 2
        ELSE 1 END
$$;
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE kitedesk.change_seq AS bigint")
    op.execute(
        """
        CREATE TABLE kitedesk.account_roles (
            broker_id text NOT NULL,
            role_name name NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (broker_id, role_name)
        )
        """
    )
    op.execute("REVOKE ALL ON kitedesk.account_roles FROM PUBLIC")
    op.execute(_FUNCTIONS)
    for name, columns in TABLES.items():
        op.execute(f"CREATE TABLE kitedesk.{name} ({_COMMON}{columns}{_TAIL})")
        op.execute(f"CREATE INDEX ix_{name}_broker_change ON kitedesk.{name} (broker_id, change_seq)")
        for n, cols in enumerate(_INDEXES.get(name, [])):
            op.execute(f"CREATE INDEX ix_{name}_broker_{n} ON kitedesk.{name} {cols}")
        op.execute(
            f"CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON kitedesk.{name} "
            "FOR EACH ROW EXECUTE FUNCTION kitedesk.stamp_change()"
        )
        op.execute(f"REVOKE ALL ON kitedesk.{name} FROM PUBLIC")
        op.execute(f"ALTER TABLE kitedesk.{name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE kitedesk.{name} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY account_rows ON kitedesk.{name} "
            "USING (broker_id = (SELECT kitedesk.broker_of(current_user))) "
            "WITH CHECK (broker_id = (SELECT kitedesk.broker_of(current_user)))"
        )


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.execute(f"DROP TABLE kitedesk.{name}")
    op.execute("DROP FUNCTION kitedesk.order_status_rank(text)")
    op.execute("DROP FUNCTION kitedesk.stamp_change()")
    op.execute("DROP FUNCTION kitedesk.broker_of(name)")
    op.execute("DROP TABLE kitedesk.account_roles")
    op.execute("DROP SEQUENCE kitedesk.change_seq")
