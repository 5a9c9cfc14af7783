"""The status WSGI app and middleware, called as a WSGI server would call them, and the health rules."""

from __future__ import annotations

import json
import subprocess
import sys

import gevent
import pytest
from gevent.event import Event

import gkbroad
from gkbroad import testing
from gkbroad.wsgi import StatusMiddleware, status_app
from tests.helpers.engine_support import stage_greenlet
from tests.helpers.support import wait_until


class Waiting(gkbroad.Pipeline):
    """handle_message waits for context["release"] when the data says so."""

    def handle_message(self, processor, message, context):
        if message.data == "wait":
            context["release"].wait()
        return message


class GroupLike:
    """A service with the stats() shape of gkbroad.kafka.ConsumerGroup."""

    def __init__(self, last_poll_age=0.5, rebalance_timeout=300.0):
        self.last_poll_age = last_poll_age
        self.rebalance_timeout = rebalance_timeout
        self.member_state = "stable"
        self.unstable_for = None
        self.unreachable_for = None
        self.stopping = False
        self.assigned = True

    def start(self):
        pass

    def stop(self, timeout):
        return True

    def stats(self):
        partition = {
            "buffered": 3,
            "pending": 2,
            "committed": 40,
            "position": 45,
            "highwater": 50,
            "lag": 10,
            "paused": False,
            "epoch": 1,
            "client": {"sasl_plain_password": "hunter2"},
        }
        partitions = {("orders", 0): partition, ("<b>orders</b>", 1): {**partition, "lag": None}}
        return {
            "group": "orders",
            "assigned": list(partitions) if self.assigned else [],
            "partitions": partitions if self.assigned else {},
            "failure": None,
            "last_poll_age": self.last_poll_age,
            "rebalance_timeout": self.rebalance_timeout,
            "member_state": self.member_state,
            "generation": 3,
            "unstable_for": self.unstable_for,
            "unreachable_for": self.unreachable_for,
            "stall_timeout": 60.0,
            "stopping": self.stopping,
        }


def call(app, path, method="GET", script_name=""):
    """(status, headers, body) of one request."""
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": script_name}, start_response))
    return answer["status"], answer["headers"], body


@pytest.fixture
def pipeline():
    built = Waiting(
        name="status-test",
        producer={"module": testing.DummyProducer},
        processors={"default": {"concurrency": 3}},
        context={"release": Event()},
        stuck_handler_timeout=1,
    )
    yield built
    built.options["context"]["release"].set()
    if built.running:
        built.stop()


def test_healthz_follows_the_pipeline_lifecycle(pipeline):
    app = status_app(pipeline)
    status, headers, body = call(app, "/healthz")
    assert status.startswith("503") and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"healthy": False, "reason": "pipeline is created"}
    assert body.count(b"\n") == 1

    pipeline.start()
    assert call(app, "/healthz")[::2] == ("200 OK", b"ok\n")
    pipeline.stop()
    status, _, body = call(app, "/healthz")
    assert status.startswith("503") and json.loads(body)["reason"] == "pipeline is stopped"


def test_healthz_fails_while_the_pipeline_reports_a_failure(pipeline):
    pipeline.start()
    gevent.sleep(0.01)  # the stages are running
    stage_greenlet(pipeline, "processor.0").kill(RuntimeError("boom"), block=True)  # a bug kills a stage
    status, _, body = call(status_app(pipeline), "/healthz")
    assert status.startswith("503")
    assert json.loads(body)["reason"] == f"pipeline failed: {pipeline.failure}"
    assert "status-test.processor.0" in pipeline.failure and "boom" in pipeline.failure


def test_healthz_fails_while_a_handler_call_runs_past_stuck_handler_timeout(pipeline):
    app = status_app(pipeline)
    pipeline.start()
    testing.test_message(pipeline, "wait")
    wait_until(lambda: call(app, "/healthz")[0].startswith("503"), timeout=10, what="the stuck handler rule")
    reason = json.loads(call(app, "/healthz")[2])["reason"]
    assert "a handler call has been running for" in reason and "stuck_handler_timeout 1s" in reason
    assert json.loads(call(app, "/status.json")[2])["longest_handler_call"] >= 1

    pipeline.options["context"]["release"].set()
    wait_until(lambda: call(app, "/healthz")[0] == "200 OK", what="health after the handler returned")


def test_healthz_fails_when_the_poll_loop_is_older_than_the_rebalance_timeout(pipeline):
    group = GroupLike()
    pipeline.services.append(group)
    pipeline.start()
    app = status_app(pipeline)
    assert call(app, "/healthz")[0] == "200 OK"
    group.last_poll_age = 301.0
    status, _, body = call(app, "/healthz")
    assert status.startswith("503")
    assert json.loads(body)["reason"] == (
        "consumer group 'orders' has not completed a poll for 301s (rebalance timeout 300s)"
    )


def test_healthz_fails_when_the_member_stalls_out_of_a_stable_generation_or_without_a_broker(pipeline):
    group = GroupLike()
    pipeline.services.append(group)
    pipeline.start()
    app = status_app(pipeline)
    group.member_state, group.unstable_for = "rebalancing", 59.0
    assert call(app, "/healthz")[0] == "200 OK", "within stall_timeout a rebalance is normal"
    group.unstable_for = 61.0
    status, _, body = call(app, "/healthz")
    assert status.startswith("503")
    assert json.loads(body)["reason"] == (
        "consumer group 'orders' has not been in a stable generation for 61s (member state rebalancing, "
        "stall_timeout 60s)"
    )
    group.member_state, group.unstable_for, group.unreachable_for = "stable", None, 75.0
    assert json.loads(call(app, "/healthz")[2])["reason"] == (
        "consumer group 'orders' has reached no Kafka broker for 75s (stall_timeout 60s)"
    )
    status = json.loads(call(app, "/status.json")[2])
    assert status["healthy"] is False and "no Kafka broker" in status["unhealthy_reason"]
    assert status["groups"] == [
        {
            "group": "orders",
            "member_state": "stable",
            "generation": 3,
            "unstable_for": None,
            "unreachable_for": 75.0,
            "stall_timeout": 60.0,
        }
    ]


def readyz(app):
    status, headers, body = call(app, "/readyz")
    assert headers["Content-Type"] == "application/json" and body.count(b"\n") == 1
    answer = json.loads(body)
    assert answer["ready"] is status.startswith("200")
    return answer["ready"], answer["reason"]


def test_readyz_is_ready_in_a_stable_generation_while_polling_and_says_why_a_spare_has_no_partitions(pipeline):
    app = status_app(pipeline)
    assert readyz(app) == (False, "pipeline is created")
    group = GroupLike()
    pipeline.services.append(group)
    pipeline.start()
    assert readyz(app) == (True, "ready")

    group.member_state = "unjoined"
    assert readyz(app) == (False, "consumer group 'orders' is joining (member state unjoined)")
    group.member_state = "rebalancing"
    assert readyz(app) == (False, "consumer group 'orders' is rebalancing (member state rebalancing)")
    group.member_state, group.last_poll_age = "stable", 12.0
    assert readyz(app) == (False, "consumer group 'orders' is not polling (last poll 12s ago)")

    group.last_poll_age, group.assigned = 0.1, False
    ready, reason = readyz(app)
    assert ready and "generation 3 with no partition assigned: the group has more members than" in reason
    status = json.loads(call(app, "/status.json")[2])
    assert status["ready"] is True and status["readiness"] == reason

    group.stopping = True
    assert readyz(app) == (False, "consumer group 'orders' is stopping")
    pipeline.stop()
    assert readyz(app) == (False, "pipeline is stopped")


def test_status_json_shows_partitions_counters_and_no_client_setting(pipeline):
    pipeline.services.append(GroupLike())
    pipeline.start()
    testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["a", "b", "c"]))
    status, headers, body = call(status_app(pipeline), "/status.json")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert b"hunter2" not in body and b"sasl" not in body
    data = json.loads(body)
    assert (data["name"], data["state"]) == ("status-test", "running")
    assert data["counters"] == {"handled": 3, "failed": 0, "batches": 0, "hub_blocked": 0}
    assert data["concurrency"] == {"producers": 1, "processors.default": 3}
    assert [p["name"] for p in data["producers"]] == ["status-test.producer.0"]
    assert data["partitions"][1] == {
        "topic": "orders",
        "partition": 0,
        "committed": 40,
        "end_offset": 50,
        "lag": 10,
        "buffered": 3,
        "in_flight": 2,
        "paused": False,
        "pause": None,
        "epoch": 1,
        "lag_trend": None,  # no sample taken yet
    }


def test_the_page_names_every_partition_escapes_and_refreshes(pipeline):
    pipeline.services.append(GroupLike())
    pipeline.start()
    status, headers, body = call(status_app(pipeline), "/")
    page = body.decode()
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "<td>orders-0</td>" in page and "&lt;b&gt;orders&lt;/b&gt;-1" in page and "<b>orders" not in page
    assert '<meta http-equiv="refresh"' in page and "<script" not in page and "http" not in page.split("refresh")[1]
    assert 'style="width:100.0%"' in page, "the largest lag is a full bar"


def test_other_methods_and_paths(pipeline):
    app = status_app(pipeline)
    assert call(app, "/nope")[0].startswith("404")
    assert call(app, "/healthz", method="POST")[0].startswith("405")
    status, headers, body = call(app, "/status.json", method="HEAD")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 0


def test_middleware_mounts_the_status_app_under_its_prefix(pipeline):
    def own_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"own {environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()]

    app = StatusMiddleware(own_app, pipeline)
    pipeline.start()
    assert call(app, "/orders/1")[2] == b"own |/orders/1"
    assert call(app, "/_gkbroadx")[2] == b"own |/_gkbroadx"
    assert call(app, "/_gkbroad/healthz")[2] == b"ok\n"
    assert json.loads(call(app, "/_gkbroad/status.json")[2])["name"] == "status-test"
    status, headers, _ = call(app, "/_gkbroad", script_name="/shop")
    assert status.startswith("301") and headers["Location"] == "/shop/_gkbroad/"
    assert call(app, "/_gkbroad/")[0] == "200 OK"
    with pytest.raises(ValueError, match="prefix"):
        StatusMiddleware(own_app, pipeline, prefix="status/")


def test_the_pages_answer_while_handlers_block(pipeline):
    pipeline.start()
    for _ in range(3):
        testing.test_message(pipeline, "wait")
    app = status_app(pipeline)
    wait_until(lambda: json.loads(call(app, "/status.json")[2])["in_flight"] == 3, what="3 blocked handlers")
    with gevent.Timeout(1):
        assert call(app, "/healthz")[0] == "200 OK"
        assert "in flight 3" in call(app, "/")[2].decode()


def test_the_wsgi_modules_do_not_import_kafka():
    """A gunicorn master imports gkbroad.wsgi.gunicorn from its config: that must not import kafka."""
    code = "import sys, gkbroad.wsgi, gkbroad.wsgi.gunicorn; print(sorted(m for m in sys.modules if m.startswith('kafka')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_exactly_once_writer_shows_its_transactions_on_the_page_and_in_status_json(pipeline):
    from gkbroad.kafka.transactions import Transactions
    from tests.helpers.fake_kafka import FakeTransactionalProducer

    writer = Transactions(FakeTransactionalProducer(), "orders-0", 1.0)
    writer.committed, writer.aborted, writer.last_duration = 7, 1, 0.012
    pipeline.services.append(writer)
    pipeline.start()
    app = status_app(pipeline)
    status = json.loads(call(app, "/status.json")[2])
    assert status["transactions"] == [
        {
            "transactional_id": "orders-0",
            "state": "new",
            "committed": 7,
            "aborted": 1,
            "offset_only": 0,
            "seconds": 0.0,
            "last_duration": 0.012,
            "staged_records": 0,
        }
    ]
    page = call(app, "/")[2].decode()
    assert "transactional_id orders-0: new, 7 transactions committed, 1 aborted" in page
    assert "last took 12 ms" in page
