"""Exactly once from Kafka to Kafka, checked from outside: examples/exactly_once.py killed, restarted, joined.

Every test reads the output topic with tests/helpers/committed_reader.py, which
replays the transaction markers itself (the bundled Tansu hands aborted records
to read_committed consumers), and asserts that each input record's output
appears exactly once among the committed records.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gevent

from tests.helpers.committed_reader import CommittedLog, read_committed
from tests.helpers.support import wait_until
from tests.integration.test_faults import fault_seed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exactly_once.py"
PARTITIONS = 4
SLICE = 600  # input records produced while one run works (and is killed)


class Run:
    """One examples/exactly_once.py process."""

    def __init__(self, cluster, names: dict[str, str], log: Path, member: str = "0"):
        self.log = log
        command = [sys.executable, str(EXAMPLE), "--bootstrap-servers", cluster.bootstrap_servers]
        command += ["--input", names["input"], "--output", names["output"], "--group", names["group"]]
        command += ["--member", member]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        self.process.terminate()
        return self.process.wait(timeout)


def committed(cluster, names) -> dict[int, CommittedLog]:
    return read_committed(cluster.bootstrap_servers, names["output"], PARTITIONS)


def outputs(logs: dict[int, CommittedLog]) -> Counter:
    return Counter((key, value) for log in logs.values() for _, key, value in log.records)


def expected_outputs(cluster, names) -> Counter:
    """(key, b"partition:offset") of every input record, read from the input topic's raw log."""
    logs = read_committed(cluster.bootstrap_servers, names["input"], PARTITIONS)
    return Counter((key, b"%d:%d" % (p, offset)) for p, log in logs.items() for offset, key, _ in log.records)


def caught_up(cluster, names, produced: int) -> bool:
    return sum(outputs(committed(cluster, names)).values()) >= produced


def produce_slowly(cluster, topic: str, count: int, first: int, seconds: float) -> None:
    """Produce `count` records over about `seconds`, keyed k<first>.., so that a run is busy when killed."""
    steps = 10
    for step in range(steps):
        part = count // steps
        cluster.produce(topic, part, value=lambda i, base=first + step * part: b"v%d" % (base + i))
        gevent.sleep(seconds / steps)


def assert_exactly_once(cluster, names, produced: int) -> dict[int, CommittedLog]:
    logs = committed(cluster, names)
    seen, expected = outputs(logs), expected_outputs(cluster, names)
    assert sum(expected.values()) == produced
    twice = {record: n for record, n in seen.items() if n > 1}
    assert not twice, f"{len(twice)} outputs committed more than once, e.g. {list(twice.items())[:5]}"
    assert seen == expected, (
        f"missing {list((expected - seen).elements())[:5]}, unexpected {list((seen - expected).elements())[:5]}"
    )
    assert all(log.open_records == 0 for log in logs.values()), "a transaction was left open"
    return logs


def _names(cluster) -> dict[str, str]:
    names = {"input": cluster.topic(PARTITIONS, prefix="eos-in"), "output": cluster.topic(PARTITIONS, prefix="eos-out")}
    names["group"] = cluster.group_id()
    return names


def test_sigkill_at_random_instants_keeps_every_output_exactly_once(cluster, tmp_path, report):
    """SIGKILL the example while records flow in, at least 3 times, until a kill left a transaction
    open (the restart aborts it); the committed outputs hold each input exactly once."""
    seed = fault_seed(report)
    rng = random.Random(seed)
    names = _names(cluster)
    produced, kills, runs = 0, 0, []
    try:
        while kills < 3 or (kills < 8 and not any(log.aborted_transactions for log in committed(cluster, names).values())):
            runs.append(Run(cluster, names, tmp_path / f"run{kills}.log"))
            cluster.produce(names["input"], 20, value=lambda i, base=produced: b"v%d" % (base + i))
            produced += 20
            wait_until(lambda n=produced: caught_up(cluster, names, n), 60, f"run {kills} to catch up", 0.2)
            feeder = gevent.spawn(produce_slowly, cluster, names["input"], SLICE, produced, 1.0)
            gevent.sleep(rng.uniform(0.2, 0.9))
            runs[-1].kill()
            feeder.join()
            produced += SLICE
            kills += 1
        last = Run(cluster, names, tmp_path / "final.log")
        runs.append(last)
        wait_until(lambda: caught_up(cluster, names, produced), 90, "the last run to write every output", 0.3)
        assert last.terminate() == 0
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.kill()
    logs = assert_exactly_once(cluster, names, produced)
    aborted = sum(log.aborted_transactions for log in logs.values())
    aborted_records = sum(log.aborted_records for log in logs.values())
    assert aborted, f"none of the {kills} kills (seed {seed}) left a transaction to abort: the test proved nothing"
    report(
        f"exactly once under SIGKILL: {produced} records, {kills} kills (seed {seed}), {aborted} aborted "
        f"transaction(s) with {aborted_records} records hidden, "
        f"{sum(log.committed_transactions for log in logs.values())} committed"
    )


def test_a_member_joining_and_leaving_midway_keeps_every_output_exactly_once(cluster, tmp_path, report):
    names = _names(cluster)
    first = Run(cluster, names, tmp_path / "member0.log", member="0")
    second = None
    try:
        cluster.produce(names["input"], 200)
        produced = 200
        wait_until(lambda: caught_up(cluster, names, produced), 60, "the first member to catch up", 0.2)
        feeder = gevent.spawn(produce_slowly, cluster, names["input"], 1000, produced, 4.0)
        second = Run(cluster, names, tmp_path / "member1.log", member="1")
        feeder.join()
        produced += 1000
        wait_until(lambda: caught_up(cluster, names, produced), 60, "both members to catch up", 0.2)
        feeder = gevent.spawn(produce_slowly, cluster, names["input"], 600, produced, 1.0)
        assert second.terminate() == 0  # it leaves while records flow in
        feeder.join()
        produced += 600
        wait_until(lambda: caught_up(cluster, names, produced), 60, "the first member to write the rest", 0.2)
        assert first.terminate() == 0
    finally:
        for run in (first, second):
            if run is not None and run.process.poll() is None:
                run.kill()
    logs = assert_exactly_once(cluster, names, produced)
    both = (tmp_path / "member1.log").read_text()
    assert "assigned" in both or "Updated partition assignment" in both, "the second member never got partitions"
    report(f"exactly once across a join and a leave: {produced} records, {sum(len(log.records) for log in logs.values())} outputs")
