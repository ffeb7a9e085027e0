"""A real PostgreSQL for the sync tests: a fresh database per test, created and dropped here.

Where the server comes from: $KITEDESK_TEST_PG_ADMIN_URL (a superuser URL), else, when run as root on
a machine with the Debian cluster (`.ci/run` starts it), a superuser role with a random password made
for this test run through `runuser -u postgres -- psql` and dropped at the end. No server: the tests
skip with the reason locally and FAIL under CI=true (CI must never pass by skipping them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from desktop.domain import (
    Fill,
    Mode,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    Segment,
    SessionKey,
    Side,
)
from desktop.store.store import Store
from desktop.sync.central import init_central
from tests.broker.conftest import MemoryKeyring, memory_keyring  # noqa: F401 - the fixture, for tests/sync
from tests.sync.private_pg import PrivateCluster, why_unavailable

_HOST, _PORT = "127.0.0.1", 5432


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"no PostgreSQL for the sync tests: {reason}")


def _psql_as_postgres(statement: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL for this test run (see the module docstring)."""
    given = os.environ.get("KITEDESK_TEST_PG_ADMIN_URL")
    if given:
        yield given
        return
    if os.geteuid() != 0 or shutil.which("runuser") is None or shutil.which("psql") is None:
        _unavailable("set KITEDESK_TEST_PG_ADMIN_URL, or run as root beside a local PostgreSQL cluster")
    role = f"kd_test_admin_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    try:
        _psql_as_postgres(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        _unavailable(f"the local server did not answer ({stderr.decode(errors='replace').strip() or exc})")
    url = f"postgresql://{role}:{password}@{_HOST}:{_PORT}/postgres"
    try:
        yield url
    finally:
        _psql_as_postgres(f"DROP ROLE IF EXISTS {role}")


@dataclass
class Central:
    """One fresh central database: its admin URL and name."""

    admin_url: str
    dbname: str
    host: str
    port: int

    def url_for(self, role: str, password: str) -> str:
        return f"postgresql://{role}:{password}@{self.host}:{self.port}/{self.dbname}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)


def _db_url(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture
def empty_database(pg_admin_url: str) -> Iterator[Central]:
    """A new, empty database (no KiteDesk schema), dropped with its account roles after the test."""
    dbname = f"kd_test_{secrets.token_hex(5)}"
    try:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            info = conn.info
            host, port = info.host, info.port
    except psycopg.OperationalError as exc:
        _unavailable(f"cannot connect to {host_of(pg_admin_url)} ({str(exc).strip().splitlines()[0]})")
    central = Central(_db_url(pg_admin_url, dbname), dbname, host, port)
    try:
        yield central
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
            for (role,) in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"kd\\_%\\_{dbname}",)
            ).fetchall():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def host_of(url: str) -> str:
    return url.rpartition("@")[2]


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A started PostgreSQL cluster of this test's own (see tests/sync/private_pg.py): one the test may
    stop and start, unlike the machine's shared server. Removed after the test."""
    reason = why_unavailable()
    if reason is not None:
        _unavailable(reason)
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def private_central(private_pg: PrivateCluster) -> Central:
    """The central schema in a database `kitedesk` of the test's own cluster (`private_pg`)."""
    with psycopg.connect(private_pg.admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE DATABASE kitedesk")
    url = _db_url(private_pg.admin_url, "kitedesk")
    init_central(url)
    return Central(url, "kitedesk", "127.0.0.1", private_pg.port)


@pytest.fixture
def central(empty_database: Central) -> Central:
    """A fresh database with the central schema."""
    init_central(empty_database.admin_url)
    return empty_database


T0 = datetime(2026, 1, 5, 9, 20)


def trade(
    store: Store,
    broker_id: str,
    *,
    label: str = "S1",
    n_fills: int = 2,
    session_id: str | None = None,
    mode: Mode = Mode.PAPER,
) -> SessionKey:
    """Records a session with one order and `n_fills` fills (round trips of one lot) in `store`."""
    key = SessionKey(broker_id, session_id) if session_id else SessionKey.new(broker_id)
    store.profiles.save(broker_id=broker_id, user_name=f"Trader {broker_id}", api_key="kitedemo")
    store.sessions.record_session(
        key, label=label, params={"lots": 1}, mode=mode, state="running", started_at=T0
    )
    for i in range(n_fills):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        order = Order(
            order_id=f"{key.session_id[:8]}-{i}",
            key=key,
            mode=mode,
            exchange="NFO",
            tradingsymbol="NIFTY2610625000CE",
            side=side,
            quantity=65,
            order_type=OrderType.MARKET,
            status=OrderStatus.COMPLETE,
            filled_quantity=65,
            average_price=Decimal("101.05") + i,
            tag=key.order_tag,
            timestamp=T0 + timedelta(seconds=i),
        )
        intent_id = f"{key.session_id[:8]}i{i}"
        store.intents.record(
            OrderIntent(key, Segment.NIFTY, mode, "NFO", "NIFTY2610625000CE", side, 65, intent_id=intent_id),
            at=T0 + timedelta(seconds=i),
        )
        store.orders.record(replace(order, intent_id=intent_id))
        store.fills.record(
            Fill(
                f"F{key.session_id[:8]}{i}",
                order.order_id,
                key,
                mode,
                "NFO",
                "NIFTY2610625000CE",
                side,
                65,
                Decimal("101.05") + i,
                T0 + timedelta(seconds=i),
            )
        )
    store.positions.upsert(
        Position(
            key,
            mode,
            "NFO",
            "NIFTY2610625000CE",
            65 if n_fills % 2 else 0,
            Decimal("101.05"),
            Decimal("103.15"),
        )
    )
    store.journal.append(key, segment=None, kind="note", payload={"text": "done"}, market_time=T0)
    return key


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[dict[str, Store]]:
    """Opens stores lazily by name (`homes` is filled by `open_home`); all closed after the test."""
    opened: dict[str, Store] = {}
    yield opened
    for s in opened.values():
        s.close()


def open_home(homes: dict[str, Store], tmp_path: Path, name: str) -> Store:
    """The store of the home `name` (one computer) under `tmp_path`."""
    if name not in homes:
        homes[name] = Store.open(tmp_path / name)
    return homes[name]
