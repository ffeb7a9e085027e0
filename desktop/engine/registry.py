"""`EngineRegistry`: the thread-safe map SessionKey → SessionEngine (the seed's `_agent_managers`, keyed by
tab rather than by account, so a second tab of one account never replaces or stops the first)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from desktop.domain import SessionKey

if TYPE_CHECKING:
    from desktop.engine.session import SessionEngine


class EngineRegistry:
    """Open sessions by key; thread-safe; never a module global (the Engine owns one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[SessionKey, SessionEngine] = {}

    def add(self, session: SessionEngine) -> None:
        """Registers a new session; its key must not be open already."""
        with self._lock:
            if session.key in self._sessions:
                raise KeyError(f"session {session.key.session_id} of {session.key.broker_id} is already open")
            self._sessions[session.key] = session

    def get(self, key: SessionKey) -> SessionEngine | None:
        """The session of `key`, or None."""
        with self._lock:
            return self._sessions.get(key)

    def remove(self, key: SessionKey) -> SessionEngine | None:
        """Forgets the session of `key` (returns it, or None)."""
        with self._lock:
            return self._sessions.pop(key, None)

    def sessions(self, broker_id: str | None = None) -> list[SessionEngine]:
        """Open sessions in the order they were opened (of one account when `broker_id` is given)."""
        with self._lock:
            found = list(self._sessions.values())
        return [s for s in found if broker_id is None or s.key.broker_id == broker_id]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
