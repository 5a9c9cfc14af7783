"""Prometheus metrics of a Kafka pipeline, scraped from the status app's /metrics during a real run
and parsed with prometheus_client's parser: the counters add up to what was produced (in total and
per partition, the failures also as dead letters), the partitions assigned are counted, and the
per-partition gauges end where the broker's offsets are."""

from __future__ import annotations

import gkbroad
from gkbroad.kafka import Producer
from gkbroad.wsgi import serve, status_app
from tests.helpers.kafka_options import producer_options
from tests.helpers.prometheus_support import scrape, total, value
from tests.helpers.support import wait_until

RECORDS = 600
PARTITIONS = 3


class FailingTenth(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        if message.data.offset % 10 == 0:
            return message.failed("every tenth record fails")
        return message

    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


def test_a_scrape_during_a_run_counts_every_record_and_the_offsets(cluster, client_library):
    topic, dead = cluster.topic(PARTITIONS, prefix="prom"), cluster.topic(1, prefix="prom-dead")
    produced = {p: len(values) for p, values in cluster.produce(topic, RECORDS, PARTITIONS).items()}
    ends = cluster.end_offsets(topic, PARTITIONS)
    name = f"prom-{topic[-6:]}"  # the metrics of a process are shared: a name of its own
    options = producer_options(
        cluster.bootstrap_servers,
        cluster.group_id("prom"),
        [topic],
        dead_letter={"topic": dead},
        client_library=client_library,
    )
    pipeline = FailingTenth(
        name=name,
        producer={"module": (Producer, options)},
        processors={"default": {"concurrency": 4}},
        batchers={"default": {"batch_size": 50, "batch_timeout": 100}},
        metrics={"prometheus": {"interval": 1}},
    )
    server = serve(status_app(pipeline))
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    pipeline.start()
    try:
        seen = {}

        def counted() -> bool:
            seen.update(scrape(url))
            done = total(seen, "gkbroad_messages_handled_total", pipeline=name)
            failed = total(seen, "gkbroad_messages_failed_total", pipeline=name)
            committed = [
                value(seen, "gkbroad_committed_offset", pipeline=name, topic=topic, partition=str(p))
                for p in range(PARTITIONS)
            ]
            return done + failed == RECORDS and committed == [ends[p] for p in range(PARTITIONS)]

        wait_until(counted, timeout=60, what="every record counted and every offset committed", interval=0.3)
        samples = scrape(url)
    finally:
        pipeline.stop()
        server.stop()

    failed = sum(1 for i in range(RECORDS // PARTITIONS) if i % 10 == 0) * PARTITIONS
    assert total(samples, "gkbroad_messages_failed_total", pipeline=name) == failed
    assert total(samples, "gkbroad_messages_handled_total", pipeline=name) == RECORDS - failed
    for p, count in produced.items():
        labels = {"pipeline": name, "topic": topic, "partition": str(p)}
        every_tenth = sum(1 for offset in range(count) if offset % 10 == 0)
        assert value(samples, "gkbroad_messages_failed_total", **labels) == every_tenth
        assert value(samples, "gkbroad_messages_handled_total", **labels) == count - every_tenth
    assert value(samples, "gkbroad_dead_letters_written_total", pipeline=name) == failed
    assert value(samples, "gkbroad_partitions_rebalanced_total", pipeline=name, reason="assigned") == PARTITIONS
    assert value(samples, "gkbroad_handle_message_duration_seconds_count", pipeline=name) == RECORDS
    batches = value(samples, "gkbroad_batches_handled_total", pipeline=name, batcher="default")
    assert batches == value(samples, "gkbroad_handle_batch_duration_seconds_count", pipeline=name, batcher="default")
    assert batches >= (RECORDS - failed) // 50
    assert value(samples, "gkbroad_commit_duration_seconds_count", pipeline=name) > 0
    assert value(samples, "gkbroad_partitions_assigned", pipeline=name) == PARTITIONS
    assert value(samples, "gkbroad_pipeline_healthy", pipeline=name) == 1
    for p in range(PARTITIONS):
        labels = {"pipeline": name, "topic": topic, "partition": str(p)}
        assert value(samples, "gkbroad_consumer_lag_messages", **labels) == 0
        assert value(samples, "gkbroad_end_offset", **labels) == ends[p]
    assert total(samples, "gkbroad_consumer_lag_messages", pipeline=name) == 0
    # Bounded labels: no series carries an offset or a key.
    assert not any({"offset", "key"} & {k for k, _ in labels} for (_, labels) in samples)
