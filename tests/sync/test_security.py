"""Row-level security, tried with UK1234's own credential against a central database holding UK9394's rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from desktop.store.store import Store
from desktop.sync.central import SYNCED_TABLES, add_account
from desktop.sync.syncer import sync_once
from tests.sync.conftest import Central, open_home, trade

pytestmark = pytest.mark.postgres

INJECTION = "x'); DELETE FROM kitedesk.fills; SELECT set_config('role', 'postgres', false); --"


@pytest.fixture
def two_accounts(central: Central, homes: dict[str, Store], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Both accounts' rows central (UK1234's session label is an SQL injection attempt); their URLs."""
    url_9394 = add_account(central.admin_url, "UK9394")
    url_1234 = add_account(central.admin_url, "UK1234")
    trade(open_home(homes, tmp_path, "a"), "UK9394", n_fills=4)
    trade(open_home(homes, tmp_path, "b"), "UK1234", n_fills=2, label=INJECTION)
    sync_once(homes["a"], url_9394, "UK9394")
    sync_once(homes["b"], url_1234, "UK1234")
    yield url_9394, url_1234


def _brokers(conn: psycopg.Connection[Any], table: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT broker_id FROM kitedesk.{table}").fetchall()}


def test_every_table_shows_uk1234_only_its_own_rows(central: Central, two_accounts: tuple[str, str]) -> None:
    _, url_1234 = two_accounts
    with central.admin() as admin:
        for table in SYNCED_TABLES:
            assert _brokers(admin, table) == {"UK9394", "UK1234"}, table
    with psycopg.connect(url_1234, autocommit=True) as conn:
        for table in SYNCED_TABLES:
            assert _brokers(conn, table) == {"UK1234"}, table
        # SQL in a string field is data: it round-tripped verbatim and deleted nothing.
        labels = conn.execute("SELECT label FROM kitedesk.sessions").fetchall()
        assert labels == [(INJECTION,)]
    with central.admin() as admin:
        row = admin.execute("SELECT count(*) FROM kitedesk.fills WHERE broker_id = 'UK9394'").fetchone()
        assert row == (4,)


def test_writing_another_accounts_row_is_refused(central: Central, two_accounts: tuple[str, str]) -> None:
    _, url_1234 = two_accounts
    with psycopg.connect(url_1234, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO kitedesk.profiles (broker_id, id, device_id, updated_at_utc) VALUES (%s, %s, %s, %s)",
                ("UK9394", "f" * 32, "d" * 32, datetime(2026, 1, 5)),
            )
        # Another account's rows cannot be touched (they are invisible) ...
        assert conn.execute("UPDATE kitedesk.fills SET price = 0 WHERE broker_id = 'UK9394'").rowcount == 0
        # ... nor can an own row be handed to another account.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE kitedesk.fills SET broker_id = 'UK9394'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM kitedesk.fills")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO kitedesk.account_roles VALUES ('UK9394', current_user)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM kitedesk.account_roles")
    with central.admin() as admin:
        assert admin.execute(
            "SELECT sum(price) > 0 FROM kitedesk.fills WHERE broker_id = 'UK9394'"
        ).fetchone() == (True,)


def test_session_settings_cannot_widen_access(central: Central, two_accounts: tuple[str, str]) -> None:
    url_9394, url_1234 = two_accounts
    role_9394 = url_9394.split("//")[1].split(":")[0]
    with psycopg.connect(url_1234, autocommit=True) as conn:
        for attempt in (f'SET ROLE "{role_9394}"', "SET ROLE postgres", "SET SESSION AUTHORIZATION postgres"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(attempt)
        # Settings a client may change do not name the account: none of them shows another's rows.
        conn.execute("SELECT set_config('kitedesk.broker_id', 'UK9394', false)")
        conn.execute("SELECT set_config('app.broker_id', 'UK9394', false)")
        conn.execute("RESET ROLE")
        conn.execute("RESET ALL")
        conn.execute("SET row_security = off")  # for a role under RLS this makes queries fail, never widen
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT broker_id FROM kitedesk.fills")
        conn.execute("SET row_security = on")
        # A crafted search_path with look-alike objects in pg_temp, searched first.
        conn.execute("CREATE TEMP TABLE account_roles (broker_id text, role_name name)")
        conn.execute("INSERT INTO account_roles VALUES ('UK9394', current_user)")
        conn.execute(
            "CREATE FUNCTION pg_temp.broker_of(name) RETURNS text LANGUAGE sql AS $$ SELECT 'UK9394'::text $$"
        )
        conn.execute("SET search_path = pg_temp, kitedesk, public")
        for table in SYNCED_TABLES:
            assert {r[0] for r in conn.execute(f"SELECT broker_id FROM {table}").fetchall()} == {"UK1234"}
        # Asking the binding function about another role answers nothing.
        assert conn.execute("SELECT kitedesk.broker_of(%s)", (role_9394,)).fetchone() == (None,)


def test_a_key_clash_names_no_other_accounts_keys(central: Central, two_accounts: tuple[str, str]) -> None:
    _, url_1234 = two_accounts
    with central.admin() as admin:
        other_id = admin.execute(
            "SELECT id FROM kitedesk.fills WHERE broker_id = 'UK9394' LIMIT 1"
        ).fetchone()
        own = admin.execute("SELECT id FROM kitedesk.fills WHERE broker_id = 'UK1234' LIMIT 1").fetchone()
    assert other_id is not None and own is not None
    with psycopg.connect(url_1234, autocommit=True) as conn:
        copy = "SELECT broker_id, %s, device_id, session_id, fill_id, order_id, mode, exchange, tradingsymbol, side, quantity, price, timestamp, trade_date, tag, 0 FROM kitedesk.fills LIMIT 1"
        insert = "INSERT INTO kitedesk.fills (broker_id, id, device_id, session_id, fill_id, order_id, mode, exchange, tradingsymbol, side, quantity, price, timestamp, trade_date, tag, change_seq) "
        # Another account's id is no clash at all (keys start with broker_id): nothing tells it exists.
        conn.execute(insert + copy, (other_id[0],))
        with pytest.raises(psycopg.errors.UniqueViolation) as clash:
            conn.execute(insert + copy, (own[0],))
        assert "UK9394" not in str(clash.value) and other_id[0] not in str(clash.value)
