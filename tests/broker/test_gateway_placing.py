"""LiveGateway's placements side by side (issue 18): a session's segments send orders of different instruments at
once, never waiting for each other's round trip, while two placements an ambiguous reply's lookup could confuse
(the same tradingsymbol and side) still go one after the other, and the book of known orders is never read with a
placement in flight."""

from __future__ import annotations

import threading

import pytest

from desktop.broker.errors import AmbiguousOrderFailure
from desktop.broker.gateway import LiveGateway
from desktop.domain import Mode, OrderIntent, OrderType, Segment, SessionKey, Side

WAIT = 5.0


class HeldSession:
    """A KiteSession stand-in whose `place_order` for a symbol waits until the test lets it answer."""

    def __init__(self) -> None:
        self.key = SessionKey("UK9394", "s1")
        self.events: list[str] = []
        self.book: list[dict] = []
        self.lost: set[str] = set()  # symbols whose reply is lost (their order reaches the book)
        self.hidden: set[str] = set()  # symbols the book does not show yet (Kite's book lags)
        self.arrived: dict[str, threading.Event] = {}
        self.answer: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._ids = 0

    def hold(self, symbol: str) -> None:
        self.arrived[symbol] = threading.Event()
        self.answer[symbol] = threading.Event()

    def orders(self) -> list[dict]:
        with self._lock:
            self.events.append("book read")
            return [row for row in self.book if row["tradingsymbol"] not in self.hidden]

    def place_order(self, **p) -> str:
        symbol = p["tradingsymbol"]
        with self._lock:
            self._ids += 1
            order_id = f"ORD{self._ids}"
            self.events.append(f"sent {symbol}")
            self.book.append(dict(order_id=order_id, tag=p["tag"], tradingsymbol=symbol,
                                  transaction_type=p["transaction_type"], quantity=p["quantity"],
                                  order_type=p["order_type"], status="OPEN"))  # fmt: skip
        if symbol in self.arrived:
            self.arrived[symbol].set()
            assert self.answer[symbol].wait(WAIT)
        with self._lock:
            self.events.append(f"answered {symbol}")
        if symbol in self.lost:
            raise AmbiguousOrderFailure("reply lost", "ReadTimeout")
        return order_id


def entry(session: HeldSession, symbol: str, segment: Segment = Segment.NIFTY) -> OrderIntent:
    return OrderIntent(session.key, segment, Mode.LIVE, "NFO", symbol, Side.BUY, 65, OrderType.MARKET)


def placing(gateway: LiveGateway, intent: OrderIntent, out: dict[str, object]) -> threading.Thread:
    def run() -> None:
        try:
            out[intent.tradingsymbol] = gateway.place(intent).order_id
        except Exception as e:
            out[intent.tradingsymbol] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def nifty_in_flight() -> tuple[HeldSession, LiveGateway, threading.Thread, dict[str, object]]:
    """A gateway with a NIFTY order sent and its reply held back (its outcome lands in the dict)."""
    session = HeldSession()
    gateway = LiveGateway(session, None)  # type: ignore[arg-type]
    session.hold("NIFTY2611325000CE")
    out: dict[str, object] = {}
    first = placing(gateway, entry(session, "NIFTY2611325000CE"), out)
    assert session.arrived["NIFTY2611325000CE"].wait(WAIT)
    return session, gateway, first, out


def test_orders_of_different_instruments_are_sent_without_waiting_for_each_others_reply() -> None:
    session, gateway, first, out = nifty_in_flight()
    # The NIFTY order's reply has not come; the BANKNIFTY segment's order goes out and is answered meanwhile.
    assert gateway.place(entry(session, "BANKNIFTY2611359000CE", Segment.BANKNIFTY)).order_id == "ORD2"
    assert "answered NIFTY2611325000CE" not in session.events
    session.answer["NIFTY2611325000CE"].set()
    first.join(WAIT)
    assert out["NIFTY2611325000CE"] == "ORD1"


def test_two_orders_of_the_same_instrument_and_side_go_one_after_the_other() -> None:
    session, gateway, first, out = nifty_in_flight()
    second = placing(gateway, entry(session, "NIFTY2611325000CE"), {})
    second.join(0.2)
    assert (
        second.is_alive()
    )  # waits for the first's reply: a lost one must not be matched with the second's order
    assert session.events.count("sent NIFTY2611325000CE") == 1
    session.answer["NIFTY2611325000CE"].set()
    first.join(WAIT)
    second.join(WAIT)
    assert session.events[-4:] == ["sent NIFTY2611325000CE", "answered NIFTY2611325000CE"] * 2


def test_a_lost_reply_finds_its_own_order_while_another_instrument_is_placed_beside_it() -> None:
    session = HeldSession()
    gateway = LiveGateway(session, None, lookup_attempts=1, lookup_pause=0.0)  # type: ignore[arg-type]
    session.hold("BANKNIFTY2611359000CE")
    session.lost.add("NIFTY2611325000CE")
    out: dict[str, object] = {}
    other = placing(gateway, entry(session, "BANKNIFTY2611359000CE", Segment.BANKNIFTY), out)
    assert session.arrived["BANKNIFTY2611359000CE"].wait(WAIT)
    # Both orders stand in the book, neither known yet: the lost one is matched by its own symbol, not the other.
    assert gateway.place(entry(session, "NIFTY2611325000CE")).order_id == "ORD2"
    session.answer["BANKNIFTY2611359000CE"].set()
    other.join(WAIT)
    assert out["BANKNIFTY2611359000CE"] == "ORD1"


def test_after_an_unconfirmed_order_the_book_is_read_again_only_once_nothing_is_in_flight() -> None:
    session = HeldSession()
    gateway = LiveGateway(session, None, lookup_attempts=1, lookup_pause=0.0)  # type: ignore[arg-type]
    session.hold("BANKNIFTY2611359000CE")
    out: dict[str, object] = {}
    in_flight = placing(gateway, entry(session, "BANKNIFTY2611359000CE", Segment.BANKNIFTY), out)
    assert session.arrived["BANKNIFTY2611359000CE"].wait(WAIT)
    # Meanwhile the NIFTY order's reply is lost and the (lagging) book does not show it: left unconfirmed.
    session.lost.add("NIFTY2611325000CE")
    session.hidden.add("NIFTY2611325000CE")
    with pytest.raises(AmbiguousOrderFailure):
        gateway.place(entry(session, "NIFTY2611325000CE"))
    session.hidden.clear()
    reads = session.events.count("book read")
    later = placing(gateway, entry(session, "SENSEX2611380000CE", Segment.SENSEX), out)
    later.join(0.2)
    # The book of known orders is read again before the next placement, but not while the BANKNIFTY order is in
    # flight: that order would be read as known before its own reply, and a lost reply would then not find it.
    assert later.is_alive() and session.events.count("book read") == reads
    session.answer["BANKNIFTY2611359000CE"].set()
    in_flight.join(WAIT)
    later.join(WAIT)
    assert out == {"BANKNIFTY2611359000CE": "ORD1", "SENSEX2611380000CE": "ORD3"}
    after = session.events[session.events.index("answered BANKNIFTY2611359000CE") :]
    assert after[:3] == ["answered BANKNIFTY2611359000CE", "book read", "sent SENSEX2611380000CE"]
