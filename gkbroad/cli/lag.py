"""Consumer lag: how far a group's committed offsets are behind the end of each partition.

Pure data, shared by `gkbroad lag` and the demo; the offsets come from
gkbroad.kafka.client.admin. A partition the group never committed counts
everything still in its log as lag (log end - log start): a group that has not
started on a partition is behind by all of it, which is what a lag alert wants.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["PartitionLag", "lag_rows", "render_json", "render_table", "total_lag"]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def lag_rows(
    committed: dict[tuple[str, int], int], offsets: dict[tuple[str, int], tuple[int, int]]
) -> list[PartitionLag]:
    """One row per partition of `offsets` ({(topic, partition): (log start, log end)}), sorted."""
    rows = []
    for (topic, partition), (start, end) in sorted(offsets.items()):
        offset = committed.get((topic, partition))
        lag = end - start if offset is None else end - offset
        rows.append(PartitionLag(topic, partition, offset, end, max(0, lag)))
    return rows


def total_lag(rows: list[PartitionLag]) -> int:
    return sum(row.lag for row in rows)


def render_table(group: str, rows: list[PartitionLag]) -> str:
    """An aligned text table with a total line."""
    header = ("TOPIC", "PARTITION", "COMMITTED", "END", "LAG")
    cells = [header] + [
        (r.topic, str(r.partition), "-" if r.committed is None else str(r.committed), str(r.end), str(r.lag))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"group {group}"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(f"total lag {total_lag(rows)}")
    return "\n".join(lines)


def render_json(group: str, rows: list[PartitionLag]) -> str:
    return json.dumps({"group": group, "partitions": [asdict(r) for r in rows], "total_lag": total_lag(rows)})
