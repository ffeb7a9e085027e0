"""`Store`: opens the database file safely and hands out the broker-scoped repositories."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert

from desktop.store.database import Database, Deferred, PragmaValue
from desktop.store.errors import StoreError, StoreWriteError
from desktop.store.fills import FillRepository, PositionRepository
from desktop.store.home import DB_FILENAME, create_private_file, make_private_folder, narrow_to_owner
from desktop.store.ids import random_id
from desktop.store.instruments import InstrumentDumps
from desktop.store.journal import JournalRepository, OutboxRepository
from desktop.store.migrate import check_existing_file, upgrade_schema
from desktop.store.orders import IntentRepository, OrderRepository
from desktop.store.schema import store_meta
from desktop.store.sessions import ProfileRepository, SessionRepository
from desktop.store.trades import TradeRepository


class Store:
    """The local database of one KiteDesk home. Thread-safe; every trading read names its account."""

    def __init__(self, db: Database, home: Path) -> None:
        self._db = db
        self.home = home
        self.profiles = ProfileRepository(db)
        self.sessions = SessionRepository(db)
        self.intents = IntentRepository(db)
        self.orders = OrderRepository(db)
        self.fills = FillRepository(db)
        self.positions = PositionRepository(db)
        self.journal = JournalRepository(db)
        self.trades = TradeRepository(db)
        self.instruments = InstrumentDumps(db)
        self.outbox = OutboxRepository(db)

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        create: bool = True,
        verify: bool = True,
        busy_timeout_s: float = 5.0,
        lock_retries: int = 3,
        extra_pragmas: Mapping[str, PragmaValue] | None = None,
    ) -> Store:
        """Opens (creating or upgrading) `home/kitedesk.db`; a damaged file raises and is never replaced.

        `verify` runs SQLite's quick_check first; `extra_pragmas` are applied to every connection
        (tuning and tests, e.g. `max_page_count`).
        """
        home = Path(home)
        path = home / DB_FILENAME
        try:
            if create:
                make_private_folder(home)
        except OSError as exc:
            raise StoreError(f"cannot create the KiteDesk folder {home}: {exc.strerror}") from exc
        for needed in (
            home,
            path,
        ):  # the journal is written before every order: a read-only home is refused now
            if needed.exists() and not os.access(needed, os.W_OK):
                raise StoreError(
                    f"{needed} is read-only: KiteDesk records every order there before sending it; "
                    "make it writable, or use another --home"
                )
        check_existing_file(path, create=create, verify=verify)
        if create:
            try:
                # Made 0600 before SQLite opens it: its -wal and -shm files take the database's mode.
                create_private_file(path)
            except OSError as exc:
                raise StoreError(f"cannot create the database {path}: {exc.strerror or exc}") from exc
        narrow_to_owner(path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")))
        db = Database(
            path, busy_timeout_s=busy_timeout_s, lock_retries=lock_retries, extra_pragmas=extra_pragmas
        )
        try:
            with db.write(durable=True, what="database schema") as conn:
                upgrade_schema(conn, path)
                conn.execute(
                    insert(store_meta).values(key="device_id", value=random_id()).on_conflict_do_nothing()
                )
            with db.read() as conn:
                db.device_id = conn.execute(
                    select(store_meta.c.value).where(store_meta.c.key == "device_id")
                ).scalar_one()
        except BaseException:
            db.close()
            raise
        return cls(db, home)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    @property
    def device_id(self) -> str:
        """This computer's id, written on every record it creates (for the sync)."""
        return self._db.device_id

    def commit_waiting(self) -> None:
        """Commits the writes queued for a waiting caller (intents queued by `intents.queue_all`) on this thread,
        if no other thread does first (the engine's background writer, asked by an account's dispatcher)."""
        self._db.lead()

    def deferred(self) -> AbstractContextManager[Sequence[Deferred]]:
        """Writes made on this thread inside are queued behind every write a caller waits for (an intent, a
        fill) and committed together on leaving; each yielded write's `error` says whether it was saved. For the
        engine's background writer only (`Database.deferred`)."""
        return self._db.deferred()

    @property
    def write_failure(self) -> StoreWriteError | None:
        """Why writes stopped (disk full, I/O error), or None while they are accepted."""
        return self._db.write_failure

    def close(self) -> None:
        """Finishes a write in progress and closes the file."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
