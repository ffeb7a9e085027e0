"""`OrderLane`: kiteconnect's order calls over kept-alive `http.client` connections (issue 18), the rest through requests.

Against the simulator with the real kiteconnect client over real sockets: the same orders, the same refusals as
through requests; and against a bare local socket server: a connection the server closed while idle, a connection
refused, a reply that never comes, each told as `desktop.broker.errors.translate` reads requests' failures.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex
from requests.models import RequestEncodingMixin

from desktop.broker.errors import AmbiguousOrderFailure, BrokerUnavailable, translate
from desktop.broker.exchange_rules import SL_M_REFUSED
from desktop.broker.kite_client import new_kite
from desktop.broker.order_lane import OrderLane, form_encode
from tests.broker.sim.test_sim_exchange_rules import option, ticks
from tests.simkit import login, start_sim


@pytest.fixture
def sim():
    s = start_sim()
    yield s
    s.stop()


def laned(kite: KiteConnect) -> KiteConnect:
    kite.reqsession = OrderLane(kite.reqsession)
    return kite


def order_params(inst: dict, **kw) -> dict:
    params = dict(
        variety="regular", exchange=inst["exchange"], tradingsymbol=inst["tradingsymbol"], transaction_type="BUY",
        quantity=inst["lot_size"], product="MIS", order_type="MARKET", market_protection=-1, tag="KDlane",
    )  # fmt: skip
    return {**params, **kw}


def test_the_app_makes_its_kite_clients_with_the_order_lane() -> None:
    kite = new_kite("UK9394", root="http://127.0.0.1:9")
    assert isinstance(kite.reqsession, OrderLane)


def test_orders_placed_modified_and_cancelled_through_the_lane_are_what_requests_would_send(sim) -> None:
    plain, kite = login(sim, "UK9394"), laned(login(sim, "UK9394"))
    lane = kite.reqsession
    inst = option(plain, offset=3)
    price = Decimal(
        str(plain.ltp(f"NFO:{inst['tradingsymbol']}")[f"NFO:{inst['tradingsymbol']}"]["last_price"])
    )
    low = str(ticks(price * Decimal("0.7")))
    by_requests = plain.place_order(**order_params(inst, order_type="LIMIT", price=low))
    by_lane = kite.place_order(**order_params(inst, order_type="LIMIT", price=low))
    assert lane.sent == 1 and lane.opened == 1
    rows = {o["order_id"]: o for o in plain.orders()}
    fields = (
        "tradingsymbol",
        "transaction_type",
        "quantity",
        "product",
        "order_type",
        "price",
        "tag",
        "status",
    )
    assert [rows[by_lane][f] for f in fields] == [rows[by_requests][f] for f in fields]
    lower = str(ticks(price * Decimal("0.65")))
    kite.modify_order("regular", by_lane, price=lower, quantity=inst["lot_size"] * 2)
    kite.cancel_order("regular", by_lane)
    row = {o["order_id"]: o for o in plain.orders()}[by_lane]
    assert (row["price"], row["quantity"], row["status"]) == (float(lower), inst["lot_size"] * 2, "CANCELLED")
    assert lane.sent == 3 and lane.opened == 1, "one kept-alive connection for the three calls"
    assert [o["order_id"] for o in kite.orders()] == [o["order_id"] for o in plain.orders()]
    assert kite.order_history(by_lane)[-1]["status"] == "CANCELLED" and kite.order_trades(by_lane) == []
    assert lane.sent == 6 and lane.opened == 1, "the reads of orders and trades too"
    kite.margins("equity")  # not an order call: through requests
    assert lane.sent == 6


def test_a_refusal_through_the_lane_is_kiteconnects_same_exception_with_the_same_words(sim) -> None:
    plain, kite = login(sim, "UK9394"), laned(login(sim, "UK9394"))
    inst = option(plain)
    sl_m = order_params(inst, transaction_type="SELL", order_type="SL-M", trigger_price=1)
    with pytest.raises(kex.InputException) as by_requests:
        plain.place_order(**sl_m)
    with pytest.raises(kex.InputException) as by_lane:
        kite.place_order(**sl_m)
    assert str(by_lane.value) == str(by_requests.value) and SL_M_REFUSED[:30] in str(by_lane.value)
    assert by_lane.value.code == by_requests.value.code
    kite.set_access_token("expired")
    with pytest.raises(kex.TokenException):
        kite.place_order(**order_params(inst))


def test_each_thread_sends_on_its_own_connection(sim) -> None:
    kite = laned(login(sim, "UK9394"))
    inst = option(kite, offset=4)  # its quote is read through the lane, on this thread
    sent, opened = kite.reqsession.sent, kite.reqsession.opened
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for _ in range(3):
                kite.place_order(**order_params(inst))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and kite.reqsession.sent - sent == 12 and kite.reqsession.opened - opened == 4
    assert len([o for o in kite.orders() if o["tag"] == "KDlane"]) == 12
    kite.reqsession.close()


class OneShotServer:
    """A local HTTP server that answers each request with Kite's success JSON, then (`close_after`) closes the
    connection without saying so, or (`silent`) never answers."""

    def __init__(self, close_after: bool = False, silent: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.close_after, self.silent = close_after, silent
        self.requests = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.requests += data.count(
                    b" HTTP/1.1\r\n"
                )  # request lines (one send each, headers and body)
                if self.silent:
                    continue
                body = b'{"status": "success", "data": {"order_id": "1"}}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                if self.close_after:
                    return

    def stop(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def server_of() -> Iterator:
    made: list[OneShotServer] = []

    def make(**kw) -> OneShotServer:
        made.append(OneShotServer(**kw))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def test_a_connection_the_server_closed_while_idle_is_opened_again_before_the_order_is_sent(
    server_of,
) -> None:
    server = server_of(close_after=True)
    kite = laned(KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=5))
    assert kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65})) == "1"
    threading.Event().wait(0.2)  # the server has closed its side meanwhile
    # Sent on the closed connection, the order's fate would be unknown (a reset after writing it).
    assert kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65})) == "1"
    assert kite.reqsession.opened == 2 and server.requests == 2
    kite.reqsession.close()


def test_a_refused_connection_is_unavailable_and_a_reply_that_never_comes_is_ambiguous(server_of) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nobody listens there now
    kite = laned(KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(requests.ConnectionError) as refused:
        kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
    assert isinstance(translate(refused.value), BrokerUnavailable), "nothing was sent: not ambiguous"
    server = server_of(silent=True)
    kite = laned(KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=0.5))
    with pytest.raises(requests.ReadTimeout) as silent:
        kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
    assert isinstance(translate(silent.value), AmbiguousOrderFailure), "sent, no reply: its effect is unknown"
    assert server.requests == 1
    kite.reqsession.close()


def test_a_callback_given_for_the_next_order_request_runs_once_it_is_written_before_its_reply(
    server_of,
) -> None:
    # The engine's entries-first gate (engine/writer.py `SendGate`) lets the rest of a burst go once an entry's
    # request is written, not once Kite answered it: a silent server shows the callback ran with no reply read.
    from desktop.broker.order_lane import when_written

    server = server_of(silent=True)
    kite = laned(KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=0.5))
    said: list[str] = []
    when_written(lambda: said.append("written"))
    with pytest.raises(requests.ReadTimeout):
        kite.orders()  # a read through the lane (GET): not an order request, the callback waits
    assert said == []
    with pytest.raises(requests.ReadTimeout):
        kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
    assert len(said) == 1, "said once its request was written, with no reply ever read"
    with pytest.raises(requests.ReadTimeout):
        kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
    assert len(said) == 1, "once only"
    when_written(None)
    kite.reqsession.close()


def test_positions_and_quotes_are_read_through_the_lane_as_requests_reads_them(sim) -> None:
    plain, kite = login(sim, "UK9394"), laned(login(sim, "UK9394"))
    lane = kite.reqsession
    inst = option(plain, offset=2)
    plain.place_order(**order_params(inst))  # a position to read
    symbols = [f"NFO:{inst['tradingsymbol']}", "NSE:NIFTY 50"]  # a space: quoted as requests quotes it
    assert kite.positions() == plain.positions()
    assert kite.ltp(*symbols).keys() == plain.ltp(*symbols).keys() == set(symbols)
    assert lane.sent == 2


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_SCALAR = st.one_of(st.none(), _TEXT, st.integers(), st.floats(allow_nan=False), st.decimals(allow_nan=False))
_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3), st.booleans(), st.binary(max_size=4))


@given(st.dictionaries(_TEXT, _VALUE, max_size=8))
def test_the_lanes_form_encoding_is_requests_own_byte_for_byte(data: dict) -> None:
    assert form_encode(data) == RequestEncodingMixin._encode_params(data)


def test_a_place_orders_parameters_are_encoded_as_requests_encodes_them() -> None:
    params = dict(
        variety="regular", exchange="NFO", tradingsymbol="NIFTY26JAN23500CE", transaction_type="BUY", quantity=75,
        product="MIS", order_type="SL", price="123.45", trigger_price=Decimal("120.5"), validity=None,
        tag="KDa1b2", market_protection=-1,
    )  # fmt: skip
    assert form_encode(params) == RequestEncodingMixin._encode_params(params)
    assert "validity" not in form_encode(params) and "trigger_price=120.5" in form_encode(params)
    assert form_encode({"i": ["NFO:X Y", "NSE:NIFTY 50"]}) == "i=NFO%3AX+Y&i=NSE%3ANIFTY+50"


class RawServer:
    """A local server that keeps each request's bytes and answers each with `reply` (bytes, written as they are),
    closing the connection after it when `close` is set."""

    def __init__(self, reply: bytes, close: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply, self.close = reply, close
        self.received: list[bytes] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)  # a closed listening socket does not wake `accept`: `stop` is looked at
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received.append(data)
                    conn.sendall(self.reply)
                    if self.close:
                        break

    def stop(self) -> None:
        self._stopped = True
        self._thread.join(5)
        self.sock.close()


_OK = b'{"status": "success", "data": {"order_id": "7"}}'


@pytest.mark.parametrize(
    ("reply", "close"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"10\r\n"
            + _OK[:16]
            + b"\r\n"
            + f"{len(_OK) - 16:x}".encode()
            + b";ext=1\r\n"
            + _OK[16:]
            + b"\r\n0\r\n\r\n",
            False,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(_OK)).encode()
            + b"\r\n\r\n"
            + _OK,
            False,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + _OK, True),  # no length: to the close
    ],
    ids=["chunked", "interim 100 first", "no length, read to the close"],
)
def test_a_reply_in_chunks_after_an_interim_reply_or_to_the_close_is_read_whole(
    reply: bytes, close: bool
) -> None:
    server = RawServer(reply, close=close)
    try:
        kite = laned(
            KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=5)
        )
        assert (
            kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65})) == "7"
        )
        assert (
            kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65})) == "7"
        )
        assert kite.reqsession.opened == (2 if close else 1), "a connection the reply ends is not used again"
        kite.reqsession.close()
    finally:
        server.stop()


def test_the_request_is_written_in_one_send_with_what_kite_needs_and_requests_body() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(_OK)).encode()
    server = RawServer(reply + b"\r\n\r\n" + _OK)
    try:
        kite = laned(
            KiteConnect("UK9394", access_token="tok", root=f"http://127.0.0.1:{server.port}", timeout=5)
        )
        params = order_params({"exchange": "NFO", "tradingsymbol": "X Y&Z", "lot_size": 65})
        assert kite.place_order(**params) == "7"
        assert len(server.received) == 1, "line, headers and body in one send"
        head, _, body = server.received[0].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /orders/regular HTTP/1.1"
        assert f"Host: 127.0.0.1:{server.port}" in lines and "Authorization: token UK9394:tok" in lines
        assert (
            "Content-Type: application/x-www-form-urlencoded" in lines
            and f"Content-Length: {len(body)}" in lines
        )
        asked: dict = {}

        class Asked:  # what kiteconnect hands requests, for the body requests would write
            def request(self, method: str, url: str, **kw: object) -> None:
                asked.update(kw)
                raise RuntimeError("not sent")

        plain = KiteConnect("UK9394", access_token="tok", root=f"http://127.0.0.1:{server.port}")
        plain.reqsession = Asked()
        with pytest.raises(RuntimeError):
            plain.place_order(**params)
        assert body.decode() == RequestEncodingMixin._encode_params(asked["data"])
        kite.reqsession.close()
    finally:
        server.stop()


def test_a_header_or_path_that_would_split_the_request_is_refused_before_anything_is_written() -> None:
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        kite = laned(KiteConnect("UK9394", access_token="t\r\nX: 1", root=f"http://127.0.0.1:{server.port}"))
        with pytest.raises(ValueError):
            kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
        kite.set_access_token("t")
        with pytest.raises(requests.exceptions.InvalidURL):  # nothing written: not ambiguous
            kite.cancel_order("regular", "1 HTTP/1.1\r\nX: 1")
        threading.Event().wait(0.1)
        assert server.received == []
        kite.reqsession.close()
    finally:
        server.stop()


def _reply(order_id: str, length: int | None = None) -> bytes:
    body = b'{"status": "success", "data": {"order_id": "' + order_id.encode() + b'"}}'
    size = len(body) if length is None else length
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(size).encode()
        + (b"\r\n\r\n" + body)
    )


def test_bytes_a_server_sent_beyond_its_reply_are_never_read_as_the_next_reply() -> None:
    server = RawServer(_reply("7") + _reply("9"))  # a second, unasked reply in the same send
    try:
        kite = laned(
            KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=5)
        )
        params = order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65})
        assert [kite.place_order(**params) for _ in range(3)] == ["7", "7", "7"]
        kite.reqsession.close()
    finally:
        server.stop()


def test_a_reply_whose_length_is_no_length_is_an_order_of_unknown_fate() -> None:
    server = RawServer(_reply("7", length=-5))
    try:
        kite = laned(
            KiteConnect("UK9394", access_token="t", root=f"http://127.0.0.1:{server.port}", timeout=2)
        )
        with pytest.raises(requests.ConnectionError) as bad:
            kite.place_order(**order_params({"exchange": "NFO", "tradingsymbol": "X", "lot_size": 65}))
        assert isinstance(translate(bad.value), AmbiguousOrderFailure), "sent: its effect at Kite is unknown"
        kite.reqsession.close()
    finally:
        server.stop()
