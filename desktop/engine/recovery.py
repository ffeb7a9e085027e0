"""Recovery on start: a session that had an open position is reconciled before any new entry.

- PAPER: the durable fills are the truth (written before acting): open positions are rebuilt from them and
  protected by a new SL order at the paper gateway (its orders lived in the previous process).
- LIVE: the broker is the truth, matched by the session's order tag: the session's net quantity per
  option from its own tagged orders (capped by the account's net position at the broker), adopted with
  its resting SL order when there is one (resized to the quantity adopted), or protected by a new SL order
  when there is none. Entries and exits still open from the previous run are cancelled first, and a stop
  with no position behind it is cancelled (triggered, it would sell short).
Every risk counter of the day is rebuilt and given to the (new) risk manager before any entry, for a flat
segment too: the day's realised P&L from the day's orders (PAPER: the day's fills), the daily loss limit
when the journal says it was reached today (its P&L may have come back since), the trades of the day
(filled entries) from the broker's orders, the stored fills and the journal, whichever knows more (a journal
note written after the crash's last durable write may be missing), and the orders sent in the last minute
from the journal and the broker's order times. Its log lines carry the start's market time, as every other
line of the segment's log.
Runs on the segment agent's thread during its start.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from desktop.broker.errors import BrokerError
from desktop.broker.gateway import LiveGateway
from desktop.domain import Fill, Mode, Order, OrderRole, OrderStatus, OrderType, Side, rupees
from desktop.engine.orders import TrackedOrder
from desktop.engine.slices import adopt_stop_slices
from desktop.engine.trader import SegmentTrader

_RESTING = (OrderStatus.TRIGGER_PENDING, OrderStatus.OPEN, OrderStatus.PENDING)
# Journal notes of an order sent to the broker (or of a stop modified): what the order rate counts.
_SENT_KINDS = frozenset({"order_sent", "order_unconfirmed", "stop_moved"})
LOSS_LIMIT_REACHED = "loss_limit_reached"  # the session's journal note when the daily loss limit is reached


def _mine(trader: SegmentTrader, exchange: str, symbol: str) -> bool:
    assert trader.book is not None
    ins = trader.book.by_symbol(exchange, symbol)
    return ins is not None and ins.name == trader.segment.spec.name


def recover_paper(trader: SegmentTrader, now: datetime) -> None:
    """Adopts the segment's open paper positions, rebuilt from the session's durable fills."""
    key = trader.ctx.key
    trader.log.set_market_time(now)
    fills = trader.ctx.store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)
    trader.orders.know_fills({f.fill_id for f in fills})
    _show_earlier(trader, fills, now)
    held, realised = _replay(
        ((f.exchange, f.tradingsymbol), f.side, f.quantity, f.price, f.timestamp.date() == now.date())
        for f in fills
        if f.mode is Mode.PAPER and _mine(trader, f.exchange, f.tradingsymbol)
    )  # only the day's sales count in its P&L: the daily loss limit counts from it
    trader.keeper.restore_realised(realised)
    for (exchange, symbol), (qty, cost) in held.items():
        if qty > 0:
            trader.adopt(symbol, exchange, qty, rupees(cost / qty), now, cost=cost)
            trader.protect()  # the paper gateway's orders lived in the previous process: its stop again
    _store_flat(trader, held)
    _tell_risk(trader, now, fills, [])


def recover_live(
    trader: SegmentTrader, gateway: LiveGateway, broker_net: dict[str, int], now: datetime
) -> None:
    """Reconciles the segment with the broker's orders of this session's tag and the account's positions."""
    key = trader.ctx.key
    trader.log.set_market_time(now)
    store = trader.ctx.store
    fills = store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)
    trader.orders.know_fills({f.fill_id for f in fills})
    gateway.know_fills(fills)  # the trades of an order whose fills were recorded are not read again
    _show_earlier(trader, fills, now)
    orders = [o for o in gateway.reconcile() if _mine(trader, o.exchange, o.tradingsymbol)]
    if _cancel_left_working(trader, gateway, orders):  # what filled meanwhile must be counted: read again
        orders = [o for o in gateway.reconcile() if _mine(trader, o.exchange, o.tradingsymbol)]
    trader.keeper.restore_realised(_realised_today(orders))
    net: dict[tuple[str, str], int] = {}
    for o in orders:
        sign = 1 if o.side is Side.BUY else -1
        net[(o.exchange, o.tradingsymbol)] = (
            net.get((o.exchange, o.tradingsymbol), 0) + sign * o.filled_quantity
        )
    handled: set[str] = set()  # the position's resting stops: adopted, resized or replaced
    for (exchange, symbol), qty in net.items():
        if qty <= 0:
            continue
        at_broker = broker_net.get(symbol, 0)
        if at_broker < qty:
            trader.log.warning(
                "%s: this session bought %d but the account holds %d at the broker: adopting %d",
                symbol, qty, at_broker, max(at_broker, 0),
            )  # fmt: skip
            qty = max(at_broker, 0)
        if qty <= 0:
            continue
        trader.adopt(symbol, exchange, qty, _entry_price(orders, symbol), now)
        stops = _resting_stops(orders, symbol)
        if len(stops) > 1:  # a position bought above the freeze quantity: one stop-loss order per slice
            handled = {o.order_id for o in stops}
            kept = _sliced_stops(trader, gateway, stops, qty)
            if kept:
                adopt_stop_slices(trader, kept)
            else:
                trader.protect()
            break
        stop = stops[0] if stops else None
        handled = {stop.order_id} if stop is not None else set()
        if stop is not None and stop.quantity - stop.filled_quantity != qty:
            stop = _resize(trader, gateway, stop, qty)  # None: cancelled, a new one of the right size follows
        if stop is not None:
            trader.adopt_stop_order(stop)
        else:
            trader.log.warning(
                "no stop-loss order of the right size at the broker for %s: placing one", symbol
            )
            trader.protect()
        break  # one position per segment
    for o in orders:  # a stop with no position behind it would sell short when triggered
        if o.order_id not in handled and _is_stop(o) and o.status in _RESTING:
            _cancel(trader, gateway, o, "stop-loss order with no position held")
    _store_flat(trader, net)
    _tell_risk(trader, now, fills, orders)
    _watch_lost_entries(trader, orders, now)


def _watch_lost_entries(trader: SegmentTrader, orders: list[Order], now: datetime) -> None:
    """Entries of today an earlier run sent whose reply was lost, that no order of the broker's book shows: Kite's
    book may show them yet, after this restart. Watched for as given up (`Orders.found`), so that one showing
    later is this session's own, tracked and protected, not "an order this run did not place"."""
    key, store, day = trader.ctx.key, trader.ctx.store, now.date()
    notes = [
        e for e in store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)
        if e.segment is trader.segment and e.market_time.date() == day
    ]  # fmt: skip
    lost = [
        str(e.payload.get("intent_id") or "") for e in notes
        if e.kind == "order_unconfirmed" and e.payload.get("role") == OrderRole.ENTRY
    ]  # fmt: skip
    if not lost:
        return
    bound = {
        o.intent_id for o in store.orders.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    bound |= {str(e.payload.get("intent_id") or "") for e in notes if e.kind == "order_found_late"}
    intents = {
        i.intent_id: i for i in store.intents.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    for intent_id in lost:
        intent = intents.get(intent_id)
        if intent is None or intent_id in bound:
            continue
        shape = (intent.tradingsymbol, intent.side, intent.quantity)
        if any((o.tradingsymbol, o.side, o.quantity) == shape for o in orders):
            continue  # in the broker's book: counted above by the session's tag
        tracked = TrackedOrder(intent)
        tracked.unconfirmed(now)
        tracked.give_up("never confirmed by Kite (an earlier run)")
        trader.orders.given_up.append(tracked)
        trader.log.warning(
            "the entry order to buy %d %s an earlier run sent was never confirmed by Kite and is not in its order "
            "book: watched for, should Kite show it yet",
            intent.quantity, intent.tradingsymbol,
        )  # fmt: skip


def _store_flat(trader: SegmentTrader, traded: Iterable[tuple[str, str]]) -> None:
    """Stores as flat, with the day's realised P&L just rebuilt, each option of the segment the session traded
    today or last stored as held, that it does not hold now. A position sold while no process ran (its stop
    filled at the broker) or whose last row a crash kept from the disk is otherwise left "held" in the store (a
    later start would manage a position that is gone), and the day's P&L stored stays the earlier run's."""
    key, h = trader.ctx.key, trader.holding
    stored = trader.ctx.store.positions.open_positions(broker_id=key.broker_id, session_id=key.session_id)
    options = dict.fromkeys(
        [*traded, *((p.exchange, p.tradingsymbol) for p in stored if p.mode is trader.mode)]
    )
    for exchange, symbol in options:
        if _mine(trader, exchange, symbol) and (h is None or h.tradingsymbol != symbol):
            trader.keeper.save_flat(exchange, symbol)


def _cancel_left_working(trader: SegmentTrader, gateway: LiveGateway, orders: list[Order]) -> bool:
    """Cancels the entries and exits the previous run left working: an entry (no new risk before reconciling),
    an exit (the position is adopted with a stop, and the strategy exits again if it should). True if any."""
    cancelled = False
    for o in orders:
        if o.status.is_final or _is_stop(o):
            continue
        what = "entry order" if o.side is Side.BUY else "exit order"
        cancelled = _cancel(trader, gateway, o, f"{what} left open by the previous run") or cancelled
    return cancelled


def _cancel(trader: SegmentTrader, gateway: LiveGateway, o: Order, what: str) -> bool:
    try:
        gateway.cancel(o.order_id)
    except BrokerError as e:
        trader.log.warning("%s %s could not be cancelled: %s", what, o.order_id, e)
        return False
    trader.log.warning("cancelled %s %s", what, o.order_id)
    return True


def _resize(trader: SegmentTrader, gateway: LiveGateway, stop: Order, quantity: int) -> Order | None:
    """The resting stop made to sell exactly the adopted quantity (Kite's quantity is the order's total, what
    filled included); None when it had to be cancelled instead."""
    total = stop.filled_quantity + quantity
    try:
        gateway.modify(stop.order_id, quantity=total)
    except BrokerError as e:
        trader.log.warning(
            "stop-loss order %s not resized to %d (%s): cancelling it", stop.order_id, total, e
        )
        _cancel(trader, gateway, stop, "stop-loss order of the wrong size")
        return None
    trader.log.warning("stop-loss order %s resized from %d to %d to sell the %d held", stop.order_id,
                       stop.quantity, total, quantity)  # fmt: skip
    return replace(stop, quantity=total)  # still `filled_quantity` sold before: it sells `quantity` more


def _is_stop(o: Order) -> bool:
    return o.side is Side.SELL and o.order_type in (OrderType.SL, OrderType.SL_M)


def _realised_today(orders: list[Order]) -> Decimal:
    """The day's realised P&L of the session's tagged orders (Kite's order book is the day's), in time order:
    what filled while KiteDesk was down (a stop at the broker) counts too."""
    timed = sorted((o for o in orders if o.filled_quantity), key=lambda o: (o.timestamp is None, o.timestamp))
    _, realised = _replay((o.tradingsymbol, o.side, o.filled_quantity, o.average_price, True) for o in timed)
    return realised


def _replay(
    trades: Iterable[tuple[Hashable, Side, int, Decimal, bool]],
) -> tuple[dict[Any, tuple[int, Decimal]], Decimal]:
    """Buys and sells of (instrument, side, quantity, price, counted) in order, at average cost: what is held
    of each instrument (quantity, cost since it was last flat) and the realised P&L of the counted sales."""
    held: dict[Any, tuple[int, Decimal]] = {}
    realised = Decimal(0)
    for instrument, side, quantity, price, counted in trades:
        qty, cost = held.get(instrument, (0, Decimal(0)))
        if side is Side.BUY:
            qty, cost = qty + quantity, cost + price * quantity
        elif qty > 0:
            average = cost / qty
            sold = min(quantity, qty)
            if counted:
                realised += (price - average) * sold
            qty, cost = qty - sold, cost - average * sold
        held[instrument] = (qty, cost if qty else Decimal(0))
    return held, rupees(realised)


def _show_earlier(trader: SegmentTrader, fills: list[Fill], now: datetime) -> None:
    """The day's fills and orders of this segment from the session's earlier runs: its orders and trades tables
    show what its day's P&L counts (the orders as last recorded; Kite's updates of this run replace them)."""
    key, day = trader.ctx.key, now.date()
    stored = trader.ctx.store.orders.for_session(broker_id=key.broker_id, session_id=key.session_id)
    trader.orders.show_earlier(
        [f for f in fills if f.timestamp.date() == day and _mine(trader, f.exchange, f.tradingsymbol)],
        [o for o in stored
         if o.timestamp is not None and o.timestamp.date() == day and _mine(trader, o.exchange, o.tradingsymbol)],
    )  # fmt: skip


def _tell_risk(trader: SegmentTrader, now: datetime, fills: list[Fill], orders: list[Order]) -> None:
    """The recovered day reaches the (new) risk manager before any entry: a restart must not reset the daily
    loss limit, the trade cap or the order rate. `orders`: the broker's orders of the segment (LIVE)."""
    risk, segment, day = trader.ctx.risk, trader.segment, now.date()
    risk.update_pnl(segment, trader.realised, trader.unrealised, now)
    key = trader.ctx.key
    today = [
        e for e in trader.ctx.store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)
        if e.market_time.date() == day
    ]  # fmt: skip
    for e in today:  # reached earlier today: the day stays closed, even if the P&L came back since
        if e.kind == LOSS_LIMIT_REACHED:
            risk.restore_loss_limit(str(e.payload.get("note", "")), now)
    journal = [e for e in today if e.segment is segment]
    entries = {
        o.order_id for o in orders if o.side is Side.BUY and o.filled_quantity and _on(o.timestamp, day)
    }
    entries |= {
        f.order_id for f in fills
        if f.side is Side.BUY and f.timestamp.date() == day and _mine(trader, f.exchange, f.tradingsymbol)
    }  # fmt: skip
    # An entry sent in slices (above the freeze quantity) is one trade: its slices share their intent.
    intent_of = {
        o.order_id: o.intent_id
        for o in trader.ctx.store.orders.for_session(broker_id=key.broker_id, session_id=key.session_id)
        if o.intent_id
    }
    entries = {intent_of.get(order_id, order_id) for order_id in entries}
    trades = max(len(entries), sum(e.kind == "entry_filled" for e in journal))
    # What this run sent already counts (risk.check); the earlier runs' orders are added, each once.
    this_run = trader.orders.sent_this_run()
    sent: dict[str, datetime] = {}  # an order (or a modification) -> when it was sent
    for e in journal:
        oid = str(e.payload.get("order_id") or e.payload.get("intent_id") or "")
        if e.kind in _SENT_KINDS and oid not in this_run:
            sent[f"{oid}@{e.seq}" if e.kind == "stop_moved" or not oid else oid] = e.market_time
    for o in orders:
        if o.timestamp is not None and o.order_id not in this_run:
            sent.setdefault(o.order_id, o.timestamp)
    risk.restore_day(segment, trades, sent.values(), now)
    if trades:
        trader.log.info(
            "%d trade%s of %d today so far (max trades per day)", trades, "" if trades == 1 else "s",
            risk.max_trades_per_day,
        )  # fmt: skip


def _on(t: datetime | None, day: date) -> bool:
    return t is None or t.date() == day


def _entry_price(orders: list[Order], symbol: str) -> Decimal:
    buys = [o for o in orders if o.tradingsymbol == symbol and o.side is Side.BUY and o.filled_quantity]
    if not buys:
        return Decimal(0)
    last = buys[-1]  # the open round trip started with the latest filled buy
    return rupees(last.average_price)


def _resting_stops(orders: list[Order], symbol: str) -> list[Order]:
    return [o for o in orders if o.tradingsymbol == symbol and _is_stop(o) and o.status in _RESTING]


def _sliced_stops(
    trader: SegmentTrader, gateway: LiveGateway, stops: list[Order], quantity: int
) -> list[Order]:
    """The resting stop-loss orders of a sliced position, kept when together they sell exactly the `quantity`
    adopted at one trigger (each within the freeze, as the broker took them); otherwise every one is cancelled
    (a new set of the right size follows) and [] returned. Never more stops than held: a stop that sells more
    than is held would sell short when it triggers."""
    left = sum(o.quantity - o.filled_quantity for o in stops)
    if (
        left == quantity
        and len({o.trigger_price for o in stops}) == 1
        and not any(o.filled_quantity for o in stops)
    ):
        return stops
    trader.log.warning("the %d stop-loss orders at the broker sell %d of the %d held: replacing them",
                       len(stops), left, quantity)  # fmt: skip
    for o in stops:
        _cancel(trader, gateway, o, "stop-loss order of the wrong size")
    return []
