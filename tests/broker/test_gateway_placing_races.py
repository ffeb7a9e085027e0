"""LiveGateway's placements side by side under hostile timing (issue 18's `_placing`): the book of known orders is
never read while a placement is in flight, even when another placement is left unconfirmed at the very moment a
third one is let in; a lost reply then still finds its own order."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from types import FrameType
from typing import Any

import pytest

from desktop.broker.errors import AmbiguousOrderFailure, BrokerError, RateLimited
from desktop.broker.gateway import LiveGateway
from desktop.domain import Mode, OrderIntent, OrderType, Segment, Side
from tests.broker.test_gateway_placing import WAIT, HeldSession, entry, placing

NIFTY = "NIFTY2611325000CE"
BANKNIFTY = "BANKNIFTY2611359000CE"
SENSEX = "SENSEX2611380000CE"


def paused_after_first_stale_check(gateway: LiveGateway, symbol: str, until: threading.Event,
                                   paused: threading.Event) -> Any:  # fmt: skip
    """A trace function for the thread placing `symbol`: once no placement of its shape is in flight, it pauses that
    thread just after it first asked whether the book of known orders is stale (holding `_placing`'s condition),
    until `until` is set. Only the thread's timing changes: nothing of the gateway is replaced."""
    shape = (symbol, Side.BUY.value)

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "return" and not paused.is_set() and shape not in gateway._placing_now:
            paused.set()
            until.wait(WAIT)
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if event == "call" and frame.f_code.co_name == "_known_ids_stale":
            return local
        return None

    return tracer


def test_a_placement_left_unconfirmed_while_another_is_let_in_does_not_make_it_read_the_book_with_one_in_flight(
) -> None:  # fmt: skip
    session = HeldSession()
    gateway = LiveGateway(session, None, lookup_attempts=1, lookup_pause=0.0)  # type: ignore[arg-type]
    for symbol in (NIFTY, BANKNIFTY, SENSEX):
        session.hold(symbol)
    out: dict[str, object] = {}
    first = placing(gateway, entry(session, NIFTY), out)  # reads the book (empty), then is held: ORD1
    assert session.arrived[NIFTY].wait(WAIT)
    sensex = placing(gateway, entry(session, SENSEX, Segment.SENSEX), out)  # ORD2 in the book, its reply held
    assert session.arrived[SENSEX].wait(WAIT)
    banknifty = placing(gateway, entry(session, BANKNIFTY, Segment.BANKNIFTY), out)  # ORD3, reply held
    assert session.arrived[BANKNIFTY].wait(WAIT)
    session.lost.update({BANKNIFTY, SENSEX})
    session.hidden.add(BANKNIFTY)  # the lagging book does not show it: it is left unconfirmed

    # A second NIFTY order waits for the first; it is let in as the BANKNIFTY one is left unconfirmed.
    release, paused = threading.Event(), threading.Event()
    second_out: dict[str, object] = {}

    def second_nifty() -> None:
        sys.settrace(paused_after_first_stale_check(gateway, NIFTY, release, paused))
        try:
            second_out["id"] = gateway.place(entry(session, NIFTY)).order_id
        except Exception as e:
            second_out["id"] = e
        finally:
            sys.settrace(None)

    second = threading.Thread(target=second_nifty)
    second.start()
    time.sleep(0.1)  # it waits on the first NIFTY order
    session.answer[NIFTY].set()
    first.join(WAIT)
    assert paused.wait(WAIT)  # let in: it found the book of known orders fresh, with two placements in flight
    session.answer[BANKNIFTY].set()  # reply lost, not in the book: it is left unconfirmed meanwhile
    deadline = time.monotonic() + WAIT
    while session.events.count("book read") < 2 and time.monotonic() < deadline:  # its lookup
        time.sleep(0.005)
    time.sleep(0.05)
    release.set()
    second.join(WAIT)
    session.answer[SENSEX].set()  # its reply is lost too: its order ORD2 stands in the book, ours, not known
    sensex.join(WAIT)
    banknifty.join(WAIT)
    assert out[NIFTY] == "ORD1" and second_out["id"] == "ORD4"
    # A book read with it in flight would have made its order "known": its lookup would not find it (unconfirmed).
    assert out[SENSEX] == "ORD2"
    assert session.events.count("book read") == 3  # the first placement's, BANKNIFTY's and SENSEX's lookups


class UnreadableBookSession(HeldSession):
    """A HeldSession whose order book cannot be read the next `failing` times (Kite's 5xx, a timeout), and does not
    show the orders sent after the first `shown` (Kite's book lags)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = 0
        self.shown: int | None = None

    def orders(self) -> list[dict]:
        if self.failing:
            self.failing -= 1
            raise BrokerError("Kite's order book could not be read", "NetworkException")
        return super().orders()[: self.shown]


def test_an_order_whose_lost_reply_could_not_be_looked_up_is_never_taken_for_a_later_ones() -> None:
    session = UnreadableBookSession()
    gateway = LiveGateway(session, None, lookup_attempts=1, lookup_pause=0.0)  # type: ignore[arg-type]
    assert gateway.place(entry(session, NIFTY)).order_id == "ORD1"
    session.lost.add(NIFTY)
    session.failing = 1  # its reply lost and the book unreadable: ORD2 may be at Kite (it is)
    with pytest.raises(AmbiguousOrderFailure, match="cannot be read"):
        gateway.place(entry(session, NIFTY))
    session.shown = 2  # the book shows ORD2 now, but lags the next order (ORD3)
    try:
        found = gateway.place(entry(session, NIFTY)).order_id  # its reply lost too
    except AmbiguousOrderFailure:
        found = None  # unconfirmed: right, its order is not in the book yet
    assert found != "ORD2", "a lost reply took the earlier unconfirmed order for its own"
    assert len(session.book) == 3  # and nothing was sent twice


class ThrottledSession(UnreadableBookSession):
    """Answers the next `throttled` orders of a symbol with Kite's 429 (nothing placed)."""

    def __init__(self) -> None:
        super().__init__()
        self.throttled: dict[str, int] = {}

    def place_order(self, **p) -> str:
        symbol = p["tradingsymbol"]
        if self.throttled.get(symbol):
            self.throttled[symbol] -= 1
            with self._lock:
                self.events.append(f"429 {symbol}")
            raise RateLimited(detail="429")
        return super().place_order(**p)


def test_an_order_waiting_out_a_429_holds_back_only_its_own_instrument_and_side() -> None:
    session = ThrottledSession()
    gateway = LiveGateway(session, None, backoff_initial=1.0)  # type: ignore[arg-type]
    session.throttled[NIFTY] = 1
    out: dict[str, object] = {}
    first = placing(gateway, entry(session, NIFTY), out)
    deadline = time.monotonic() + WAIT
    while "429 NIFTY2611325000CE" not in session.events and time.monotonic() < deadline:
        time.sleep(0.005)
    after: dict[str, object] = {}
    second = placing(gateway, entry(session, NIFTY), after)  # the same shape: waits for the first
    assert gateway.place(entry(session, SENSEX, Segment.SENSEX)).order_id == "ORD1"  # meanwhile, at once
    first.join(WAIT)
    second.join(WAIT)
    assert out[NIFTY] == "ORD2" and after[NIFTY] == "ORD3"
    assert [e for e in session.events if e.startswith("sent")] == [
        f"sent {SENSEX}",
        f"sent {NIFTY}",
        f"sent {NIFTY}",
    ]


def test_a_book_that_cannot_be_read_before_the_first_order_refuses_it_and_holds_nothing_back() -> None:
    session = ThrottledSession()
    gateway = LiveGateway(session, None)  # type: ignore[arg-type]
    session.failing = 1
    with pytest.raises(BrokerError, match="could not be read"):
        gateway.place(entry(session, NIFTY))
    assert not any(e.startswith("sent") for e in session.events)  # not sent: its lookup could not be trusted
    out: dict[str, object] = {}
    threads = [placing(gateway, entry(session, symbol), out) for symbol in (NIFTY, BANKNIFTY, SENSEX)]
    for t in threads:
        t.join(WAIT)
    assert sorted(map(str, out.values())) == ["ORD1", "ORD2", "ORD3"]


class Interrupted(BaseException):
    """Not an Exception: what a thread may meet that no `except Exception` takes."""


class InterruptedSession(UnreadableBookSession):
    def __init__(self) -> None:
        super().__init__()
        self.interrupt = False

    def place_order(self, **p) -> str:
        if self.interrupt:
            self.interrupt = False
            raise Interrupted
        return super().place_order(**p)


def test_a_placement_ended_by_a_base_exception_holds_back_no_later_one_of_its_shape() -> None:
    session = InterruptedSession()
    gateway = LiveGateway(session, None)  # type: ignore[arg-type]
    session.interrupt = True
    with pytest.raises(Interrupted):
        gateway.place(entry(session, NIFTY))
    out: dict[str, object] = {}
    later = placing(gateway, entry(session, NIFTY), out)
    later.join(WAIT)
    assert not later.is_alive() and out[NIFTY] == "ORD1"


class SlicingSession(UnreadableBookSession):
    """Answers autoslice requests as Kite: one child order per `freeze` units; the reply of the next is lost."""

    freeze = 1800

    def __init__(self) -> None:
        super().__init__()
        self.lose_slices = False

    def place_autoslice_order(self, **p) -> list[tuple[str, str]]:
        children = []
        left = p["quantity"]
        while left > 0:
            children.append(self.place_order(**(p | {"quantity": min(left, self.freeze)})))
            left -= self.freeze
        if self.lose_slices:
            self.lose_slices = False
            raise AmbiguousOrderFailure("reply lost", "ReadTimeout")
        return [(order_id, "") for order_id in children]


def test_a_lost_autoslice_reply_found_in_part_leaves_no_late_child_for_a_later_lost_reply_to_adopt() -> None:
    session = SlicingSession()
    gateway = LiveGateway(session, None, lookup_attempts=1, lookup_pause=0.0)  # type: ignore[arg-type]
    big = OrderIntent(session.key, Segment.NIFTY, Mode.LIVE, "NFO", NIFTY, Side.BUY, 3600, OrderType.MARKET)
    session.lose_slices = True
    session.shown = 1  # Kite's lagging book shows the first child only (ORD1); ORD2 comes later
    assert gateway.place_autoslice(big) == [("ORD1", "")]
    session.shown = 2  # the second child is in the book now; the next order (ORD3) lags
    session.lost.add(NIFTY)
    try:
        found = gateway.place(replace(big, quantity=1800)).order_id  # its reply lost too
    except AmbiguousOrderFailure:
        found = None  # unconfirmed: right, its order is not in the book yet
    assert found != "ORD2", "a lost reply took the sliced order's late child for its own"
