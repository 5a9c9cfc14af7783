"""scripts/bench.py --quick as a smoke test: every case runs to completion.

Timings are printed by the benchmark, never asserted here: the machine may be
busy with anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "bench.py")
# A fifth of --quick's main topic: every case still handles thousands of records, which is all a smoke test
# needs; the time of a case is mostly its process start and group join anyway.
SMALL_MAIN_TOPIC = ["--records", "4000"]


@pytest.mark.long(seconds=100)
def test_quick_benchmark_completes_every_case(bootstrap_servers, report):
    done = subprocess.run(
        [sys.executable, BENCH, "--quick", *SMALL_MAIN_TOPIC, "--json", "--bootstrap-servers", bootstrap_servers],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    failed = {case: runs for case, runs in result["runs"].items() if not runs or any("error" in r for r in runs)}
    assert failed == {}
    assert {row["case"] for row in result["summary"]} == set(result["runs"])
    assert all(row["median"] is not None for row in result["summary"])
    report(f"bench --quick: every case completed in {result['seconds']}s")
