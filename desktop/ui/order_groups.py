"""The orders table's groups: an order above the freeze quantity reaches the window as several broker orders
(its slices, desktop/engine/slices.py) sharing one intent id. The table shows them as one group: a parent row
with the group's totals, then its slices marked "slice 1/3", kept together under their parent whatever column
the trader sorts by (`GroupedSortProxy`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from desktop.domain import Order, OrderStatus, OrderType, Side

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A row of a sliced order: its parent (`slice_no` 0, the group's totals) or one slice (1..`slices`). It reads
    like an `Order` to the table's columns."""

    group: str  # the intent id the slices share
    slice_no: int
    slices: int
    order_id: str  # the parent's: "3 slices"; a slice's: "slice 1/3 · <its order id>"
    tradingsymbol: str
    side: Side
    order_type: OrderType
    quantity: int
    filled_quantity: int
    average_price: Decimal
    trigger_price: Decimal | None
    status: OrderStatus | str  # a parent whose slices differ: "2 COMPLETE, 1 OPEN"
    status_message: str
    timestamp: datetime | None
    broker_order_id: str = ""  # a slice's own order id ("" for the parent)

    @property
    def key(self) -> Hashable:
        return ("group", self.group, self.slice_no)


def group_orders(orders: Sequence[Order]) -> tuple[Order | OrderRow, ...]:
    """`orders` with each sliced order's rows replaced by its parent row followed by its slices (in the order
    they were sent), at the place of its first slice; orders that are not sliced are left as they are."""
    by_intent: dict[str, list[Order]] = {}
    for o in orders:
        if o.intent_id:
            by_intent.setdefault(o.intent_id, []).append(o)
    rows: list[Order | OrderRow] = []
    done: set[str] = set()
    for o in orders:
        members = by_intent.get(o.intent_id) if o.intent_id else None
        if members is None or len(members) < 2:
            rows.append(o)
            continue
        if o.intent_id in done:
            continue
        done.add(o.intent_id)
        rows.extend(_group_rows(o.intent_id, members))
    return tuple(rows)


def _group_rows(group: str, members: list[Order]) -> list[OrderRow]:
    n = len(members)
    filled = sum(m.filled_quantity for m in members)
    value = sum((m.average_price * m.filled_quantity for m in members), Decimal(0))
    triggers = {m.trigger_price for m in members}
    statuses = [m.status for m in members]
    if len(set(statuses)) == 1:
        status: OrderStatus | str = statuses[0]
    else:
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        status = ", ".join(f"{c} {s.value}" for s, c in counts.items())
    messages = list(dict.fromkeys(m.status_message for m in members if m.status_message))
    times = [m.timestamp for m in members if m.timestamp is not None]
    first = members[0]
    parent = OrderRow(
        group, 0, n, f"{n} slices", first.tradingsymbol, first.side, first.order_type,
        sum(m.quantity for m in members), filled, value / filled if filled else Decimal(0),
        triggers.pop() if len(triggers) == 1 else None, status, "; ".join(messages),
        min(times) if times else None,
    )  # fmt: skip
    return [parent] + [
        OrderRow(
            group,
            i,
            n,
            f"slice {i}/{n} · {m.order_id}",
            m.tradingsymbol,
            m.side,
            m.order_type,
            m.quantity,
            m.filled_quantity,
            m.average_price,
            m.trigger_price,
            m.status,
            m.status_message,
            m.timestamp,
            m.order_id,
        )  # fmt: skip
        for i, m in enumerate(members, 1)
    ]


def order_row_key(row: Order | OrderRow) -> Hashable:
    """An order by the broker's order id; a group's rows by their group and place in it."""
    return row.key if isinstance(row, OrderRow) else row.order_id


def is_group_parent(row: object) -> bool:
    """A sliced order's parent row (shown in bold)."""
    return isinstance(row, OrderRow) and row.slice_no == 0


class GroupedSortProxy(QSortFilterProxyModel):
    """Sorts the orders table by the column the trader chose while a group's rows stay together: a group sorts
    by its parent row's value, and inside it the parent comes first, then slice 1, 2, … in either order."""

    def lessThan(self, left: _Index, right: _Index) -> bool:  # noqa: N802 - Qt API
        model: Any = self.sourceModel()
        a, b = model.row(left.row()), model.row(right.row())
        ga, gb = _group_of(a), _group_of(b)
        if ga == gb:  # the same group: parent, then its slices, whichever way the column is sorted
            first = _slice_no(a) < _slice_no(b)
            return first if self.sortOrder() is Qt.SortOrder.AscendingOrder else not first
        column = left.column()
        va = model.sort_value(_anchor(model, a), column)
        vb = model.sort_value(_anchor(model, b), column)
        if va != vb:
            try:
                return bool(va < vb)
            except TypeError:
                return str(va) < str(vb)
        return ga < gb  # equal values: groups are never interleaved


def _group_of(row: Any) -> str:
    return f"g:{row.group}" if isinstance(row, OrderRow) else f"o:{row.order_id}"


def _slice_no(row: Any) -> int:
    return row.slice_no if isinstance(row, OrderRow) else 0


def _anchor(model: Any, row: Any) -> Any:
    """The row a row sorts by: a slice sorts with its group's parent."""
    if isinstance(row, OrderRow) and row.slice_no:
        return model.find_row(("group", row.group, 0)) or row
    return row
