"""Tiny socket servers for the order lane's framing tests: each request on each connection is answered as a script
says (bytes written in pieces, a close, a reset, or silence), so a reply can be anything a server could send."""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

CLOSE = "close"  # close the connection without answering
RESET = "reset"  # reset it (RST) without answering
SILENT = "silent"  # never answer (the client's timeout)

Answer = bytes | str | tuple[bytes, str]  # bytes, one of the words above, or bytes then a word


def read_request(conn: socket.socket, pending: bytearray) -> bytes | None:
    """One whole request (its head and its Content-Length body) from `conn`, or None at the connection's end."""
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    head, _, _ = bytes(pending).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    end = len(head) + 4 + length
    while len(pending) < end:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    request = bytes(pending[:end])
    del pending[:end]
    return request


class ScriptServer:
    """Answers request `r` of connection `c` (both from 0) with `script(c, r)`; keeps every request's bytes in
    `requests[c]`. `pieces`: replies are written in random-sized pieces with sub-millisecond pauses. `tls`: each
    connection is TLS with that context."""

    def __init__(
        self,
        script: Callable[[int, int], Answer],
        pieces: bool = False,
        seed: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script, self.pieces, self.tls = script, pieces, tls
        self.random = random.Random(seed)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(
            0.05
        )  # a closed listening socket does not wake `accept`: `_stopped` is looked at
        self.port = self.sock.getsockname()[1]
        self.requests: list[list[bytes]] = []
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, name="lane-test-accept")
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            self.requests.append([])
            self._conns.append(conn)
            t = threading.Thread(
                target=self._serve, args=(conn, len(self.requests) - 1), name="lane-test-conn"
            )
            self._threads.append(t)
            t.start()

    def write(self, conn: socket.socket, data: bytes) -> None:
        if not self.pieces:
            conn.sendall(data)
            return
        i = 0
        while i < len(data):
            n = self.random.randint(1, max(1, min(len(data) - i, self.random.choice((1, 3, 17, 200, 5000)))))
            conn.sendall(data[i : i + n])
            i += n
            if self.random.random() < 0.3:
                time.sleep(self.random.random() / 2000)

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(0.05)
        pending = bytearray()
        try:
            while not self._stopped.is_set():
                try:
                    request = read_request(conn, pending)
                except TimeoutError:
                    continue
                if request is None:
                    return
                self.requests[index].append(request)
                answer = self.script(index, len(self.requests[index]) - 1)
                if isinstance(answer, tuple):
                    self.write(conn, answer[0])
                    answer = answer[1]
                if isinstance(answer, bytes):
                    self.write(conn, answer)
                    continue
                if answer == RESET:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if answer in (CLOSE, RESET):
                    return
                assert answer == SILENT, answer
        except OSError:
            return
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._accepting.join(5)
        for t in self._threads:
            t.join(5)
        self.sock.close()


def kite_ok(order_id: str) -> bytes:
    """Kite's JSON reply to a placed order, with its length."""
    body = b'{"status": "success", "data": {"order_id": "%s"}}' % order_id.encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def tls_pair(folder: str) -> tuple[ssl.SSLContext, str]:
    """A server's TLS context for 127.0.0.1 and the file of the authority that signed its certificate (for
    SSL_CERT_FILE: the client's verified default context then trusts it, as it trusts Kite's)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lane test authority")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    import ipaddress

    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, cert_file, key_file = f"{folder}/ca.pem", f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(ca_file, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(cert_file, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ca_file
