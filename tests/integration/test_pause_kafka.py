"""A handler pauses its partition (gkbroad.PausePartition), against the real broker.

What is checked: nothing of the paused partition is handled during the pause while the others go
on; afterwards it resumes at the record that paused it, in offset order, nothing lost or doubled,
and everything is committed; the pause shows on /status.json and the status page with its reason
and end, and Pipeline.resume_partition ends one early.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import gevent

import gkbroad
from gkbroad.kafka import Producer
from gkbroad.wsgi import status_app
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until

PER_PARTITION = 30


def get(app, path):
    """The body of one GET of the WSGI app, as text."""
    return b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": ""}, lambda *_: None)).decode()


class Pausing(gkbroad.Pipeline):
    """Handles slowly; the first time it meets context["at"] = (partition, offset) it pauses that
    partition for context["seconds"]. Records (offset, monotonic time) of each handled record."""

    def handle_message(self, processor, message, context):
        record = message.data
        if (record.partition, record.offset) == context["at"] and not context["paused_at"]:
            context["paused_at"] = time.monotonic()
            raise gkbroad.PausePartition(context["seconds"], context["reason"])
        gevent.sleep(context["delay"])
        context["handled"][record.partition].append((record.offset, time.monotonic()))
        return message


def pausing_pipeline(cluster, group, topic, context, client_library="kafka-python"):
    options = producer_options(cluster.bootstrap_servers, group, [topic], client_library=client_library)
    return Pausing(
        name=f"pause-{group}",
        producer={"module": (Producer, options)},
        processors={"default": {"concurrency": 4, "max_demand": 2}},
        context=context,
        shutdown_timeout=20000,
    )


def context_for(at, seconds, reason, delay):
    return {"at": at, "seconds": seconds, "reason": reason, "delay": delay, "paused_at": None,
            "handled": defaultdict(list)}  # fmt: skip


def test_a_handler_pauses_partition_3_for_5_s_while_the_others_flow(client_library, cluster):
    topic, group = cluster.topic(partitions=4), cluster.group_id()
    cluster.produce(topic, 4 * PER_PARTITION, partitions=4)
    context = context_for((3, 2), 5.0, "downstream answered 429", delay=0.1)
    pipeline = pausing_pipeline(cluster, group, topic, context, client_library)
    pipeline.start()
    try:
        wait_until(lambda: len(context["handled"][3]) == PER_PARTITION, 60, "partition 3 to finish after its pause")
        wait_until(lambda: cluster.committed(group, topic) == dict.fromkeys(range(4), PER_PARTITION), 30, "commits")
    finally:
        assert pipeline.stop()
    paused_at, handled = context["paused_at"], context["handled"]
    assert [offset for offset, _ in handled[3]] == list(range(PER_PARTITION))  # from the paused record, in order
    resumed = [when for offset, when in handled[3] if offset >= 2]
    assert min(resumed) >= paused_at + 5.0 - 0.05, "a record of partition 3 was handled during its pause"
    during = [when for p in (0, 1, 2) for _, when in handled[p] if paused_at < when < paused_at + 5.0]
    assert len(during) >= 10, "the other partitions did not flow during the pause"
    for partition in (0, 1, 2):
        assert [offset for offset, _ in handled[partition]] == list(range(PER_PARTITION))


def test_a_pause_until_resumed_shows_on_the_status_and_resume_partition_ends_it(client_library, cluster):
    topic, group = cluster.topic(partitions=2), cluster.group_id()
    cluster.produce(topic, 10, partitions=2)
    context = context_for((0, 1), None, "maintenance window", delay=0.0)
    pipeline = pausing_pipeline(cluster, group, topic, context, client_library)
    app = status_app(pipeline)
    pipeline.start()
    try:
        wait_until(lambda: len(context["handled"][1]) == 5, 60, "partition 1 to be handled")
        wait_until(lambda: context["paused_at"] is not None, 30, "the pause")
        rows = {row["partition"]: row for row in json.loads(get(app, "/status.json"))["partitions"]}
        assert rows[0]["pause"] == {"until": None, "reason": "maintenance window"}
        assert rows[1]["pause"] is None
        assert "by a handler until resumed: maintenance window" in get(app, "/")
        time.sleep(1.0)
        assert [offset for offset, _ in context["handled"][0]] == [0]  # still paused
        assert pipeline.resume_partition(topic, 0)
        assert not pipeline.resume_partition(topic, 1)  # not paused
        wait_until(lambda: len(context["handled"][0]) == 5, 30, "partition 0 after the resume")
    finally:
        assert pipeline.stop()
    assert [offset for offset, _ in context["handled"][0]] == list(range(5))
