"""Where a profiled case spent its time, per record: python profile_summary.py FILE.prof RECORDS [TOP].

Reads the cProfile stats that run_case.py writes (BENCH_PROFILE=DIR) and
prints own time ("tottime") grouped by library, then gkbroad's functions, in
microseconds per record, and how many calls of gkbroad's own functions each
record cost. Time in gevent's hub while every greenlet waits is
counted under gevent/selectors, not under the code that waited. The profiler
slows everything down by roughly 2x: read the figures as shares.
"""

from __future__ import annotations

import pstats
import sys
from collections import defaultdict


def area(filename: str) -> str:
    for marker, name in (
        ("/gkbroad/", "gkbroad"),
        ("/kafka/", "kafka-python"),
        ("/gevent/", "gevent"),
        ("/scripts/bench/", "bench handler"),
    ):
        if marker in filename:
            return name
    return "other (stdlib, builtins)"


def main(path: str, records: int, top: int = 25) -> None:
    stats = pstats.Stats(path).stats
    by_area: dict[str, float] = defaultdict(float)
    gkbroad: list[tuple[float, int, str]] = []
    total = 0.0
    for (filename, line, function), (_, calls, tottime, _, _) in stats.items():
        by_area[area(filename)] += tottime
        total += tottime
        if area(filename) == "gkbroad":
            short = filename.split("/gkbroad/", 1)[1]
            gkbroad.append((tottime, calls, f"{short}:{line} {function}"))
    per = 1e6 / records
    print(f"{path}: {total:.2f}s of own time, {total * per:.2f} us/record over {records:,} records")
    calls = sum(calls for _, calls, _ in gkbroad)
    print(f"  gkbroad: {calls / records:.2f} Python calls per record (of its own functions)")
    for name, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        print(f"  {name:28s} {seconds * per:7.2f} us/record  {100 * seconds / total:5.1f}%")
    print("gkbroad functions (own time):")
    for seconds, calls, name in sorted(gkbroad, reverse=True)[:top]:
        print(f"  {seconds * per:6.3f} us/record  {calls:>8} calls  {name}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
