"""Derived record ids are uuid5 of the fixed namespace, whatever their computation: the sync upserts by them, so an
id computed differently would make a second row of a record on another computer."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from desktop.store.ids import derived_id

_NAMESPACE = uuid.UUID("5b0f6c3e-2a57-4d0c-9a8e-6d1f4e2b7c91")
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(_TEXT, st.lists(_TEXT, max_size=4))
def test_a_derived_id_is_uuid5_of_the_namespace_and_the_joined_name(kind: str, parts: list[str]) -> None:
    assert derived_id(kind, *parts) == uuid.uuid5(_NAMESPACE, "\x1f".join((kind, *parts))).hex


def test_a_known_id_is_unchanged() -> None:
    # Written by the uuid5 version: a store written before must map to the same rows.
    assert derived_id("fill", "UK9394", "a" * 32, "F123") == "81f8584ebaae5e58b94d08ff21e6975a"
