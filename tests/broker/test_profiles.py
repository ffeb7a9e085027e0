"""Profiles persist without secrets; secrets go to the keyring, or stay in memory when none is secure."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from desktop.broker.errors import InputRejected
from desktop.broker.profiles import IST, AccessGrant, Profile, ProfileBook, SecretStore, token_expiry

SECRET = "s3cretAPIvalue"
TOKEN = "accessTOKENvalue77"


def test_profile_book_round_trips_through_the_file(tmp_path: Path) -> None:
    book = ProfileBook(tmp_path / "profiles.toml")
    book.save(Profile("UK9394", "kitekeyA", "Ajay", api_root="http://127.0.0.1:9999"))
    book.save(Profile("UK1234", "kitekeyB", "Bina"))
    reopened = ProfileBook(tmp_path / "profiles.toml")
    assert [p.user_id for p in reopened.all()] == ["UK9394", "UK1234"]
    assert reopened.get("UK9394").api_root == "http://127.0.0.1:9999"
    assert reopened.get("UK1234").broker_id == "UK1234"


def test_profile_file_never_contains_a_secret(tmp_path: Path, memory_keyring: object) -> None:
    book = ProfileBook(tmp_path / "profiles.toml")
    book.save(Profile("UK9394", "kitekeyA"))
    store = SecretStore()
    store.set_api_secret("UK9394", SECRET)
    store.set_access(AccessGrant("UK9394", TOKEN, datetime(2030, 1, 1, 6, tzinfo=IST)))
    for file in tmp_path.rglob("*"):
        text = file.read_bytes()
        assert SECRET.encode() not in text and TOKEN.encode() not in text


def test_invalid_profile_is_refused_with_a_plain_message(tmp_path: Path) -> None:
    book = ProfileBook(tmp_path / "profiles.toml")
    with pytest.raises(InputRejected, match="user id"):
        book.save(Profile("", "kitekeyA"))
    with pytest.raises(InputRejected, match="http"):
        book.save(Profile("UK9394", "kitekeyA", api_root="ftp://x"))


def test_removed_profile_is_gone_after_reopening(tmp_path: Path) -> None:
    book = ProfileBook(tmp_path / "profiles.toml")
    book.save(Profile("UK9394", "kitekeyA"))
    book.remove("UK9394")
    with pytest.raises(InputRejected, match="no saved profile"):
        ProfileBook(tmp_path / "profiles.toml").get("UK9394")


def test_secrets_go_to_the_keyring_when_it_is_secure(memory_keyring) -> None:
    store = SecretStore()
    assert store.secure and store.warning == ""
    store.set_api_secret("UK9394", SECRET)
    assert SECRET in memory_keyring.passwords.values()
    assert SecretStore().api_secret("UK9394") == SECRET  # another store reads the same keyring


def test_without_a_secure_keyring_secrets_stay_in_memory_and_the_store_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with caplog.at_level(logging.DEBUG):
            store = SecretStore()
            store.set_api_secret("UK9394", SECRET)
        assert store.secure is False
        assert "memory only" in store.warning
        assert store.api_secret("UK9394") == SECRET
        assert SecretStore().api_secret("UK9394") is None  # nothing persisted anywhere
        assert all(SECRET not in r.getMessage() for r in caplog.records)
    finally:
        keyring.set_keyring(previous)


def test_access_token_is_reused_until_six_am_next_day(memory_keyring) -> None:
    store = SecretStore()
    login = datetime(2026, 1, 8, 9, 20, tzinfo=IST)
    store.set_access(AccessGrant("UK9394", TOKEN, token_expiry(login)))
    grant = store.access("UK9394", now=login + timedelta(hours=10))
    assert grant is not None and grant.access_token == TOKEN
    assert store.access("UK9394", now=datetime(2026, 1, 9, 6, 0, tzinfo=IST)) is None
    assert store.access("UK9394", now=login) is None  # dropped once expired


def test_token_expiry_is_the_next_six_am_ist() -> None:
    assert token_expiry(datetime(2026, 1, 8, 9, 20)) == datetime(2026, 1, 9, 6, 0, tzinfo=IST)
    assert token_expiry(datetime(2026, 1, 8, 2, 0)) == datetime(2026, 1, 8, 6, 0, tzinfo=IST)


def test_access_grant_repr_hides_the_token() -> None:
    assert TOKEN not in repr(AccessGrant("UK9394", TOKEN, datetime(2030, 1, 1, tzinfo=IST)))


def test_the_store_says_where_the_secrets_really_are(memory_keyring) -> None:
    from desktop.broker.profiles import MemorySecretStore

    secure = SecretStore()
    secure.set_api_secret("UK9394", SECRET)
    assert "system keyring" in secure.location and '"KiteDesk"' in secure.location
    assert "memory only" not in secure.location and SECRET not in secure.location
    memory = MemorySecretStore()  # the demo's: never the keyring, although a secure one is there
    memory.set_api_secret("UK9394", SECRET)
    assert "memory only" in memory.location and "keyring" in memory.location
    assert "system keyring (" not in memory.location and SECRET not in memory.location
    assert list(memory_keyring.passwords.values()) == [SECRET]  # the secure store's, not the demo's
