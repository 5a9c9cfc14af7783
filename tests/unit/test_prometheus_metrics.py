"""The Prometheus hook and /metrics without a broker: counts from the hook calls, gauges from a
status snapshot, a partition given away losing its series, and the stand-alone metrics app."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

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
    hook.after_ack(7, 2)
    hook.after_handle_messages([0.001, 0.002, 0.2])
    hook.after_handle_batch("db", 9, 0.05)
    hook.after_hub_blocked("unit-prom.processor.0", "Orders.handle_message (orders.py:3)")
    hook.after_commit(0.01, [("t", 0)])
    hook.refresh(snapshot([(0, 5), (1, 3)]))
    found = samples()
    pipeline = (("pipeline", "unit-prom"),)
    assert found[("gkbroad_messages_handled_total", pipeline)] == 7
    assert found[("gkbroad_messages_failed_total", pipeline)] == 2
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
    PrometheusMetrics("unit-prom-app").after_ack(1, 0)
    status, headers, body = call(metrics_app(), "/anything")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'gkbroad_messages_handled_total{pipeline="unit-prom-app"} 1.0' in body
