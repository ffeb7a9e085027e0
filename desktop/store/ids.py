"""Record ids derived in one place: stable UUIDs, so a record has the same id on every computer.

The later PostgreSQL sync upserts by these ids (at-least-once delivery): a record written twice, or
received back from the server, must map to the same row. Ids derived from a natural key (uuid5) give
that for orders, fills and positions; events with no natural key (journal entries) get a random uuid4.
"""

from __future__ import annotations

import uuid

# A fixed namespace of our own: changing it would change every derived id, so never edit it.
_NAMESPACE = uuid.UUID("5b0f6c3e-2a57-4d0c-9a8e-6d1f4e2b7c91")


def derived_id(kind: str, *parts: str) -> str:
    """The stable record id (32 hex digits) of the `kind` record named by `parts`."""
    name = "\x1f".join((kind, *parts))  # unit separator: no part can fake another split
    return uuid.uuid5(_NAMESPACE, name).hex


def random_id() -> str:
    """A fresh record id (32 hex digits) for records without a natural key."""
    return uuid.uuid4().hex
