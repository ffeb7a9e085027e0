"""Opening safely: refuse a damaged or foreign file untouched, then bring the schema to the newest revision."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from desktop.store.errors import (
    BUSY_CODES,
    CORRUPT_CODES,
    SQLITE_FULL,
    SQLITE_IOERR,
    STORAGE_CODES,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
)

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_MAGIC = b"SQLite format 3\x00"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_LEAVE_IT = "It was left exactly as it is: restore it from a backup, or move it away to start a new database."


def check_existing_file(path: Path, *, create: bool, verify: bool) -> None:
    """Raises unless `path` is absent (and `create`), empty, or a readable, undamaged SQLite file."""
    if not path.exists():
        if not create:
            raise StoreError(f"there is no KiteDesk database at {path}")
        return
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if not head:
        return  # a zero-byte file is an empty SQLite database: initialising it loses nothing
    if head != SQLITE_MAGIC:
        raise StoreCorruptError(
            f"{path} is not a SQLite database (damaged, or another kind of file). {_LEAVE_IT}"
        )
    _inspect_existing(path, verify=verify)


def _inspect_existing(path: Path, *, verify: bool) -> None:
    # A plain stdlib connection that only reads, before anything (even WAL mode) is changed in the file.
    try:
        conn = sqlite3.connect(str(path), timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall() if verify else [("ok",)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in CORRUPT_CODES:
            raise StoreCorruptError(f"the database {path} is damaged ({exc}). {_LEAVE_IT}") from exc
        if code in BUSY_CODES:
            raise StoreLockedError(f"the database {path} is locked by another program; try again") from exc
        if code in (SQLITE_FULL, SQLITE_IOERR):
            raise StoreError(
                f"the disk holding {path} is full or failing ({exc}): free some space and try again"
            ) from exc
        if code in STORAGE_CODES:  # a WAL database is read through its -shm file, which must be writable
            raise StoreError(
                f"the database {path} cannot be written to ({exc}): make it and its folder writable, "
                "or use another --home"
            ) from exc
        raise StoreError(f"cannot read {path}: {exc}") from exc
    finally:
        conn.close()
    if rows != [("ok",)]:
        first = rows[0][0] if rows else "no answer"
        raise StoreCorruptError(f"the database {path} is damaged ({first}). {_LEAVE_IT}")
    _refuse_foreign(path, tables)


def _refuse_foreign(path: Path, tables: set[str]) -> None:
    """A SQLite file with tables but no schema revision belongs to another program."""
    tables = {t for t in tables if not t.startswith("sqlite_")}
    if tables and "alembic_version" not in tables:
        raise StoreCorruptError(
            f"{path} holds tables of another program ({', '.join(sorted(tables)[:3])}), "
            f"not a KiteDesk database. {_LEAVE_IT}"
        )


def alembic_config(conn: Connection | None = None) -> Config:
    """An in-memory Alembic configuration (no alembic.ini) bound to `conn`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of KiteDesk knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def upgrade_schema(conn: Connection, path: Path) -> None:
    """Upgrades the schema to head inside the caller's open write transaction (atomic: SQLite DDL is)."""
    # A database already at the newest revision (every start but the first) needs nothing of Alembic, whose
    # import is a third of a second or more before the first window.
    head = known_head()
    if head is not None and _stamped_revision(conn) == head:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    cfg = alembic_config(conn)
    script = ScriptDirectory.from_config(cfg)
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        _refuse_foreign(path, set(inspect(conn).get_table_names()))
    else:
        try:
            script.get_revision(current)
        except CommandError:
            raise StoreError(
                f"{path} was written by a newer KiteDesk (schema {current}); update KiteDesk to open it"
            ) from None
    if current != script.get_current_head():
        command.upgrade(cfg, "head")


def _stamped_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (Alembic's `alembic_version` table), or None."""
    if not conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
    ).first():
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def known_head() -> str | None:
    """The newest revision in the migrations folder, read without Alembic; None when unsure (a file whose
    revision cannot be read, a branch, a merge, no single head): the caller then asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, parent = found.get("revision"), found.get("down_revision", ...)
        if not isinstance(revision, str) or not (parent is None or isinstance(parent, str)):
            return None  # unreadable, or a merge (a tuple): Alembic knows best
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None
