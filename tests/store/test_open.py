"""Opening the store: where it lives, migrations, damaged or foreign files, and no secret columns."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from desktop.domain import Mode
from desktop.store import DB_FILENAME, Store, StoreCorruptError, StoreError, resolve_home
from desktop.store.migrate import alembic_config, head_revision
from desktop.store.schema import metadata
from tests.store.conftest import make_fill, new_session


def test_cli_home_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KITEDESK_HOME", str(tmp_path / "env"))
    assert resolve_home(str(tmp_path / "cli")) == (tmp_path / "cli").resolve()


def test_environment_home_used_without_cli_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KITEDESK_HOME", str(tmp_path / "env"))
    assert resolve_home(None) == (tmp_path / "env").resolve()


def test_default_home_is_the_platform_user_data_folder(monkeypatch):
    monkeypatch.delenv("KITEDESK_HOME", raising=False)
    home = resolve_home(None)
    assert home.is_absolute() and "kitedesk" in str(home).lower()


def test_open_creates_the_database_at_the_newest_revision(tmp_path):
    with Store.open(tmp_path) as store:
        assert store.path == tmp_path / DB_FILENAME
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_open_without_create_refuses_a_missing_database(tmp_path):
    with pytest.raises(StoreError, match="no KiteDesk database"):
        Store.open(tmp_path, create=False)
    assert not (tmp_path / DB_FILENAME).exists()


def test_empty_file_is_initialised(tmp_path):
    (tmp_path / DB_FILENAME).write_bytes(b"")
    with Store.open(tmp_path) as store:
        assert store.sessions.list_sessions(broker_id="AB1234") == []


def test_database_at_first_revision_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / DB_FILENAME
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.exec_driver_sql("INSERT INTO store_meta(key, value) VALUES ('device_id', 'old-device')")
    engine.dispose()
    with Store.open(tmp_path) as store:
        assert store.device_id == "old-device"
        key = new_session(store, "AB1234")
        assert store.fills.record(make_fill(key))
    with Store.open(tmp_path) as store:
        assert len(store.fills.for_session(broker_id="AB1234", session_id=key.session_id)) == 1


def test_migrations_create_exactly_the_tables_the_code_queries(tmp_path):
    with Store.open(tmp_path):
        pass
    engine = create_engine(f"sqlite:///{tmp_path / DB_FILENAME}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_device_id_is_stable_across_opens(tmp_path):
    with Store.open(tmp_path) as store:
        first = store.device_id
    with Store.open(tmp_path) as store:
        assert store.device_id == first and len(first) == 32


def _write_garbage_file(path: Path) -> bytes:
    data = b"this is not a database, it is a shopping list\n" * 100
    path.write_bytes(data)
    return data


def test_garbage_file_is_refused_and_left_byte_identical(tmp_path):
    data = _write_garbage_file(tmp_path / DB_FILENAME)
    with pytest.raises(StoreCorruptError, match="not a SQLite database"):
        Store.open(tmp_path)
    assert (tmp_path / DB_FILENAME).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILENAME]


def test_damaged_database_is_refused_and_left_byte_identical(tmp_path):
    with Store.open(tmp_path) as store:
        key = new_session(store, "AB1234", mode=Mode.LIVE)
        for _ in range(200):
            store.fills.record(make_fill(key, mode=Mode.LIVE))
    path = tmp_path / DB_FILENAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page : 5 * page] = b"\xa5" * (2 * page)  # trash two b-tree pages, keep the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="damaged"):
        Store.open(tmp_path)
    assert path.read_bytes() == bytes(data)


def test_sqlite_file_of_another_program_is_refused(tmp_path):
    path = tmp_path / DB_FILENAME
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="another program"):
        Store.open(tmp_path)
    assert path.read_bytes() == before


def test_database_of_a_newer_kitedesk_is_refused(tmp_path):
    with Store.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer KiteDesk"):
        Store.open(tmp_path)


SECRET_LIKE = re.compile(r"secret|token|passw|pwd|credential|totp|pin\b|cookie|auth", re.IGNORECASE)
NOT_SECRET = {"order_tag", "instrument_token"}


def test_schema_has_no_column_for_a_secret(tmp_path):
    with Store.open(tmp_path):
        pass
    engine = create_engine(f"sqlite:///{tmp_path / DB_FILENAME}")
    try:
        inspector = inspect(engine)
        columns = [(t, c["name"]) for t in inspector.get_table_names() for c in inspector.get_columns(t)]
    finally:
        engine.dispose()
    assert len(columns) > 50
    offenders = [f"{t}.{c}" for t, c in columns if SECRET_LIKE.search(c) and c not in NOT_SECRET]
    assert offenders == []


def test_secret_column_check_catches_a_secret_like_name():
    assert SECRET_LIKE.search("access_token") and SECRET_LIKE.search("api_secret")
    assert not SECRET_LIKE.search("api_key") and not SECRET_LIKE.search("tradingsymbol")
