"""`gkbroad offsets reset`: where each partition of a group would be moved, and why.

Pure data, like lag.py: the offsets come from gkbroad.kafka.client.admin and
the plan is computed and printed here, so the rules (what each ``--to-*``
means, how an out-of-range target is clamped, what a partition without a
committed offset shifts from) are written once and tested by value.

Offsets here are Kafka's committed offsets: the next offset the group reads.
A target is kept inside the partition's log, ``[log start, log end]``: below
the start the records are gone (retention), above the end there is nothing to
read, and the broker would answer either with an out-of-range reset on the
next poll. The plan says so for every partition it clamped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import ConfigError

__all__ = ["Move", "PartitionMove", "parse_topic_partitions", "plan", "render_plan"]


@dataclass(frozen=True)
class Move:
    """What the command line asked for: ``kind`` is earliest, latest, offset, shift or datetime;
    ``value`` the offset, the shift or the time (milliseconds since the epoch)."""

    kind: str
    value: int = 0

    def describe(self) -> str:
        return {
            "earliest": "to the log start",
            "latest": "to the log end",
            "offset": f"to offset {self.value}",
            "shift": f"by {self.value:+d}",
            "datetime": f"to the first record at or after {_utc(self.value)}",
        }[self.kind]


def _utc(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class PartitionMove:
    topic: str
    partition: int
    committed: int | None
    target: int
    start: int
    end: int
    note: str | None = None


def parse_topic_partitions(text: str, counts: dict[str, int | None]) -> tuple[str, list[int]]:
    """``TOPIC`` (every partition) or ``TOPIC:0,2,5-7`` -> (topic, partitions); ConfigError naming the
    problem when the topic is unknown or a partition is not one of it."""
    topic, _, spec = text.partition(":")
    count = counts.get(topic)
    if count is None:
        raise ConfigError(f"--topic {text}: no such topic {topic!r}")
    if not spec:
        return topic, list(range(count))
    partitions: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ConfigError(f"--topic {text}: expected TOPIC:N,M,A-B with partition numbers, got {part!r}")
        partitions += range(int(first), int(last if dash else first) + 1)
    outside = sorted({p for p in partitions if p >= count})
    if outside:
        raise ConfigError(f"--topic {text}: {topic!r} has partitions 0-{count - 1}, not {outside}")
    return topic, sorted(set(partitions))


def plan(
    move: Move,
    committed: dict[tuple[str, int], int],
    logs: dict[tuple[str, int], tuple[int, int]],
    at_time: dict[tuple[str, int], int | None] | None = None,
) -> list[PartitionMove]:
    """One move per partition of `logs` ({(topic, partition): (log start, log end)}), sorted.

    `at_time` holds the offsets a datetime move found ({tp: offset, or None when no record is
    that late}); such a partition goes to its log end, which the note says."""
    moves = []
    for (topic, partition), (start, end) in sorted(logs.items()):
        current = committed.get((topic, partition))
        note = None
        if move.kind == "earliest":
            wanted = start
        elif move.kind == "latest":
            wanted = end
        elif move.kind == "offset":
            wanted = move.value
        elif move.kind == "shift":
            base = current if current is not None else start
            if current is None:
                note = "no committed offset: shifted from the log start"
            wanted = base + move.value
        else:
            found = (at_time or {}).get((topic, partition))
            if found is None:
                wanted, note = end, "no record at or after that time: set to the log end"
            else:
                wanted = found
        target = min(max(wanted, start), end)
        if target != wanted:
            bound = "log start" if wanted < start else "log end"
            clamped = f"{wanted} is outside the log [{start}, {end}]: clamped to the {bound}"
            note = f"{note}; {clamped}" if note else clamped
        moves.append(PartitionMove(topic, partition, current, target, start, end, note))
    return moves


def render_plan(group: str, move: Move, moves: list[PartitionMove], executed: bool) -> str:
    """An aligned table of the moves, and whether they were applied."""
    header = ("TOPIC", "PARTITION", "COMMITTED", "NEW", "LOG START", "LOG END", "NOTE")
    cells = [header] + [
        (
            m.topic,
            str(m.partition),
            "-" if m.committed is None else str(m.committed),
            str(m.target),
            str(m.start),
            str(m.end),
            m.note or "",
        )
        for m in moves
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"group {group}: reset {move.describe()}"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    if executed:
        lines.append(f"committed the new offsets of {len(moves)} partition(s)")
    else:
        lines.append("dry run: nothing was changed; add --execute to commit the new offsets")
    return "\n".join(lines)
