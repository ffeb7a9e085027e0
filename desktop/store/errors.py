"""The store's errors: each carries a message a trader can read, never a secret or a traceback."""

from __future__ import annotations

import sqlite3

# SQLite primary result codes (the low byte of an extended code) that decide how a failure is reported.
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

BUSY_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED})
CORRUPT_CODES = frozenset({SQLITE_CORRUPT, SQLITE_NOTADB})
STORAGE_CODES = frozenset({SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN})


class StoreError(Exception):
    """Any failure of the local store; `str(error)` is a plain message for the trader."""


class AccountRequiredError(StoreError, ValueError):
    """A read of trading data did not name its account (broker_id missing, None or empty)."""


class StoreCorruptError(StoreError):
    """The database file is damaged or is not a KiteDesk database; it was left untouched."""


class StoreWriteError(StoreError):
    """A record was not saved (disk full, I/O error, ...): nothing of it was written."""


class StoreFullError(StoreWriteError):
    """The disk is full (or the database reached its size limit): the store retries, and says so once."""


class StoreLockedError(StoreWriteError):
    """Another program kept the database locked longer than the retries allowed."""


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code behind `exc` (a sqlite3 or SQLAlchemy error), if any."""
    orig = getattr(exc, "orig", None) or exc
    if not isinstance(orig, sqlite3.Error):
        return None
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def sqlite_reason(exc: BaseException) -> str:
    """SQLite's own short wording of `exc` ("database or disk is full"), without SQL or parameters."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig.args[0]) if getattr(orig, "args", None) else type(orig).__name__
