"""The checker of the fault tests: reads the journals fault_worker.py writes and says what went wrong.

A run is one worker process (one journal). Across all runs every produced
offset must appear at least once; within a run, each partition's offsets must
increase for as long as the member holds the partition (a "start" line begins
a new holding); and no member may handle a partition while another member,
which took it over, handles it too.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.support import start_module

WORKER = "tests.helpers.fault_worker"


@dataclass
class Run:
    """What one worker process wrote: (kind, partition, offset_or_reason, time) in file order."""

    name: str
    events: list[tuple] = field(default_factory=list)

    @property
    def handled(self) -> list[tuple[int, int]]:
        return [(p, o) for kind, p, o, _ in self.events if kind == "handled"]

    @property
    def exit(self) -> str | None:
        return next((detail for kind, _, detail, _ in self.events if kind == "exit"), None)


def read_run(path: Path) -> Run:
    """Parse a journal; a partial last line (the process was killed mid-write) is ignored."""
    run = Run(path.name)
    if not path.exists():
        return run
    text = path.read_text()
    lines = text.split("\n")[:-1]  # whatever follows the last newline is a partial line
    for line in lines:
        words = line.split()
        kind, at = words[0], float(words[-1])
        if kind in ("handled", "commit"):
            run.events.append((kind, int(words[1]), int(words[2]), at))
        elif kind == "start":
            run.events.append((kind, int(words[1]), None, at))
        elif kind == "stop":
            run.events.append((kind, int(words[1]), words[2], at))
        elif kind == "exit":
            run.events.append((kind, None, words[1], at))
    return run


def missing(runs: list[Run], ends: dict[int, int]) -> list[tuple[int, int]]:
    """(partition, offset) pairs that were produced but that no run handled."""
    seen = {pair for run in runs for pair in run.handled}
    return sorted((p, o) for p, end in ends.items() for o in range(end) if (p, o) not in seen)


def out_of_order(run: Run) -> list[tuple[int, int, int]]:
    """(partition, previous, offset) wherever an offset did not follow a higher one within one holding."""
    last: dict[int, int] = {}
    problems = []
    for kind, partition, offset, _ in run.events:
        if kind == "start":
            last.pop(partition, None)
        elif kind == "handled":
            if partition in last and offset <= last[partition]:
                problems.append((partition, last[partition], offset))
            last[partition] = offset
    return problems


def duplicates_of(run: Run, earlier: list[Run]) -> int:
    """How many records this run handled that an earlier run had handled already."""
    before = {pair for other in earlier for pair in other.handled}
    return sum(1 for pair in run.handled if pair in before)


def handled_twice(runs: list[Run]) -> int:
    counts = Counter(pair for run in runs for pair in run.handled)
    return sum(count - 1 for count in counts.values())


def overlaps(runs: list[Run]) -> list[str]:
    """Where a member handled a partition after another member had taken it over.

    Events of all runs are merged by time per partition. A member that handled
    the partition is "interrupted" once another member handles it; handling it
    again before its own next "start" of that partition means both handled it
    at once (a drain that did not wait).
    """
    merged = sorted(
        (at, run.name, kind, partition, detail)
        for run in runs
        for kind, partition, detail, at in run.events
        if kind in ("handled", "start")
    )
    problems = []
    active: dict[int, set[str]] = {}
    interrupted: dict[int, set[str]] = {}
    for at, member, kind, partition, detail in merged:
        holders, stale = active.setdefault(partition, set()), interrupted.setdefault(partition, set())
        if kind == "start":
            holders.discard(member)
            stale.discard(member)
            continue
        if member in stale:
            problems.append(
                f"{member} handled partition {partition} offset {detail} at {at:.3f} after another took over"
            )
        stale.update(holders - {member})
        holders.difference_update(stale)
        holders.add(member)
    return problems


class Worker:
    """A fault_worker.py process writing the journal `path`."""

    def __init__(self, bootstrap: str, topic: str, group: str, path: Path, *args: str):
        self.path = path
        self.process = start_module(WORKER, bootstrap, topic, group, str(path), *args)

    def run(self) -> Run:
        return read_run(self.path)

    def handled_count(self) -> int:
        return self.path.read_bytes().count(b"handled ") if self.path.exists() else 0

    def failed_syncs(self) -> int:
        """SyncGroup answers kafka-python logged as failed (the bundled broker's stuck rebalance shows as many)."""
        log = self.path.with_name(f"{self.path.name}.log")
        return log.read_bytes().count(b"SyncGroup for group") if log.exists() else 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def duplicate_sources(runs: list[Run]) -> dict[str, int]:
    """{"earlier->later": records handled by `later` that `earlier` had handled first}, over merged time."""
    first: dict[tuple[int, int], str] = {}
    sources: Counter = Counter()
    merged = sorted((at, run.name, p, o) for run in runs for kind, p, o, at in run.events if kind == "handled")
    for _, name, partition, offset in merged:
        if (partition, offset) in first:
            sources[f"{first[(partition, offset)]}->{name}"] += 1
        else:
            first[(partition, offset)] = name
    return dict(sources)


def holders(runs: list[Run]) -> dict[int, str]:
    """{partition: member} as the members' start/stop lines say now (a killed member keeps its last ones)."""
    held: dict[int, str] = {}
    for _, name, kind, partition in sorted(
        (at, run.name, kind, p) for run in runs for kind, p, _, at in run.events if kind in ("start", "stop")
    ):
        if kind == "start":
            held[partition] = name
        elif held.get(partition) == name:
            del held[partition]
    return held


def quiet_for(runs: list[Run]) -> float:
    """Seconds since the last start or stop line of any member (journal times are CLOCK_MONOTONIC)."""
    changes = [at for run in runs for kind, _, _, at in run.events if kind in ("start", "stop")]
    return time.monotonic() - max(changes, default=time.monotonic())
