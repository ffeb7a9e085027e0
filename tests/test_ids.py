"""Intent ids: drawn without a system call (issue 5: the agent must not let go of the GIL while it decides)."""

from __future__ import annotations

import os
import uuid

import pytest

from desktop.domain import new_id


def test_new_ids_are_version_4_uuids_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and uuid.UUID(i).version == 4 for i in ids[:100])


def test_a_new_id_reads_no_random_bytes_from_the_system(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(n: int) -> bytes:
        raise AssertionError("os.urandom called")

    monkeypatch.setattr(os, "urandom", refuse)
    assert uuid.UUID(new_id()).version == 4
