"""Which accounts sync where: `<home>/sync.toml` (no password) and the password in the OS keyring.

The connection URL is split on the way in: the file keeps `postgresql://role@host:port/db`, the keyring
keeps the password under the same service as the Kite API secret. A computer without a secure keyring
(a bare VPS) gives the password through the environment instead (`KITEDESK_SYNC_PASSWORD_<USER_ID>`),
so it is never written to disk in plain text.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import tomli_w

from desktop.broker.profiles import SecretStore
from desktop.sync.central import SyncError, check_broker_id

SYNC_FILE = "sync.toml"
PASSWORD_ENV = "KITEDESK_SYNC_PASSWORD_"


@dataclass(frozen=True, slots=True)
class AccountSync:
    """One account's sync setting: where to (URL without password) and whether it is on."""

    broker_id: str
    url: str
    enabled: bool


def split_url(url: str) -> tuple[str, str]:
    """(`url` without its password, the password); SyncError for anything but a postgresql:// URL with a user."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("postgresql", "postgres"):
        raise SyncError(
            "the sync URL must start with postgresql:// (as printed by `kitedesk sync add-account`)"
        )
    if not parts.username or not parts.hostname:
        raise SyncError(
            "the sync URL needs a login and a host: postgresql://LOGIN:PASSWORD@HOST:PORT/DATABASE"
        )
    password = unquote(parts.password or "")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    netloc = f"{quote(unquote(parts.username))}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), password


def with_password(url: str, password: str) -> str:
    """The stored URL with `password` put back (only ever in memory, to connect)."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(
        (parts.scheme, f"{user}:{quote(password, safe='')}@{host}", parts.path, parts.query, "")
    )


class SyncSecrets(SecretStore):
    """The central database passwords, beside the Kite secrets in the keyring."""

    def set_password(self, broker_id: str, password: str) -> None:
        """Stores the account's central database password."""
        self._set(f"{broker_id}/sync_password", password)

    def password(self, broker_id: str) -> str | None:
        """The account's password: the keyring's, else the environment's, else None."""
        return self._get(f"{broker_id}/sync_password") or os.environ.get(PASSWORD_ENV + broker_id) or None

    def forget_password(self, broker_id: str) -> None:
        """Forgets the account's central database password."""
        self._delete(f"{broker_id}/sync_password")


class SyncConfig:
    """`<home>/sync.toml`: the accounts' sync settings, written atomically."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / SYNC_FILE

    def accounts(self) -> list[AccountSync]:
        """Every account with a sync setting, in user-id order."""
        if not self.path.exists():
            return []
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SyncError(f"cannot read {self.path}: {exc}") from exc
        out = []
        for broker_id, entry in sorted(dict(data.get("accounts", {})).items()):
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                out.append(AccountSync(broker_id, entry["url"], bool(entry.get("enabled", False))))
        return out

    def get(self, broker_id: str) -> AccountSync | None:
        """One account's setting, or None."""
        return next((a for a in self.accounts() if a.broker_id == broker_id), None)

    def save(self, account: AccountSync) -> None:
        """Adds or replaces one account's setting; the URL must hold no password."""
        if urlsplit(account.url).password:
            raise SyncError("a sync URL with a password is never written to a file")
        check_broker_id(account.broker_id)
        accounts = {a.broker_id: a for a in self.accounts()}
        accounts[account.broker_id] = account
        data = {"accounts": {b: {"url": a.url, "enabled": a.enabled} for b, a in sorted(accounts.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sync-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                tomli_w.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
