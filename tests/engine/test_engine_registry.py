"""EngineRegistry: sessions keyed by tab, so a second tab of one account never replaces the first."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from desktop.domain import SessionKey
from desktop.engine.registry import EngineRegistry


@dataclass(eq=False)
class _Session:
    key: SessionKey


def test_two_tabs_of_one_account_are_two_sessions() -> None:
    registry = EngineRegistry()
    first, second = _Session(SessionKey.new("UK9394")), _Session(SessionKey.new("UK9394"))
    registry.add(first)  # type: ignore[arg-type]
    registry.add(second)  # type: ignore[arg-type]
    assert registry.get(first.key) is first and registry.get(second.key) is second
    assert registry.sessions("UK9394") == [first, second]
    assert registry.sessions("UK1234") == []


def test_an_open_key_cannot_be_registered_twice() -> None:
    registry = EngineRegistry()
    session = _Session(SessionKey.new("UK9394"))
    registry.add(session)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        registry.add(_Session(session.key))  # type: ignore[arg-type]
    assert registry.remove(session.key) is session and session.key not in registry


def test_concurrent_opens_and_closes_lose_nothing() -> None:
    registry = EngineRegistry()
    keep = [_Session(SessionKey.new(f"U{i % 3}")) for i in range(300)]
    drop = [_Session(SessionKey.new("UX")) for _ in range(300)]

    def work(chunk: int) -> None:
        for s in keep[chunk::4]:
            registry.add(s)  # type: ignore[arg-type]
        for s in drop[chunk::4]:
            registry.add(s)  # type: ignore[arg-type]
            registry.remove(s.key)

    threads = [threading.Thread(target=work, args=(i,), name=f"kitedesk-test-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry) == 300 and set(registry.sessions()) == set(keep)
