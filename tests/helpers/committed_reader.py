"""What a read_committed consumer on Apache Kafka would see, read from the raw log.

The bundled Tansu answers every Fetch with no aborted transactions, so its
``read_committed`` consumers still get aborted records. This reader does not
trust the broker's filtering: it sends its own Fetch requests (v4,
read_uncommitted, so the whole log up to the high watermark comes back,
control batches included), parses the record batches with kafka-python's
``kafka.record``, and replays the transaction markers itself:

- records of a non-transactional batch are kept;
- records of a transactional batch wait under their producer id until that
  producer's next control batch: a COMMIT marker keeps them, an ABORT marker
  drops them (and counts one aborted transaction);
- records whose transaction has no marker yet are reported as open.

It talks to one broker (the tests' single-node Tansu), like
gkbroad.testing.broker's metadata probe.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from kafka.record import MemoryRecords

FETCH_API_KEY = 1
FETCH_VERSION = 4  # the first with isolation_level and record batches (magic 2)
ABORT, COMMIT = 0, 1  # control record types


@dataclass
class CommittedLog:
    """One partition as read_committed shows it."""

    records: list[tuple[int, bytes | None, bytes | None]] = field(default_factory=list)  # (offset, key, value)
    aborted_transactions: int = 0
    committed_transactions: int = 0
    aborted_records: int = 0
    open_records: int = 0  # records of transactions without a marker yet
    high_watermark: int = 0


def read_committed(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    max_wait_ms: int = 200,
    timeout: float = 10.0,
    since: dict[int, int] | None = None,
) -> dict[int, CommittedLog]:
    """{partition: CommittedLog} of `topic`, read from offset 0 (or `since[partition]`) to the high watermark.

    Read from an offset, a transaction's records before it are not seen, so the log tells only about
    the transactions with records from there on (enough to tell whether one is open).
    The bundled Tansu answers a fetch only once `max_wait_ms` is over, and with
    nothing at all when it is 0: a short wait reads faster, a long one is surer
    to bring every batch."""
    host, port = bootstrap_servers.split(",")[0].rsplit(":", 1)
    start = since or {}
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        return {
            partition: _read_partition(sock, topic, partition, max_wait_ms, start.get(partition, 0))
            for partition in range(partitions)
        }


def _read_partition(sock: socket.socket, topic: str, partition: int, max_wait_ms: int, offset: int) -> CommittedLog:
    log = CommittedLog()
    pending: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}  # producer id -> records
    while True:
        high_watermark, data = _fetch(sock, topic, partition, offset, max_wait_ms)
        log.high_watermark = high_watermark
        if offset >= high_watermark or not data:
            break
        records = MemoryRecords(data)
        advanced = offset
        while (batch := records.next_batch()) is not None:
            if batch.next_offset <= offset:
                continue  # a batch the fetch repeated
            advanced = batch.next_offset
            if batch.is_control_batch:
                for marker in batch:
                    waiting = pending.pop(batch.producer_id, [])
                    if marker.type == COMMIT:
                        log.records += waiting
                        log.committed_transactions += 1
                    elif marker.type == ABORT:
                        log.aborted_records += len(waiting)
                        log.aborted_transactions += 1
            else:
                kept = [(r.offset, r.key, r.value) for r in batch if r.offset >= offset]
                if batch.is_transactional:
                    pending.setdefault(batch.producer_id, []).extend(kept)
                else:
                    log.records += kept
        if advanced == offset:
            raise AssertionError(f"{topic}:{partition}: the fetch at offset {offset} brought no complete batch")
        offset = advanced
    log.open_records = sum(len(waiting) for waiting in pending.values())
    return log


def _fetch(sock: socket.socket, topic: str, partition: int, offset: int, max_wait_ms: int) -> tuple[int, bytes]:
    """One Fetch request; returns (high watermark, record bytes), or (offset, b"") when the broker
    brought nothing from `offset` within the max wait."""
    client_id = b"gkbroad-committed-reader"
    header = struct.pack(">hhih", FETCH_API_KEY, FETCH_VERSION, 1, len(client_id)) + client_id
    name = topic.encode()
    body = struct.pack(">iiiib", -1, max_wait_ms, 1, 4 << 20, 0)  # replica, max wait, min bytes, max bytes, uncommitted
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, partition, offset, 4 << 20)
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", _read_exactly(sock, 4))
    response = _read_exactly(sock, size)
    pos = 4 + 4  # correlation id, throttle time
    (topics,) = struct.unpack_from(">i", response, pos)
    pos += 4
    if topics == 0:  # Tansu's answer when it found nothing to fetch within the max wait
        return offset, b""
    assert topics == 1, f"one topic asked, {topics} answered"
    (name_len,) = struct.unpack_from(">h", response, pos)
    pos += 2 + name_len
    (count,) = struct.unpack_from(">i", response, pos)
    pos += 4
    assert count == 1, f"one partition asked, {count} answered"
    _, error, high_watermark, _, aborted = struct.unpack_from(">ihqqi", response, pos)
    pos += 4 + 2 + 8 + 8 + 4
    if error:
        raise AssertionError(f"fetch of {topic}:{partition} at {offset}: error code {error}")
    pos += max(aborted, 0) * 16
    (length,) = struct.unpack_from(">i", response, pos)
    pos += 4
    return high_watermark, response[pos : pos + max(length, 0)]


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data
