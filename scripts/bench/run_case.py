"""Runs one benchmark case in this process: python run_case.py CASE CONFIG_JSON.

Patches with gevent before anything else, as a gkbroad program must (the
kafka-python baselines run patched too), and reports the result on stdout
(see common.py). With BENCH_PROFILE=DIR set, the case runs under cProfile and
its stats are written to DIR/CASE.prof. cProfile's clock is the wall clock, so
the time a greenlet waits in the hub is counted as the own time of whatever
waited (on librdkafka most of it lands on the poll loop); with
BENCH_PROFILE_CPU=1 as well, the clock is the thread's CPU time and only work
is counted.
"""

from gevent import monkey

monkey.patch_all()

import cProfile  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from common import emit  # noqa: E402


def main(case: str, config: dict) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from gkbroad_cases import CASES as GKBROAD_CASES
    from raw_cases import CASES as RAW_CASES

    run = {**RAW_CASES, **GKBROAD_CASES}[case]
    profile_dir = os.environ.get("BENCH_PROFILE")
    profiler = None
    if profile_dir:
        profiler = cProfile.Profile(time.thread_time) if os.environ.get("BENCH_PROFILE_CPU") else cProfile.Profile()
    started = time.monotonic()
    if profiler:
        profiler.enable()  # every greenlet runs on this thread, so all of them are profiled
    result = run(config)
    if profiler:
        profiler.disable()
        profiler.dump_stats(os.path.join(profile_dir, f"{case}.prof"))
    emit("result", case=case, wall=round(time.monotonic() - started, 2), **result)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
