"""Random interleavings of what Kite can send about a segment's orders (entry, stop, exit): updates out of order
and repeated, fills before or after their order's update, an order ended after our cancel or completed in spite
of it, a fill after settlement. Whatever the order of events, the order state machine never refuses a transition
(`IllegalTransition` is a bug) and, once everything has come, the position held equals the fills and the day's
realised P&L is the fills' P&L to the paisa (a unit-level model of the broker; the simulator's e2e tests and the
chaos harness do the same over real sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.broker.errors import InputRejected
from desktop.domain import Fill, OptionRight, Order, OrderRole, OrderStatus, OrderType, Side, Tick, rupees
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.engine.trader import SegmentTrader
from tests.engine.traders import T0, RecordingGateway

LOT = 65
# What may happen next, weighted by repetition: mostly the broker working and its events arriving.
STEPS = ["enter"] * 2 + ["execute"] * 4 + ["deliver"] * 6 + ["repeat", "end", "end", "tick", "tick", "option",
         "option", "exit", "kill"]  # fmt: skip


@dataclass
class BrokerOrder:
    """One order as the model broker keeps it: what it executed, and the events not delivered yet."""

    order: Order
    role: OrderRole
    executed: int = 0
    ended: bool = False
    cancel_asked: bool = False
    pending: list[Order | Fill] = field(default_factory=list)


class Broker:
    """Executes the trader's orders as Kite could, and holds each event until the test delivers it."""

    def __init__(self, trader: SegmentTrader, gateway: RecordingGateway) -> None:
        self.trader, self.gateway = trader, gateway
        self.orders: dict[str, BrokerOrder] = {}
        self.seen_cancels = 0
        self.fills = 0
        self.delivered: list[Fill] = []
        cancel = gateway.cancel

        def cancel_unless_ended(order_id: str) -> Order:
            b = self.orders.get(order_id)
            if b is not None and b.ended:  # Kite refuses to cancel an order that has completed or ended
                raise InputRejected(f"Order cannot be cancelled as it is {b.order.status.value.lower()}")
            return cancel(order_id)

        gateway.cancel = cancel_unless_ended  # type: ignore[method-assign]

    def sync(self) -> None:
        """Takes in the orders the trader placed and the cancels it asked for since the last look."""
        for o in self.gateway.orders():
            if o.order_id not in self.orders:
                tracked = self.trader.orders.tracked.get(o.order_id)
                role = tracked.role if tracked is not None else OrderRole.EXIT
                first = OrderStatus.TRIGGER_PENDING if o.order_type is OrderType.SL else OrderStatus.OPEN
                bo = BrokerOrder(replace(o, status=first), role)
                bo.pending.append(bo.order)
                self.orders[o.order_id] = bo
        for order_id in self.gateway.cancelled[self.seen_cancels :]:
            if order_id in self.orders:
                self.orders[order_id].cancel_asked = True
        self.seen_cancels = len(self.gateway.cancelled)
        self.gateway.net = self.net()  # the account's positions, as Kite shows them

    def net(self) -> int:
        sign = {Side.BUY: 1, Side.SELL: -1}
        return sum(sign[b.order.side] * b.executed for b in self.orders.values())

    def working(self) -> list[BrokerOrder]:
        return [b for b in self.orders.values() if not b.ended]

    def execute(self, b: BrokerOrder, quantity: int, price: Decimal) -> None:
        if b.order.side is Side.SELL:
            quantity = min(quantity, max(self.net(), 0))  # Kite never lets a MIS option sale go short here
        quantity = min(quantity, b.order.quantity - b.executed)
        if quantity <= 0:
            return
        b.executed += quantity
        self.gateway.net = self.net()  # Kite's positions show an execution at once (before its fill comes)
        self.fills += 1
        o = b.order
        fill = Fill(f"T{self.fills}", o.order_id, o.key, o.mode, o.exchange, o.tradingsymbol, o.side, quantity, price,
                    self.trader.market_time or T0)  # fmt: skip
        complete = b.executed == o.quantity
        status = OrderStatus.COMPLETE if complete else OrderStatus.OPEN
        b.order = replace(o, status=status, filled_quantity=b.executed, average_price=price)
        b.ended = complete
        b.pending += [fill, b.order]

    def end(self, b: BrokerOrder, why: str) -> None:
        status = OrderStatus.REJECTED if why == "rejected" and b.executed == 0 else OrderStatus.CANCELLED
        b.order = replace(b.order, status=status, filled_quantity=b.executed, status_message=why)
        b.ended = True
        b.pending.append(b.order)

    def deliver(self, b: BrokerOrder, index: int, again: bool) -> None:
        event = b.pending[index] if again else b.pending.pop(index)
        if isinstance(event, Fill):
            if event not in self.delivered:  # a fill reported again is the same fill
                self.delivered.append(event)
            self.trader.on_fill(event)
        else:
            self.trader.on_order(event)


def _index_tick(trader: SegmentTrader, at: timedelta) -> None:
    assert trader.index_price is not None
    trader.on_ticks([Tick(trader.segment.spec.index_token, trader.index_price, T0 + at)])


def _expected_realised(fills: list[Fill]) -> Decimal:
    """The P&L of the round trips the fills make, each rounded once (as the trades table's net cash flow)."""
    total, trip, held = Decimal(0), Decimal(0), 0
    for f in fills:
        sign = 1 if f.side is Side.SELL else -1
        trip += sign * f.price * f.quantity
        held -= sign * f.quantity
        if held == 0:
            total, trip = total + rupees(trip), Decimal(0)
    assert held == 0
    return total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_interleaving_kite_can_send_keeps_the_state_machine_and_the_position_true_to_the_fills(
    make, data
):
    trader, gateway, _ = make()
    trader.outside.next_check = float("inf")  # the periodic positions check reads a real clock: not here
    broker = Broker(trader, gateway)
    now = timedelta(0)
    prices = st.integers(3000, 4400).map(lambda n: Decimal(n) / 20)
    for _ in range(data.draw(st.integers(5, 60), label="steps")):
        broker.sync()
        working = broker.working()
        with_events = [b for b in broker.orders.values() if b.pending]
        step = data.draw(st.sampled_from(STEPS), label="step")
        if step == "enter":
            trader.strategy.pending_entry = OptionRight.CE
            trader.act([EnterPosition(OptionRight.CE, "test")])
        elif step == "execute" and working:
            b = data.draw(st.sampled_from(working), label="order")
            if b.cancel_asked and b.role is not OrderRole.ENTRY:
                continue  # a sale we cancelled: the broker cancels it (`end`); an entry may fill too late
            if b.role is OrderRole.STOP and b.order.status is OrderStatus.TRIGGER_PENDING:
                b.order = replace(b.order, status=OrderStatus.OPEN)  # triggered
                b.pending.append(b.order)
            lots = data.draw(st.integers(1, 3), label="lots")
            broker.execute(b, lots * LOT, data.draw(prices, label="price"))
        elif step == "end" and working:
            b = data.draw(st.sampled_from(working), label="order")
            why = (
                "cancelled"
                if b.cancel_asked
                else data.draw(st.sampled_from(["rejected", "price protection"]))
            )
            broker.end(b, why)
        elif step in ("deliver", "repeat") and with_events:
            b = data.draw(st.sampled_from(with_events), label="order")
            index = data.draw(st.integers(0, len(b.pending) - 1), label="event")
            broker.deliver(b, index, again=step == "repeat")
        elif step == "tick":
            now += timedelta(seconds=data.draw(st.sampled_from([1, 5, 31]), label="seconds"))
            _index_tick(trader, now)
        elif step == "option" and trader.holding is not None:
            now += timedelta(seconds=1)
            trader.on_ticks([Tick(trader.holding.token, data.draw(prices, label="ltp"), T0 + now)])
        elif step == "exit":
            trader.act([ExitPosition(data.draw(st.sampled_from(["target", "stop_loss", "signal_exit"])))])
        elif step == "kill":
            trader.cancel_open_entries(then_exit="kill")
            trader.exit("kill")
    # Then the broker executes whatever still works (the stop sells what is held) and every event comes, in
    # the order drawn, until nothing works any more.
    for _ in range(20):
        now += timedelta(seconds=31)  # patience, retries and a kill's exit asked again have their time
        _index_tick(trader, now)
        broker.sync()
        for b in broker.working():
            if b.cancel_asked and b.role is not OrderRole.ENTRY:
                broker.end(b, "cancelled")
            else:
                broker.execute(b, b.order.quantity, data.draw(prices, label="price"))
                if not b.ended:
                    broker.end(b, "cancelled")  # a sale with nothing left to sell
        while any(b.pending for b in broker.orders.values()):
            b = data.draw(st.sampled_from([b for b in broker.orders.values() if b.pending]), label="order")
            broker.deliver(b, data.draw(st.integers(0, len(b.pending) - 1), label="event"), again=False)
        broker.sync()
        if not broker.working() and (trader.holding is None or not trader.protection.status()):
            break
    held = trader.holding.quantity if trader.holding is not None else 0
    assert held == broker.net(), "the position held is what the fills bought less what they sold"
    if held == 0:
        assert trader.realised == _expected_realised(broker.delivered)
