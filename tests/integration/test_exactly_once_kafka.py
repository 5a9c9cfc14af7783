"""Exactly once from Kafka to Kafka, checked from outside: examples/exactly_once.py killed, restarted, joined.

Every test reads the output topic with tests/helpers/committed_reader.py, which
replays the transaction markers itself (the bundled Tansu hands aborted records
to read_committed consumers), and asserts that each input record's output
appears exactly once among the committed records.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import gevent
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

import gkbroad
from gkbroad.kafka import Producer, add_output
from gkbroad.observability.prometheus import exposition
from tests.helpers.committed_reader import CommittedLog, read_committed
from tests.helpers.kafka_options import producer_options
from tests.helpers.support import wait_until
from tests.integration.test_faults import fault_seed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exactly_once.py"
PARTITIONS = 4


class Run:
    """One examples/exactly_once.py process."""

    def __init__(self, cluster, names: dict[str, str], log: Path, member: str = "0", library: str = "kafka-python"):
        self.log = log
        command = [sys.executable, str(EXAMPLE), "--bootstrap-servers", cluster.bootstrap_servers]
        command += ["--input", names["input"], "--output", names["output"], "--group", names["group"]]
        command += ["--member", member, "--client-library", library]
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


class Feeder:
    """Produces keyed input records at about `rate` per second from a greenlet, until stopped."""

    def __init__(self, cluster, topic: str, rate: int = 1000):
        self.producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, linger_ms=5)
        self.topic, self.rate = topic, rate
        self.produced = 0
        self._greenlet: gevent.Greenlet | None = None

    def send(self, count: int) -> None:
        for _ in range(count):
            self.producer.send(self.topic, key=b"k%d" % self.produced, value=b"v%d" % self.produced)
            self.produced += 1
        self.producer.flush()

    def start(self) -> None:
        def run():
            while True:
                self.send(self.rate // 20)
                gevent.sleep(0.05)

        self._greenlet = gevent.spawn(run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.producer.flush()

    def close(self) -> None:
        self.stop()
        self.producer.close()


def kill_in_a_transaction(run: Run, cluster, names, rng: random.Random, seconds: float) -> int:
    """Freeze the run at random instants (SIGSTOP) and look at the output: SIGKILL it the first time a
    transaction is open, else let it go on (SIGCONT). Returns the number of freezes it took; 0 if none
    was caught within `seconds`.

    Each look reads the output only from where the last one ended: when that found no transaction
    open, every transactional record before had its marker. (A look over the whole output grows
    slower as the output grows, and fewer fit in `seconds`: on librdkafka a transaction stays open on
    the broker only a few milliseconds, from its records' acknowledgement to its commit, so it can
    take hundreds of looks.)"""
    since = cluster.end_offsets(names["output"], PARTITIONS)  # not a read: the output grows meanwhile
    deadline = time.monotonic() + seconds
    freezes = 0
    while time.monotonic() < deadline:
        gevent.sleep(rng.uniform(0.01, 0.06))
        os.kill(run.process.pid, signal.SIGSTOP)
        freezes += 1
        logs = read_committed(cluster.bootstrap_servers, names["output"], PARTITIONS, max_wait_ms=10, since=since)
        if any(log.open_records for log in logs.values()):
            run.kill()
            return freezes
        since = {p: max(since[p], log.high_watermark) for p, log in logs.items()}
        os.kill(run.process.pid, signal.SIGCONT)
    return 0


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


@pytest.mark.long(seconds=60)
def test_sigkill_at_random_instants_keeps_every_output_exactly_once(client_library, cluster, tmp_path, report):
    """SIGKILL the example while records flow in: twice at random instants, once at a random instant
    when a transaction is open, so that the restart has one to abort. The committed outputs hold each
    input exactly once, and the transaction the kill left open shows as aborted."""
    seed = fault_seed(report)
    rng = random.Random(seed)
    names = _names(cluster)
    feeder = Feeder(cluster, names["input"])
    runs: list[Run] = []
    try:
        for kill in range(3):
            runs.append(Run(cluster, names, tmp_path / f"run{kill}.log", library=client_library))
            feeder.send(20)
            wait_until(lambda: caught_up(cluster, names, feeder.produced), 60, f"run {kill} to catch up", 0.2)
            feeder.start()
            if kill < 2:
                gevent.sleep(rng.uniform(0.1, 1.0))
                runs[-1].kill()
            else:
                freezes = kill_in_a_transaction(runs[-1], cluster, names, rng, 60)
                assert freezes, f"no open transaction seen in 60 s of freezes (seed {seed})"
            feeder.stop()
        last = Run(cluster, names, tmp_path / "final.log", library=client_library)
        runs.append(last)
        wait_until(lambda: caught_up(cluster, names, feeder.produced), 90, "the last run to write every output", 0.3)
        assert last.terminate() == 0
    finally:
        feeder.close()
        for run in runs:
            if run.process.poll() is None:
                run.kill()
    logs = assert_exactly_once(cluster, names, feeder.produced)
    aborted = sum(log.aborted_transactions for log in logs.values())
    aborted_records = sum(log.aborted_records for log in logs.values())
    assert aborted and aborted_records, f"the transaction the last kill left open was not aborted (seed {seed})"
    report(
        f"exactly once under SIGKILL on {client_library}: {feeder.produced} records, 3 kills (seed {seed}; "
        f"the last after {freezes} freezes); "
        f"{aborted} aborted "
        f"transaction(s) hid {aborted_records} records; "
        f"{sum(log.committed_transactions for log in logs.values())} committed"
    )


@pytest.mark.long
def test_a_member_joining_and_leaving_midway_keeps_every_output_exactly_once(client_library, cluster, tmp_path, report):
    """A second member joins while records flow in, takes partitions, and leaves again (SIGTERM)
    while they still flow: the committed outputs hold each input exactly once."""
    names = _names(cluster)
    feeder = Feeder(cluster, names["input"], rate=200)
    first = Run(cluster, names, tmp_path / "member0.log", member="0", library=client_library)
    second = None
    try:
        feeder.send(50)
        wait_until(lambda: caught_up(cluster, names, feeder.produced), 60, "the first member to catch up", 0.2)
        feeder.start()
        second = Run(cluster, names, tmp_path / "member1.log", member="1", library=client_library)
        member1 = tmp_path / "member1.log"
        # Given partitions, not only joined: on the bundled broker a cooperative rebalance's second
        # round can come seconds after the join.
        wait_until(lambda: b": assigned " in member1.read_bytes(), 60, "the second member to be given partitions", 0.2)
        gevent.sleep(1.0)
        assert second.terminate() == 0  # it leaves while records flow in
        gevent.sleep(1.0)
        feeder.stop()
        wait_until(lambda: caught_up(cluster, names, feeder.produced), 60, "the first member to write the rest", 0.2)
        assert first.terminate() == 0
    finally:
        feeder.close()
        for run in (first, second):
            if run is not None and run.process.poll() is None:
                run.kill()
    logs = assert_exactly_once(cluster, names, feeder.produced)
    assert b": assigned " in member1.read_bytes(), "the second member never got partitions"
    report(
        f"exactly once across a join and a leave on {client_library}: {feeder.produced} records, {sum(len(log.records) for log in logs.values())} outputs"
    )


class Writing(gkbroad.Pipeline):
    """One output per record to context["output"]; values starting with b"bad" fail (and are dead-lettered)."""

    def handle_message(self, processor, message, context):
        if message.data.startswith(b"bad"):
            return message.failed("a bad record")
        return add_output(message, context["output"], b"out-" + message.data, key=message.metadata["key"])


def _run_writing(cluster, names, count: int, name: str = "it-writing", metrics: dict | None = None, **options):
    cluster.produce(names["input"], count, value=lambda i: b"bad%d" % i if i % 7 == 3 else b"v%d" % i)
    pipeline = Writing(
        name=name,
        metrics=metrics,
        producer={
            "module": (
                Producer,
                producer_options(
                    cluster.bootstrap_servers, names["group"], [names["input"]], message_format="value", **options
                ),
            )
        },
        processors={"default": {"concurrency": 10}},
        context={"output": names["output"]},
    )
    pipeline.start()
    wait_until(
        lambda: sum(cluster.committed(names["group"], names["input"]).values()) == count,
        60,
        "every offset committed",
        0.3,
    )
    assert pipeline.stop(), pipeline.failure


WRITING = [(once, library) for once in (False, True) for library in ("kafka-python", "librdkafka")]


@pytest.mark.parametrize(
    ("exactly_once", "library"),
    WRITING,
    ids=[f"{'exactly' if once else 'at-least'}-once-{library}" for once, library in WRITING],
)
def test_outputs_and_dead_letters_are_written_before_their_offsets_are_committed(cluster, exactly_once, library):
    names = _names(cluster)
    dead = cluster.topic(PARTITIONS, prefix="eos-dead")
    count = 300
    options = {"dead_letter": {"topic": dead}, "client_library": library}
    if exactly_once:
        options["exactly_once"] = {"transactional_id": names["group"]}
    name = f"it-writing-{names['group']}"  # the metrics of a process are shared: a name of its own
    _run_writing(cluster, names, count, name=name, metrics={"prometheus": {}}, **options)
    good = [i for i in range(count) if i % 7 != 3]
    seen = outputs(committed(cluster, names))
    assert sorted(value for _, value in seen.elements()) == sorted(b"out-v%d" % i for i in good)
    letters = read_committed(cluster.bootstrap_servers, dead, PARTITIONS)
    assert sorted(value for log in letters.values() for _, _, value in log.records) == sorted(
        b"bad%d" % i for i in range(count) if i % 7 == 3
    )
    transactions = sum(log.committed_transactions for log in letters.values())
    assert (transactions > 0) == exactly_once  # dead letters go into the transactions, or are written plainly
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition().decode())
        for sample in family.samples
    }
    pipeline = (("pipeline", name),)
    # Counted up to the last status snapshot, taken as the stop begins: at least one transaction by then.
    assert (found.get(("gkbroad_transactions_committed_total", pipeline), 0) > 0) == exactly_once
    assert found.get(("gkbroad_transactions_aborted_total", pipeline), 0) == 0
    assert (("gkbroad_transaction_staged_records", pipeline) in found) == exactly_once
    # Written plainly or with the transaction that committed their offsets: counted either way.
    assert found[("gkbroad_dead_letters_written_total", pipeline)] == sum(1 for i in range(count) if i % 7 == 3)
