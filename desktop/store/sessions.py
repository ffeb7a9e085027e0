"""Sessions (tabs) and account profiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.dialects.sqlite import insert

from desktop.domain import Mode, SessionKey
from desktop.store.database import Database, Prepared, Writes, utc_now
from desktop.store.errors import StoreError
from desktop.store.ids import derived_id
from desktop.store.records import (
    ProfileRecord,
    SessionRecord,
    require_broker_id,
    require_key,
    require_session_id,
    to_json,
)
from desktop.store.schema import profiles, sessions


def session_record_id(key: SessionKey) -> str:
    """The global id of a session's row."""
    return derived_id("session", key.broker_id, key.session_id)


# Prepared once (see database.py): every intent, order, fill and position write checks its mode.
_MODE_SELECT = Prepared(
    select(sessions.c.mode).where(
        sessions.c.broker_id == bindparam("broker_id"), sessions.c.session_id == bindparam("session_id")
    )
)


def session_mode(writes: Writes, key: SessionKey) -> Mode:
    """The mode a session was recorded with, or StoreError if the session is not recorded."""
    known: Mode | None = writes.session_modes.get((key.broker_id, key.session_id))
    if known is not None:
        return known
    row = writes.execute(_MODE_SELECT, {"broker_id": key.broker_id, "session_id": key.session_id}).fetchone()
    if row is None:
        raise StoreError(
            f"session {key.session_id} of {key.broker_id} is not recorded: record the session first"
        )
    mode = writes.session_modes[(key.broker_id, key.session_id)] = Mode(row[0])
    return mode


def check_mode(writes: Writes, key: SessionKey, mode: Mode, what: str) -> None:
    """Refuses a record whose mode differs from its session's: paper and live never mix."""
    expected = session_mode(writes, key)
    if Mode(mode) is not expected:
        raise StoreError(f"a {Mode(mode).value} {what} cannot belong to a {expected.value} session")


class SessionRepository:
    """Records sessions and reads them back, always for one named account."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_session(
        self,
        key: SessionKey,
        *,
        label: str,
        params: Mapping[str, Any],
        mode: Mode,
        state: str,
        started_at: datetime,
    ) -> None:
        """Saves a session (again: label, params and state are updated, its mode never changes)."""
        require_key(key)
        mode = Mode(mode)
        record_id = session_record_id(key)
        now = utc_now()
        values = {
            "id": record_id,
            "broker_id": key.broker_id,
            "session_id": key.session_id,
            "device_id": self._db.device_id,
            "label": label,
            "params_json": to_json(params),
            "mode": mode.value,
            "state": state,
            "started_at": started_at,
            "stopped_at": None,
            "updated_at_utc": now,
        }
        with self._db.write(durable=True, what="session") as conn:
            existing = conn.execute(select(sessions.c.mode).where(sessions.c.id == record_id)).scalar()
            if existing is not None and existing != mode.value:
                raise StoreError(f"session {key.session_id} is {existing}; it cannot become {mode.value}")
            stmt = insert(sessions).values(**values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[sessions.c.id],
                    set_={
                        "label": stmt.excluded.label,
                        "params_json": stmt.excluded.params_json,
                        "state": stmt.excluded.state,
                        "updated_at_utc": now,
                    },
                )
            )
            self._db.add_to_outbox(conn, broker_id=key.broker_id, table_name="sessions", record_id=record_id)

    def set_state(self, key: SessionKey, state: str, *, stopped_at: datetime | None = None) -> None:
        """Records a session's new state ("running", "stopped", ...) and, when it stopped, when."""
        require_key(key)
        record_id = session_record_id(key)
        values: dict[str, Any] = {"state": state, "updated_at_utc": utc_now()}
        if stopped_at is not None:
            values["stopped_at"] = stopped_at
        with self._db.write(durable=True, what="session state") as conn:
            done = conn.execute(update(sessions).where(sessions.c.id == record_id).values(**values)).rowcount
            if not done:
                raise StoreError(f"session {key.session_id} of {key.broker_id} is not recorded")
            self._db.add_to_outbox(conn, broker_id=key.broker_id, table_name="sessions", record_id=record_id)

    def set_label(self, key: SessionKey, label: str) -> bool:
        """Renames a recorded session (its tab was renamed); False when it is not recorded yet (never started)."""
        require_key(key)
        record_id = session_record_id(key)
        with self._db.write(durable=True, what="session label") as conn:
            done = conn.execute(
                update(sessions)
                .where(sessions.c.id == record_id)
                .values(label=label, updated_at_utc=utc_now())
            ).rowcount
            if done:
                self._db.add_to_outbox(
                    conn, broker_id=key.broker_id, table_name="sessions", record_id=record_id
                )
        return bool(done)

    def get(self, *, broker_id: str, session_id: str) -> SessionRecord | None:
        """One session of one account, or None."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        with self._db.read() as conn:
            row = conn.execute(
                select(sessions).where(sessions.c.broker_id == broker_id, sessions.c.session_id == session_id)
            ).one_or_none()
        return None if row is None else _session(row)

    def list_sessions(
        self, *, broker_id: str, label: str | None = None, all_devices: bool = False
    ) -> list[SessionRecord]:
        """An account's sessions of this computer (optionally those with one label), oldest first.

        Sessions another computer ran arrive through the sync; they are listed only with `all_devices`,
        so a new tab never takes one over (another computer's rows never drive this one's trading).
        """
        require_broker_id(broker_id)
        query = select(sessions).where(sessions.c.broker_id == broker_id)
        if not all_devices:
            query = query.where(sessions.c.device_id == self._db.device_id)
        if label is not None:
            query = query.where(sessions.c.label == label)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(sessions.c.started_at, sessions.c.session_id)).all()
        return [_session(r) for r in rows]


def _session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        key=SessionKey(row.broker_id, row.session_id),
        label=row.label,
        params=json.loads(row.params_json),
        mode=Mode(row.mode),
        state=row.state,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        device_id=row.device_id,
    )


class ProfileRepository:
    """Accounts known on this computer. Holds no secret: there is no column for one."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, *, broker_id: str, user_name: str = "", api_key: str = "") -> None:
        """Saves or updates an account's public details (api_key is Kite's public app id)."""
        require_broker_id(broker_id)
        record_id = derived_id("profile", broker_id)
        now = utc_now()
        stmt = insert(profiles).values(
            id=record_id,
            broker_id=broker_id,
            device_id=self._db.device_id,
            user_name=user_name,
            api_key=api_key,
            updated_at_utc=now,
        )
        with self._db.write(durable=False, what="profile") as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[profiles.c.id],
                    set_={"user_name": user_name, "api_key": api_key, "updated_at_utc": now},
                )
            )
            self._db.add_to_outbox(conn, broker_id=broker_id, table_name="profiles", record_id=record_id)

    def get(self, *, broker_id: str) -> ProfileRecord | None:
        """One account's profile, or None."""
        require_broker_id(broker_id)
        with self._db.read() as conn:
            row = conn.execute(select(profiles).where(profiles.c.broker_id == broker_id)).one_or_none()
        return None if row is None else ProfileRecord(row.broker_id, row.user_name, row.api_key)

    def list_broker_ids(self) -> list[str]:
        """The accounts with a profile, for the login picker (account ids only: no trading rows)."""
        with self._db.read() as conn:
            return list(conn.execute(select(profiles.c.broker_id).order_by(profiles.c.broker_id)).scalars())

    def is_known(self, *, broker_id: str) -> bool:
        """True if the account has a profile or any recorded session on this computer."""
        require_broker_id(broker_id)
        with self._db.read() as conn:
            for table in (profiles, sessions):
                if conn.execute(select(table.c.id).where(table.c.broker_id == broker_id).limit(1)).first():
                    return True
        return False
