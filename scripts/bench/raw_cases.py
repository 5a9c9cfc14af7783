"""The baselines: loops a kafka-python (or confluent-kafka) user writes by hand, no gkbroad.

All run in a consumer group, call a handler function per record and commit
every second, as a plain service would. They run monkey-patched like gkbroad
(run_case.py patches first), so the comparison is of the pipeline alone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait

from common import Counter, emit
from kafka import KafkaConsumer

COMMIT_EVERY = 1.0


def _consumer(config: dict) -> KafkaConsumer:
    return KafkaConsumer(
        config["topic"],
        bootstrap_servers=config["bootstrap"],
        group_id=config["group"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=config["session_timeout_ms"],
        heartbeat_interval_ms=config["heartbeat_interval_ms"],
        fetch_max_wait_ms=config.get("fetch_max_wait_ms", 500),
    )


def one_by_one(config: dict) -> dict:
    """poll, call the handler for each record in turn, commit every second."""
    counter = Counter(config["limit"], config.get("sleep", 0.0), latency=config.get("latency", False))
    consumer = _consumer(config)
    handler = counter.handle
    last_commit = time.monotonic()
    announced = False
    try:
        while counter.count < counter.limit:
            batches = consumer.poll(timeout_ms=100)
            if not announced and len(consumer.assignment()) == config["partitions"]:
                emit("assigned", partitions=config["partitions"])
                announced = True
            for records in batches.values():
                for record in records:
                    handler(record)
                    if counter.count >= counter.limit:
                        break
            if time.monotonic() - last_commit >= COMMIT_EVERY:
                consumer.commit()
                last_commit = time.monotonic()
        consumer.commit()
    finally:
        consumer.close()
    return counter.result()


def thread_pool(config: dict) -> dict:
    """The usual hand-written way to overlap blocking handlers and keep per-key
    order: group each poll's records by (partition, key), run each group in
    order on a pool of 100 threads, wait for all of them, then poll again."""
    counter = Counter(config["limit"], config["sleep"])
    consumer = _consumer(config)
    last_commit = time.monotonic()

    def handle_in_order(records):
        for record in records:
            counter.handle(record)

    try:
        with ThreadPoolExecutor(config["threads"]) as pool:
            while counter.count < counter.limit:
                groups = defaultdict(list)
                for records in consumer.poll(timeout_ms=100).values():
                    for record in records:
                        groups[(record.partition, record.key)].append(record)
                wait([pool.submit(handle_in_order, records) for records in groups.values()])
                if time.monotonic() - last_commit >= COMMIT_EVERY:
                    consumer.commit()
                    last_commit = time.monotonic()
        consumer.commit()
    finally:
        consumer.close()
    return counter.result()


def rdkafka_one_by_one(config: dict) -> dict:
    """confluent-kafka's consume(500) loop, the handler per Message, a commit every second
    (the Counter reads nothing of the record but for latency, so a Message does)."""
    from confluent_kafka import Consumer

    counter = Counter(config["limit"], config.get("sleep", 0.0))
    assigned = []
    consumer = Consumer(
        {
            "bootstrap.servers": config["bootstrap"],
            "group.id": config["group"],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": config["session_timeout_ms"],
            "heartbeat.interval.ms": config["heartbeat_interval_ms"],
        }
    )
    consumer.subscribe([config["topic"]], on_assign=lambda c, partitions: assigned.extend(partitions))
    handler = counter.handle
    last_commit = time.monotonic()
    announced = False
    try:
        while counter.count < counter.limit:
            messages = consumer.consume(500, timeout=0.1)
            if not announced and len(assigned) == config["partitions"]:
                emit("assigned", partitions=config["partitions"])
                announced = True
            for message in messages:
                if message.error() is None:
                    handler(message)
                    if counter.count >= counter.limit:
                        break
            if messages and time.monotonic() - last_commit >= COMMIT_EVERY:
                consumer.commit(asynchronous=False)
                last_commit = time.monotonic()
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return counter.result()


CASES = {
    "raw": one_by_one,
    "io-raw": one_by_one,
    "io-threadpool": thread_pool,
    "latency-raw": one_by_one,
    "raw-rdkafka": rdkafka_one_by_one,
}
