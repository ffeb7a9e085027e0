"""`new_kite`: a `kiteconnect.KiteConnect`, with kiteconnect imported when the first client is made.

Importing kiteconnect imports its WebSocket ticker and with it twisted and autobahn (about a third of a second
here), which KiteDesk never uses (its feed is `stream.py`). The first window needs no Kite client, so the
modules that make clients take this factory by default instead of the class.

The client made is kiteconnect's own class with one method replaced, `_format_response` (its reading of the
timestamps of orders and trades): kiteconnect hands every 19-character timestamp to `dateutil.parser.parse`, about
23 us each, and an order update with fills is followed by a read of its trades (two timestamps a fill) on the
agent's thread at a minute's close (issue 18). Kite writes them `YYYY-MM-DD HH:MM:SS`; those are read here into the
same naive `datetime` dateutil gives, and any other text still goes to dateutil. Routes, parameters, the rest of
the reply's reading and the exceptions are kiteconnect's.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any

# kiteconnect's fields read as datetimes (`KiteConnect._format_response`, kiteconnect 5.x).
TIMESTAMP_FIELDS = (
    "order_timestamp", "exchange_timestamp", "created", "last_instalment", "fill_timestamp", "timestamp",
    "last_trade_time",
)  # fmt: skip
_KITE_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)", re.ASCII)


def kite_clock(text: str) -> datetime | None:
    """Kite's own `YYYY-MM-DD HH:MM:SS` at the start of `text`, read without strptime or dateutil (~6 and ~23 us a
    call; an order update's times and a fill's trades at a minute's close: issue 18); None for any other text. An
    impossible date (a month 13) raises ValueError, as `datetime` does."""
    m = _KITE_TIME.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = map(int, m.groups())
    return datetime(year, month, day, hour, minute, second)


def kite_time(text: str) -> datetime:
    """`dateutil.parser.parse(text)` for a 19-character timestamp, without dateutil for Kite's own format."""
    if type(text) is str:
        try:
            read = kite_clock(text)
        except ValueError:  # e.g. month 13: dateutil's words, not ours
            read = None
        if read is not None:
            return read
    import dateutil.parser  # kiteconnect's own dependency

    parsed: datetime = dateutil.parser.parse(text)
    return parsed


def format_response(data: list[Any] | dict[str, Any]) -> Any:
    """What `KiteConnect._format_response(data)` returns for a list or a dict (and does: the items are changed in
    place)."""
    items: list[Any] = data if isinstance(data, list) else [data]
    for item in items:
        for field in TIMESTAMP_FIELDS:
            value = item.get(field)
            if value and len(value) == 19:
                item[field] = kite_time(value)
    return data


@cache
def kite_class() -> type:
    """kiteconnect's `KiteConnect` with its timestamps read by `format_response` (imported on first use)."""
    from kiteconnect import KiteConnect

    class KiteDeskConnect(KiteConnect):  # type: ignore[misc]
        """`KiteConnect`, its order and trade timestamps read without dateutil (see the module's docstring)."""

        def _format_response(self, data: Any) -> Any:
            if type(data) is not list and type(data) is not dict:
                return super()._format_response(data)  # kiteconnect's own failure
            return format_response(data)

    return KiteDeskConnect


def new_kite(*args: Any, **kwargs: Any) -> Any:
    """`KiteConnect(*args, **kwargs)` (`kite_class`), its order calls sent through an `OrderLane` (order_lane.py)."""
    from desktop.broker.order_lane import with_order_lane

    return with_order_lane(kite_class()(*args, **kwargs))
