"""Faults that try hard to lose records, against the real broker. Each test asserts that nothing was lost.

The pipelines under test are fault_worker.py processes (killed and restarted
here) or, where the test must reach into a handler, pipelines in this process.
fault_check.py reads their journals: every produced offset handled at least
once, offsets increasing within a holding of a partition, no partition handled
by two members at once. `--slow` (on in CI) runs the crash test at full size.
"""

from __future__ import annotations

import os
import random
import time

import gevent
from fault_check import Worker, duplicate_sources, duplicates_of, handled_twice, missing, out_of_order, overlaps
from pipeline_support import wait_until

PARTITIONS = 8


def fault_seed(report) -> random.Random:
    """A seeded random source; the seed is printed and reported, and GKBROAD_FAULT_SEED replays a run."""
    seed = int(os.environ.get("GKBROAD_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"fault seed: {seed} (GKBROAD_FAULT_SEED={seed} replays it)")
    report(f"fault seed: {seed}")
    return random.Random(seed)


def assert_nothing_lost(runs, ends):
    lost = missing(runs, ends)
    assert not lost, f"{len(lost)} produced records were never handled, e.g. {lost[:10]}"
    for run in runs:
        assert not out_of_order(run), f"{run.name}: offsets out of order {out_of_order(run)[:10]}"


def test_crash_and_restart_loses_nothing(cluster, tmp_path, slow, report):
    """SIGKILL a busy pipeline at random instants, restart it each time: every record is handled."""
    records, kills = (50_000, 6) if slow else (10_000, 5)
    rng = fault_seed(report)
    started = time.monotonic()
    topic, group = cluster.topic(PARTITIONS, prefix="crash"), cluster.group_id()
    cluster.produce(topic, records, partitions=PARTITIONS)
    ends = cluster.end_offsets(topic, PARTITIONS)
    runs = []
    try:
        for i in range(kills):
            worker = Worker(cluster.bootstrap_servers, topic, group, tmp_path / f"run{i}.log")
            target = rng.randint(records // (3 * kills), records // kills)
            wait_until(lambda w=worker, n=target: w.handled_count() >= n, 120, f"run {i} to handle {target} records")
            gevent.sleep(rng.uniform(0, 0.3))
            worker.kill()
            runs.append(worker.run())
        last = Worker(cluster.bootstrap_servers, topic, group, tmp_path / "final.log")
        wait_until(lambda: not missing([*runs, last.run()], ends), 300, "every record handled after the last restart")
        code = last.terminate()
    finally:
        for worker in (locals().get("worker"), locals().get("last")):
            if worker is not None and worker.process.poll() is None:
                worker.kill()
    runs.append(last.run())
    assert code == 0 and runs[-1].exit == "clean"
    assert_nothing_lost(runs, ends)
    assert cluster.committed(group, topic) == ends
    per_restart = [duplicates_of(run, runs[:i]) for i, run in enumerate(runs) if i]
    handled_per_run = [len(run.handled) for run in runs]
    report(
        f"crash/restart: {records} records on {PARTITIONS} partitions, {kills} SIGKILLs, handled per run "
        f"{handled_per_run}, duplicates per restart {per_restart} (total {handled_twice(runs)}), "
        f"{time.monotonic() - started:.0f}s"
    )


def test_rebalance_under_load_loses_nothing_and_never_shares_a_partition(cluster, tmp_path, report):
    """Three members: two start, a third joins late, the first is SIGKILLed, the second stops cleanly."""
    records = 16_000
    started = time.monotonic()
    topic, group = cluster.topic(PARTITIONS, prefix="rebalance"), cluster.group_id()
    cluster.produce(topic, records, partitions=PARTITIONS)
    ends = cluster.end_offsets(topic, PARTITIONS)

    def member(name):
        return Worker(cluster.bootstrap_servers, topic, group, tmp_path / f"{name}.log", "--max-sleep", "0.02")

    def handled():
        return sum(m.handled_count() for m in members)

    members = [member("first"), member("second")]
    try:
        wait_until(lambda: handled() >= records * 0.15, 120, "15% handled by the first two members")
        members.append(member("late"))
        wait_until(lambda: members[2].handled_count() > 0, 120, "the late member to handle records")
        wait_until(lambda: handled() >= records * 0.4, 120, "40% handled")
        members[0].kill()
        wait_until(lambda: handled() >= records * 0.65, 120, "65% handled")
        second_code = members[1].terminate()
        wait_until(lambda: not missing([m.run() for m in members], ends), 180, "every record handled")
        late_code = members[2].terminate()
    finally:
        for m in members:
            if m.process.poll() is None:
                m.kill()
    runs = [m.run() for m in members]
    assert (second_code, runs[1].exit, late_code, runs[2].exit) == (0, "clean", 0, "clean")
    assert_nothing_lost(runs, ends)
    assert not overlaps(runs), overlaps(runs)[:10]
    assert cluster.committed(group, topic) == ends
    report(
        f"rebalance under load: {records} records, handled per member {[len(r.handled) for r in runs]} "
        f"(first SIGKILLed, second stopped, third late), {handled_twice(runs)} handled twice "
        f"{duplicate_sources(runs)}, "
        f"{time.monotonic() - started:.0f}s"
    )
