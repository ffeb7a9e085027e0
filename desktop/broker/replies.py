"""What a reply from Kite must hold before anything reads it: one checker per kind of reply.

kiteconnect hands over whatever JSON came back. A reply that is well-formed JSON but does not hold what the
API documents (issue 16: a positions reply with `"quantity": "lots"`) raised a `ValueError` deep inside the
code that read it, and that failed every LIVE segment of the session. Each checker here walks the fields
KiteDesk reads and raises `ReplyInvalid` saying which one is wrong; `KiteSession` logs and counts it and asks
again (broker/session.py), and in the end raises `MalformedReply`, a `BrokerError` its callers already handle
like a network failure. A checker returns the reply (parsed, for the instruments dump), so a read is one call.
Values are checked the way their readers convert them: whole numbers as `int`, money as `rupees`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from desktop.domain import OrderType, Side

_WHOLE = re.compile(r"^[+-]?\d+$")
_SIDES = frozenset(s.value for s in Side)
_ORDER_TYPES = frozenset(t.value for t in OrderType)


class ReplyInvalid(ValueError):
    """A reply that does not hold what Kite's API says; the message names the field and its value."""


def whole(value: Any, where: str = "value") -> int:
    """An integer field as Kite sends it (an int, or its digits as text; missing counts as 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ReplyInvalid(f"{where} {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE.match(value.strip()):
        return int(value)
    raise ReplyInvalid(f"{where} {_show(value)} is not a whole number")


def _money(value: Any, where: str, required: bool = False) -> None:
    kind = type(value)
    if kind is int or (
        kind is float and math.isfinite(value)
    ):  # as Kite sends prices: read without a Decimal
        return
    if (value is None or value == "") and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ReplyInvalid(f"{where} {_show(value)} is not a price")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ReplyInvalid(f"{where} {_show(value)} is not a price") from None
    if not d.is_finite():
        raise ReplyInvalid(f"{where} {_show(value)} is not a price")


def _text(value: Any, where: str, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str | int) or isinstance(value, bool) or (required and str(value) == ""):
        raise ReplyInvalid(f"{where} {_show(value)} is not a name or an id")


def _one_of(value: Any, allowed: frozenset[str], where: str) -> None:
    if value not in allowed:
        raise ReplyInvalid(f"{where} {_show(value)} is not one of {', '.join(sorted(allowed))}")


def _rows(data: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ReplyInvalid(f"{where} is not a list of rows")
    return data


def _dict(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ReplyInvalid(f"{where} is not an object")
    return data


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _each(rows: Iterable[dict[str, Any]], where: str, check: Callable[[dict[str, Any], str], object]) -> None:
    for i, row in enumerate(rows):
        check(row, f"{where}[{i}]")


# -- the replies ---------------------------------------------------------------------------------------


def positions(data: Any) -> dict[str, Any]:
    """GET /portfolio/positions: {"net": [...], "day": [...]}, each row a symbol and a whole quantity."""
    doc = _dict(data, "positions")
    for book in ("net", "day"):
        rows = _rows(doc.get(book, []), f"positions.{book}")
        _each(rows, book, _position_row)
    return doc


def _position_row(row: dict[str, Any], where: str) -> None:
    # Every exit reads the account's positions (every session's rows) on its agent's thread: a row as Kite sends it
    # (a symbol, an int, finite floats) passes without its checks' words being written (issue 18); any other value
    # is checked, and said, as before.
    symbol, quantity = row.get("tradingsymbol"), row.get("quantity")
    if type(symbol) is not str or not symbol:
        _text(symbol, f"{where}.tradingsymbol")
    if type(quantity) is not int:
        whole(quantity, f"{where}.quantity")
    for name in ("average_price", "last_price", "pnl"):
        value = row.get(name)
        if not (type(value) is float and math.isfinite(value)) and type(value) is not int:
            _money(value, f"{where}.{name}")


def order_row(row: Any, where: str = "order") -> dict[str, Any]:
    """One order of the order book, of an order's history or of an order update (WebSocket postback)."""
    row = _dict(row, where)
    _text(row.get("order_id"), f"{where}.order_id")
    _text(row.get("tradingsymbol"), f"{where}.tradingsymbol")
    _text(row.get("status"), f"{where}.status")
    if "transaction_type" in row:
        _one_of(row["transaction_type"], _SIDES, f"{where}.transaction_type")
    if "order_type" in row:
        _one_of(row["order_type"], _ORDER_TYPES, f"{where}.order_type")
    for name in ("quantity", "filled_quantity"):
        whole(row.get(name), f"{where}.{name}")
    for name in ("average_price", "price", "trigger_price"):
        _money(row.get(name), f"{where}.{name}")
    _text(row.get("tag"), f"{where}.tag", required=False)
    return row


def orders(data: Any) -> list[dict[str, Any]]:
    """GET /orders and GET /orders/{id} (its history): rows of orders."""
    rows = _rows(data, "orders")
    _each(rows, "orders", order_row)
    return rows


def trades(data: Any) -> list[dict[str, Any]]:
    """GET /trades and GET /orders/{id}/trades: rows of fills with a whole quantity and a price."""
    rows = _rows(data, "trades")
    for i, row in enumerate(rows):
        where = f"trades[{i}]"
        _text(row.get("trade_id"), f"{where}.trade_id")
        if whole(row.get("quantity"), f"{where}.quantity") <= 0:
            raise ReplyInvalid(f"{where}.quantity {_show(row.get('quantity'))} is not a fill's quantity")
        _money(row.get("average_price"), f"{where}.average_price")
        if "transaction_type" in row:
            _one_of(row["transaction_type"], _SIDES, f"{where}.transaction_type")
    return rows


def margins(data: Any) -> dict[str, Any]:
    """GET /user/margins[/{segment}]: per segment (or one segment's) net and available amounts."""
    doc = _dict(data, "margins")
    segments = [(f"margins.{k}", v) for k, v in doc.items()] if "net" not in doc else [("margins", doc)]
    for where, seg in segments:
        seg = _dict(seg, where)
        _money(seg.get("net"), f"{where}.net")
        for name, amount in _dict(seg.get("available", {}), f"{where}.available").items():
            _money(amount, f"{where}.available.{name}")
    return doc


def profile(data: Any) -> dict[str, Any]:
    """GET /user/profile: at least the user id."""
    doc = _dict(data, "profile")
    _text(doc.get("user_id"), "profile.user_id")
    return doc


def quotes(data: Any) -> dict[str, Any]:
    """GET /quote and /quote/ltp: per instrument key, an object with its last price."""
    doc = _dict(data, "quotes")
    for key, quote in doc.items():
        where = f"quotes[{key!r}]"
        _money(_dict(quote, where).get("last_price"), f"{where}.last_price", required=True)
    return doc


def candles(data: Any) -> Any:
    """Historical candles: kiteconnect's rows of dicts, or the raw {"candles": [[ts, o, h, l, c, v], ...]}."""
    rows = data.get("candles") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ReplyInvalid("candles is not a list")
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            prices = [row.get(k) for k in ("open", "high", "low", "close")]
        elif isinstance(row, list) and len(row) >= 5:
            prices = row[1:5]
        else:
            raise ReplyInvalid(f"candles[{i}] is not a candle")
        for value in prices:
            _money(value, f"candles[{i}]", required=True)
    return data


def order_id(data: Any) -> Any:
    """POST/PUT/DELETE /orders: the order's id (kiteconnect returns it alone)."""
    _text(data, "order_id")
    return data
