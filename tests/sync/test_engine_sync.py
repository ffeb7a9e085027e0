"""The sync beside the engine: a central database that stalls (accepts the connection, never answers) holds
up neither the engine's start, nor its store writes, nor its status poll, nor its close. No PostgreSQL needed:
the stall is a socket that never replies."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.broker.profiles import MemorySecretStore
from desktop.domain import Mode
from desktop.engine import Engine, ProfileInfo
from desktop.sync.config import AccountSync, SyncConfig, SyncSecrets
from tests.sync.conftest import T0, MemoryKeyring, trade

BROKER = "UK9394"


class BlackHole:
    """A TCP server that accepts connections and never sends a byte (a hung server, a dropped route)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        # A close alone does not wake an accept() blocked on another thread (Linux): the shutdown does, at once.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for s in self._held:
            s.close()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the black hole's thread did not end"


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sync-")]


def test_a_stalled_central_database_never_blocks_the_engine(
    tmp_path: Path, memory_keyring: MemoryKeyring, black_hole: BlackHole
) -> None:
    SyncConfig(tmp_path).save(
        AccountSync(BROKER, f"postgresql://kd_uk9394@127.0.0.1:{black_hole.port}/kitedesk", True)
    )
    SyncSecrets().set_password(BROKER, "secret-password")
    engine = Engine(tmp_path, secrets=MemorySecretStore(), clock=lambda: T0)
    try:
        engine.save_profile(ProfileInfo(BROKER, "kitedemo", "Trader"), None)
        engine.start_sync()
        assert black_hole.accepted.wait(10), "the sync thread never tried the central database"
        # The sync thread now waits for a server that never answers (psycopg's connect timeout is 5 s).
        # Everything the engine does meanwhile must finish without waiting for it:
        t0 = time.monotonic()
        statuses = engine.sync_statuses()
        for i in range(10):
            trade(engine.store, BROKER, label=f"S{i}")
        session = engine.open_session(BROKER, "Computer 1")
        assert session.snapshot().state is not None
        rows = engine.account_trades(BROKER, Mode.PAPER, T0.date(), all_devices=True)
        busy = time.monotonic() - t0
        # ... while the sync thread is still stuck in that first connect: nothing above waited for it.
        assert [s.state for s in engine.sync_statuses()] == ["starting"], f"took {busy:.1f} s"
        assert [s.state for s in statuses] == ["starting"]
        assert len(rows) == 20
        assert all(t.name != threading.current_thread().name for t in _sync_threads())

        # Then the stall is said in words, the records wait in the outbox.
        def offline() -> bool:
            return [s.state for s in engine.sync_statuses()] in (["offline"], ["error"])

        deadline = time.monotonic() + 20
        while not offline() and time.monotonic() < deadline:
            time.sleep(0.1)
        (status,) = engine.sync_statuses()
        assert status.state == "offline", status.text
        assert "retry in" in status.text
        assert status.pending > 0
        assert "secret-password" not in status.text
    finally:
        engine.close()
    assert not _sync_threads()
