"""The network-partition harness itself (tests/helpers/netsplit.py, netsplit_check.py), on loopback sockets."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from tests.helpers.fault_check import Run
from tests.helpers.netsplit import CutProxy, Socks5Redirector
from tests.helpers.netsplit_check import split_figures


@pytest.fixture
def echo_port():
    """A 127.0.0.1 server that echoes what it reads."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(4096), b"")]).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _echo(sock: socket.socket, data: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    sock.sendall(data)
    try:
        return sock.recv(4096)
    except TimeoutError:
        return b""


def test_a_cut_holds_the_bytes_without_closing_and_the_heal_delivers_them(echo_port):
    proxy = CutProxy(echo_port)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            assert _echo(sock, b"before", 2.0) == b"before"
            proxy.cut()
            assert _echo(sock, b"during", 0.5) == b""  # silent, and not closed
            proxy.heal()
            sock.settimeout(2.0)
            assert sock.recv(4096) == b"during"
    finally:
        proxy.close()


def test_the_redirector_goes_round_a_cut_proxy(echo_port):
    proxy = CutProxy(echo_port)
    redirector = Socks5Redirector({proxy.port: echo_port})
    proxy.cut()
    try:
        with socket.create_connection(("127.0.0.1", redirector.port)) as sock:
            sock.settimeout(2.0)
            sock.sendall(b"\x05\x01\x00")
            assert sock.recv(2) == b"\x05\x00"
            sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", proxy.port))
            assert sock.recv(10)[:2] == b"\x05\x00"
            assert _echo(sock, b"through", 2.0) == b"through"
    finally:
        proxy.heal()
        redirector.close()
        proxy.close()


def test_the_redirector_refuses_other_hosts():
    redirector = Socks5Redirector({})
    try:
        with socket.create_connection(("127.0.0.1", redirector.port)) as sock:
            sock.settimeout(2.0)
            sock.sendall(b"\x05\x01\x00")
            sock.recv(2)
            sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("10.0.0.1") + struct.pack(">H", 9092))
            assert sock.recv(10)[:2] == b"\x05\x02"
    finally:
        redirector.close()


def test_the_figures_count_late_records_overlap_and_backward_commits():
    cut = Run(
        "cut", [("start", 0, None, 0.0), ("handled", 0, 1, 9.0), ("handled", 0, 2, 12.0), ("start", 0, None, 30.0)]
    )
    cut.events.append(("handled", 0, 9, 31.0))  # its new holding after the rejoin does not count
    other = Run("other", [("start", 0, None, 10.0), ("handled", 0, 1, 10.5)])
    figures = split_figures(cut, other, cut_at=1.0, session_timeout=6.0, grace=1.0, samples=[{0: 5}, {0: 7}, {0: 3}])
    assert figures.after_expiry == 2
    assert figures.overlap_records == 1 and figures.overlap_window == pytest.approx(1.5)
    assert figures.backwards == [(0, 7, 3)]


def test_the_figures_count_commits_after_the_move_and_journals_going_backwards():
    cut = Run(
        "cut",
        [
            ("start", 0, None, 0.0),
            ("commit", 0, 40, 0.5),  # before the cut: fine
            ("commit", 0, 45, 11.0),  # accepted after the other member took partition 0 over at 10.5
            ("start", 0, None, 30.0),
            ("commit", 0, 90, 31.0),  # its new holding after the rejoin does not count
        ],
    )
    other = Run("other", [("start", 0, None, 10.0), ("handled", 0, 41, 10.5), ("commit", 0, 60, 10.8)])
    figures = split_figures(cut, other, cut_at=1.0, session_timeout=6.0, grace=1.0, samples=[])
    assert figures.commits == 4 and figures.commits_after_move == 1
    assert figures.backwards == [(0, 60, 45)]
