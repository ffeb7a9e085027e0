"""Fixtures for the broker tests: an in-memory keyring that no other test or process can see."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    """A secure-looking keyring that keeps passwords in a dict (tests only)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Installs a fresh MemoryKeyring for one test and restores the previous backend after it."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


# ---------------------------------------------------------------------------------------------------
# Simulator fixtures: the real kiteconnect client and our broker layer over real local sockets.

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from desktop.broker.hub import BrokerHub  # noqa: E402
from desktop.broker.login import request_token_by_redirect  # noqa: E402
from desktop.broker.profiles import Profile, SecretStore  # noqa: E402

SIM_SECRETS = {"UK9394": "secret_A", "UK1234": "secret_B"}


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Polls `predicate` until it is truthy or `timeout` seconds pass; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def sim_profile(sim, user_id: str) -> Profile:
    """The profile of a demo account pointed at `sim` (REST, login page and ticker)."""
    return Profile(
        user_id, user_id, f"Demo {user_id}", api_root=sim.url, login_url_root=sim.url, ws_root=sim.ws_url
    )


@pytest.fixture
def sim():
    """A running simulator (10x speed: a tick frame every 0.1 s) with the demo accounts."""
    from tests.simkit import start_sim

    s = start_sim(speed=10.0)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def hub(sim, memory_keyring) -> Iterator[BrokerHub]:
    """A BrokerHub with both demo secrets stored and a fast watchdog/backoff; closed before the sim stops."""
    secrets = SecretStore()
    for user, secret in SIM_SECRETS.items():
        secrets.set_api_secret(user, secret)
    h = BrokerHub(secrets, feed_options={"silence_timeout": 2.0, "backoff_initial": 0.1, "backoff_max": 1.0})
    try:
        yield h
    finally:
        h.close()


def login(hub: BrokerHub, sim, user_id: str) -> Profile:
    """Logs `user_id` in through the simulator's login redirect; returns its profile."""
    profile = sim_profile(sim, user_id)
    hub.login(profile, request_token_by_redirect(profile))
    return profile
