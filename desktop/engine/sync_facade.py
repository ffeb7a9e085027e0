"""The engine's side of the central sync: what the window and `kitedesk run` need of desktop/sync, and no more.

The sync runs beside the engine, never inside it: a `SyncService` thread per enabled account (desktop/sync,
plain threads), sharing only the store (its write lock, for the moment a batch is acknowledged or saved,
like any other writer). Nothing here runs on a session's agent or feed thread, and `statuses()` does no I/O
(each worker keeps a snapshot), so the status bar may poll it on the GUI thread. Turning an account on or
off connects to the central database: blocking, run it off the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from desktop.domain import Mode
from desktop.store import Store
from desktop.store.records import TradeRow
from desktop.sync.accounts import check_account, disable_account, enable_account
from desktop.sync.central import SyncError, check_broker_id
from desktop.sync.config import SyncConfig, SyncSecrets, split_url, with_password
from desktop.sync.worker import SyncService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncAccountStatus:
    """One account's sync, as the status bar shows it: `state` (off, starting, synced, pending, offline,
    error) and `text` (`synced`, `N pending`, `offline — retry in 30 s`, or the error in words)."""

    user_id: str
    state: str
    text: str
    pending: int = 0


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """One account's sync setting on this computer: the URL without its password, and whether it is on."""

    user_id: str
    url: str  # "" when never set up
    enabled: bool
    has_password: bool  # a password is stored (keyring) or given (environment) for it


class SyncFacade:
    """Starts, stops and reconfigures the sync of one home's enabled accounts."""

    def __init__(self, store: Store, home: Path) -> None:
        self._store = store
        self._home = Path(home)
        self._lock = threading.Lock()  # one start/stop/restart at a time
        self._service: SyncService | None = None
        self._problem = ""  # why the sync could not start at all (an unreadable sync.toml)
        self._started = False  # start() was called and stop() not since: settings changes restart it

    def start(self) -> None:
        """Starts a worker per enabled account (none enabled: nothing runs, the status bar says `sync: off`)."""
        with self._lock:
            self._started = True
            self._start_locked()

    def _start_locked(self) -> None:
        if self._service is not None:
            return
        try:
            service = SyncService(self._store, self._home)
        except SyncError as exc:  # e.g. sync.toml cannot be read: said in the status bar, trading goes on
            self._problem = str(exc)
            log.warning("sync not started: %s", exc)
            return
        self._problem = ""
        service.start()
        self._service = service

    def stop(self) -> None:
        """Stops every worker (each after the batch in hand); the outbox keeps what is not yet sent."""
        with self._lock:
            self._started = False
            self._stop_locked()

    def _stop_locked(self) -> None:
        service, self._service = self._service, None
        self._problem = ""
        if service is not None:
            service.stop()

    def restart(self) -> None:
        """Blocking: stops the workers and starts those of the accounts enabled now (settings changed)."""
        with self._lock:
            self._stop_locked()
            if self._started:
                self._start_locked()

    def statuses(self) -> list[SyncAccountStatus]:
        """Each enabled account's status (no I/O); empty when no account syncs."""
        if self._problem:
            return [SyncAccountStatus("", "error", self._problem)]
        service = self._service
        if service is None:
            return []
        return [SyncAccountStatus(s.broker_id, s.state, s.text, s.pending) for s in service.statuses()]

    def settings(self, user_id: str) -> SyncSettings:
        """The account's setting (URL without password); an account never set up has an empty URL."""
        broker = check_broker_id(user_id)
        account = SyncConfig(self._home).get(broker)
        has_password = SyncSecrets().password(broker) is not None
        if account is None:
            return SyncSettings(broker, "", False, has_password)
        return SyncSettings(broker, account.url, account.enabled, has_password)

    def test(self, user_id: str, url: str, password: str = "") -> str:
        """Blocking: connects once (reachable, login works, schema matches); a sentence, or SyncError."""
        return check_account(user_id, _joined(url, password))

    def enable(self, user_id: str, url: str, password: str = "") -> str:
        """Blocking: tests the connection, stores the password in the keyring and turns the account's sync
        on, then restarts the workers so it syncs now. SyncError (nothing changed) when the test fails."""
        text = enable_account(self._home, user_id, _joined(url, password))
        self.restart()
        return text

    def disable(self, user_id: str) -> str:
        """Blocking (waits for the batch in hand): turns the account's sync off and forgets its password."""
        text = disable_account(self._home, user_id)
        self.restart()
        return text

    def account_trades(self, user_id: str, mode: Mode, day: date, all_devices: bool) -> list[TradeRow]:
        """The account's trades of `day` in `mode`: this computer's, or every computer's the sync brought."""
        return self._store.trades.for_account(
            broker_id=user_id,
            mode=mode,
            date_from=day,
            date_to=day,
            device_id=None if all_devices else self._store.device_id,
        )


def _joined(url: str, password: str) -> str:
    """`url` with `password` put in when one is given apart (the dialog's password field)."""
    if not password:
        return url
    bare, _ = split_url(url)
    return with_password(bare, password)
