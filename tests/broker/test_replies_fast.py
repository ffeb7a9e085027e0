"""The position and price checks' fast path (issue 18: every exit reads the account's positions on its agent's thread)
accepts and refuses exactly what the full checks did, with the same words."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from desktop.broker import replies
from desktop.broker.replies import ReplyInvalid


def _reference_money(value: Any, where: str) -> None:  # the check as it was, a Decimal for every value
    if value is None or value == "":
        return
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ReplyInvalid(f"{where} {replies._show(value)} is not a price")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ReplyInvalid(f"{where} {replies._show(value)} is not a price") from None
    if not d.is_finite():
        raise ReplyInvalid(f"{where} {replies._show(value)} is not a price")


def _reference_row(row: dict[str, Any], where: str) -> None:
    replies._text(row.get("tradingsymbol"), f"{where}.tradingsymbol")
    replies.whole(row.get("quantity"), f"{where}.quantity")
    for name in ("average_price", "last_price", "pnl"):
        _reference_money(row.get(name), f"{where}.{name}")


def _outcome(check: Any, *args: Any) -> str:
    try:
        check(*args)
    except ReplyInvalid as e:
        return str(e)
    return "ok"


_VALUE = st.one_of(
    st.none(), st.just(""), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
    st.sampled_from(["12.5", "nan", "inf", "-3", "1e3", "x"]), st.lists(st.integers(), max_size=1),
    st.decimals(allow_nan=True),
)  # fmt: skip
_ROW = st.fixed_dictionaries(
    {},
    optional={"tradingsymbol": _VALUE, "quantity": _VALUE, "average_price": _VALUE, "last_price": _VALUE,
              "pnl": _VALUE},
)  # fmt: skip


@given(_ROW)
def test_a_position_row_is_accepted_or_refused_as_before_with_the_same_words(row: dict[str, Any]) -> None:
    assert _outcome(replies._position_row, row, "net[0]") == _outcome(_reference_row, row, "net[0]")


@given(_VALUE)
def test_a_price_is_accepted_or_refused_as_before_with_the_same_words(value: Any) -> None:
    assert _outcome(replies._money, value, "order.price") == _outcome(_reference_money, value, "order.price")
