"""examples/wsgi_app.py, a pipeline embedded in a gevent.pywsgi app, run as its users run it.

While the pipeline handles 20,000 records, the app's own route keeps answering
quickly (the p99 latency is measured and printed); the status pages show every
partition and the lag going to 0; SIGTERM stops it with everything committed.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.support import wait_until
from tests.helpers.web_support import EXAMPLES, example_env, get, get_json, order_values, stop_process

RECORDS = 20_000
PARTITIONS = 4
P99_LIMIT = 0.100  # seconds; the bound for the app's route while the pipeline works


@pytest.mark.long
def test_the_app_stays_responsive_while_its_pipeline_consumes(cluster, report, tmp_path, client_library):
    topic = cluster.topic(PARTITIONS, prefix="wsgi")
    group = cluster.group_id("wsgi")
    values = order_values(RECORDS)
    cluster.produce(topic, RECORDS, PARTITIONS, value=lambda i: values[i])
    ends = cluster.end_offsets(topic, PARTITIONS)

    log_path = tmp_path / "wsgi_app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, "wsgi_app.py"), "--port", "0"],
            env=example_env(cluster.bootstrap_servers, topic, group, client_library),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        line = process.stdout.readline()
        match = re.match(r"serving on (http://127\.0\.0\.1:\d+)/", line)
        assert match, f"unexpected first line {line!r}"
        base = match.group(1)

        latencies, lags = measure_while_consuming(base)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        report(
            f"wsgi_app.py on {client_library}: GET / during {RECORDS} records: {len(latencies)} requests, "
            f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms"
        )
        assert p99 < P99_LIMIT, f"p99 {p99 * 1000:.1f} ms"
        assert max(lags) > 0, "the status page showed the lag while records were waiting"

        wait_until(lambda: all_committed(base, ends), 60, what="every partition committed to its end", interval=0.2)
        status = get_json(f"{base}/_gkbroad/status.json")
        shown = {(p["topic"], p["partition"]) for p in status["partitions"]}
        assert shown == {(topic, p) for p in range(PARTITIONS)}
        assert all(p["lag"] == 0 and p["committed"] == ends[p["partition"]] for p in status["partitions"]), status
        assert status["counters"]["handled"] + status["counters"]["failed"] == RECORDS
        assert get(f"{base}/_gkbroad/healthz") == (200, b"ok\n")
        page = get(f"{base}/_gkbroad/")[1].decode()
        assert all(f"<td>{topic}-{p}</td>" in page for p in range(PARTITIONS))

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert cluster.committed(group, topic) == ends
    finally:
        log_text = stop_process(process, log_path)
    assert "[orders-web] stopped" in log_text, log_text


def all_committed(base: str, ends: dict) -> bool:
    partitions = get_json(f"{base}/_gkbroad/status.json")["partitions"]
    return len(partitions) == len(ends) and all(p["committed"] == ends[p["partition"]] for p in partitions)


def measure_while_consuming(base: str, timeout: float = 240.0) -> tuple[list[float], list[int]]:
    """Latencies of GET / (one keep-alive connection, as a load balancer keeps) from the first record
    handled until all were, and the total lags the status page showed meanwhile."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    latencies, lags = [], []
    deadline = time.monotonic() + timeout
    next_status = 0.0
    while True:
        assert time.monotonic() < deadline, f"not all {RECORDS} records handled within {timeout}s"
        started = time.perf_counter()
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read().decode()
        elapsed = time.perf_counter() - started
        assert response.status == 200, body
        handled, failed = map(int, re.match(r"orders service: (\d+) handled, (\d+) failed", body).groups())
        if handled + failed >= RECORDS:
            break
        if handled + failed > 0:
            latencies.append(elapsed)
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + 0.5
            partitions = get_json(f"{base}/_gkbroad/status.json")["partitions"]
            lags.append(sum(p["lag"] or 0 for p in partitions))
        time.sleep(0.005)
    connection.close()
    assert len(latencies) >= 100, f"only {len(latencies)} requests while consuming: too few to measure"
    return latencies, lags
