"""What every benchmark case shares: counting handled records, and talking to the driver.

No gevent, kafka or gkbroad import here: the driver (scripts/bench.py) runs
unpatched and uses the same protocol. A case process writes one line
``BENCH {"event": ...}`` per event on stdout; "ready" tells the driver it may
start producing or signalling, "result" carries the measurements.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

PREFIX = "BENCH "


def emit(event: str, **fields) -> None:
    print(PREFIX + json.dumps({"event": event, **fields}), flush=True)


def parse(line: str) -> dict | None:
    """The event of a case's stdout line, None for anything else it printed
    (a library may print terminal control codes ahead of it on the same line)."""
    _, found, event = line.partition(PREFIX)
    return json.loads(event) if found else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Counter:
    """Counts handled records; the rate runs from the first record reaching user
    code to the last one handled, so joining the group is not measured.

    `sleep` seconds are spent in time.sleep per record (gevent's sleep once
    monkey-patched): the stand-in for an HTTP call. `done` is set when `limit`
    records were handled. With `latency`, the delay from each record's
    timestamp to its handling is kept (ms).

    The CPU time the process used over the same span, per record, is reported
    too: other processes on a shared machine change the rates a lot more than
    they change that.
    """

    def __init__(self, limit: int, sleep: float = 0.0, latency: bool = False):
        self.limit = limit
        self.sleep = sleep
        self.count = 0
        self.first = None
        self.last = None
        self.cpu_first = self.cpu_last = None
        self.latencies: list[float] | None = [] if latency else None
        self.done = threading.Event()

    def started(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.cpu_first = time.process_time()

    def handle(self, record) -> None:
        """What the benchmark's handler function does with one record."""
        if self.first is None:
            self.started()
        if self.latencies is not None:
            self.latencies.append(time.time() * 1000.0 - record.timestamp)
        if self.sleep:
            time.sleep(self.sleep)
        self.handled(1)

    def handled(self, count: int) -> None:
        self.count += count
        self.last = time.perf_counter()
        if self.count >= self.limit and not self.done.is_set():
            self.cpu_last = time.process_time()
            self.done.set()

    def rate(self) -> float:
        if self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return self.count / (self.last - self.first)

    def result(self, **extra) -> dict:
        fields = {"count": self.count, "rate": round(self.rate(), 1), **extra}
        if self.cpu_last is not None:
            fields["cpu_us"] = round((self.cpu_last - self.cpu_first) * 1e6 / self.count, 2)
        if self.latencies:
            fields["p50_ms"] = round(percentile(self.latencies, 0.50), 2)
            fields["p99_ms"] = round(percentile(self.latencies, 0.99), 2)
        return fields


def wait_done(counter: Counter, timeout: float) -> None:
    if not counter.done.wait(timeout):
        sys.stderr.write(f"only {counter.count} of {counter.limit} records handled within {timeout}s\n")
