"""The local store: broker-scoped SQLite repositories, journal, migrations and CSV export.

Open it with `Store.open(resolve_home(cli_home))`. Every read of trading data names its account
(`broker_id=`, keyword-only, no default); session reads name the session too. See database.py for
how threads, durability and write failures are handled.
"""

from desktop.store.database import Deferred
from desktop.store.errors import (
    AccountRequiredError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreWriteError,
)
from desktop.store.home import DB_FILENAME, logs_dir, resolve_home
from desktop.store.records import JournalEntry, OutboxEntry, ProfileRecord, SessionRecord, TradeRow
from desktop.store.store import Store

__all__ = [
    "Deferred",
    "DB_FILENAME",
    "AccountRequiredError",
    "JournalEntry",
    "OutboxEntry",
    "ProfileRecord",
    "SessionRecord",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreWriteError",
    "TradeRow",
    "logs_dir",
    "resolve_home",
]
