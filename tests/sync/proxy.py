"""A TCP forwarder in front of PostgreSQL whose link can be cut and restored (a network or server outage)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class FlakyLink:
    """Forwards 127.0.0.1:`port` to the server; `cut()` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name="flaky-link", daemon=True)
        self._accept.start()

    def url(self, url: str) -> str:
        """`url` pointed at this link instead of the server."""
        head, _, tail = url.rpartition("@")
        return f"{head}@127.0.0.1:{self.port}/{tail.split('/', 1)[1]}"

    def cut(self) -> None:
        """The server is gone: open connections die, new ones are refused."""
        self._up.clear()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._sockets.clear()

    def restore(self) -> None:
        """The server is back."""
        self._up.set()
        self._frozen.clear()

    def freeze(self) -> None:
        """The server hangs: connections stay open, nothing more passes either way (a stopped server
        process, a route that drops packets). New connections hang too."""
        self._frozen.set()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            t = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            self._threads.append(t)
            t.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._frozen.is_set():
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
