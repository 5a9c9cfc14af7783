"""Instructions per record of gkbroad's hot path: python scripts/bench/instructions.py [--batch] [CHECKOUT ...].

Runs hot_path.py (the noop pipeline over the fake consumer client) under
``valgrind --tool=callgrind`` for two record counts and prints the difference
in instructions divided by the difference in records: what one more record
costs, start-up and shutdown cancelled out. Unlike times, the figure hardly
moves with the load of a shared machine, so a change of a few percent shows.
Each CHECKOUT (a directory holding a gkbroad package, say ``git worktree add
../before main``) is measured with its gkbroad; with none, this one. About a
minute per checkout and case (valgrind makes Python some 70 times slower).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 20_000, 60_000


def instructions(checkout: Path | None, records: int, batch: bool) -> int:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            str(HERE / "hot_path.py"),
            "--reps=1",
            f"--records={records}",
            *(["--batch"] if batch else []),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=tmp)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path)
    parser.add_argument("--batch", action="store_true", help="the noop-batch case")
    args = parser.parse_args()
    for checkout in args.checkouts or [None]:
        small = instructions(checkout, SMALL, args.batch)
        large = instructions(checkout, LARGE, args.batch)
        per_record = (large - small) / (LARGE - SMALL)
        case = "noop-batch" if args.batch else "noop"
        print(f"{checkout or 'this checkout'}: {per_record:,.0f} instructions/record ({case})", flush=True)


if __name__ == "__main__":
    main()
