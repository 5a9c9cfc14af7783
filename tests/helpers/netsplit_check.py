"""The figures of a network-partition run, from the two members' journals (fault_check.Run) and commit samples.

The cut member is the one whose network to the broker was blackholed at
``cut_at`` (CLOCK_MONOTONIC, like the journals). Its holding of a partition
ends at its next "start" of it (a new assignment after it rejoined). A
partition "moved" when the other member handled its first record of it
after the cut. The journals' "commit" lines are the commits the broker
accepted, written when its answer arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.helpers.fault_check import Run


@dataclass
class SplitFigures:
    """What split brain a run showed; all zero (and empty) when there was none."""

    after_expiry: int = 0  # records the cut member handled, of partitions it held at the cut, past the session timeout
    overlap_records: int = 0  # records the cut member handled of a partition after the other member started handling it
    overlap_window: float = (
        0.0  # longest time from the other member's first record of a partition to the cut member's last
    )
    commits_after_move: int = 0  # commits of the cut member accepted for a partition after it moved
    backwards: list[tuple[int, int, int]] = field(default_factory=list)  # (partition, from, to) committed offset moves
    commits: int = 0  # accepted commits in both journals (so a run with no commit lines shows)

    def line(self) -> str:
        return (
            f"handled after session expiry {self.after_expiry}, overlap {self.overlap_records} records "
            f"in {self.overlap_window:.1f} s, commits after the move {self.commits_after_move} "
            f"(of {self.commits} accepted), commits backwards {self.backwards}"
        )


def _holding_end(cut: Run, partition: int, after: float) -> float:
    """When the cut member's holding of ``partition`` that was current at ``after`` ended (its next start)."""
    starts = [at for kind, p, _, at in cut.events if kind == "start" and p == partition and at > after]
    return min(starts, default=float("inf"))


def split_figures(
    cut: Run, other: Run, cut_at: float, session_timeout: float, grace: float, samples: list[dict[int, int]]
) -> SplitFigures:
    """The figures of one run. ``grace`` seconds after the other member's first record of a
    partition are allowed for the cut member's handlers that were already running."""
    figures = SplitFigures()
    held = {p for kind, p, _, at in cut.events if kind == "start" and at < cut_at}
    for partition in sorted(held):
        end = _holding_end(cut, partition, cut_at)
        mine = [(at, o) for kind, p, o, at in cut.events if kind == "handled" and p == partition and at < end]
        figures.after_expiry += sum(1 for at, _ in mine if at > cut_at + session_timeout)
        theirs = [at for kind, p, _, at in other.events if kind == "handled" and p == partition and at > cut_at]
        if not theirs:
            continue
        took_over = min(theirs)
        late = [at for at, _ in mine if at > took_over + grace]
        figures.overlap_records += len(late)
        if late:
            figures.overlap_window = max(figures.overlap_window, max(late) - took_over)
        figures.commits_after_move += sum(
            1 for kind, p, _, at in cut.events if kind == "commit" and p == partition and took_over < at < end
        )
    journaled = sorted((at, p, o) for run in (cut, other) for kind, p, o, at in run.events if kind == "commit")
    figures.commits = len(journaled)
    # The commit journals in the order the answers arrived, then the sampled offsets:
    # each must only ever move forward, per partition.
    for sequence in ([{p: o} for _, p, o in journaled], samples):
        last: dict[int, int] = {}
        for sample in sequence:
            for partition, offset in sorted(sample.items()):
                if partition in last and offset < last[partition]:
                    figures.backwards.append((partition, last[partition], offset))
                last[partition] = max(offset, last.get(partition, offset))
    return figures
