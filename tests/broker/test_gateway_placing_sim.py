"""LiveGateway's placements side by side (issue 18) with the real kiteconnect client against the simulator: a
session's orders of different instruments sent at once, one reply lost, each placement ends with its own order and
Kite holds each order once; a reply lost while Kite's book lags twice never adopts another placement's order."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from desktop.broker.errors import AmbiguousOrderFailure
from desktop.broker.gateway import LiveGateway
from desktop.domain import OptionRight, Segment, Side
from tests.broker.conftest import login, wait_until
from tests.broker.test_gateway_sim import TODAY, intent, sim_orders


def contracts(hub, session, n: int) -> list:
    """`n` NIFTY options of different strikes and rights: orders of different tradingsymbols."""
    book = hub.instrument_book(session, TODAY)
    spot = Decimal(str(session.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]))
    found = [book.resolve_itm_option(Segment.NIFTY, spot, right, 50 * k, TODAY)
             for k in range(n) for right in (OptionRight.CE, OptionRight.PE)]  # fmt: skip
    assert len({c.tradingsymbol for c in found}) == len(found)
    return found[:n]


def all_placed(sim, threads: list[threading.Thread]) -> dict:
    """Runs the placing `threads` at once; the simulator's orders of UK9394 by id once they are done (one reply of
    theirs was lost on the way)."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sim.state.accounts["UK9394"].lose_next_order_reply is None  # one reply really was lost
    return {o.order_id: o for o in sim_orders(sim, "UK9394")}


@pytest.mark.parametrize("how", ["drop", "503"])
def test_orders_of_different_instruments_sent_at_once_one_reply_lost_each_ends_with_its_own_order(
    hub, sim, how: str
) -> None:
    session = hub.open_session(login(hub, sim, "UK9394"))
    gateway = LiveGateway(session, None, lookup_pause=0.1)
    options = contracts(hub, session, 4)
    gateway.place(intent(session, options[0], Side.SELL))  # an older order of the same tag (and one's shape)
    sim.inject_fault({"kind": "lose_next_order_reply", "api_key": "UK9394", "how": how})
    start = threading.Barrier(len(options) * 2)
    out: dict[tuple[str, str], object] = {}

    def place(contract, side: Side) -> None:
        start.wait()
        try:
            out[(contract.tradingsymbol, side.value)] = gateway.place(
                intent(session, contract, side)
            ).order_id
        except Exception as e:  # reported by the assertions below
            out[(contract.tradingsymbol, side.value)] = e

    threads = [
        threading.Thread(target=place, args=(c, side)) for c in options for side in (Side.BUY, Side.SELL)
    ]
    at_broker = all_placed(sim, threads)
    assert len(at_broker) == 1 + len(threads)  # each sent once
    placed = list(out.values())
    assert all(isinstance(order_id, str) for order_id in placed), out
    assert len(set(placed)) == len(threads)  # no two placements ended with one order
    for (symbol, side), order_id in out.items():
        assert (at_broker[order_id].instrument.tradingsymbol, at_broker[order_id].transaction_type) == (
            symbol,
            side,
        )
    session.close()


def test_an_unconfirmed_order_that_reaches_the_book_late_is_not_adopted_by_a_later_lost_reply(
    hub, sim
) -> None:
    session = hub.open_session(login(hub, sim, "UK9394"))
    stream = hub.open_stream(session)  # the simulator's market clock brings lagging orders to the book
    gateway = LiveGateway(session, stream, lookup_attempts=2, lookup_pause=0.05)
    try:
        contract = contracts(hub, session, 1)[0]
        sim.inject_fault(
            {"kind": "lose_next_order_reply", "api_key": "UK9394", "how": "503", "appear_after": 3}
        )
        with pytest.raises(AmbiguousOrderFailure):
            gateway.place(intent(session, contract))  # A: unconfirmed, Kite's book lags it
        between = gateway.place(intent(session, contract))  # reads the book again first: A not there yet
        assert wait_until(lambda: len(sim_orders(sim, "UK9394")) == 2)  # A reaches the book
        first = next(o.order_id for o in sim_orders(sim, "UK9394") if o.order_id != between.order_id)
        sim.inject_fault(
            {"kind": "lose_next_order_reply", "api_key": "UK9394", "how": "503", "appear_after": 3}
        )
        try:
            adopted = gateway.place(
                intent(session, contract)
            ).order_id  # C: its reply lost, the book lags it too
        except AmbiguousOrderFailure:
            adopted = None  # unconfirmed: right, its order is not in the book yet
        assert adopted != first, "C's placement took A's order for its own"
    finally:
        stream.close()
        session.close()


@pytest.mark.parametrize("how", ["drop", "503"])
def test_two_sessions_of_one_account_placing_the_same_option_at_once_each_find_their_own_lost_order(
    hub, sim, how: str
) -> None:
    profile = login(hub, sim, "UK9394")
    sessions = [hub.open_session(profile), hub.open_session(profile)]  # two tabs: two tags, one order book
    gateways = [LiveGateway(s, None, lookup_pause=0.05) for s in sessions]
    contract = contracts(hub, sessions[0], 1)[0]
    for gateway, session in zip(gateways, sessions, strict=True):
        gateway.place(intent(session, contract))  # each has an older order of the same shape
    start = threading.Barrier(4)
    out: dict[int, list[object]] = {0: [], 1: []}

    def place(n: int) -> None:
        start.wait()
        try:
            out[n].append(gateways[n].place(intent(sessions[n], contract)).order_id)
        except Exception as e:  # reported by the assertions below
            out[n].append(e)

    sim.inject_fault({"kind": "lose_next_order_reply", "api_key": "UK9394", "how": how})
    threads = [threading.Thread(target=place, args=(n,)) for n in (0, 1, 0, 1)]
    at_broker = all_placed(sim, threads)
    assert len(at_broker) == 2 + 4
    for n, session in enumerate(sessions):
        assert all(isinstance(order_id, str) for order_id in out[n]), out
        assert len(set(out[n])) == 2
        assert all(
            at_broker[order_id].tag == session.key.order_tag for order_id in out[n]
        )  # never the other's
    for session in sessions:
        session.close()
