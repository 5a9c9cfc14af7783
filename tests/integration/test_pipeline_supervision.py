"""A Kafka pipeline whose consumer group's poll loop or committer dies: the
pipeline notices, fails, stops within its shutdown timeout, and commits
nothing past an unacknowledged offset."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.event import Event

from tests.helpers.group_support import break_the_poll_loop, kill_a_committer
from tests.helpers.pipeline_support import OffsetRecordingPipeline, SeenOffsets, kafka_pipeline
from tests.helpers.support import wait_until

HELD_OFFSET = 25  # its handler never returns: nothing from here on may be committed
SHUTDOWN_TIMEOUT = 8.0


class HoldingPipeline(OffsetRecordingPipeline):
    """Records like OffsetRecordingPipeline, but the handler of HELD_OFFSET waits forever."""

    never = Event()
    holding = Event()

    def handle_message(self, processor, message, context):
        if message.data.offset == HELD_OFFSET:
            self.holding.set()
            self.never.wait()
        return super().handle_message(processor, message, context)


@pytest.mark.long
@pytest.mark.parametrize("breaking", [break_the_poll_loop, kill_a_committer], ids=["poll loop", "committer"])
def test_a_dead_group_greenlet_fails_and_stops_the_pipeline(cluster, client_library, breaking, report):
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 40)
    group_id = cluster.group_id()
    pipeline = kafka_pipeline(
        cluster.bootstrap_servers,
        group_id,
        [topic],
        context=SeenOffsets(),
        cls=HoldingPipeline,
        drain_timeout=3000,
        client_library=client_library,
    )
    pipeline.options["shutdown_timeout"] = int(SHUTDOWN_TIMEOUT * 1000)
    HoldingPipeline.holding.clear()
    pipeline.start()
    try:
        wait_until(HoldingPipeline.holding.is_set, 60, "the handler of the held offset")
        # Acks go per processor chunk, so the commit stops at the start of the held record's chunk.
        wait_until(lambda: cluster.committed(group_id, topic).get(0, 0) > 0, 60, "a commit", interval=0.2)
        gevent.sleep(1.5)  # nothing below the hold is still on its way
        committed = cluster.committed(group_id, topic)
        assert committed[0] <= HELD_OFFSET
        group = pipeline.services[0]
        broken_at = time.monotonic()
        breaking(group)
        wait_until(lambda: pipeline.failure is not None, 15, "the pipeline to notice")
        assert "died" in pipeline.failure
        assert pipeline.join(timeout=SHUTDOWN_TIMEOUT + 5), "the pipeline did not stop within its shutdown timeout"
        took = time.monotonic() - broken_at
    finally:
        if pipeline.running:
            gevent.spawn(pipeline.stop, 1).join(5)
    report(
        f"pipeline supervision ({client_library}, {breaking.__name__}): failed and stopped {took:.1f}s after the break"
    )
    assert not pipeline.running
    assert pipeline.stop() is False
    assert cluster.committed(group_id, topic) == committed
