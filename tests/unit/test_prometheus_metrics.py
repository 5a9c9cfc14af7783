"""The Prometheus hook and /metrics without a broker: counts from the hook calls, gauges from a
status snapshot, a partition given away losing its series, and the stand-alone metrics app."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gkbroad.message import Acknowledger, Message
from gkbroad.observability.hooks import Hooks
from gkbroad.observability.prometheus import PrometheusMetrics, exposition
from gkbroad.wsgi import metrics_app
from tests.unit.test_wsgi_status import call


def samples() -> dict:
    found = {}
    for family in text_string_to_metric_families(exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def snapshot(partitions):
    rows = [
        {"topic": "t", "partition": p, "lag": lag, "committed": 10, "end_offset": 10 + lag} for p, lag in partitions
    ]
    return {"in_flight": 4, "partitions": rows, "healthy": True}


def test_the_hook_counts_and_copies_the_gauges_and_drops_a_partition_given_away():
    hook = PrometheusMetrics("unit-prom")
    hook.after_ack_by_partition({("t", "0"): (7, 2)})
    hook.after_handle_messages([0.001, 0.002, 0.2])
    hook.after_handle_batch("db", 9, 0.05)
    hook.after_hub_blocked("unit-prom.processor.0", "Orders.handle_message (orders.py:3)")
    hook.after_commit(0.01, [("t", 0)])
    hook.refresh(snapshot([(0, 5), (1, 3)]))
    found = samples()
    pipeline = (("pipeline", "unit-prom"),)
    assert found[("gkbroad_messages_handled_total", (("partition", "0"), *pipeline, ("topic", "t")))] == 7
    assert found[("gkbroad_messages_failed_total", (("partition", "0"), *pipeline, ("topic", "t")))] == 2
    assert found[("gkbroad_handle_message_duration_seconds_count", pipeline)] == 3
    assert found[("gkbroad_handle_message_duration_seconds_bucket", (("le", "0.0025"), *pipeline))] == 2
    assert found[("gkbroad_batches_handled_total", (("batcher", "db"), *pipeline))] == 1
    assert found[("gkbroad_hub_blocked_total", (*pipeline, ("stage", "unit-prom.processor.0")))] == 1
    assert found[("gkbroad_messages_in_flight", pipeline)] == 4
    assert found[("gkbroad_partitions_assigned", pipeline)] == 2
    lag = "gkbroad_consumer_lag_messages"
    assert found[(lag, (("partition", "1"), *pipeline, ("topic", "t")))] == 3

    hook.refresh(snapshot([(0, 5)]))  # partition 1 went to another member
    found = samples()
    assert (lag, (("partition", "1"), *pipeline, ("topic", "t"))) not in found
    assert found[(lag, (("partition", "0"), *pipeline, ("topic", "t")))] == 5
    assert found[("gkbroad_partitions_assigned", pipeline)] == 1


def test_the_metrics_app_answers_every_path_in_the_text_format():
    PrometheusMetrics("unit-prom-app").after_ack_by_partition({("-", "-"): (1, 0)})
    status, headers, body = call(metrics_app(), "/anything")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'gkbroad_messages_handled_total{partition="-",pipeline="unit-prom-app",topic="-"} 1.0' in body


class KafkaLike:
    """An acknowledger handler whose data is (topic, partition, offset), as the Kafka producer's is."""

    @staticmethod
    def partition_of(data):
        return data[0], data[1]


def message(handler, data) -> Message:
    return Message(data=None, acknowledger=Acknowledger(handler, 0, data))


def test_handled_and_failed_are_counted_per_topic_and_partition_of_each_acknowledger():
    hooks = Hooks([PrometheusMetrics("unit-prom-parts")])
    kafka = KafkaLike()
    successful = [message(kafka, ("orders", 0, 1)), message(kafka, ("orders", 1, 1)), message(kafka, ("orders", 1, 2))]
    failed = [message(kafka, ("orders", 1, 3)).failed("boom"), message(object(), None).failed("no source")]
    hooks.acked(successful, failed)
    hooks.acked([message(kafka, ("orders", 0, 2))], [])
    found = samples()

    def count(name, topic, partition):
        labels = (("partition", partition), ("pipeline", "unit-prom-parts"), ("topic", topic))
        return found.get((f"gkbroad_messages_{name}_total", labels))

    assert (count("handled", "orders", "0"), count("failed", "orders", "0")) == (2, 0)
    assert (count("handled", "orders", "1"), count("failed", "orders", "1")) == (2, 1)
    assert (count("handled", "-", "-"), count("failed", "-", "-")) == (0, 1), "a source without partition_of"


def test_retries_dead_letters_and_rebalances_are_counted_by_mode_and_reason():
    hooks = Hooks([PrometheusMetrics("unit-prom-events")])
    hooks.retried("in_place")
    hooks.retried("in_place")
    hooks.retried("topic", 3)
    hooks.dead_lettered(4)
    hooks.dead_lettered(1)
    for partition, reason in ((0, "assigned"), (1, "assigned"), (0, "revoked"), (1, "lost"), (0, "assigned")):
        hooks.rebalanced("t", partition, reason)
    found = samples()
    pipeline = ("pipeline", "unit-prom-events")
    assert found[("gkbroad_messages_retried_total", (("mode", "in_place"), pipeline))] == 2
    assert found[("gkbroad_messages_retried_total", (("mode", "topic"), pipeline))] == 3
    assert found[("gkbroad_dead_letters_written_total", (pipeline,))] == 5
    rebalanced = {
        reason: found.get(("gkbroad_partitions_rebalanced_total", (pipeline, ("reason", reason))))
        for reason in ("assigned", "revoked", "lost", "shutdown")
    }
    assert rebalanced == {"assigned": 3, "revoked": 1, "lost": 1, "shutdown": None}


def test_transactions_are_counted_from_the_totals_of_each_snapshot():
    hook = PrometheusMetrics("unit-prom-eos")

    def writers(*totals):
        return {
            **snapshot([]),
            "transactions": [
                {"transactional_id": tid, "committed": c, "aborted": a, "seconds": s, "staged_records": staged}
                for tid, c, a, s, staged in totals
            ],
        }

    hook.refresh(writers(("w-0", 3, 0, 0.5, 7), ("w-1", 1, 1, 0.25, 2)))
    hook.refresh(writers(("w-0", 5, 1, 0.75, 0), ("w-1", 1, 1, 0.25, 4)))
    found = samples()
    pipeline = (("pipeline", "unit-prom-eos"),)
    assert found[("gkbroad_transactions_committed_total", pipeline)] == 6
    assert found[("gkbroad_transactions_aborted_total", pipeline)] == 2
    assert found[("gkbroad_transaction_duration_seconds_total", pipeline)] == 1.0
    assert found[("gkbroad_transaction_staged_records", pipeline)] == 4
