"""What the store hands back beyond the domain types, and the argument checks every repository shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from desktop.domain import Fill, Mode, Segment, SessionKey
from desktop.store.errors import AccountRequiredError, StoreError


def require_broker_id(broker_id: object) -> str:
    """The account id, or AccountRequiredError: no read of trading data may skip naming its account."""
    if not isinstance(broker_id, str) or not broker_id.strip():
        raise AccountRequiredError("name the account: broker_id is required (there is no all-accounts read)")
    return broker_id


def require_session_id(session_id: object) -> str:
    """The session id, or AccountRequiredError for a session read that does not name its session."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise AccountRequiredError("name the session: session_id is required")
    return session_id


def require_key(key: object) -> SessionKey:
    """A SessionKey whose account and session are both named."""
    if not isinstance(key, SessionKey):
        raise StoreError(f"expected a SessionKey, got {type(key).__name__}")
    require_broker_id(key.broker_id)
    require_session_id(key.session_id)
    return key


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would round money
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def to_json(data: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys); Decimals and dates become strings, NaN is refused."""
    try:
        return json.dumps(dict(data), default=_json_default, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store these values: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One recorded session (tab): its parameters come back as JSON values (Decimals as strings)."""

    key: SessionKey
    label: str
    params: dict[str, Any]
    mode: Mode
    state: str
    started_at: datetime
    stopped_at: datetime | None
    device_id: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One engine event as journaled; `seq` orders a session's entries on this computer."""

    seq: int
    entry_id: str
    key: SessionKey
    segment: Segment | None
    kind: str
    payload: dict[str, Any]
    market_time: datetime
    device_id: str


@dataclass(frozen=True, slots=True)
class TradeRow:
    """A fill with what a trades table or an export shows beside it."""

    fill: Fill
    session_label: str
    order_tag: str
    round_trip_pnl: Decimal | None = None  # set on the fill that closes a round trip (gross of charges)
    device_id: str = ""  # the computer that made the trade (another one's when the sync pulled it)


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """An account known on this computer (no secrets: those live in the OS keyring)."""

    broker_id: str
    user_name: str
    api_key: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One change waiting for the sync: re-read `record_id` from `table_name` and upsert it."""

    seq: int
    broker_id: str
    table_name: str
    record_id: str
