"""/healthz and /readyz of a pipeline on the real broker: the broker going away,
a rebalance stuck on a leader that left (the bundled Tansu's restart stall),
a spare member of a group with more members than partitions, and a stop.

The stall timeout is a few seconds here (60 s by default), so each test takes
seconds, not minutes."""

from __future__ import annotations

import json
import logging
import time

import gevent
import pytest

from gkbroad.testing.broker import LocalBroker
from gkbroad.wsgi import status_app
from tests.helpers.group_support import make_group
from tests.helpers.kafka_helpers import Cluster
from tests.helpers.kafka_options import quick_client
from tests.helpers.pipeline_support import SeenOffsets, kafka_pipeline
from tests.helpers.support import free_port, wait_until

STALL = {"drain_timeout": 1000, "stall_timeout_ms": 5000}


def answer(app, path: str) -> tuple[int, dict | str]:
    """(status code, body: decoded JSON when it is JSON) of a GET on the status app."""
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": path}, start_response))
    code = int(seen["status"].split()[0])
    return code, json.loads(body) if seen["headers"]["Content-Type"] == "application/json" else body.decode()


def pipeline_on(cluster: Cluster, topic: str, group: str, **options):
    pipeline = kafka_pipeline(cluster.bootstrap_servers, group, [topic], context=SeenOffsets(), **{**STALL, **options})
    return pipeline, status_app(pipeline)


def test_broker_down_turns_healthz_red_within_the_stall_timeout_and_back(client_library, report):
    broker = LocalBroker(port=free_port()).start()
    cluster = Cluster(broker.bootstrap_servers)
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 5)
    # A session long enough that the session fence (issue 18) acts after the stall rule this test is about.
    pipeline, app = pipeline_on(
        cluster,
        topic,
        cluster.group_id(),
        client_library=client_library,
        client=quick_client(broker.bootstrap_servers, client_library),
        session_timeout_ms=10000,
    )
    pipeline.start()
    try:
        wait_until(lambda: answer(app, "/readyz")[0] == 200, 60, "readiness")
        assert answer(app, "/healthz") == (200, "ok\n")
        broker.stop()
        down = time.monotonic()
        wait_until(lambda: answer(app, "/healthz")[0] == 503, 15, "/healthz to turn red")
        took = time.monotonic() - down
        code, body = answer(app, "/healthz")
        assert "has reached no Kafka broker for" in body["reason"] and "(stall_timeout 5s)" in body["reason"], body
        assert 5 <= took < 5 + 3, f"red after {took:.1f}s"
        assert answer(app, "/readyz")[0] == 503
        status = pipeline.status()
        assert status["healthy"] is False and status["ready"] is False
        report(f"broker down on {client_library}: /healthz red after {took:.1f}s (stall_timeout 5 s)")
    finally:
        pipeline.stop()
        broker.stop()


def test_a_member_that_never_reaches_a_broker_is_red_within_the_stall_timeout(client_library, caplog):
    port = free_port()  # nothing listens there
    cluster = Cluster(f"127.0.0.1:{port}")
    pipeline, app = pipeline_on(
        cluster,
        "nowhere",
        "nobody",
        client_library=client_library,
        client=quick_client(cluster.bootstrap_servers, client_library),
    )
    caplog.set_level(logging.INFO, logger="gkbroad")
    pipeline.start()
    try:
        wait_until(
            lambda: "cannot reach the Kafka brokers" in caplog.text, 5, "the warning, before the bootstrap gave up"
        )
        assert answer(app, "/readyz")[1]["reason"] == "consumer group 'nobody' is joining (member state unjoined)"
        wait_until(lambda: answer(app, "/healthz")[0] == 503, 10, "/healthz to turn red")
        assert "has reached no Kafka broker" in answer(app, "/healthz")[1]["reason"]
    finally:
        pipeline.stop()


def leader_of(groups):
    """The group (of two members) whose member the coordinator named the leader."""
    wait_until(lambda: all(g.stats()["member_state"] == "stable" for g in groups), 60, "a stable generation")
    for group in groups:
        answers = group._client.join_answers
        if answers.leader == answers.member_id:
            return group
    raise AssertionError("neither member is the leader")


@pytest.mark.long
@pytest.mark.parametrize(
    "client_library",
    [
        "kafka-python",
        pytest.param(
            "librdkafka",
            marks=pytest.mark.skip(
                reason="librdkafka runs the join itself and reports neither the JoinGroup answers (which member "
                "leads) nor a refused SyncGroup, so there is no stand-in join to send"
            ),
        ),
    ],
)
def test_a_rebalance_stuck_on_a_departed_leader_is_not_ready_warned_about_and_ended_by_a_stand_in_join(
    client_library, cluster, caplog, report
):
    topic = cluster.topic(partitions=2)
    cluster.produce(topic, 10)
    group_id = cluster.group_id()
    # The bundled broker's stall: the follower leaves first, then the leader, while the group forms again.
    first = [make_group(cluster, topic, group_id, client_library=client_library, **STALL) for _ in range(2)]
    for group in first:
        group.start()
    leader = leader_of(first)
    follower = next(g for g in first if g is not leader)
    follower.stop(timeout=10)
    leader.stop(timeout=10)

    caplog.set_level(logging.INFO, logger="gkbroad")
    pipeline, app = pipeline_on(cluster, topic, group_id, client_library=client_library)
    readiness = []
    sampler = gevent.spawn(lambda: [readiness.append(answer(app, "/readyz")) or gevent.sleep(0.2) for _ in range(300)])
    pipeline.start()
    begun = time.monotonic()
    try:
        wait_until(lambda: "sending one JoinGroup under that member id" in caplog.text, 20, "the remedy")
        assert "still has no assignment" in caplog.text
        wait_until(lambda: len(pipeline.status()["partitions"]) == 2, 40, "both partitions, after the stand-in join")
        wait_until(lambda: answer(app, "/readyz")[0] == 200, 20, "readiness")
        took = time.monotonic() - begun
        assert any(code == 503 and "is rebalancing" in body["reason"] for code, body in readiness)
        report(f"stuck rebalance on the bundled broker: both partitions and ready {took:.1f}s after the start")
    finally:
        sampler.kill()
        pipeline.stop()


def test_a_spare_member_of_an_oversized_group_is_ready_and_says_why_it_has_no_partition(cluster, client_library):
    topic = cluster.topic(partitions=1)
    group_id = cluster.group_id()
    pipelines = [pipeline_on(cluster, topic, group_id, client_library=client_library) for _ in range(2)]
    for pipeline, _ in pipelines:
        pipeline.start()
    try:
        wait_until(lambda: all(answer(app, "/readyz")[0] == 200 for _, app in pipelines), 60, "both ready")
        reasons = sorted(answer(app, "/readyz")[1]["reason"] for _, app in pipelines)
        assert reasons[0].startswith(f"consumer group '{group_id}' is in generation")
        assert "with no partition assigned: the group has more members than" in reasons[0]
        assert reasons[1] == "ready"
        assert all(answer(app, "/healthz")[0] == 200 for _, app in pipelines)
    finally:
        for pipeline, _ in pipelines:
            pipeline.stop()


def test_a_stopping_member_is_not_ready(cluster, client_library):
    topic = cluster.topic(partitions=1)
    pipeline, app = pipeline_on(cluster, topic, cluster.group_id(), client_library=client_library)
    pipeline.start()
    wait_until(lambda: answer(app, "/readyz")[0] == 200, 60, "readiness")
    stopping = gevent.spawn(pipeline.stop)
    try:
        wait_until(lambda: pipeline.state != "running", 5, "the stop to begin")
        code, body = answer(app, "/readyz")
        assert code == 503 and body["reason"] in ("pipeline is stopping", "pipeline is stopped")
    finally:
        stopping.join(30)
    assert answer(app, "/readyz") == (503, {"ready": False, "reason": "pipeline is stopped"})
