"""`OrderLane`: the HTTP transport under kiteconnect's order calls (place, modify, cancel) and the reads of a busy
minute, without requests.

kiteconnect sends every call through `requests` (`KiteConnect.reqsession.request(...)`), which costs 0.56-0.84 ms of
CPU a call here (preparing the request, merging settings, hooks, urllib3's pool), all of it holding the interpreter
lock. When a minute closes, thirty segments send their orders together: measured on this machine, thirty
`place_order` calls from thirty threads at once had their requests written p50 9.8-11.8 ms, p99 29-32 ms after the
burst began, before any of the engine's own work (issue 18's target is p50 3 ms, p99 10 ms, tick to order sent).
The same requests written with the standard library's `http.client` on a kept-alive connection cost 0.19 ms of CPU
each and were written p50 1.8 ms, p99 6.1 ms after the burst began. Of those 0.19 ms, half was http.client's own
(building and checking each header, the `email` package parsing the reply's headers): `LaneConnection` writes the
request in one send and reads the reply by its length or its chunks, as HTTP/1.1 says, at about half that.

So kiteconnect stays the client: its routes, its parameters, its reply parsing and its exceptions are unchanged.
`OrderLane` only takes the place of its `reqsession` and answers `request(...)` itself for the order endpoints
(`POST`, `PUT` and `DELETE` under `/orders/`) and the reads of orders and trades (`GET /orders...`, `/trades`: an
order update with fills is followed by a read of its trades, the most frequent call of a busy minute), of positions
(`GET /portfolio/positions`: every exit reads them first, `engine/outside.py`, on the agent's thread at a minute's
close, where requests cost it ~0.5 ms of CPU) and of quotes (`GET /quote...`: risk's price look-up of an entry),
handing every other call (login, instruments, history, margins) to the requests session it replaced. What it keeps
of requests' behaviour:
- the body and query string are what requests' own encoder (`RequestEncodingMixin._encode_params`) makes: Kite
  receives the parameters requests would send, byte for byte (the headers differ only in what requests adds on its
  own: no compressed replies are asked for). Kite's parameters (a dict of text and numbers, a list for a quote's
  instruments) are encoded by `form_encode`, which gives the same bytes at a fifth of the CPU (requests' encoder
  spends ~25 us an order in its generic checks); anything else is handed to requests' encoder;
- failures are raised as requests' exceptions, as `desktop.broker.errors.translate` reads them: a connection
  that could not be opened (refused, no route, a name that does not resolve) is a `ConnectionError` around
  urllib3's `NewConnectionError` (nothing was sent: safe to retry); a connect that timed out is `ConnectTimeout`; a
  request sent whose reply did not come (a timeout, a reset, a closed connection) is `ReadTimeout` or
  `ConnectionError`: its effect at Kite is unknown, and the gateway looks for the order before doing anything else;
- a kept-alive connection the server closed while idle is seen before it is used (its socket readable with
  nothing asked, as urllib3 checks) and opened again, so an idle close never turns an order ambiguous;
- a reply is never read from a connection that holds bytes nobody asked for (past the last reply's end, in the
  reader's buffer or on the socket: http.client's reply had a buffer of its own, thrown away with it): the next
  order's call would read the previous call's bytes as its reply. Anything that cannot be read whole (a length or a
  chunk size that is not one, a chunk not ended by CRLF, a reply cut short) drops the connection, and a request
  that cannot be written safely is refused as requests refuses it (`InvalidURL`, `InvalidHeader`: nothing sent);
- TLS with the system's verified default context for `https` (Kite's API), plain TCP for the simulator;
- what http.client refuses is refused before anything is written (a line break or a control character in a
  header or the path: a request split in two could send an order nobody asked for).
A proxied client (`KiteConnect(proxies=...)`) or one with certificate checks off is left wholly to requests.

Threads: each thread has its own connection per host (`threading.local`): an account's segments send from their
own threads, and a connection is never shared between two requests at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote_plus, urlsplit

log = logging.getLogger(__name__)

ORDER_METHODS = frozenset({"POST", "PUT", "DELETE"})
ORDER_PATH = "/orders/"
# The order book, an order's history and trades, the day's trades, the positions, quotes (GET).
READ_PATHS = ("/orders", "/trades", "/portfolio/positions", "/quote")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_MAX_LINE = 65536  # http.client's limits on a reply's line and its headers
_MAX_HEADERS = 100
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header's name (RFC 9110)
_BAD_VALUE = re.compile(r"[\r\n\x00]")  # a header's value must not break the request's lines
# As http.client: no space or control character in the path; and nothing outside ASCII (requests would quote it).
_BAD_PATH = re.compile(r"[^\x21-\x7e]")
_DIGITS = re.compile(r"[0-9]+")  # a Content-Length (RFC 9110 8.6): no sign, no underscore, no second value
_HEX = re.compile(rb"[0-9A-Fa-f]+")  # a chunk's size (RFC 9112 7.1): no sign, no 0x
# A longer body is read piece by piece: a huge length is cut short by the close, never allocated at once.
_PIECE = 1 << 20
# What `urllib.parse.quote_plus` leaves as it is: a value made only of these is sent unchanged.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")


_written = threading.local()  # `when_written`: this thread's callback for its next order request written


def when_written(callback: Callable[[], None] | None) -> None:
    """`callback` runs on this thread once its next order request (`POST /orders/...`) is written, before its reply
    is read (the engine's `SendGate`: a burst's other work waits for an entry's request, not for Kite's answer);
    None forgets it. Run once; an exception it raises is not the request's (logged)."""
    _written.callback = callback


def _said_written() -> None:
    callback = getattr(_written, "callback", None)
    if callback is not None:
        _written.callback = None
        try:
            callback()
        except Exception:
            log.exception("the request-written callback failed")


def _laned(method: str, path: str) -> bool:
    """True for the calls the lane sends itself: placing, modifying and cancelling an order, and reading orders and
    their trades (an order update with fills is followed by its trades, on the agent's thread: issue 18), the
    positions and quotes."""
    if method in ORDER_METHODS:
        return path.startswith(ORDER_PATH)
    return method == "GET" and any(path == p or path.startswith(p + "/") for p in READ_PATHS)


class LaneHeaders(dict[str, str]):
    """A reply's headers, their names lower-cased: looked up in any case, None when absent (as `HTTPMessage`)."""

    def __getitem__(self, name: str) -> str | None:  # type: ignore[override]
        return self.get(name.lower())


class LaneResponse:
    """What kiteconnect reads of a reply (`status_code`, `headers["content-type"]`, `json()`, `content`)."""

    def __init__(self, status: int, headers: LaneHeaders, content: bytes, will_close: bool) -> None:
        self.status_code = status
        self.headers = headers  # case-insensitive lookup, as requests' headers
        self.content = content
        self.will_close = will_close  # the server ends the connection after it: not used again

    def json(self) -> Any:
        return json.loads(self.content)


class LaneConnection:
    """One kept-alive HTTP/1.1 connection (one thread's, to one host): the request written in one send (its line,
    headers and body), the reply read by its length or its chunks. `http.client` did the same at about twice the
    CPU (its header building, checks and the `email` package's parsing of the reply's headers: ~0.1 ms an order,
    issue 18). Failures are `http.client`'s: `OSError`s of the socket (a timeout is `TimeoutError`), and
    `http.client.HTTPException`s for a reply that is not HTTP (a bad status line, a line too long, one cut short)."""

    def __init__(self, scheme: str, host: str, port: int | None, timeout: float | None) -> None:
        self.scheme, self.host, self.timeout = scheme, host, timeout
        default = 443 if scheme == "https" else 80
        self.port = port or default
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed, as http.client writes it
        self.host_header = shown if self.port == default else f"{shown}:{self.port}"
        self.sock: socket.socket | None = None
        self._file: Any = None

    def connect(self) -> None:
        """Opens the connection (TCP, then TLS with the system's verified default context for https)."""
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client: no Nagle delay
            if self.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock, self._file = sock, sock.makefile("rb")

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        """Writes the request in one send. A header or a path that could split the request (a line break, a
        control character) is refused before anything is written, as http.client refuses it."""
        rex, _ = _requests_errors()  # requests' own refusals: `translate` reads them as nothing sent
        if _BAD_PATH.search(path):
            raise rex.InvalidURL(f"a URL can't contain control characters or non-ASCII text: {path!r}")
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host_header}",
            "Accept: */*",
            "Accept-Encoding: identity",
        ]
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise rex.InvalidHeader(f"invalid header {name!r}")  # its value may hold the access token
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append("Content-Type: application/x-www-form-urlencoded")
            lines.append(f"Content-Length: {len(body)}")
        elif method in _BODY_METHODS:
            lines.append("Content-Length: 0")  # as http.client: a POST or PUT says its body is empty
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise rex.InvalidHeader("a header that is not latin-1 text") from None
        assert self.sock is not None
        self.sock.sendall(head + body if body else head)

    def reply(self, method: str) -> LaneResponse:
        """Reads the reply to the request just sent (interim 1xx replies skipped)."""
        while True:
            status, version = self._status_line()
            headers = self._headers()
            if status >= 200:
                break
        chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
        length = headers.get("content-length")
        connection = (headers.get("connection") or "").lower()
        will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        if chunked and length is not None:
            will_close = True  # the chunks decide, and the connection is not trusted again (RFC 9112 6.3)
        if method == "HEAD" or status in (204, 304):
            content = b""
        elif chunked:
            content = self._chunks()
        elif length is not None:
            if not _DIGITS.fullmatch(length):
                raise http.client.HTTPException(f"a reply's length is not a number: {length!r}")
            content = self._exactly(int(length))
        else:  # no length: the body runs to the connection's end
            content, will_close = self._file.read(), True
        return LaneResponse(status, headers, content, will_close)

    def _line(self) -> bytes:
        line: bytes = self._file.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("a reply's line")
        return line

    def _status_line(self) -> tuple[int, str]:
        line = self._line()
        if not line:
            raise http.client.RemoteDisconnected("the server closed the connection without a reply")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code = rest[:3]
        if (
            not version.startswith("HTTP/1.")
            or not _DIGITS.fullmatch(code)
            or code < "100"
            or rest[3:4] not in ("", " ")
        ):
            raise http.client.BadStatusLine(line.decode("latin-1"))
        return int(code), version

    def _headers(self) -> LaneHeaders:
        headers = LaneHeaders()
        for _ in range(_MAX_HEADERS):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                continue  # as email's parser: a line that is no header is passed over
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise http.client.HTTPException(f"a reply with more than {_MAX_HEADERS} headers")

    def _exactly(self, size: int) -> bytes:
        if size > _PIECE:
            return self._pieces(size)
        data: bytes = self._file.read(size)
        if len(data) < size:
            raise http.client.IncompleteRead(data, size - len(data))
        return data

    def _pieces(self, size: int) -> bytes:
        parts: list[bytes] = []
        left = size
        while left:
            part = self._file.read(min(left, _PIECE))
            if not part:
                raise http.client.IncompleteRead(b"".join(parts), left)
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self._line()
            digits = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise http.client.IncompleteRead(b"".join(parts))
            size = int(digits, 16)
            if size == 0:
                break
            parts.append(self._exactly(size))
            if self._exactly(2) != b"\r\n":  # the chunk's end: anything else, the sizes do not frame the data
                raise http.client.IncompleteRead(b"".join(parts))
        while self._line() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(parts)

    def unread(self) -> bool:
        """True when bytes are waiting with no request outstanding: in the reader's buffer (read with the last reply,
        past its end: a stray CRLF, a reply sent twice) or on the socket (or the server closed it). The connection
        must not be used again: the next reply read would begin with them, the previous call's bytes."""
        sock = self.sock
        if sock is None or _dropped(sock):
            return True
        sock.settimeout(0)  # a look at the buffer that never waits (a read of the socket when it is empty)
        try:
            return bool(self._file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(self.timeout)

    def close(self) -> None:
        """Closes the connection (idempotent)."""
        file, sock, self._file, self.sock = self._file, self.sock, None, None
        if file is not None:
            file.close()
        if sock is not None:
            sock.close()


class OrderLane:
    """Stands in for `KiteConnect.reqsession`: order calls and a busy minute's reads over kept-alive connections of
    its own (`LaneConnection`), the rest through `fallback` (the requests session it replaced). See the module
    docstring."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[LaneConnection] = set()  # every thread's, for `close`
        self.sent = 0  # order requests this lane sent itself (tests, bench)
        self.opened = 0  # connections it opened

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """requests' `Session.request`, for the arguments kiteconnect passes."""
        parts = urlsplit(url)
        if (
            not _laned(method, parts.path)
            or parts.scheme not in ("http", "https")
            or kwargs.get("proxies")
            or kwargs.get("verify") is False
            or kwargs.get("json") is not None
        ):
            return self.fallback.request(method, url, **kwargs)
        return self._send(method, parts, kwargs)

    def __getattr__(self, name: str) -> Any:
        # Anything else asked of the session (`mount`, `close`, `headers`...) is the requests session's.
        return getattr(self.fallback, name)

    def _send(self, method: str, parts: Any, kwargs: dict[str, Any]) -> LaneResponse:
        rex, new_connection_error = _requests_errors()
        timeout = kwargs.get("timeout")
        path = parts.path
        query = form_encode(kwargs.get("params") or {})
        if parts.query:
            query = f"{parts.query}&{query}" if query else parts.query
        if query:
            path = f"{path}?{query}"
        data = kwargs.get("data")
        encoded = form_encode(data) if data is not None else None
        body = encoded.encode() if isinstance(encoded, str) else encoded
        conn, fresh = self._connection(parts, timeout)
        if fresh:
            try:
                conn.connect()
            except TimeoutError as e:  # nothing sent
                self._drop(parts)
                raise rex.ConnectTimeout(f"connecting to {parts.netloc} timed out") from e
            except OSError as e:  # refused, no route, no such host: nothing sent
                self._drop(parts)
                never_opened = new_connection_error(None, f"{parts.netloc}: {e}")
                raise rex.ConnectionError(never_opened) from e
            self.opened += 1
        try:
            conn.send(method, path, kwargs.get("headers") or {}, body)
            self.sent += 1
            if method == "POST":
                _said_written()
            reply = conn.reply(method)
        except rex.RequestException:  # refused before anything was written: the connection is still in step
            raise  # (requests' exceptions are OSErrors: this comes first)
        except TimeoutError as e:  # sent (or partly): its effect at Kite is unknown
            self._drop(parts)
            raise rex.ReadTimeout(f"{method} {parts.path}: no reply in {timeout} s") from e
        except (OSError, http.client.HTTPException) as e:  # a reset or a closed connection mid-request
            self._drop(parts)
            raise rex.ConnectionError(f"{method} {parts.path}: {type(e).__name__}: {e}") from e
        except BaseException:  # anything else: the stream's place is unknown, the connection never used again
            self._drop(parts)
            raise
        if reply.will_close:
            self._drop(parts)
        return reply

    def _connection(self, parts: Any, timeout: float | None) -> tuple[LaneConnection, bool]:
        """This thread's connection to the host of `parts`, and whether it must be opened first (new, or the server
        closed it while it was idle, or bytes are waiting that no request asked for)."""
        conns: dict[str, LaneConnection] = self._local.__dict__.setdefault("conns", {})
        key = f"{parts.scheme}://{parts.netloc}"
        conn = conns.get(key)
        if conn is not None:
            conn.timeout = timeout
            if not conn.unread():  # also sets the socket's timeout
                return conn, False
            self._drop(parts)  # closed while idle, or bytes nobody asked for: a fresh connection
        conn = LaneConnection(parts.scheme, parts.hostname or "", parts.port, timeout)
        conns[key] = conn
        with self._lock:
            self._all.add(conn)
        return conn, True

    def _drop(self, parts: Any) -> None:
        conns: dict[str, LaneConnection] = self._local.__dict__.get("conns", {})
        conn = conns.pop(f"{parts.scheme}://{parts.netloc}", None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._all.discard(conn)

    def close(self) -> None:
        """Every thread's connections closed (the session is ending: nothing sends any more), and the requests
        session's."""
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()
        self.fallback.close()


def _plain(value: str) -> str:
    return value if _PLAIN.fullmatch(value) else quote_plus(value)


def form_encode(data: Any) -> Any:
    """`data` form-encoded exactly as requests' `RequestEncodingMixin._encode_params` does it (the same text, the
    same order): for a dict of text keys whose values are text, numbers (`str(v)`), None (left out) or lists of
    those (one pair each), the pairs are written here; anything else goes to requests' encoder."""
    if type(data) is not dict:
        return _requests_encode(data)
    pairs: list[str] = []
    for key, value in data.items():
        if type(key) is not str:
            return _requests_encode(data)
        values = value if type(value) is list else (value,)
        for v in values:
            if v is None:
                continue
            kind = type(v)
            if kind is str:
                text = v
            elif kind is int or kind is float or kind is Decimal:
                text = str(v)
            else:  # bool, bytes, a tuple, an object of its own: requests' own rules
                return _requests_encode(data)
            pairs.append(f"{_plain(key)}={_plain(text)}")
    return "&".join(pairs)


@cache
def _requests_errors() -> tuple[Any, Any]:
    """requests' exceptions module and urllib3's NewConnectionError, imported once (a function's own import costs
    ~10 us a call here under PySide's import hook)."""
    from requests import exceptions as rex
    from urllib3.exceptions import NewConnectionError

    return rex, NewConnectionError


def _requests_encode(data: Any) -> Any:
    from requests.models import RequestEncodingMixin

    return RequestEncodingMixin._encode_params(data)


def _dropped(sock: socket.socket) -> bool:
    """True when the server closed an idle kept-alive connection (or sent something unasked): its socket is readable
    with no request outstanding. urllib3's `is_connection_dropped` does the same before it reuses a connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def with_order_lane(kite: Any) -> Any:
    """`kite` (a KiteConnect) with its order calls sent through an `OrderLane`; returns it."""
    if not isinstance(kite.reqsession, OrderLane):
        kite.reqsession = OrderLane(kite.reqsession)
    return kite
