"""Two processes in one consumer group split the partitions and together handle every record."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter

import pytest

from tests.helpers.kafka_helpers import committed_offsets, create_topic, end_offsets, produce, unique_name
from tests.helpers.support import start_module, wait_until

MEMBER = "tests.helpers.group_member"
PARTITIONS = 8
RECORDS = 4000


class MemberProcess:
    def __init__(self, bootstrap, topic, group, path, assignor, client_library):
        self.path = path
        self.process = start_module(MEMBER, bootstrap, topic, group, str(path), assignor, client_library)

    def lines(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        return [line.split() for line in self.path.read_text().splitlines()]

    def assigned(self) -> set[int]:
        owned = set()
        for line in self.lines():
            if line[0] == "start":
                owned.add(int(line[1]))
            elif line[0] == "stop":
                owned.discard(int(line[1]))
        return owned

    def handled(self) -> list[tuple[int, int]]:
        return [(int(line[1]), int(line[2])) for line in self.lines() if line[0] == "handled"]

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(45)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.mark.long
@pytest.mark.parametrize(
    ("client_library", "assignor"),
    [("kafka-python", "cooperative-sticky"), ("kafka-python", "range"), ("librdkafka", "cooperative-sticky")],
)
def test_two_members_split_partitions_and_handle_everything(
    bootstrap_servers, tmp_path, client_library, assignor, report
):
    topic = create_topic(bootstrap_servers, unique_name("two"), PARTITIONS)
    group = unique_name("two-group")
    members = [
        MemberProcess(bootstrap_servers, topic, group, tmp_path / f"member{i}.log", assignor, client_library)
        for i in range(2)
    ]
    try:
        wait_until(
            lambda: (
                all(m.assigned() for m in members)
                and set().union(*(m.assigned() for m in members)) == set(range(PARTITIONS))
            ),
            90,
            "both members to own partitions",
        )
        split = [sorted(m.assigned()) for m in members]
        assert not set(split[0]) & set(split[1]), f"a partition is owned twice: {split}"
        produce(bootstrap_servers, topic, RECORDS)
        ends = end_offsets(bootstrap_servers, topic, PARTITIONS)
        wait_until(lambda: len({h for m in members for h in m.handled()}) >= RECORDS, 90, "every record handled")
        started = time.monotonic()
        codes = [m.terminate() for m in members]
        stop_seconds = time.monotonic() - started
    finally:
        for m in members:
            if m.process.poll() is None:
                m.process.kill()
    assert codes == [0, 0]
    assert all(m.lines()[-1] == ["exit", "clean"] for m in members)
    handled = Counter(h for m in members for h in m.handled())
    assert set(handled) == {(p, o) for p, end in ends.items() for o in range(end)}
    duplicates = sum(count - 1 for count in handled.values())
    assert committed_offsets(bootstrap_servers, group, topic) == ends
    report(
        f"two processes ({client_library}, {assignor}): split {split}, {RECORDS} records, {duplicates} handled twice, "
        f"both stopped cleanly in {stop_seconds:.1f}s"
    )
