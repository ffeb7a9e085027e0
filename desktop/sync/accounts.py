"""Turning one account's sync on or off on this computer: what `kitedesk sync enable/disable` and the window's
File → Sync settings… both do, so the two cannot differ (where the password goes, what is checked first).

Blocking (a connection to the central database): the window runs these off its GUI thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from desktop.sync.central import SyncError, check_broker_id
from desktop.sync.config import PASSWORD_ENV, AccountSync, SyncConfig, SyncSecrets, split_url, with_password
from desktop.sync.syncer import open_central


def _password(broker: str, url: str, secrets: SyncSecrets) -> tuple[str, str]:
    """(URL without password, the password): the URL's, else the one stored for `broker`."""
    bare, password = split_url(url)
    if not password:
        password = secrets.password(broker) or ""
    if not password:
        raise SyncError("the URL has no password: use the URL `kitedesk sync add-account` printed")
    return bare, password


def check_account(broker_id: str, url: str, secrets: SyncSecrets | None = None) -> str:
    """Connects once with `url` (its password, else the stored one): reachable, the login works, the central
    schema matches this KiteDesk. Returns a sentence; SyncError says in words what is wrong."""
    broker = check_broker_id(broker_id)
    bare, password = _password(broker, url, secrets or SyncSecrets())
    with open_central(with_password(bare, password)):
        pass
    return f"connected to {bare} as {broker}'s login: the central database is ready"


def enable_account(home: Path, broker_id: str, url: str, secrets: SyncSecrets | None = None) -> str:
    """Tests the connection, then stores the password (keyring, or the environment already holds it) and turns
    the account's sync on in `<home>/sync.toml`. Returns a sentence; SyncError (nothing changed) otherwise."""
    broker = check_broker_id(broker_id)
    secrets = secrets or SyncSecrets()
    bare, password = _password(broker, url, secrets)
    with open_central(with_password(bare, password)):
        pass  # reachable, the password works, and the schema matches this KiteDesk
    where = f"in {PASSWORD_ENV}{broker}"
    if f"{PASSWORD_ENV}{broker}" not in os.environ:
        where = "in the keyring"
        if not secrets.secure:
            raise SyncError(
                "no secure password store (keyring) on this computer, and a password is never written to a "
                f"file: set {PASSWORD_ENV}{broker} in the environment of `kitedesk sync run` and enable again "
                "with the URL without its password"
            )
        secrets.set_password(broker, password)
    SyncConfig(home).save(AccountSync(broker, bare, True))
    return f"sync of {broker} is on ({bare}); the password is {where}"


def disable_account(home: Path, broker_id: str, secrets: SyncSecrets | None = None) -> str:
    """Turns the account's sync off and forgets its password; the rows already sent stay central."""
    broker = check_broker_id(broker_id)
    config = SyncConfig(home)
    current = config.get(broker)
    if current is None:
        return f"{broker} was not set up for sync"
    config.save(AccountSync(broker, current.url, False))
    (secrets or SyncSecrets()).forget_password(broker)
    return f"sync of {broker} is off (the records already sent stay in the central database)"
