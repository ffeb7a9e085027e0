"""The order lane's reply framing, differentially: `LaneConnection.reply` against `http.client.HTTPResponse`.

Hypothesis makes replies a real server could send (a length; chunks of random sizes with extensions and trailers;
interim 100/103 replies first; `Connection: close`; HTTP/1.0 with and without keep-alive; header names in any case,
repeated headers, optional whitespace; a 204 or 304 with no body, a HEAD's reply; bodies holding CRLF and text that
looks like a reply), serves two or more back to back on one real socket, written in random-sized pieces with small
pauses (or all at once, as if pipelined), and checks that the lane reads each as http.client reads it: the status,
the headers (as requests joins repeated ones), the body, whether the connection ends, and that the stream stays in
step for the next reply. http.client skips only a 100 (it would take a 103 for the final reply and read the real
one as the next call's): the lane skips every 1xx, so http.client is given the final reply alone.
"""

from __future__ import annotations

import io
import random
import socket
import threading
import time
from dataclasses import dataclass
from http.client import HTTPResponse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.broker.order_lane import LaneConnection
from tests.broker.lane_servers import read_request


@dataclass(frozen=True)
class Reply:
    method: str  # the request's method (a HEAD's reply has no body)
    interim: bytes  # the 1xx replies before the final one
    final: bytes  # the final reply, as written
    ends: bool  # the server closes the connection after it


_BODY_BYTES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"\r\n", b"\r\n\r\n", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"\n"]
    ),
    st.just(b'{"status": "success", "data": {"order_id": "250108000000042"}}'),
)


@st.composite
def _casing(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if f else c for c, f in zip(name, flips, strict=True))


@st.composite
def _header(draw: st.DrawFn, name: str, value: str) -> bytes:
    before = draw(st.sampled_from(["", " ", "  ", "\t", " \t"]))
    after = draw(st.sampled_from(["", "", " ", "\t"]))
    return f"{draw(_casing(name))}:{before}{value}{after}\r\n".encode("latin-1")


@st.composite
def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    out = []
    i = 0
    while i < len(body):
        n = draw(st.integers(1, max(1, len(body) - i)))
        size = f"{n:x}"
        size = draw(st.sampled_from([size, size.upper(), "0" + size, "00" + size]))
        ext = draw(st.sampled_from(["", "", ";a=b", ';name="v;x"', " ;x", ";k"]))
        out.append(f"{size}{ext}\r\n".encode() + body[i : i + n] + b"\r\n")
        i += n
    last = draw(st.sampled_from(["0", "000", "0;end=1"]))
    trailers = b"".join(draw(st.lists(_header("X-Trailer", "t v"), max_size=2)))
    return b"".join(out) + f"{last}\r\n".encode() + trailers + b"\r\n"


@st.composite
def _reply(draw: st.DrawFn, last: bool) -> Reply:
    """A reply; `last`: it may end the connection (by Connection: close, HTTP/1.0, or a body read to the close)."""
    method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "HEAD"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])) if last else "HTTP/1.1"
    status = draw(st.sampled_from([200, 200, 201, 204, 304, 400, 403, 429, 500, 503]))
    reason = {200: "OK", 204: "No Content", 304: "Not Modified"}.get(
        status, draw(st.sampled_from(["", "Reason x"]))
    )
    status_line = f"{version} {status} {reason}".rstrip(" ") if reason else f"{version} {status}"
    body = b"".join(draw(st.lists(_BODY_BYTES, max_size=4)))
    no_body = method == "HEAD" or status in (204, 304)
    kinds = ["length"] + (["chunked"] if version == "HTTP/1.1" and status not in (204, 304) else [])
    if last and not no_body:
        kinds.append("to the close")
    kind = draw(st.sampled_from(kinds))
    connection: str | None
    if version == "HTTP/1.0":
        connection = draw(st.sampled_from([None, "keep-alive", "Keep-Alive", "close"]))
    else:
        connection = draw(
            st.sampled_from([None, None, "keep-alive", "close"] if last else [None, "keep-alive"])
        )
    headers = [draw(_header("Content-Type", draw(st.sampled_from(["application/json", "text/csv; x=1"]))))]
    headers += draw(
        st.lists(_header("Set-Cookie", draw(st.sampled_from(["a=1", "b=2; Path=/"]))), max_size=2)
    )
    headers += draw(st.lists(_header("X-Kite-Seq", draw(st.sampled_from(["1", "a, b"]))), max_size=2))
    if connection is not None:
        headers.append(draw(_header("Connection", connection)))
    if kind == "length" and (status != 204):
        headers.append(draw(_header("Content-Length", str(len(body)))))
    elif kind == "chunked":
        headers.append(draw(_header("Transfer-Encoding", "chunked")))
    headers = draw(st.permutations(headers))
    if no_body:
        payload = b""
    elif kind == "chunked":
        payload = draw(_chunked(body))
    else:
        payload = body
    final = status_line.encode() + b"\r\n" + b"".join(headers) + b"\r\n" + payload
    interim = b""
    for code in draw(st.lists(st.sampled_from([100, 103]), max_size=2)):
        hints = b"Link: </a.css>; rel=preload\r\n" if code == 103 else b""
        interim += (
            f"HTTP/1.1 {code} {'Continue' if code == 100 else 'Early Hints'}\r\n".encode() + hints + b"\r\n"
        )
    keep_alive = connection is not None and connection.lower() == "keep-alive"
    ends = kind == "to the close" or connection == "close" or (version == "HTTP/1.0" and not keep_alive)
    return Reply(method, interim, final, ends)


@st.composite
def _replies(draw: st.DrawFn) -> list[Reply]:
    """Two to four replies: the connection is kept alive between them, the last may end it."""
    n = draw(st.integers(2, 4))
    return [draw(_reply(last=False)) for _ in range(n - 1)] + [draw(_reply(last=True))]


class _Kept(io.BytesIO):
    def close(
        self,
    ) -> None:  # http.client closes its file at the reply's end: its position is still looked at
        pass


def _http_client(reply: Reply) -> tuple[int, dict[str, str], bytes, bool, int]:
    """http.client's reading of the final reply: status, headers (repeated ones joined as requests joins them,
    names lower-cased), body, whether the connection ends, and how many of its bytes it left unread."""
    head, _, payload = reply.final.partition(b"\r\n\r\n")
    # A field's value excludes the whitespace around it (RFC 9110 5.5), but http.client compares the value it keeps
    # with trailing whitespace: "Transfer-Encoding: chunked " would not be chunks to it. It is given the head without.
    head = b"\r\n".join(line.rstrip(b" \t") for line in head.split(b"\r\n"))
    fp = _Kept(head + b"\r\n\r\n" + payload)

    class Sock:
        def makefile(self, *args: object, **kw: object) -> io.BytesIO:
            return fp

    r = HTTPResponse(Sock(), method=reply.method)  # type: ignore[arg-type]
    r.begin()
    will_close = r.will_close
    body = r.read()
    headers: dict[str, str] = {}
    for name in r.msg:
        headers.setdefault(name.lower(), ", ".join(v.strip() for v in r.msg.get_all(name)))
    return r.status, headers, body, will_close, len(fp.getvalue()) - fp.tell()


def _serve(listener: socket.socket, replies: list[Reply], rnd: random.Random, eager: bool) -> None:
    """Answers each request with the next reply, in random pieces with pauses; `eager`: every reply is written
    after the first request, back to back (as a server answering pipelined requests)."""
    listener.settimeout(5)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(5)
        pending = bytearray()
        stream = [r.interim + r.final for r in replies]
        for i in range(len(replies)):
            if read_request(conn, pending) is None:
                return
            if eager and i > 0:
                continue
            data = b"".join(stream) if eager else stream[i]
            at = 0
            while at < len(data):
                n = rnd.randint(1, max(1, min(len(data) - at, rnd.choice((1, 2, 7, 64, 4096)))))
                conn.sendall(data[at : at + n])
                at += n
                if rnd.random() < 0.2:
                    time.sleep(rnd.random() / 2000)
        if replies[-1].ends:
            conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # until the client closes
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_replies(), st.integers(0, 2**32), st.booleans())
def test_the_lane_reads_each_reply_as_http_client_does_and_stays_in_step(
    replies: list[Reply], seed: int, eager: bool
) -> None:
    rnd = random.Random(seed)  # the pieces and pauses of the server's writes (on its own thread)
    expected = [_http_client(r) for r in replies]
    for reply, (*_, will_close, left) in zip(replies, expected, strict=True):
        assert left == 0, "the generator made a reply http.client frames differently"
        assert will_close == reply.ends, "the generator and http.client disagree on the connection's end"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=_serve, args=(listener, replies, rnd, eager), name="lane-test-diff")
        server.start()
        conn = LaneConnection("http", "127.0.0.1", listener.getsockname()[1], timeout=1)
        try:
            conn.connect()
            for i, (reply, (status, headers, body, will_close, _)) in enumerate(
                zip(replies, expected, strict=True)
            ):
                data = b"a=1&b=%0D%0A" if reply.method in ("POST", "PUT") else None
                conn.send(reply.method, f"/orders/regular/{i}", {"X-Kite-Version": "3"}, data)
                got = conn.reply(reply.method)
                assert (got.status_code, dict(got.headers), got.content, got.will_close) == (
                    status,
                    headers,
                    body,
                    will_close,
                ), f"reply {i}"
                assert got.headers["CONTENT-TYPE"] == headers["content-type"]
                if not will_close:
                    assert not conn.unread() or eager, "nothing left over after a reply read whole"
            assert replies[-1].ends == will_close
        finally:
            conn.close()
            server.join(5)
