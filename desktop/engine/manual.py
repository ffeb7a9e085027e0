"""Manual actions of a trader on one position or order: exit now, cancel a working order, move the stop.

They go the strategy's way: `SessionEngine.exit_position` / `cancel_order` / `move_stop` post one of these
functions to the segment agent's inbox (`RunOnAgent`, before any queued tick) and the trader's own public method
does the work on the agent's thread, through the same gateway, risk counters and journal as the strategy's orders:
- exit now: `SegmentTrader.exit("manual_exit")`, a MARKET order with market protection; the resting stop is
  cancelled only after the exit's intent is journalled, and an exit refused leaves the rest protected again;
- cancel: `SegmentTrader.cancel_order`, an entry or exit still working (never the protective stop);
- move stop: validated here (a sell stop below the last price, on the 0.05 tick), then `SegmentTrader.move_stop`,
  whose strategy keeps the manual level (exits.py: the trail never lowers it).
Each leaves a journal note (`manual_exit`, `manual_cancel`, `manual_stop_move`) saying who asked what and what came
of it. Plain Python: the outcome is a `ManualOutcome` the window shows; a refusal raises `ManualRefused` with a
message a trader reads, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from desktop.broker.errors import BrokerError
from desktop.domain import TICK_SIZE, OrderRole

if TYPE_CHECKING:
    from desktop.engine.trader import SegmentTrader

MANUAL_EXIT = "manual_exit"  # the exit's reason (intent, journal, log, the strategy's on_exit)


class ManualRefused(Exception):
    """A manual action that was not done; `str()` is the trader's message."""


@dataclass(frozen=True, slots=True)
class ManualOutcome:
    """What a manual action did, in words for the window."""

    text: str


def parse_stop_level(text: str | Decimal, last_price: Decimal | None) -> Decimal:
    """A new stop level typed by the trader: a price in rupees on the 0.05 tick, above zero and below the last
    traded price (a sell stop at or above it would trigger at once; Kite refuses it). Raises ManualRefused."""
    try:
        level = Decimal(str(text).strip().replace(",", "").replace("₹", ""))
    except InvalidOperation:
        raise ManualRefused(f"the stop must be a price in rupees, not {str(text)!r}") from None
    if not level.is_finite() or level <= 0:
        raise ManualRefused("the stop must be a price above ₹0")
    if level % TICK_SIZE != 0:
        raise ManualRefused(f"the stop must be on the {TICK_SIZE} tick (e.g. {_near_tick(level)})")
    if last_price is not None and level >= last_price:
        raise ManualRefused(
            f"a sell stop must be below the last price {last_price}: {level} would trigger at once"
        )
    return level.quantize(Decimal("0.01"))


def exit_now(trader: SegmentTrader, symbol: str, by: str) -> ManualOutcome:
    """Sells the held `symbol` at market now (agent's thread)."""
    h = _held(trader, symbol)
    if trader.orders_in_flight():  # holding, that is an exit (an entry is sent only when flat)
        raise ManualRefused(f"an exit of {h.tradingsymbol} is already on its way")
    quantity, last = h.quantity, h.last_price
    trader.orders.last_refusal = ""  # an older refusal must not be read as this exit's
    sent = trader.exit(MANUAL_EXIT)
    protection = trader.protection.status()
    trader.journal("manual_exit", {"by": by, "symbol": h.tradingsymbol, "qty": quantity,
                                     "last_price": str(last), "sent": sent})  # fmt: skip
    if not sent:
        why = trader.orders.last_refusal or "see the segment's log"
        kept = "; the position stays under its stop-loss order" if not protection else f"; {protection}"
        trader.log.error("manual exit of %d %s (%s) not sent: %s%s", quantity, h.tradingsymbol, by, why, kept)
        raise ManualRefused(f"the exit of {quantity} {h.tradingsymbol} was not sent: {why}{kept}")
    trader.log.warning("manual exit (%s): selling %d %s at market", by, quantity, h.tradingsymbol)
    return ManualOutcome(f"exit sent: SELL {quantity} {h.tradingsymbol} at market")


def cancel_order(trader: SegmentTrader, order_id: str, by: str) -> ManualOutcome:
    """Cancels one of the segment's working entries or exits (agent's thread)."""
    try:
        tracked = trader.cancel_order(order_id)
    except BrokerError as e:
        trader.journal("manual_cancel", {"by": by, "order_id": order_id, "done": False, "why": str(e)})
        raise ManualRefused(f"order {order_id} not cancelled: {e}") from None
    i = tracked.intent
    trader.journal("manual_cancel", {"by": by, "order_id": tracked.order_id, "symbol": i.tradingsymbol,
                                       "role": i.role.value, "qty": i.quantity, "done": True})  # fmt: skip
    trader.log.warning("manual cancel (%s) of %s order %s: %s %d %s", by, i.role.value, tracked.order_id,
                       i.side.value, i.quantity, i.tradingsymbol)  # fmt: skip
    after = " (the position stays under its stop-loss order)" if i.role is OrderRole.EXIT else ""
    return ManualOutcome(f"cancel asked for order {tracked.order_id}{after}")


def move_stop(trader: SegmentTrader, symbol: str, level: Decimal | str, by: str) -> ManualOutcome:
    """Moves the stop of the held `symbol` to `level` (agent's thread); the level is checked against the last
    price this segment saw (the broker checks its own)."""
    h = _held(trader, symbol)
    new = parse_stop_level(level, h.last_price)
    stop = h.stop_order
    before = stop.trigger if stop is not None else None
    try:
        note = trader.move_stop(new)
    except BrokerError as e:
        trader.journal("manual_stop_move", {"by": by, "symbol": h.tradingsymbol, "from": str(before),
                                              "to": str(new), "done": False, "why": str(e)})  # fmt: skip
        raise ManualRefused(f"stop not moved (still {before or 'none'}): {e}") from None
    placed = h.stop_order
    trader.journal("manual_stop_move", {"by": by, "symbol": h.tradingsymbol, "from": str(before), "to": str(new),
                                          "limit": str(placed.limit if placed else None), "done": True,
                                          "note": note})  # fmt: skip
    trader.log.warning("manual stop move (%s) of %s: %s → %s%s", by, h.tradingsymbol, before, new,
                       f"; {note}" if note else "")  # fmt: skip
    return ManualOutcome(f"stop of {h.tradingsymbol} moved to {new}" + (f" ({note})" if note else ""))


def _held(trader: SegmentTrader, symbol: str) -> Any:
    h = trader.holding
    if h is None or h.tradingsymbol != symbol:
        raise ManualRefused(f"{symbol} is not held by this session's {trader.segment.value} now")
    return h


def _near_tick(level: Decimal) -> Decimal:
    return ((level / TICK_SIZE).to_integral_value() * TICK_SIZE).quantize(Decimal("0.01"))
