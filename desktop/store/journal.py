"""The append-only journal of engine events, and the sync outbox's per-account cursor."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from desktop.domain import Segment, SessionKey
from desktop.store.database import Database, Prepared, Writes, utc_now
from desktop.store.errors import StoreError
from desktop.store.ids import random_id
from desktop.store.records import (
    JournalEntry,
    OutboxEntry,
    require_broker_id,
    require_key,
    require_session_id,
    to_json,
)
from desktop.store.schema import journal, outbox, sync_cursors

_JOURNAL_INSERT = Prepared(insert(journal))  # see database.py


class JournalRepository:
    """Engine events, appended durably and read back per session in the order they happened."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self,
        key: SessionKey,
        *,
        segment: Segment | None,
        kind: str,
        payload: Mapping[str, Any],
        market_time: datetime,
    ) -> int:
        """Commits one event durably (synchronous=FULL) and returns its sequence number."""
        require_key(key)
        if not kind:
            raise StoreError("a journal entry needs a kind")
        record_id = random_id()

        def work(writes: Writes) -> int:
            seq = writes.execute(
                _JOURNAL_INSERT,
                {
                    "id": record_id,
                    "broker_id": key.broker_id,
                    "device_id": self._db.device_id,
                    "session_id": key.session_id,
                    "segment": None if segment is None else Segment(segment).value,
                    "kind": kind,
                    "payload_json": to_json(payload),
                    "market_time": market_time,
                    "recorded_at_utc": utc_now(),
                },
            ).lastrowid
            if not seq:
                raise StoreError("the journal entry got no sequence number")
            writes.add_to_outbox(broker_id=key.broker_id, table_name="journal", record_id=record_id)
            return int(seq)

        return self._db.run(work, durable=True, what="journal entry")

    def for_session(
        self, *, broker_id: str, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[JournalEntry]:
        """A session's entries after `after_seq`, oldest first (crash recovery replays these)."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = (
            select(journal)
            .where(
                journal.c.broker_id == broker_id,
                journal.c.session_id == session_id,
                journal.c.seq > after_seq,
            )
            .order_by(journal.c.seq)
            .limit(limit)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            JournalEntry(
                seq=r.seq,
                entry_id=r.id,
                key=SessionKey(r.broker_id, r.session_id),
                segment=None if r.segment is None else Segment(r.segment),
                kind=r.kind,
                payload=json.loads(r.payload_json),
                market_time=r.market_time,
                device_id=r.device_id,
            )
            for r in rows
        ]


class OutboxRepository:
    """The local change sequence the sync pushes from, one account at a time, resumable after a crash."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def pending(self, *, broker_id: str, limit: int = 500) -> list[OutboxEntry]:
        """An account's changes after its acknowledged cursor, oldest first."""
        require_broker_id(broker_id)
        with self._db.read() as conn:
            done = self._cursor(conn, broker_id)
            rows = conn.execute(
                select(outbox)
                .where(outbox.c.broker_id == broker_id, outbox.c.seq > done)
                .order_by(outbox.c.seq)
                .limit(limit)
            ).all()
        return [OutboxEntry(r.seq, r.broker_id, r.table_name, r.record_id) for r in rows]

    def acknowledge(self, *, broker_id: str, up_to_seq: int) -> None:
        """Marks an account's changes up to `up_to_seq` as delivered (the cursor never moves back)."""
        require_broker_id(broker_id)
        stmt = sqlite_insert(sync_cursors).values(broker_id=broker_id, last_seq=up_to_seq)
        with self._db.write(durable=True, what="sync cursor") as conn:
            if up_to_seq > self._cursor(conn, broker_id):
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[sync_cursors.c.broker_id], set_={"last_seq": up_to_seq}
                    )
                )

    def acknowledged(self, *, broker_id: str) -> int:
        """The last change sequence delivered for an account (0 if none)."""
        require_broker_id(broker_id)
        with self._db.read() as conn:
            return self._cursor(conn, broker_id)

    @staticmethod
    def _cursor(conn: Any, broker_id: str) -> int:
        value = conn.execute(
            select(sync_cursors.c.last_seq).where(sync_cursors.c.broker_id == broker_id)
        ).scalar()
        return int(value or 0)
