"""Faults that try hard to lose records, against the real broker. Each test asserts that nothing was lost.

The pipelines under test are fault_worker.py processes (killed and restarted
here) or, where the test must reach into a handler, pipelines in this process.
fault_check.py reads their journals: every produced offset handled at least
once, offsets increasing within a holding of a partition, no partition handled
by two members at once. `--slow` (on in CI) runs the crash test at full size.
"""

from __future__ import annotations

import logging
import os
import random
import time

import gevent
import pytest

import gkbroad
from gkbroad.testing.broker import LocalBroker
from tests.helpers.fault_check import (
    Run,
    Worker,
    duplicate_sources,
    duplicates_of,
    handled_twice,
    holders,
    missing,
    out_of_order,
    overlaps,
    quiet_for,
)
from tests.helpers.kafka_helpers import Cluster, create_topic, unique_name
from tests.helpers.kafka_options import RESTART_SESSION_TIMEOUT_MS, client_settings
from tests.helpers.pipeline_support import kafka_pipeline
from tests.helpers.support import wait_until

PARTITIONS = 8


def fault_seed(report) -> int:
    """A seed for the test's random choices; it is printed and reported, and GKBROAD_FAULT_SEED replays a run."""
    seed = int(os.environ.get("GKBROAD_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"fault seed: {seed} (GKBROAD_FAULT_SEED={seed} replays it)")
    report(f"fault seed: {seed}")
    return seed


def assert_nothing_lost(runs, ends, seed=None):
    lost = missing(runs, ends)
    replay = f" (seed {seed})" if seed is not None else ""
    assert not lost, f"{len(lost)} produced records were never handled, e.g. {lost[:10]}{replay}"
    for run in runs:
        assert not out_of_order(run), f"{run.name}: offsets out of order {out_of_order(run)[:10]}{replay}"


def holds_all(run, partitions: int) -> bool:
    """Whether the run's journal shows it was given every partition (so its pipeline is running)."""
    return {p for kind, p, _, _ in run.events if kind == "start"} == set(range(partitions))


def test_the_checker_finds_loss_disorder_and_shared_partitions():
    a = Run("a", [("start", 0, None, 0.0), ("handled", 0, 0, 1.0), ("handled", 0, 2, 2.0), ("handled", 0, 1, 5.0)])
    b = Run("b", [("start", 0, None, 3.0), ("handled", 0, 2, 4.0), ("handled", 0, 3, 6.0)])
    assert missing([a, b], {0: 5}) == [(0, 4)]
    assert out_of_order(a) == [(0, 2, 1)]
    assert not out_of_order(b)
    assert overlaps([a, b]) == [
        "a handled partition 0 offset 1 at 5.000 after another took over",
        "b handled partition 0 offset 3 at 6.000 after another took over",
    ]
    a.events[3:] = [("start", 0, None, 7.0), ("handled", 0, 1, 8.0), ("handled", 0, 4, 9.0)]  # a got it back
    assert not overlaps([a, b]) and not missing([a, b], {0: 5})
    assert duplicates_of(b, [a]) == 1 and duplicate_sources([a, b]) == {"a->b": 1}


@pytest.mark.long(seconds=90)
def test_crash_and_restart_loses_nothing(client_library, cluster, tmp_path, slow, report):
    """SIGKILL a busy pipeline at random instants, restart it each time: every record is handled."""
    records, kills = (50_000, 6) if slow else (10_000, 5)
    seed = fault_seed(report)
    rng = random.Random(seed)
    started = time.monotonic()
    topic, group = cluster.topic(PARTITIONS, prefix="crash"), cluster.group_id()
    cluster.produce(topic, records, partitions=PARTITIONS)
    ends = cluster.end_offsets(topic, PARTITIONS)
    workers: list[Worker] = []  # the killed ones, then the last

    def journals():
        return [w.run() for w in workers]

    def seen():
        runs = journals()
        return (
            f"handled per run {[len(run.handled) for run in runs]}, {len(missing(runs, ends))} records missing, "
            f"committed {cluster.committed(group, topic)} of {ends}, failed SyncGroups per run "
            f"{[w.failed_syncs() for w in workers]} (seed {seed})"
        )

    def start(name):
        workers.append(
            Worker(
                cluster.bootstrap_servers,
                topic,
                group,
                tmp_path / name,
                "--session-timeout",
                str(RESTART_SESSION_TIMEOUT_MS),
                "--client-library",
                client_library,
            )
        )
        return workers[-1]

    try:
        for i in range(kills):
            # Kill i lands once the runs so far handled about (i + u) / (kills + 1) of the records, u random:
            # always short of all of them, so every target is reached, however far earlier runs overshot theirs;
            # and never before this run handled a record, so that it is busy when killed.
            target = int(records * (i + rng.uniform(0.3, 1.0)) / (kills + 1))
            before = len({pair for run in journals() for pair in run.handled})
            own_share = max(target - before, 1)
            worker = start(f"run{i}.log")
            wait_until(
                lambda w=worker, n=own_share: w.handled_count() >= n,
                180,
                f"run {i} to bring the records handled to {target}",
                0.05,
                seen,
            )
            gevent.sleep(rng.uniform(0, 0.3))
            worker.kill()
        last = start("final.log")
        # The killed runs go past their targets before the kill lands, and together they may have handled every
        # record already: "nothing missing" alone can then hold while the last worker is still importing, before
        # its run() handles SIGTERM. It is done once it holds every partition and the group committed to the end.
        wait_until(
            lambda: holds_all(last.run(), PARTITIONS) and not missing(journals(), ends),
            300,
            "the last worker to hold every partition and every record to be handled",
            0.5,
            seen,
        )
        wait_until(lambda: cluster.committed(group, topic) == ends, 60, "the commit of every record", 0.5, seen)
        code = last.terminate()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()
    runs = journals()
    handled_per_run = [len(run.handled) for run in runs]
    assert (code, runs[-1].exit) == (0, "clean"), f"the last worker exited {code}, {runs[-1].exit}; {seen()}"
    assert_nothing_lost(runs, ends, seed)
    assert cluster.committed(group, topic) == ends, seen()
    per_restart = [duplicates_of(run, runs[:i]) for i, run in enumerate(runs) if i]
    report(
        f"crash/restart ({client_library}): {records} records on {PARTITIONS} partitions, {kills} SIGKILLs, handled per run "
        f"{handled_per_run}, duplicates per restart {per_restart} (total {handled_twice(runs)}), "
        f"{time.monotonic() - started:.0f}s"
    )


@pytest.mark.long(seconds=60)
def test_rebalance_under_load_loses_nothing_and_never_shares_a_partition(client_library, cluster, tmp_path, report):
    """Three members: two start, a third joins late, the first is SIGKILLed, the second stops cleanly."""
    records = 16_000
    started = time.monotonic()
    topic, group = cluster.topic(PARTITIONS, prefix="rebalance"), cluster.group_id()
    cluster.produce(topic, records, partitions=PARTITIONS)
    ends = cluster.end_offsets(topic, PARTITIONS)

    def member(name):
        return Worker(
            cluster.bootstrap_servers,
            topic,
            group,
            tmp_path / f"{name}.log",
            "--max-sleep",
            "0.02",
            "--client-library",
            client_library,
        )

    def handled():
        return sum(m.handled_count() for m in members)

    def journals():
        return [m.run() for m in members]

    def seen():
        runs = journals()
        return (
            f"handled per member {[len(run.handled) for run in runs]}, holders {holders(runs)}, "
            f"{len(missing(runs, ends))} records missing, quiet for {quiet_for(runs):.1f}s"
        )

    def settled():
        # Tansu can loop forever in JoinGroup/SyncGroup (same generation each time) when a member dies or
        # leaves during a rebalance, so the faults are injected only once no rebalance has run for a while.
        return quiet_for(journals()) > 3

    members = [member("first"), member("second")]
    try:
        wait_until(lambda: handled() >= records * 0.15, 180, "15% handled by the first two members", 0.1, seen)
        members.append(member("late"))
        wait_until(lambda: members[2].handled_count() > 0, 180, "the late member to handle records", 0.1, seen)
        wait_until(lambda: handled() >= records * 0.4 and settled(), 180, "40% handled, the group settled", 0.25, seen)
        members[0].kill()
        wait_until(
            lambda: set(holders(journals()).values()) == {"second.log", "late.log"} and settled(),
            180,
            "the killed member's partitions taken over, the group settled",
            0.25,
            seen,
        )
        second_code = members[1].terminate()
        wait_until(lambda: not missing(journals(), ends), 240, "every record handled", 0.25, seen)
        late_code = members[2].terminate()
    finally:
        for m in members:
            if m.process.poll() is None:
                m.kill()
    runs = [m.run() for m in members]
    exits = (second_code, runs[1].exit, late_code, runs[2].exit)
    assert exits == (0, "clean", 0, "clean"), f"exits of the second and late members {exits}; {seen()}"
    assert_nothing_lost(runs, ends)
    assert not overlaps(runs), overlaps(runs)[:10]
    assert cluster.committed(group, topic) == ends, seen()
    report(
        f"rebalance under load ({client_library}): {records} records, handled per member {[len(r.handled) for r in runs]} "
        f"(first SIGKILLed, second stopped, third late), {handled_twice(runs)} handled twice "
        f"{duplicate_sources(runs)}, "
        f"{time.monotonic() - started:.0f}s"
    )


class ValuesSeen(gkbroad.Pipeline):
    """Keeps every value handled (the outage test tells records apart by value: offsets restart at 0)."""

    def handle_message(self, processor, message, context: list):
        gevent.sleep(0.005)
        context.append(message.data)
        return message


@pytest.mark.long
def test_broker_outage_resumes_and_loses_nothing_produced_after_the_restart(client_library, caplog, report):
    """Stop the broker for 10 s mid-run and start it again on the same port.

    Tansu keeps everything in memory (no storage engine that survives a restart
    is available here: its sqlite needs a feature this build lacks, and postgres
    or S3 are not at hand), so the restarted broker is empty: the test creates
    the topic again and produces after the restart, and every one of those
    records must be handled.
    """
    caplog.set_level(logging.INFO)
    broker = LocalBroker().start()
    port, before, after = broker.port, 4000, 2000
    cluster = Cluster(broker.bootstrap_servers)
    topic, group = unique_name("outage"), cluster.group_id()
    seen: list[bytes] = []
    try:
        create_topic(cluster.bootstrap_servers, topic, 4)
        cluster.produce(topic, before, partitions=4, value=lambda i: b"before-%d" % i)
        timeout = "socket.timeout.ms" if client_library == "librdkafka" else "request_timeout_ms"
        client = client_settings(cluster.bootstrap_servers, client_library, **{timeout: 5000})
        pipeline = kafka_pipeline(
            cluster.bootstrap_servers,
            group,
            [topic],
            context=seen,
            cls=ValuesSeen,
            message_format="value",
            client=client,
            client_library=client_library,
        )
        pipeline.start()
        wait_until(lambda: len(seen) >= before // 4, 120, "records handled before the outage")
        handled_at_stop = len(seen)
        broker.stop(timeout=1)  # Tansu may linger on SIGTERM with clients connected; then it is killed
        stopped_at = time.monotonic()
        gevent.sleep(10)
        handled_during_outage = len(seen) - handled_at_stop
        outage_log = [r for r in caplog.records if r.created >= time.time() - 10 and r.levelno >= logging.WARNING]
        broker = LocalBroker(port=port).start()
        restarted_at = time.monotonic()
        create_topic(cluster.bootstrap_servers, topic, 4)
        cluster.produce(topic, after, partitions=4, value=lambda i: b"after-%d" % i)
        expected = {b"after-%d" % i for i in range(after)}
        waited = wait_until(lambda: expected <= set(seen), 180, "every record produced after the restart")
        assert pipeline.running, f"the pipeline stopped after the outage: {pipeline.failure}"
        assert pipeline.stop(30), f"the stop was not clean: {pipeline.failure}"
    finally:
        if "pipeline" in locals() and pipeline.running:
            pipeline.stop(30)
        broker.stop()
    assert outage_log, "nothing was logged at WARNING while the broker was down"
    # Records fetched before the stop were handled during the outage: their commits failed, and gkbroad says so
    # (kafka-python logs the lost connections).
    own = [f"{r.name}: {r.getMessage()[:100]}" for r in outage_log if r.name.startswith("gkbroad")]
    assert handled_during_outage and own, "gkbroad logged nothing about commits failing during the outage"
    report(
        f"broker outage ({client_library}): {handled_at_stop} of {before} handled when the broker stopped for "
        f"{restarted_at - stopped_at:.0f}s, {handled_during_outage} more (already fetched) during the outage; all {after} records produced after the restart handled "
        f"{waited:.1f}s after the restart; logged during the outage: {len(outage_log)} warnings, gkbroad's own: "
        f"{own[:3] or 'none'}"
    )


class SlowOnce(gkbroad.Pipeline):
    """Blocks on the first sight of `slow_offset` in each partition for `slow_seconds`, then records."""

    def handle_message(self, processor, message, context: dict):
        partition, offset = message.metadata["partition"], message.metadata["offset"]
        if offset == context["slow_offset"] and partition not in context["slowed"]:
            context["slowed"].add(partition)
            gevent.sleep(context["slow_seconds"])
        context["handled"].append((context["name"], partition, offset, time.monotonic()))
        return message


@pytest.mark.long
def test_a_handler_slower_than_the_rebalance_timeout_commits_nothing_past_it(client_library, cluster, caplog, report):
    """Member A is stuck on offset 25 of both partitions (12 s, the rebalance timeout is 8 s) when B joins.

    A's drain gives up after drain_timeout (3 s) with a warning and commits
    nothing past the stuck offset (processors acknowledge a chunk of up to
    max_demand records at once, so the commit may stop up to 9 below it); the
    new owners read from there, so nothing is lost.
    """
    caplog.set_level(logging.INFO)
    records, slow_offset, max_demand = 80, 25, 10
    topic, group = cluster.topic(2, prefix="slowdrain"), cluster.group_id()
    cluster.produce(topic, records, partitions=2)
    ends = cluster.end_offsets(topic, 2)
    handled: list[tuple] = []
    options = {
        "cls": SlowOnce,
        "message_format": "value",
        "partition_assignment_strategy": "range",
        "rebalance_timeout_ms": 8000,
        "drain_timeout": 3000,
        "client_library": client_library,
    }

    def member(name, slow_seconds):
        context = {"name": name, "slow_offset": slow_offset, "slow_seconds": slow_seconds, "slowed": set()}
        context["handled"] = handled
        return kafka_pipeline(cluster.bootstrap_servers, group, [topic], context=context, **options)

    a, b = member("a", 12.0), member("b", 0.0)
    started = time.monotonic()
    a.start()
    try:
        wait_until(
            lambda: {(p, o) for _, p, o, _ in handled} >= {(p, slow_offset - 1) for p in range(2)},
            60,
            "A to reach the slow offset on both partitions",
        )
        wait_until(
            lambda: all(cluster.committed(group, topic).get(p, 0) > slow_offset - max_demand for p in range(2)),
            30,
            "A to commit what it acknowledged before the stuck chunk",
            interval=0.2,
        )
        committed_before = cluster.committed(group, topic)
        b.start()
        wait_until(lambda: "drain of" in caplog.text and "timed out" in caplog.text, 60, "the drain to give up")
        gave_up_after = time.monotonic() - started
        committed_after_drain = cluster.committed(group, topic)
        seen = lambda: {(p, o) for _, p, o, _ in handled}  # noqa: E731
        wait_until(lambda: seen() >= {(p, o) for p in range(2) for o in range(records // 2)}, 60, "every record")
    finally:
        results = [gevent.spawn(pipeline.stop, 30) for pipeline in (a, b)]
        gevent.joinall(results)
    warning = next(r for r in caplog.records if "drain of" in r.getMessage() and "timed out" in r.getMessage())
    assert warning.levelno == logging.WARNING and warning.name.startswith("gkbroad")
    assert "timed out after 3.0 s" in warning.getMessage()  # drain_timeout=3000 (ms)
    # The stuck record was never acknowledged: no commit passed it, during the drain or after.
    committed = f"committed {committed_before} before B joined, {committed_after_drain} after the drain gave up"
    assert all(committed_before[p] <= committed_after_drain[p] <= slow_offset for p in range(2)), committed
    assert cluster.committed(group, topic) == ends, f"{committed}, {cluster.committed(group, topic)} at the end"
    report(
        f"slow handler during a rebalance ({client_library}): drain gave up with a warning {gave_up_after:.1f}s into the test, "
        f"committed {committed_before} before and {committed_after_drain} after (stuck at offset {slow_offset}); "
        "stops clean: "
        f"{[r.value for r in results]}; {len(handled)} handled for {records} records; "
        f"{time.monotonic() - started:.0f}s"
    )
