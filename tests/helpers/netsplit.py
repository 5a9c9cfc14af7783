"""A network partition between one consumer and the broker, on loopback only.

``CutProxy`` forwards TCP connections from a 127.0.0.1 port to the broker.
``cut()`` stops forwarding in both directions without closing anything: bytes
already read are held, nothing more is read, so both ends see a silent peer,
the way a real partition looks (no RST, no FIN). ``heal()`` lets the held and
the new bytes through again.

The broker advertises the proxy's port, so every connection a client opens
after bootstrapping goes through it. A member that must keep its network
reaches the broker another way: kafka-python's ``proxy_url`` setting pointed
at a ``Socks5Redirector``, which answers the SOCKS5 handshake and connects
requests for the proxy's address straight to the broker's.

Both run in the test process (plain sockets and threads, greenlets under
gevent's patching) and bind 127.0.0.1 only; targets other than 127.0.0.1 are
refused.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

_HOST = "127.0.0.1"
_CHUNK = 65536


class _Gate:
    """Open or shut, for every pump of one proxy; pumps wait while it is shut."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def shut(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def wait_open(self) -> None:
        self._open.wait()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()


def _pump(source: socket.socket, sink: socket.socket, gate: _Gate) -> None:
    """Copy source to sink; while the gate is shut nothing is read or written."""
    try:
        while True:
            gate.wait_open()
            data = source.recv(_CHUNK)
            if not data:
                break
            gate.wait_open()  # a cut that began during recv holds what it read
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _splice(client: socket.socket, upstream: socket.socket, gate: _Gate) -> None:
    for source, sink in ((client, upstream), (upstream, client)):
        threading.Thread(target=_pump, args=(source, sink, gate), daemon=True).start()


class _Listener:
    """A 127.0.0.1 listening socket whose connections ``serve`` handles, one thread each."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._serve = serve
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((_HOST, 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{_HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()


class CutProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``; can be cut and healed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._gate = _Gate()
        self.cut_at: float | None = None  # time.monotonic() of the last cut
        self.healed_at: float | None = None
        self._listener = _Listener(self._serve)
        self.port, self.address, self.close = self._listener.port, self._listener.address, self._listener.close

    def _serve(self, conn: socket.socket) -> None:
        self._gate.wait_open()  # a connection made during a cut hangs, like its SYN would
        try:
            upstream = socket.create_connection((_HOST, self.target_port))
        except OSError:
            conn.close()
            return
        _splice(conn, upstream, self._gate)

    def cut(self) -> None:
        self._gate.shut()
        self.cut_at = time.monotonic()

    def heal(self) -> None:
        self._gate.open()
        self.healed_at = time.monotonic()

    @property
    def is_cut(self) -> bool:
        return not self._gate.is_open


class Socks5Redirector:
    """A SOCKS5 server (no authentication, CONNECT only) for loopback targets;
    requests for a port in ``redirects`` are connected to the port it maps to."""

    def __init__(self, redirects: dict[int, int]) -> None:
        self.redirects = dict(redirects)
        self._gate = _Gate()  # never shut: this path is the one that keeps working
        self._listener = _Listener(self._serve)
        self.port, self.address, self.close = self._listener.port, self._listener.address, self._listener.close

    def _serve(self, conn: socket.socket) -> None:
        try:
            target = self._handshake(conn)
        except (OSError, ValueError, struct.error):
            conn.close()
            return
        try:
            upstream = socket.create_connection((_HOST, target))
        except OSError:
            conn.sendall(b"\x05\x05\x00\x01" + socket.inet_aton(_HOST) + b"\x00\x00")  # connection refused
            conn.close()
            return
        bound_host, bound_port = upstream.getsockname()[:2]
        conn.sendall(b"\x05\x00\x00\x01" + socket.inet_aton(bound_host) + struct.pack(">H", bound_port))
        _splice(conn, upstream, self._gate)

    def _handshake(self, conn: socket.socket) -> int:
        """Read the greeting and the CONNECT request; returns the port to connect to."""
        version, methods = _read(conn, 2)
        if version != 5:
            raise ValueError(f"not SOCKS5 (version {version})")
        if 0 not in _read(conn, methods):
            conn.sendall(b"\x05\xff")
            raise ValueError("the client offers no unauthenticated method")
        conn.sendall(b"\x05\x00")
        version, command, _, address_type = _read(conn, 4)
        if address_type == 1:
            host = socket.inet_ntoa(_read(conn, 4))
        elif address_type == 3:
            host = _read(conn, _read(conn, 1)[0]).decode()
        else:
            raise ValueError(f"address type {address_type} not supported")
        (port,) = struct.unpack(">H", _read(conn, 2))
        if command != 1 or host not in (_HOST, "localhost"):
            conn.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(_HOST) + b"\x00\x00")  # not allowed
            raise ValueError(f"refused {host}:{port} (command {command})")
        return self.redirects.get(port, port)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("connection closed during the SOCKS5 handshake")
        data += chunk
    return data
