"""The central schema itself: idempotent, Citus-ready keys, forced RLS, roles that own nothing."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from desktop.sync.central import SYNCED_TABLES, VERSION_TABLE, add_account, head_revision, init_central
from desktop.sync.syncer import columns
from tests.sync.conftest import Central

pytestmark = pytest.mark.postgres

_MONEY = {"price", "trigger_price", "average_price", "last_price", "realised_pnl"}


def _shape(conn: psycopg.Connection[Any]) -> list[Any]:
    """Everything init-central makes: columns, indexes, policies, triggers, functions, version."""
    out: list[Any] = []
    out += conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'kitedesk' ORDER BY 1, 2"
    ).fetchall()
    out += conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'kitedesk' ORDER BY 1"
    ).fetchall()
    out += conn.execute(
        "SELECT tablename, policyname, qual, with_check FROM pg_policies ORDER BY 1, 2"
    ).fetchall()
    out += conn.execute(
        "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 2"
    ).fetchall()
    out += conn.execute(
        "SELECT p.proname, p.prosecdef, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'kitedesk' ORDER BY 1"
    ).fetchall()
    out += conn.execute(f"SELECT version_num FROM kitedesk.{VERSION_TABLE}").fetchall()
    return out


def test_init_central_twice_changes_nothing(central: Central) -> None:
    with central.admin() as conn:
        first = _shape(conn)
    assert init_central(central.admin_url) == head_revision()
    with central.admin() as conn:
        assert _shape(conn) == first
        assert conn.execute(f"SELECT version_num FROM kitedesk.{VERSION_TABLE}").fetchall() == [
            (head_revision(),)
        ]


def test_every_key_and_index_leads_with_broker_id_so_citus_can_distribute_by_it(central: Central) -> None:
    with central.admin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'kitedesk' AND tablename <> %s",
                (VERSION_TABLE,),
            )
        ]
        assert set(tables) == {*SYNCED_TABLES, "account_roles"}
        for table in tables:
            indexes = conn.execute(
                "SELECT i.indisprimary, a.attname FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = %s::regclass",
                (f"kitedesk.{table}",),
            ).fetchall()
            assert any(primary for primary, _ in indexes), f"{table} has no primary key"
            assert {first for _, first in indexes} == {"broker_id"}, table


def test_rls_is_enabled_and_forced_on_every_synced_table_and_money_is_numeric(central: Central) -> None:
    with central.admin() as conn:
        for table in SYNCED_TABLES:
            row = conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                (f"kitedesk.{table}",),
            ).fetchone()
            assert row == (True, True), table
            types = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'kitedesk' AND table_name = %s",
                    (table,),
                ).fetchall()
            )
            # Every local column that travels has a home centrally, plus the server's change sequence.
            assert set(columns(table)) <= set(types), table
            assert types["change_seq"] == "bigint"
            for name in _MONEY & set(types):
                assert types[name] == "numeric", (table, name)


def test_account_roles_own_nothing_bypass_nothing_and_belong_to_no_role(central: Central) -> None:
    add_account(central.admin_url, "UK9394")
    role = f"kd_uk9394_{central.dbname}"
    with central.admin() as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        assert flags == (False, False, False, False, False)
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = %s",
            (role,),
        ).fetchone()
        assert owned == (0,)
        member_of = conn.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            (role,),
        ).fetchone()
        assert member_of == (0,)
        # The password is kept only as a SCRAM verifier.
        secret = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        assert secret is not None and str(secret[0]).startswith("SCRAM-SHA-256$")
