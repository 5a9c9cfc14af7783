"""A consumer group whose poll loop or committer dies: reported once, and the
stop still commits exactly what was acknowledged and leaves the group."""

from __future__ import annotations

import gevent
import pytest

from tests.helpers.group_support import Consumer, break_the_poll_loop, kill_a_committer, make_group
from tests.helpers.support import wait_until


@pytest.mark.long
@pytest.mark.parametrize("breaking", [break_the_poll_loop, kill_a_committer], ids=["poll loop", "committer"])
def test_a_dead_greenlet_is_reported_and_the_stop_commits_only_what_was_acknowledged(cluster, client_library, breaking):
    topic = cluster.topic(partitions=1)
    cluster.produce(topic, 20)
    group_id = cluster.group_id()
    group = make_group(cluster, topic, group_id, client_library=client_library)
    reports = []
    group.supervise(reports.append)
    group.start()
    try:
        consumer = Consumer(group, ack=False)
        consumer.run_until(20, timeout=60)
        group.ack(consumer.unacked[:7])  # offset 7 and above never acknowledged
        wait_until(lambda: cluster.committed(group_id, topic) == {0: 7}, 60, "the commit of 0..6", interval=0.2)
        group.ack(consumer.unacked[8:13:2])  # 8, 10, 12: above the gap at 7, not committable
        breaking(group)
        wait_until(lambda: reports, 15, "the report")
        gevent.sleep(0.5)
    finally:
        clean = group.stop(timeout=6)
    assert len(reports) == 1 and "died" in reports[0]
    assert clean is False
    assert cluster.committed(group_id, topic) == {0: 7}
    # It left the group: a new member gets the partition at once and starts at 7.
    successor = make_group(cluster, topic, group_id, client_library=client_library)
    successor.start()
    try:
        again = Consumer(successor)
        again.run_until(13, timeout=60)
        assert again.seen[0] == list(range(7, 20))
    finally:
        successor.stop(timeout=15)
