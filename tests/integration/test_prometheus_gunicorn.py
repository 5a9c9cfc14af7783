"""Prometheus metrics of ``gunicorn -k gevent -w 2`` in multiprocess mode: whichever worker answers a
scrape of /_gkbroad/metrics, the counters add up the records both workers handled, and the
assignment gauges cover every partition once; child_exit drops an exited worker's live gauges."""

from __future__ import annotations

import os
import signal

from tests.helpers.prometheus_support import scrape, total, value
from tests.helpers.support import free_port, wait_until
from tests.helpers.web_support import example_env, get_json, order_values, stop_process
from tests.integration.test_gunicorn import start_gunicorn

PARTITIONS = 4
RECORDS = 400

# The example app, with metrics.prometheus in its options before run_in_worker builds the pipeline.
APP = """
import orders_service

_options = orders_service.pipeline_options
orders_service.pipeline_options = lambda: {**_options(), "metrics": {"prometheus": {"interval": 1}}}

from flask_app import app  # noqa: E402,F401
"""

CONFIG = """
from gkbroad.wsgi.gunicorn import child_exit, on_starting, post_worker_init, worker_exit  # noqa: F401

worker_class = "gevent"
workers = 2
graceful_timeout = 30
"""


def test_any_worker_answers_a_scrape_with_the_sums_of_both(cluster, tmp_path):
    topic = cluster.topic(PARTITIONS, prefix="prom-gunicorn")
    group = cluster.group_id("prom-gunicorn")
    values = order_values(RECORDS)
    cluster.produce(topic, RECORDS, PARTITIONS, value=lambda i: values[i])
    ends = cluster.end_offsets(topic, PARTITIONS)
    (tmp_path / "prom_app.py").write_text(APP)
    (tmp_path / "prom.conf.py").write_text(CONFIG)
    (tmp_path / "multiproc").mkdir()
    env = example_env(cluster.bootstrap_servers, topic, group)
    env["PYTHONPATH"] = os.pathsep.join((str(tmp_path), env["PYTHONPATH"]))
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "multiproc")
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(env, port, log_path, config=str(tmp_path / "prom.conf.py"), app="prom_app:app")
    try:
        latest = {}  # worker pid -> its last status

        def both_workers_done() -> bool:
            try:
                status = get_json(f"http://127.0.0.1:{port}/_gkbroad/status.json")
            except OSError:
                return False
            latest[status["pid"]] = status
            owned = [s["partitions"] for s in latest.values()]
            committed = all(p["committed"] == ends[p["partition"]] for rows in owned for p in rows)
            return len(latest) == 2 and all(owned) and sum(map(len, owned)) == PARTITIONS and committed

        wait_until(both_workers_done, timeout=90, what="two workers sharing the partitions, all committed")
        per_worker = [s["counters"]["handled"] + s["counters"]["failed"] for s in latest.values()]
        assert all(0 < count < RECORDS for count in per_worker), per_worker
        url = f"http://127.0.0.1:{port}/_gkbroad/metrics"

        def problems(samples) -> list[str]:
            """What in one scrape does not add up to the two workers together."""
            found = []
            handled = total(samples, "gkbroad_messages_handled_total", pipeline="orders-web")
            failed = total(samples, "gkbroad_messages_failed_total", pipeline="orders-web")
            if handled + failed != RECORDS:
                found.append(f"handled {handled} + failed {failed} != {RECORDS}")
            assigned = value(samples, "gkbroad_partitions_assigned", pipeline="orders-web")
            if assigned != PARTITIONS:
                found.append(f"partitions assigned {assigned}")
            for p in range(PARTITIONS):
                labels = {"pipeline": "orders-web", "topic": topic, "partition": str(p)}
                if value(samples, "gkbroad_committed_offset", **labels) != ends[p]:
                    found.append(f"committed offset of partition {p}")
                acked = sum(value(samples, f"gkbroad_messages_{n}_total", **labels) or 0 for n in ("handled", "failed"))
                if acked != ends[p]:
                    found.append(f"partition {p}: {acked} handled and failed, {ends[p]} produced")
            if total(samples, "gkbroad_consumer_lag_messages", pipeline="orders-web") != 0:
                found.append("lag")
            return found

        # The worker that answers refreshes its gauges first; the other one within its interval (1 s).
        wait_until(lambda: not problems(scrape(url)), timeout=10, what="a scrape adding up both workers")
        for _ in range(4):  # the workers take turns answering: each answer holds both
            assert problems(scrape(url)) == []

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        left = sorted(name for name in os.listdir(tmp_path / "multiproc") if name.startswith("gauge_live"))
        assert left == [], f"child_exit did not drop the exited workers' live gauges: {left}"
    finally:
        log_text = stop_process(process, log_path)
    assert log_text.count("[orders-web] stopped in worker") == 2, log_text
