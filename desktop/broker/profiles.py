"""Broker profiles (one per Kite account) in a TOML file, and their secrets in the OS keyring.

The profile file holds no secret at all. The API secret and the day's access token go to `keyring`;
where no secure backend exists (keyring's fail/null backends, or any keyring error) `SecretStore`
says so through `.secure` / `.warning` and keeps the secrets in this object's memory only, never in
plain text anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import tomllib
from dataclasses import asdict, dataclass, replace
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import keyring
import keyring.errors
import tomli_w

from desktop.broker.errors import InputRejected

log = logging.getLogger(__name__)

IST = timezone(timedelta(hours=5, minutes=30), "IST")
KEYRING_SERVICE = "KiteDesk"
_USER_ID = re.compile(r"^[A-Za-z0-9]{2,20}$")
_API_KEY = re.compile(r"^[A-Za-z0-9_]{2,64}$")


@dataclass(frozen=True, slots=True)
class Profile:
    """One broker account: `user_id` is the `broker_id` used everywhere. Holds no secret."""

    user_id: str
    api_key: str
    display_name: str = ""
    api_root: str = "https://api.kite.trade"
    login_url_root: str = "https://kite.zerodha.com"
    redirect_url: str = "http://127.0.0.1:5678/kitedesk/login"
    ws_root: str = "wss://ws.kite.trade"

    @property
    def broker_id(self) -> str:
        """The account id every repository, tag and log file is keyed by."""
        return self.user_id

    def validated(self) -> Profile:
        """This profile, or InputRejected naming the first field a trader must fix."""
        if not _USER_ID.match(self.user_id or ""):
            raise InputRejected("the Kite user id must be 2-20 letters or digits, like AB1234")
        if not _API_KEY.match(self.api_key or ""):
            raise InputRejected(
                "the API key must be letters and digits, as shown on the Kite developer console"
            )
        for name in ("api_root", "login_url_root", "redirect_url"):
            if urlsplit(getattr(self, name)).scheme not in ("http", "https"):
                raise InputRejected(f"{name.replace('_', ' ')} must start with http:// or https://")
        if urlsplit(self.ws_root).scheme not in ("ws", "wss"):
            raise InputRejected("the ticker root must start with ws:// or wss://")
        return self


class ProfileBook:
    """The profiles saved in `<KiteDesk home>/profiles.toml`; thread-safe; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._profiles: dict[str, Profile] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputRejected(f"the profiles file {self.path} cannot be read: {exc}") from None
        fields = set(Profile.__dataclass_fields__)
        for entry in data.get("profile", []):
            known = {k: str(v) for k, v in entry.items() if k in fields}
            profile = Profile(**known)
            self._profiles[profile.user_id] = profile

    def _save(self) -> None:
        doc = {"profile": [asdict(p) for p in self._profiles.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".profiles-", suffix=".toml")
        try:
            with os.fdopen(fd, "wb") as fh:
                tomli_w.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def all(self) -> list[Profile]:
        """Every saved profile, in the order they were added."""
        with self._lock:
            return list(self._profiles.values())

    def get(self, user_id: str) -> Profile:
        """The profile of `user_id`, or InputRejected."""
        with self._lock:
            try:
                return self._profiles[user_id]
            except KeyError:
                raise InputRejected(f"no saved profile for account {user_id}") from None

    def save(self, profile: Profile) -> Profile:
        """Adds or replaces the profile of `profile.user_id` and writes the file."""
        profile = replace(
            profile, user_id=profile.user_id.strip(), api_key=profile.api_key.strip()
        ).validated()
        with self._lock:
            self._profiles[profile.user_id] = profile
            self._save()
        return profile

    def remove(self, user_id: str) -> None:
        """Forgets the profile of `user_id` (its secrets stay until `SecretStore.forget`)."""
        with self._lock:
            if self._profiles.pop(user_id, None) is not None:
                self._save()


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """The day's access token of one account and when Kite expires it."""

    user_id: str
    access_token: str
    expires_at: datetime  # aware, IST

    def __repr__(self) -> str:  # never print the token
        return f"AccessGrant(user_id={self.user_id!r}, expires_at={self.expires_at.isoformat()})"


def now_ist() -> datetime:
    """The wall-clock time in IST (token expiry is real time, not market time)."""
    return datetime.now(IST)


def token_expiry(login_time: datetime) -> datetime:
    """Kite's access tokens expire at the next 6 AM IST after the login."""
    at = login_time.replace(tzinfo=IST) if login_time.tzinfo is None else login_time.astimezone(IST)
    six = datetime.combine(at.date(), time(6, 0), IST)
    return six if at < six else six + timedelta(days=1)


def _keyring_is_secure(backend: keyring.backend.KeyringBackend) -> bool:
    from keyring.backends import fail, null

    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    try:
        from keyring.backends import chainer

        if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
            return False
    except ImportError:  # pragma: no cover
        pass
    return True


class SecretStore:
    """API secrets and access tokens per account: OS keyring when secure, else this object's memory only."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._memory: dict[str, str] = {}  # per instance: never a module global
        self._secure = _keyring_is_secure(keyring.get_keyring())
        if not self._secure:
            log.warning("no secure keyring available: Kite secrets are kept in memory for this run only")

    @property
    def secure(self) -> bool:
        """False when secrets cannot be saved securely and live in memory only (re-entered each run)."""
        return self._secure

    @property
    def warning(self) -> str:
        """A sentence to show the trader when `secure` is False, else ''."""
        if self._secure:
            return ""
        return (
            "No secure password store (keyring) is available: the API secret and today's login are kept in "
            "memory only and must be entered again after KiteDesk restarts."
        )

    @property
    def location(self) -> str:
        """Where the API secrets really are, in a sentence for Help (never the secrets themselves)."""
        if self._secure:
            backend = type(keyring.get_keyring()).__name__
            return f'API secrets are in your system keyring ({backend}, service "{self._service}"), never in these folders.'
        return (
            "API secrets are in this process's memory only (no system keyring was found), never in these "
            "folders: they are asked for again after KiteDesk restarts."
        )

    def _set(self, name: str, value: str) -> None:
        with self._lock:
            self._memory[name] = value
            if self._secure:
                try:
                    keyring.set_password(self._service, name, value)
                except keyring.errors.KeyringError as exc:
                    self._fall_back(exc)

    def _get(self, name: str) -> str | None:
        with self._lock:
            if self._secure:
                try:
                    value = keyring.get_password(self._service, name)
                except keyring.errors.KeyringError as exc:
                    self._fall_back(exc)
                else:
                    if value is not None:
                        self._memory[name] = value
                    return value
            return self._memory.get(name)

    def _delete(self, name: str) -> None:
        with self._lock:
            self._memory.pop(name, None)
            if self._secure:
                try:
                    keyring.delete_password(self._service, name)
                except keyring.errors.PasswordDeleteError:
                    pass
                except keyring.errors.KeyringError as exc:
                    self._fall_back(exc)

    def _fall_back(self, exc: Exception) -> None:
        # Say which backend failed, never what was being stored.
        log.warning("keyring failed (%s): keeping Kite secrets in memory only", type(exc).__name__)
        self._secure = False

    def set_api_secret(self, user_id: str, secret: str) -> None:
        """Stores the API secret of `user_id`."""
        if not secret.strip():
            raise InputRejected("the API secret is empty")
        self._set(f"{user_id}/api_secret", secret.strip())

    def api_secret(self, user_id: str) -> str | None:
        """The API secret of `user_id`, or None when not stored."""
        return self._get(f"{user_id}/api_secret")

    def set_access(self, grant: AccessGrant) -> None:
        """Stores the day's access token with its expiry."""
        value = json.dumps({"token": grant.access_token, "expires_at": grant.expires_at.isoformat()})
        self._set(f"{grant.user_id}/access", value)

    def access(self, user_id: str, now: datetime | None = None) -> AccessGrant | None:
        """The stored access grant of `user_id` if it has not expired, else None (and it is dropped)."""
        raw = self._get(f"{user_id}/access")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            grant = AccessGrant(user_id, str(data["token"]), datetime.fromisoformat(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            self._delete(f"{user_id}/access")
            return None
        if (now or now_ist()) >= grant.expires_at:
            self._delete(f"{user_id}/access")
            return None
        return grant

    def drop_access(self, user_id: str) -> None:
        """Forgets the access token of `user_id` (after a TokenException or a logout)."""
        self._delete(f"{user_id}/access")

    def forget(self, user_id: str) -> None:
        """Forgets every secret of `user_id`."""
        self._delete(f"{user_id}/api_secret")
        self._delete(f"{user_id}/access")


class MemorySecretStore(SecretStore):
    """Secrets in this object's memory only: the demo's accounts (and a test's) must never reach the OS keyring."""

    def __init__(self) -> None:
        super().__init__(service="KiteDesk-demo")
        self._secure = False
