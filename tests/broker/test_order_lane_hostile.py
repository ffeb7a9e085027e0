"""The order lane against replies a broken or hostile server could send, and requests it must not send.

Each reply that cannot be read whole ends the call with the requests exception `translate` reads as "ambiguous" (the
order was sent, its fate at Kite is unknown: the gateway looks for it by tag), and the connection is dropped: the
next order goes on a fresh connection and gets its own reply, never the rest of the broken one. A request that
cannot be written safely is refused before anything is written, as "unavailable" (nothing reached Kite).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from kiteconnect import KiteConnect

from desktop.broker.errors import AmbiguousOrderFailure, BrokerUnavailable, translate
from desktop.broker.order_lane import OrderLane
from tests.broker.lane_servers import CLOSE, RESET, SILENT, Answer, ScriptServer, kite_ok, tls_pair

_BODY = b'{"status": "success", "data": {"order_id": "1"}}'
_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def _order(kite: KiteConnect) -> str:
    return kite.place_order(
        variety="regular", exchange="NFO", tradingsymbol="NIFTY26JAN23500CE", transaction_type="BUY", quantity=75,
        product="MIS", order_type="MARKET", tag="KDhostile",
    )  # fmt: skip


def _kite(port: int, timeout: float = 2, **kw: str) -> KiteConnect:
    kite = KiteConnect(kw.get("api_key", "UK9394"), access_token=kw.get("token", "t"),
                       root=f"http://127.0.0.1:{port}", timeout=timeout)  # fmt: skip
    kite.reqsession = OrderLane(kite.reqsession)
    return kite


@pytest.fixture
def serve() -> Iterator:
    made: list[ScriptServer] = []

    def make(first: Answer) -> ScriptServer:
        """The first request of the first connection answered with `first`, every other one with order id
        `<connection><request>` (e.g. "10": the second connection's first request)."""
        made.append(ScriptServer(lambda c, r: first if (c, r) == (0, 0) else kite_ok(f"{c}{r}")))
        return made[-1]

    yield make
    for s in made:
        s.stop()


_CUT_OR_HOSTILE = {
    "length longer than the body, then the close": (_JSON + b"Content-Length: 80\r\n\r\n" + _BODY, CLOSE),
    "length longer than the body, then silence": _JSON + b"Content-Length: 80\r\n\r\n" + _BODY,
    "negative length": _JSON + b"Content-Length: -5\r\n\r\n" + _BODY,
    "two lengths in one": _JSON + b"Content-Length: 48, 48\r\n\r\n" + _BODY,
    "two length headers": _JSON + b"Content-Length: 48\r\nContent-Length: 48\r\n\r\n" + _BODY,
    "a length with a sign": _JSON + b"Content-Length: +48\r\n\r\n" + _BODY,
    "a length with an underscore": _JSON + b"Content-Length: 4_8\r\n\r\n" + _BODY,
    "a huge length": _JSON + b"Content-Length: 99999999999999999999999\r\n\r\n" + _BODY,
    "a length of a terabyte": _JSON + b"Content-Length: 1000000000000\r\n\r\n" + _BODY,
    "an invalid chunk size": _JSON + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + _BODY + b"\r\n0\r\n\r\n",
    "a negative chunk size": _JSON + b"Transfer-Encoding: chunked\r\n\r\n-5\r\n" + _BODY + b"\r\n0\r\n\r\n",
    "a huge chunk size": _JSON + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n" + _BODY,
    "a chunk size with 0x": _JSON + b"Transfer-Encoding: chunked\r\n\r\n0x30\r\n" + _BODY + b"\r\n0\r\n\r\n",
    "a chunk not ended by CRLF": _JSON + b"Transfer-Encoding: chunked\r\n\r\n30\r\n" + _BODY + b"XY0\r\n\r\n",
    "chunks cut by the close": (_JSON + b"Transfer-Encoding: chunked\r\n\r\n30\r\n" + _BODY[:20], CLOSE),
    "an over-long status line": b"HTTP/1.1 200 " + b"O" * 70000 + b"\r\n\r\n",
    "an over-long header": _JSON + b"X-Pad: " + b"p" * 70000 + b"\r\nContent-Length: 48\r\n\r\n" + _BODY,
    "an over-long chunk line": _JSON + b"Transfer-Encoding: chunked\r\n\r\n30;" + b"e" * 70000 + b"\r\n",
    "a garbage status line": b"HELLO THERE\r\n\r\n",
    "a four-digit status": b"HTTP/1.1 2000 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n"
    + _BODY,
    "an unknown protocol": b"HTTP/2.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n"
    + _BODY,
    "headers, then silence": _JSON + b"Content-Length: 48\r\n\r\n",
    "half a status line, then silence": b"HTTP/1.1 20",
    "the close after the request": CLOSE,
    "a reset after the request": RESET,
    "silence": SILENT,
}


@pytest.mark.parametrize("first", list(_CUT_OR_HOSTILE.values()), ids=list(_CUT_OR_HOSTILE))
def test_a_reply_that_cannot_be_read_whole_is_ambiguous_and_its_connection_is_never_used_again(
    serve, first
) -> None:
    server = serve(first)
    kite = _kite(server.port, timeout=0.5)
    with pytest.raises((requests.ConnectionError, requests.Timeout)) as raised:
        _order(kite)
    assert not isinstance(raised.value, requests.ConnectTimeout)
    assert isinstance(translate(raised.value), AmbiguousOrderFailure), (
        "sent, no whole reply: its fate is unknown"
    )
    assert _order(kite) == "10", "the next order on a fresh connection, with its own reply"
    assert kite.reqsession.opened == 2 and [len(r) for r in server.requests] == [1, 1]
    kite.reqsession.close()


_READ_BUT_NOT_KEPT = {
    # RFC 9112 6.3: the chunks decide, and the connection is not used again (the two framings disagree).
    "a length and chunks": _JSON + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"30\r\n" + _BODY + b"\r\n0\r\n\r\n",
    # Bytes after the reply (a server's stray CRLF, a reply sent twice) must never be read as the next one's.
    "a stray CRLF after the body": _JSON + b"Content-Length: 48\r\n\r\n" + _BODY + b"\r\n",
    "the reply sent twice": kite_ok("1") + kite_ok("1"),
    "a reply after the chunks' end": _JSON
    + b"Transfer-Encoding: chunked\r\n\r\n30\r\n"
    + _BODY
    + b"\r\n0\r\n\r\n"
    + kite_ok("1"),
}


@pytest.mark.parametrize("first", list(_READ_BUT_NOT_KEPT.values()), ids=list(_READ_BUT_NOT_KEPT))
def test_a_reply_followed_by_anything_unasked_is_read_and_its_connection_not_used_again(serve, first) -> None:
    server = serve(first)
    kite = _kite(server.port)
    assert _order(kite) == "1"
    assert _order(kite) == "10", "the next order's reply is its own, on a fresh connection"
    assert _order(kite) == "11"
    assert kite.reqsession.opened == 2 and [len(r) for r in server.requests] == [1, 2]
    kite.reqsession.close()


_UNSENDABLE = {
    "a line break in the token": dict(token="t\r\nX-Evil: 1"),
    "a NUL in the token": dict(token="t\x00"),
    "a key not in latin-1": dict(api_key="ключ"),
}


@pytest.mark.parametrize("kw", list(_UNSENDABLE.values()), ids=list(_UNSENDABLE))
def test_a_header_that_cannot_be_written_safely_is_refused_before_anything_is_sent_as_unavailable(
    serve, kw
) -> None:
    server = serve(kite_ok("1"))
    kite = _kite(server.port, **kw)
    with pytest.raises(requests.RequestException) as raised:
        _order(kite)
    refused = translate(raised.value)
    assert isinstance(refused, BrokerUnavailable) and not isinstance(refused, AmbiguousOrderFailure)
    kite.set_access_token("t")
    kite.api_key = "UK9394"
    assert _order(kite) == "1", "nothing was written: the connection is still in step"
    assert [len(r) for r in server.requests] == [1]
    kite.reqsession.close()


@pytest.mark.parametrize("order_id", ["1 HTTP/1.1\r\nX: 1", "1\x00", "1\x7f", "१२३"])
def test_a_path_that_cannot_be_written_safely_is_refused_before_anything_is_sent_as_unavailable(
    serve, order_id
) -> None:
    server = serve(kite_ok("1"))
    kite = _kite(server.port)
    with pytest.raises(requests.RequestException) as raised:
        kite.cancel_order("regular", order_id)
    refused = translate(raised.value)
    assert isinstance(refused, BrokerUnavailable) and not isinstance(refused, AmbiguousOrderFailure)
    assert kite.cancel_order("regular", "5") == "1"
    assert [r[0].split(b"\r\n")[0] for r in server.requests] == [b"DELETE /orders/regular/5 HTTP/1.1"]
    kite.reqsession.close()


def test_an_order_param_not_in_ascii_is_sent_as_requests_sends_it(serve) -> None:
    server = serve(kite_ok("1"))
    kite = _kite(server.port)
    kite.place_order(variety="regular", exchange="NSE", tradingsymbol="ÉTÉ&X=1", transaction_type="BUY",
                     quantity=1, product="CNC", order_type="MARKET", tag="₹tag é")  # fmt: skip
    _, _, body = server.requests[0][0].partition(b"\r\n\r\n")
    assert b"tradingsymbol=%C3%89T%C3%89%26X%3D1" in body and b"tag=%E2%82%B9tag+%C3%A9" in body
    assert body.isascii()
    kite.reqsession.close()


def test_orders_placed_modified_and_cancelled_from_many_threads_each_get_their_own_replies() -> None:
    """Through kiteconnect against the simulator: six threads place, read, modify and cancel orders at once, each on
    its thread's kept-alive connection; every reply's order id is the order the call was about (its tag, its
    quantity), never another call's."""
    from tests.broker.sim.test_sim_exchange_rules import ltp, option, ticks
    from tests.simkit import login, start_sim

    sim = start_sim()
    try:
        plain = login(sim, "UK9394")
        kite = login(sim, "UK9394")
        kite.reqsession = OrderLane(kite.reqsession)
        inst = option(plain, offset=5)
        low = ticks(ltp(plain, inst) * Decimal("0.7"))  # open: below the market, inside its price band
        lot = inst["lot_size"]
        start = threading.Barrier(6)
        done: dict[str, tuple[str, int]] = {}  # order id -> (tag, quantity after its modification)
        errors: list[BaseException] = []

        def trade(t: int) -> None:
            try:
                start.wait(10)
                for i in range(6):
                    tag, lots = f"KDt{t}n{i}", 1 + (t * 6 + i) % 5
                    order_id = kite.place_order(
                        variety="regular", exchange=inst["exchange"], tradingsymbol=inst["tradingsymbol"],
                        transaction_type="BUY", quantity=lot, product="MIS", order_type="LIMIT", price=str(low),
                        tag=tag,
                    )  # fmt: skip
                    assert kite.order_history(order_id)[-1]["tag"] == tag, "the reply's id is this order's"
                    kite.orders() if i % 2 else kite.positions()  # replies of other sizes between
                    assert kite.modify_order("regular", order_id, quantity=lot * lots) == order_id
                    assert kite.cancel_order("regular", order_id) == order_id
                    done[order_id] = (tag, lot * lots)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=trade, args=(t,), name=f"kitedesk-lane-{t}") for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert errors == []
        assert len(done) == 36
        book = {o["order_id"]: o for o in plain.orders()}
        for order_id, (tag, quantity) in done.items():
            row = book[order_id]
            assert (row["tag"], row["quantity"], row["status"]) == (tag, quantity, "CANCELLED")
        assert kite.reqsession.opened == 6, "one kept-alive connection a thread"
        kite.reqsession.close()
    finally:
        sim.stop()


@pytest.mark.parametrize(
    "first", [kite_ok("1"), kite_ok("1") + kite_ok("1")], ids=["one reply", "a reply twice"]
)
def test_over_tls_a_kept_alive_connection_is_used_again_and_one_holding_unasked_bytes_is_not(
    tmp_path, monkeypatch, first
) -> None:
    """Kite is https: the look for bytes left over must see those TLS has decrypted and not yet handed on, and must
    not take TLS's "nothing to read yet" for a broken connection (every order would open a new one)."""
    context, authority = tls_pair(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", authority)  # the client's verified default context trusts this one
    server = ScriptServer(lambda c, r: first if (c, r) == (0, 0) else kite_ok(f"{c}{r}"), tls=context)
    try:
        kite = KiteConnect("UK9394", access_token="t", root=f"https://127.0.0.1:{server.port}", timeout=2)
        kite.reqsession = OrderLane(kite.reqsession)
        again = first == kite_ok("1")  # the connection is in step: used again
        assert [_order(kite) for _ in range(3)] == (["1", "01", "02"] if again else ["1", "10", "11"])
        assert kite.reqsession.opened == (1 if again else 2)
        kite.reqsession.close()
    finally:
        server.stop()


def test_a_reply_of_megabytes_is_read_whole_and_the_next_one_after_it(serve) -> None:
    """A day's order book can run to megabytes: a body longer than the lane's read piece (1 MiB) arrives whole."""
    rows = ",".join(f'{{"order_id": "{i:015d}", "tag": "KD{i}", "status": "COMPLETE"}}' for i in range(60000))
    body = f'{{"status": "success", "data": [{rows}]}}'.encode()
    assert len(body) > 3 * 2**20
    reply = _JSON + b"Content-Length: %d\r\n\r\n" % len(body) + body
    server = serve(reply)
    kite = _kite(server.port)
    orders = kite.orders()
    assert len(orders) == 60000 and orders[-1]["order_id"] == "000000000059999"
    assert _order(kite) == "01" and kite.reqsession.opened == 1
    kite.reqsession.close()


def test_over_tls_a_certificate_nobody_vouches_for_is_refused_before_the_order_is_sent(
    tmp_path, monkeypatch
) -> None:
    context, authority = tls_pair(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nobody.pem"))  # this test's authority is not trusted
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    server = ScriptServer(lambda c, r: kite_ok("1"), tls=context)
    try:
        kite = KiteConnect("UK9394", access_token="t", root=f"https://127.0.0.1:{server.port}", timeout=2)
        kite.reqsession = OrderLane(kite.reqsession)
        with pytest.raises(requests.ConnectionError) as raised:
            _order(kite)
        refused = translate(raised.value)
        assert isinstance(refused, BrokerUnavailable) and not isinstance(refused, AmbiguousOrderFailure)
        assert server.requests == [] and kite.reqsession.sent == 0
        kite.reqsession.close()
    finally:
        server.stop()
