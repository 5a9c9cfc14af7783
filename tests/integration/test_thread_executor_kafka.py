"""executor="thread" against a real broker: handlers that block in C no longer stall the process.

The handler blocks 50 ms in the unpatched time.sleep, which stands in for a C
driver (psycopg2, mysqlclient) that gevent cannot make cooperative. On
greenlets every such call stops the whole hub, so eight partitions are handled
one call at a time; in threads the eight partitions' calls overlap and the hub
keeps running, which a ticker greenlet with a 100 ms beat shows.
"""

from __future__ import annotations

import time
from collections import defaultdict

import gevent
import pytest
from gevent import monkey

import gkbroad
from gkbroad.kafka import Producer
from tests.helpers.kafka_helpers import create_topic, produce, unique_name
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until

blocking_sleep = monkey.get_original("time", "sleep")

PARTITIONS = 8
PROCESSORS = 32
CALL_SECONDS = 0.05
TICK = 0.1


class BlocksInC(gkbroad.Pipeline):
    """Each call blocks its thread for 50 ms; records offsets per partition and when each call ended."""

    def handle_message(self, processor, message, context):
        blocking_sleep(CALL_SECONDS)
        record = message.data
        context["offsets"][record.partition].append(record.offset)
        context["ended"].append(time.monotonic())
        return message


class Ticker:
    """A greenlet that wants to run every 100 ms; keeps when it actually ran."""

    def __init__(self):
        self.ticks = [time.monotonic()]
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            gevent.sleep(TICK)
            self.ticks.append(time.monotonic())

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two ticks, over the ticks around [start, end]."""
        inside = [t for t in self.ticks if start <= t <= end]
        before = [t for t in self.ticks if t < start][-1:]
        after = [t for t in self.ticks if t > end][:1]
        ticks = before + inside + after
        return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))

    def stop(self):
        self.greenlet.kill()


def run_once(bootstrap_servers, executor: str, records: int, client_library: str) -> tuple[float, float, dict]:
    """Handle `records` records with the executor; (records/s, the ticker's longest gap, offsets)."""
    # "partition" ordering numbers partitions as they come, so each of the 8 gets its own processor
    topic = create_topic(bootstrap_servers, unique_name("executor"), PARTITIONS)
    produce(bootstrap_servers, topic, records, partitions=PARTITIONS)
    seen = {"offsets": defaultdict(list), "ended": []}
    pipeline = BlocksInC(
        name=f"exec-{executor}",
        producer={
            "module": (
                Producer,
                producer_options(
                    bootstrap_servers, unique_name("executor-group"), [topic], client_library=client_library
                ),
            )
        },
        processors={"default": {"concurrency": PROCESSORS, "max_demand": 10, "executor": executor}},
        context=seen,
        shutdown_timeout=30000,
    )
    ticker = Ticker()
    pipeline.start()
    try:
        wait_until(lambda: len(seen["ended"]) >= records, 120, f"{records} records handled ({executor})")
    finally:
        ticker.stop()
        assert pipeline.stop()
    first, last = seen["ended"][0], seen["ended"][-1]
    rate = (records - 1) / (last - first)
    return rate, ticker.longest_gap(first, last), seen["offsets"]


@pytest.mark.long
def test_thread_executor_overlaps_c_blocking_handlers_and_keeps_the_hub_running(
    bootstrap_servers, report, client_library
):
    greenlet_rate, greenlet_gap, _ = run_once(bootstrap_servers, "greenlet", 10 * PARTITIONS, client_library)
    thread_rate, thread_gap, offsets = run_once(bootstrap_servers, "thread", 50 * PARTITIONS, client_library)

    report(
        f"executor on {client_library}, {PARTITIONS} partitions, handler blocking {CALL_SECONDS * 1000:.0f} ms in C: "
        f"greenlet {greenlet_rate:.1f} records/s, thread {thread_rate:.1f} records/s "
        f"({thread_rate / greenlet_rate:.1f}x); ticker (100 ms beat) longest gap: "
        f"greenlet {greenlet_gap * 1000:.0f} ms, thread {thread_gap * 1000:.0f} ms"
    )
    assert sorted(offsets) == list(range(PARTITIONS))
    for partition, seen in offsets.items():
        assert seen == list(range(50)), f"partition {partition} out of order or incomplete"
    assert thread_rate >= 5 * greenlet_rate, f"{thread_rate:.1f} records/s in threads, {greenlet_rate:.1f} on greenlets"
    # The beat is 100 ms; a busy machine delays it by itself, so the bound is loose but far below the greenlet gap.
    assert thread_gap < min(1.0, greenlet_gap / 4), (
        f"the hub stalled for {thread_gap * 1000:.0f} ms with executor='thread' "
        f"({greenlet_gap * 1000:.0f} ms with executor='greenlet')"
    )
