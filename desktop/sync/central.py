"""The central PostgreSQL: its schema (Alembic, a version table of its own) and the per-account login roles.

An account role owns nothing, has no BYPASSRLS and belongs to no other role; it may read and write the
data tables, where row-level security (enabled and forced) shows it only the rows of the one account the
mapping table `kitedesk.account_roles` binds it to. That table is written only here, with the admin URL,
which is used for the one command and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

SCHEMA = "kitedesk"
VERSION_TABLE = "sync_schema_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SYNCED_TABLES = ("profiles", "sessions", "order_intents", "orders", "fills", "positions", "journal")
_BROKER_ID = re.compile(r"[A-Za-z0-9]{2,16}")


class SyncError(Exception):
    """A sync failure worded for a trader (never holds a password)."""


def check_broker_id(broker_id: str) -> str:
    """The Kite user id, or SyncError: it names roles and rows, so only letters and digits pass."""
    if not isinstance(broker_id, str) or not _BROKER_ID.fullmatch(broker_id):
        raise SyncError(f"{broker_id!r} is not a Kite user id (letters and digits, e.g. UK9394)")
    return broker_id.upper()


def redact(url: str) -> str:
    """`url` with any password replaced by ***, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def describe(exc: BaseException) -> str:
    """A PostgreSQL error in words, without the password (psycopg's messages never contain it)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "password authentication failed" in text:
        return "the central database refused the password (wrong, or the account's access was revoked)"
    if "does not exist" in text and "role" in text:
        return "the central database does not know this login (the account's access was removed)"
    if isinstance(exc, psycopg.OperationalError) or "Connection refused" in text:
        return f"the central database cannot be reached ({text})"
    return f"the central database said: {text}"


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to `url`, or SyncError in words."""
    try:
        return psycopg.connect(url, connect_timeout=5, **kwargs)
    except psycopg.Error as exc:
        raise SyncError(describe(exc)) from None


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest central schema revision this app knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def init_central(admin_url: str) -> str:
    """Creates or migrates the central schema; returns its revision. Running it again changes nothing."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: connect(admin_url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.exec_driver_sql(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC")
            current = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}
            ).get_current_revision()
            script = ScriptDirectory.from_config(_alembic_config())
            if current is not None and current not in {r.revision for r in script.walk_revisions()}:
                raise SyncError(
                    f"the central schema is at revision {current}, newer than this KiteDesk knows: "
                    "update KiteDesk before running init-central"
                )
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            # Tables a later revision added are granted to the accounts that already exist.
            roles = conn.exec_driver_sql(f"SELECT role_name FROM {SCHEMA}.account_roles").scalars().all()
            raw = conn.connection.driver_connection
            assert raw is not None
            for role in roles:
                _grant(raw, str(role))
    finally:
        engine.dispose()
    return head_revision()


def role_name(broker_id: str, dbname: str) -> str:
    """The login role of an account in one central database (roles are shared by a server's databases)."""
    db = re.sub(r"[^a-z0-9_]", "_", dbname.lower())[:40]
    return f"kd_{broker_id.lower()}_{db}"


def _grant(conn: psycopg.Connection[Any], role: str) -> None:
    ident = sql.Identifier(role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA kitedesk TO {}").format(ident))
    conn.execute(sql.SQL("GRANT SELECT ON kitedesk.{} TO {}").format(sql.Identifier(VERSION_TABLE), ident))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION kitedesk.broker_of(name) TO {}").format(ident))
    for table in SYNCED_TABLES:
        # No DELETE: facts are append-only, and a device never removes what another wrote.
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON kitedesk.{} TO {}").format(sql.Identifier(table), ident)
        )


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of `password`: the server (and its statement log) never sees it."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def add_account(admin_url: str, broker_id: str) -> str:
    """Creates (or gives a new password to) the login role of one account; returns its URL, password included.

    The password is generated here and shown once: the server keeps only its SCRAM verifier.
    """
    broker_id = check_broker_id(broker_id)
    password = secrets.token_urlsafe(24)
    with connect(admin_url, autocommit=False) as conn:
        _require_schema(conn, admin=True)
        info = conn.info
        role = role_name(broker_id, info.dbname)
        ident = sql.Identifier(role)
        bound = conn.execute(
            "SELECT broker_id FROM kitedesk.account_roles WHERE role_name = %s", (role,)
        ).fetchall()
        if any(b != broker_id for (b,) in bound):
            raise SyncError(f"the role {role} is bound to another account; remove it first")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                verb
                + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS "
                "PASSWORD {}"
            ).format(ident, sql.Literal(scram_verifier(password)))
        )
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(info.dbname), ident))
        _grant(conn, role)
        conn.execute(
            "INSERT INTO kitedesk.account_roles (broker_id, role_name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (broker_id, role),
        )
        conn.commit()
        host = info.host if not info.host.startswith("/") else "localhost"
        return f"postgresql://{quote(role)}:{quote(password)}@{host}:{info.port}/{quote(info.dbname)}"


def remove_account(admin_url: str, broker_id: str) -> bool:
    """Revokes the account's login role (its rows stay); False when there was none."""
    broker_id = check_broker_id(broker_id)
    with connect(admin_url, autocommit=False) as conn:
        _require_schema(conn, admin=True)
        role = role_name(broker_id, conn.info.dbname)
        deleted = conn.execute(
            "DELETE FROM kitedesk.account_roles WHERE broker_id = %s AND role_name = %s", (broker_id, role)
        ).rowcount
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            ident = sql.Identifier(role)
            # End its open connections first: a revoked device must not keep writing.
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA kitedesk FROM {}").format(ident))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA kitedesk FROM {}").format(ident))
            conn.execute(sql.SQL("REVOKE ALL ON FUNCTION kitedesk.broker_of(name) FROM {}").format(ident))
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(conn.info.dbname), ident)
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))
        conn.commit()
        return bool(deleted or exists)


def central_revision(conn: psycopg.Connection[Any]) -> str | None:
    """The central schema's revision, or None when there is no KiteDesk schema."""
    present = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{VERSION_TABLE}",)).fetchone()
    if present is None or present[0] is None:
        return None
    row = conn.execute(f"SELECT version_num FROM {SCHEMA}.{VERSION_TABLE}").fetchone()
    return None if row is None else str(row[0])


def _require_schema(conn: psycopg.Connection[Any], *, admin: bool = False) -> None:
    """SyncError unless the central schema is exactly the revision this app was built for."""
    current = central_revision(conn)
    head = head_revision()
    if current == head:
        return
    fix = "run `kitedesk sync init-central --admin-url URL`" if admin else "ask whoever runs the central "
    if current is None:
        raise SyncError(
            "the central database has no KiteDesk schema: "
            + (fix if admin else fix + "database to run `kitedesk sync init-central`")
        )
    known = {r.revision for r in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current in known:
        raise SyncError(
            f"the central schema (revision {current}) is older than this KiteDesk (revision {head}): "
            + (fix if admin else fix + "database to run `kitedesk sync init-central`")
            + "; nothing was written"
        )
    raise SyncError(
        f"the central schema (revision {current}) is newer than this KiteDesk (revision {head}): "
        "update KiteDesk on this computer; nothing was written"
    )


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """For the sync: SyncError in words when the central schema is older or newer than this app."""
    _require_schema(conn, admin=False)
