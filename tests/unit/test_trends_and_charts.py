"""The 15-minute samples of the status page: the ring buffer, the lag trend, the SVG charts, and
/status.json carrying the samples of a running pipeline."""

from __future__ import annotations

import json

import gevent

import gkbroad
from gkbroad import testing
from gkbroad.observability import Trends
from gkbroad.observability.trends import lag_trend
from gkbroad.wsgi import status_app
from gkbroad.wsgi.charts import CHARTS, render_charts
from tests.helpers.support import wait_until
from tests.unit.test_wsgi_status import call


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def status(handled, failed, lags):
    partitions = [{"topic": "t", "partition": p, "lag": lag} for p, lag in enumerate(lags)]
    return {"counters": {"handled": handled, "failed": failed}, "partitions": partitions}


def test_samples_are_rates_since_the_previous_sample_and_the_ring_keeps_the_newest():
    clock = Clock()
    trends = Trends(interval=5, capacity=3, clock=clock)
    for step in range(1, 6):
        clock.now += 5
        trends.sample(status(handled=100 * step, failed=step, lags=[10 * step, None]))
    samples = trends.samples()
    assert [s["time"] for s in samples] == [1015.0, 1020.0, 1025.0]
    assert [s["handled_per_second"] for s in samples] == [20.0, 20.0, 20.0]
    assert [s["failed_per_second"] for s in samples] == [0.2, 0.2, 0.2]
    assert [s["lag"] for s in samples] == [30, 40, 50]  # the partition without a known lag is left out


def test_a_partition_lag_is_compared_with_its_lag_about_a_minute_ago():
    clock = Clock()
    trends = Trends(interval=5, clock=clock)
    for lag in range(20):  # 100 s of samples: the oldest kept is the one 60 s back
        clock.now += 5
        trends.sample(status(0, 0, [lag, 7]))
    assert trends.lag_before("t", 0) == 7
    assert lag_trend(19, trends.lag_before("t", 0)) == "rising"
    assert lag_trend(3, 7) == "falling" and lag_trend(7, 7) == "steady"
    assert lag_trend(None, 7) is None and trends.lag_before("t", 5) is None


def test_the_charts_draw_one_line_per_series_and_wait_for_two_samples():
    one = {"interval": 5, "samples": [{"time": 1.0, "handled_per_second": 3.0, "failed_per_second": 0.0, "lag": 4}]}
    assert render_charts(one).count("waiting for samples") == len(CHARTS)
    samples = [
        {"time": 1.0 + 5 * i, "handled_per_second": 10.0 * i, "failed_per_second": 0.0, "lag": 50 - i} for i in range(6)
    ]
    page = render_charts({"interval": 5, "samples": samples})
    assert page.count("<polyline") == len(CHARTS)
    for _, _, colour in CHARTS:
        assert f'stroke="{colour}"' in page
    assert "50 now, 50 max" in page  # handled/s: the newest value is the largest
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


class Passing(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        return message


def test_status_json_and_the_page_carry_the_samples_of_a_running_pipeline():
    pipeline = Passing(name="trends-test", producer={"module": testing.DummyProducer}, processors={"default": {}})
    pipeline.hooks.find(Trends).interval = 0.05
    pipeline.start()
    try:
        app = status_app(pipeline)
        for _ in range(4):
            testing.wait_for_ack(pipeline, testing.test_batch(pipeline, list(range(50))))
            gevent.sleep(0.05)
        wait_until(lambda: len(json.loads(call(app, "/status.json")[2])["trends"]["samples"]) >= 3, 5, "3 samples")
        trends = json.loads(call(app, "/status.json")[2])["trends"]
        page = call(app, "/")[2].decode()
    finally:
        pipeline.stop()
    assert trends["interval"] == 0.05
    assert sum(s["handled_per_second"] for s in trends["samples"]) > 0
    assert page.count("<polyline") == 2  # throughput and failures; no partition, so no lag
    assert "total lag: not known" in page
