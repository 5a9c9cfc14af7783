"""gkbroad's own cost per record, without a broker: python scripts/bench/hot_path.py [options].

The `noop` (or, with --batch, `noop-batch`) pipeline of scripts/bench.py, the
Kafka producer and all, over the in-memory consumer client of the tests
(tests/helpers/fake_kafka.py) instead of kafka-python. What it measures is
gkbroad's path from the group's buffers to the commit, the part a change to
the hot path moves; kafka-python's fetching and decoding, about three
quarters of what the raw loop of scripts/bench.py spends, are left out, and
so are the broker and the loopback. It prints the CPU time per record of
each repetition and of the best one (the least disturbed by other programs on
a shared machine), over the span from the first record handled to the last.

--profile FILE runs one repetition under cProfile and writes its stats, for
``profile_summary.py FILE RECORDS`` (calls per record do not depend on the
load). With PYTHONPATH=CHECKOUT, the gkbroad package of another checkout is
measured by the same script: a before/after within minutes.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT))  # for tests.helpers; last, so that a PYTHONPATH checkout's gkbroad is the one imported

from common import Counter, wait_done  # noqa: E402
from gkbroad_cases import BatchPipeline, HandlerPipeline  # noqa: E402

import gkbroad  # noqa: E402
from gkbroad.kafka import ConsumerGroup, Producer  # noqa: E402
from tests.helpers.fake_kafka import FakeConsumerClient  # noqa: E402

TOPIC = "bench"
PARTITIONS = 8


def run(records: int, batch: bool) -> Counter:
    """One pipeline over a fresh fake client holding `records` records over 8 partitions, until all were handled."""
    client = FakeConsumerClient({(TOPIC, p): records // PARTITIONS for p in range(PARTITIONS)})

    class FakeGroup(ConsumerGroup):
        client = {"bootstrap_servers": "fake:9092"}  # never used: the fake replaces kafka-python

        @classmethod
        def from_options(cls, options, consumer_client=None):  # type: ignore[no-untyped-def]
            return super().from_options(options, consumer_client=client)

    counter = Counter(records // PARTITIONS * PARTITIONS)
    pipeline = (BatchPipeline if batch else HandlerPipeline)(
        name="hot-path",
        producer={
            "module": (
                Producer,
                {
                    "consumer_group": FakeGroup,
                    "group_name": "hot-path",
                    "topics": [{"name": TOPIC, "offset_reset_policy": "earliest"}],
                },
            )
        },
        processors={"default": {"concurrency": 10, "max_demand": 10}},  # as scripts/bench.py's cases
        batchers={"default": {"batch_size": 100, "batch_timeout": 50}} if batch else {},
        context=counter,
    )
    pipeline.start()
    deadline = time.monotonic() + 10
    while not client.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    client.assign(*[(TOPIC, p) for p in range(PARTITIONS)])
    wait_done(counter, 120)
    pipeline.stop()
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", action="store_true", help="the noop-batch case: a batcher of 100, 50 ms")
    parser.add_argument("--profile", metavar="FILE", help="one repetition under cProfile, stats written to FILE")
    args = parser.parse_args()
    run(min(args.records, 8_000), args.batch)  # warm up: imports, first greenlets
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(args.records, args.batch)
        profiler.disable()
        profiler.dump_stats(args.profile)
        return
    figures = []
    for _ in range(args.reps):
        result = run(args.records, args.batch).result()
        figures.append(result["cpu_us"])
        print(f"{result['count']:,} records, {result['rate']:,.0f}/s, {result['cpu_us']:.2f} us CPU/record")
    case = "noop-batch" if args.batch else "noop"
    where = Path(gkbroad.__file__).parent.parent
    print(f"best of {args.reps}: {min(figures):.2f} us CPU/record ({case}, gkbroad of {where})")


if __name__ == "__main__":
    main()
