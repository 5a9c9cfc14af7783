"""The status page and a trace, rendered by a real browser (headless Chromium) while records flow.

The status page test fails when its charts are empty: the screenshot must hold pixels of each
chart's line colour. The trace test draws the spans of one record (producer, consumer, the
handler's own span, the batch) as a waterfall. With GKBROAD_UPDATE_SCREENSHOTS=1 both PNGs are
copied to docs/images/ for the "Metrics and tracing" guide.
"""

from __future__ import annotations

import os
import shutil

import gevent
from opentelemetry import trace

import gkbroad
from gkbroad.kafka import Producer
from gkbroad.observability import Trends
from gkbroad.wsgi import serve, status_app
from gkbroad.wsgi.charts import CHARTS
from tests.helpers.browser import pixels_near, read_png, screenshot
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import ROOT, wait_until
from tests.helpers.trace_view import BAR, render_trace
from tests.helpers.tracing_support import producer_headers, span_exporter
from tests.integration.test_dead_letters_and_retries_kafka import produce_records

RECORDS = 2400
PARTITIONS = 3
DOCS_IMAGES = ROOT / "docs" / "images"


def keep_for_docs(path, name):
    if os.environ.get("GKBROAD_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / name)


class Throttled(gkbroad.Pipeline):
    """A few milliseconds per record, so the run lasts seconds and the lag is seen going down;
    every 40th record fails."""

    def handle_message(self, processor, message, context):
        gevent.sleep(0.004)
        if message.data.offset % 40 == 0:
            return message.failed("every 40th record fails")
        return message


def test_the_status_page_draws_its_charts_while_records_flow(cluster, tmp_path):
    topic = cluster.topic(PARTITIONS, prefix="page")
    cluster.produce(topic, RECORDS, PARTITIONS)
    pipeline = Throttled(
        name="orders",
        producer={"module": (Producer, producer_options(cluster.bootstrap_servers, cluster.group_id("page"), [topic]))},
        processors={"default": {"concurrency": 2}},
    )
    pipeline.hooks.find(Trends).interval = 0.25
    server = serve(status_app(pipeline))
    pipeline.start()
    try:

        def flowing() -> bool:
            samples = pipeline.status()["trends"]["samples"]
            moving = [s for s in samples if s["handled_per_second"] > 0 and s["lag"]]
            return len(moving) >= 8 and any(s["failed_per_second"] > 0 for s in samples)

        wait_until(flowing, timeout=60, what="8 samples of records flowing with a lag, and a failure", interval=0.1)
        shot = screenshot(f"http://127.0.0.1:{server.server_port}/", tmp_path / "status-page.png", height=700)
    finally:
        pipeline.stop()
        server.stop()
    _, _, rows = read_png(shot)
    for field, title, colour in CHARTS:
        assert pixels_near(rows, colour) > 40, f"the {title} chart ({field}) is empty in the screenshot"
    keep_for_docs(shot, "status-page.png")


class TracedBatches(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        with trace.get_tracer("tests.handler").start_as_current_span("GET /inventory (instrumented client)"):
            gevent.sleep(0.01)
        return message

    def handle_batch(self, batcher, messages, batch_info, context):
        gevent.sleep(0.005)
        return messages


def test_a_trace_across_kafka_as_a_waterfall(cluster, tmp_path):
    exporter = span_exporter()
    topic, group = cluster.topic(1, prefix="trace-shot"), cluster.group_id("trace-shot")
    sent = [producer_headers(f"send {topic}") for _ in range(3)]
    produce_records(cluster.bootstrap_servers, topic, [(0, None, b"order", headers) for _, headers in sent])
    pipeline = TracedBatches(
        name="orders",
        producer={"module": (Producer, producer_options(cluster.bootstrap_servers, group, [topic]))},
        processors={"default": {"concurrency": 1}},
        batchers={"default": {"batch_size": 3, "batch_timeout": 200}},
        tracing=True,
    )
    pipeline.start()
    try:
        wait_until(lambda: cluster.committed(group, topic) == {0: 3}, 60, "the 3 records committed", interval=0.2)
    finally:
        pipeline.stop()
    spans = exporter.get_finished_spans()
    first = sent[0][0]
    batch = next(s for s in spans if s.name == "process default")
    in_trace = [s for s in spans if s.context.trace_id == first.trace_id]
    assert {s.name for s in in_trace} == {f"send {topic}", f"process {topic}", "GET /inventory (instrumented client)"}
    page = tmp_path / "trace.html"
    page.write_text(render_trace([*in_trace, batch], f"One record of {topic}, and the batch linked to it"))
    shot = screenshot(page.as_uri(), tmp_path / "trace.png", width=1000, height=260)
    _, _, rows = read_png(shot)
    assert pixels_near(rows, BAR, tolerance=10) > 200, "the trace's bars are missing from the screenshot"
    keep_for_docs(shot, "trace.png")
