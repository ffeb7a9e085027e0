"""The market start time a trader types, in one format for every command that asks for one
(`kitedesk run --start`, `kitedesk sim --start`): `HH:MM` on the simulator's default day, or a full
`YYYY-MM-DDTHH:MM`."""

from __future__ import annotations

from datetime import date, datetime

from desktop.broker.sim.state import default_start

START_FORMATS = "HH:MM or YYYY-MM-DDTHH:MM"
START_HELP = (
    "market time to start at: HH:MM (today, or the last weekday on a weekend) or YYYY-MM-DDTHH:MM"
    " (default 09:15)"
)


def parse_market_start(text: str, today: date | None = None) -> datetime:
    """`09:20` -> 09:20 of the default day; `2026-01-08T09:20` -> that minute. ValueError in words otherwise."""
    cleaned = text.strip()
    for fmt in ("%H:%M", "%Y-%m-%dT%H:%M"):
        try:
            parsed = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        if fmt == "%H:%M":
            return default_start(today).replace(hour=parsed.hour, minute=parsed.minute)
        return parsed
    raise ValueError(f"{text!r} is not a market time: use {START_FORMATS}, e.g. 09:20 or 2026-01-08T09:20")
