"""Recovery on start: a session that had an open position is reconciled before any new entry.

- PAPER: the durable fills are the truth (written before acting): open positions are rebuilt from them.
- LIVE: the broker is the truth, matched by the session's order tag: the session's net quantity per
  option from its own tagged orders (capped by the account's net position at the broker), adopted with
  its resting SL order when there is one, or protected by a new SL order when there is none. Entry orders
  still open from the previous run are cancelled.
Runs on the segment agent's thread during its start.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from desktop.broker.errors import BrokerError
from desktop.broker.gateway import LiveGateway
from desktop.domain import Mode, Order, OrderStatus, OrderType, Side, rupees
from desktop.engine.trader import SegmentTrader

_RESTING = (OrderStatus.TRIGGER_PENDING, OrderStatus.OPEN, OrderStatus.PENDING)


def _mine(trader: SegmentTrader, exchange: str, symbol: str) -> bool:
    assert trader.book is not None
    ins = trader.book.by_symbol(exchange, symbol)
    return ins is not None and ins.name == trader.segment.spec.name


def recover_paper(trader: SegmentTrader, now: datetime) -> None:
    """Adopts the segment's open paper positions, rebuilt from the session's durable fills."""
    key = trader.ctx.key
    fills = trader.ctx.store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)
    trader.seen_fills |= {f.fill_id for f in fills}
    held: dict[tuple[str, str], tuple[int, Decimal]] = {}  # (exchange, symbol) -> (quantity, cost since flat)
    realised = Decimal(0)
    for f in fills:
        if f.mode is not Mode.PAPER or not _mine(trader, f.exchange, f.tradingsymbol):
            continue
        qty, cost = held.get((f.exchange, f.tradingsymbol), (0, Decimal(0)))
        if f.side is Side.BUY:
            qty, cost = qty + f.quantity, cost + f.price * f.quantity
        elif qty > 0:
            average = cost / qty
            sold = min(f.quantity, qty)
            realised += (f.price - average) * sold
            qty, cost = qty - sold, cost - average * sold
        held[(f.exchange, f.tradingsymbol)] = (qty, cost if qty else Decimal(0))
    trader.realised = rupees(realised)
    for (exchange, symbol), (qty, cost) in held.items():
        if qty > 0:
            trader.adopt(symbol, exchange, qty, rupees(cost / qty), now)


def recover_live(
    trader: SegmentTrader, gateway: LiveGateway, broker_net: dict[str, int], now: datetime
) -> None:
    """Reconciles the segment with the broker's orders of this session's tag and the account's positions."""
    key = trader.ctx.key
    store = trader.ctx.store
    trader.seen_fills |= {
        f.fill_id for f in store.fills.for_session(broker_id=key.broker_id, session_id=key.session_id)
    }
    orders = [o for o in gateway.reconcile() if _mine(trader, o.exchange, o.tradingsymbol)]
    for o in orders:
        if o.side is Side.BUY and not o.status.is_final:
            # An entry the previous run sent and never saw fill: no new risk before reconciling.
            try:
                gateway.cancel(o.order_id)
                trader.log.warning("cancelled entry order %s left open by the previous run", o.order_id)
            except BrokerError as e:
                trader.log.warning("entry order %s left open could not be cancelled: %s", o.order_id, e)
    net: dict[tuple[str, str], int] = {}
    for o in orders:
        sign = 1 if o.side is Side.BUY else -1
        net[(o.exchange, o.tradingsymbol)] = (
            net.get((o.exchange, o.tradingsymbol), 0) + sign * o.filled_quantity
        )
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
        stop = _resting_stop(orders, symbol)
        if stop is not None:
            trader.adopt_stop_order(stop)
        else:
            position = trader.strategy.position
            trader.log.warning("no stop-loss order found at the broker for %s: placing one", symbol)
            trader._place_stop(position.stop if position else None)
        break  # one position per segment


def _entry_price(orders: list[Order], symbol: str) -> Decimal:
    buys = [o for o in orders if o.tradingsymbol == symbol and o.side is Side.BUY and o.filled_quantity]
    if not buys:
        return Decimal(0)
    last = buys[-1]  # the open round trip started with the latest filled buy
    return rupees(last.average_price)


def _resting_stop(orders: list[Order], symbol: str) -> Order | None:
    for o in orders:
        if (
            o.tradingsymbol == symbol
            and o.side is Side.SELL
            and o.order_type in (OrderType.SL, OrderType.SL_M)
            and o.status in _RESTING
        ):
            return o
    return None
