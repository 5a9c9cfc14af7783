#!/usr/bin/env python3
"""Benchmark gkbroad against hand-written kafka-python loops on the same data.

    .venv/bin/python scripts/bench.py            # full run (a few minutes)
    .venv/bin/python scripts/bench.py --quick    # smoke run, under a minute
    .venv/bin/python scripts/bench.py --json     # the table as JSON, with every run
    .venv/bin/python scripts/bench.py --baseline ../other-checkout   # before/after in one run

Starts the bundled broker on loopback (or uses --bootstrap-servers), produces
the records once, then runs each case in its own process (scripts/bench/
run_case.py), in a fresh consumer group on the same data, the cases taking
turns for each repetition. Rates count from the first record reaching user code
to the last one handled, so the group join is not measured. Figures vary with
the machine and its load: compare the ratios of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "bench"))

from common import parse  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from processes_case import processes_cases, processes_rows  # noqa: E402
from report import describe, machine, summarize, table  # noqa: E402

from gkbroad.testing.broker import LocalBroker  # noqa: E402

PARTITIONS, KEYS, VALUE_BYTES = 8, 1000, 100
IO_SLEEP = 0.002
C_BLOCK = 0.010  # the c-block-* handlers block this long in the unpatched time.sleep (a C driver's call)
# The bundled Tansu answers a fetch only when its max wait is over, even when
# records arrived meanwhile, so the latency cases (both) ask for a short one.
FETCH_MAX_WAIT_MS = 10
CASE_TIMEOUT = 300.0

# case -> (what it is, its settings); "limit" is how many records it handles
# (a fraction of the topic for the slow io cases), "series" what it reports.
FULL = {
    "records": 200_000,
    "reps": 3,
    "io_raw": 1_000,
    "io_partition": 16_000,
    "io_fast": 40_000,
    "backlog": 1_000_000,
    "memory_seconds": 10,
    "latency_seconds": 10,
    "in_flight": 10_000,
    "c_block_greenlet": 500,
    "c_block_thread": 3_000,
    "session_timeout_ms": 6000,
}
QUICK = {"records": 20_000, "reps": 1, "io_raw": 200, "io_partition": 2_000, "io_fast": 4_000,
         "backlog": 50_000, "memory_seconds": 2, "latency_seconds": 2, "in_flight": 2_000,
         "c_block_greenlet": 100, "c_block_thread": 500, "session_timeout_ms": 3000}  # fmt: skip


ALL_CASES = ["raw", "noop", "noop-batch", "io-raw", "io-partition", "io-key-100", "io-key-400", "io-threadpool",
             "c-block-greenlet", "c-block-thread", "write-none", "write-alo", "write-eos",
             "memory", "latency-raw", "latency", "shutdown", "processes",
             "raw-rdkafka", "noop-rdkafka", "noop-buffers-rdkafka", "io-key-400-rdkafka"]  # fmt: skip


# The cost of the observability options, against "noop" in the same run (--observability).
OBSERVABILITY_CASES = ["noop", "noop-traced-api", "noop-traced-sdk", "noop-prometheus"]

PEERS_VENV = HERE.parent / ".bench" / "venv"
PEER_PACKAGES = ["quixstreams", "faust-streaming"]
PEER_CASES = ["quix-noop", "faust-noop", "quix-io", "faust-io"]
# The cases that run gkbroad, which --baseline also runs against another checkout's gkbroad.
GKBROAD_CASES = ["noop", "noop-batch", "io-partition", "io-key-100", "io-key-400", "c-block-greenlet",
                 "c-block-thread", "memory", "latency", "shutdown",
                 "noop-rdkafka", "noop-buffers-rdkafka", "io-key-400-rdkafka"]  # fmt: skip
BASELINE = "@baseline"  # suffix of a case run against --baseline


def baseline_of(case: str) -> str:
    return case + BASELINE


def without_baseline(case: str) -> str:
    return case.removesuffix(BASELINE)


def peer_plan(size: dict) -> dict[str, tuple[str, dict]]:
    io = {"sleep": IO_SLEEP, "limit": size["io_raw"]}
    return {
        "quix-noop": ("quixstreams Application, no-op handler", {"limit": size["records"]}),
        "faust-noop": ("faust-streaming agent, no-op", {"limit": size["records"]}),
        "quix-io": ("2 ms handler: quixstreams (time.sleep)", io),
        "faust-io": ("2 ms handler: faust-streaming agent (await asyncio.sleep)", io),
    }


def peers_python() -> Path:
    """The interpreter of .bench/venv, created with quixstreams and faust-streaming on first use."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {PEERS_VENV} with {', '.join(PEER_PACKAGES)}")
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def plan(size: dict) -> dict[str, tuple[str, dict]]:
    io = {"sleep": IO_SLEEP}
    fast = {**io, "limit": size["io_fast"]}
    return {
        "raw": ("kafka-python poll loop, handler per record", {"limit": size["records"]}),
        "noop": ("gkbroad, no-op handler", {"limit": size["records"]}),
        "noop-traced-api": ("gkbroad, no-op handler, tracing on, API only (no SDK)",
                            {"limit": size["records"], "tracing": "api"}),
        "noop-traced-sdk": ("gkbroad, no-op handler, tracing on, SDK + batch processor",
                            {"limit": size["records"], "tracing": "sdk"}),
        "noop-prometheus": ("gkbroad, no-op handler, Prometheus metrics", {"limit": size["records"], "prometheus": True}),
        "noop-batch": (
            "gkbroad, no-op handler + batcher of 100 (timeout 50 ms)",
            {"limit": size["records"], "batch_size": 100, "batch_timeout": 50},
        ),
        "io-raw": ("2 ms handler: kafka-python loop, one by one", {**io, "limit": size["io_raw"]}),
        "io-partition": (
            "2 ms handler: gkbroad ordering=partition, 10 processors",
            {**io, "limit": size["io_partition"]},
        ),
        "io-key-100": ("2 ms handler: gkbroad ordering=key, 100 processors", {**fast, "ordering": "key", "processors": 100}),
        "io-key-400": ("2 ms handler: gkbroad ordering=key, 400 processors", {**fast, "ordering": "key", "processors": 400}),
        "io-threadpool": ("2 ms handler: kafka-python + ThreadPoolExecutor(100), per-key order", {**fast, "threads": 100}),
        # The same on librdkafka (client_library = "librdkafka"; confluent-kafka must be installed).
        "raw-rdkafka": ("confluent-kafka consume(500) loop, handler per record", {"limit": size["records"]}),
        "noop-rdkafka": ("gkbroad on librdkafka, no-op handler", {"limit": size["records"], "client_library": "librdkafka"}),
        # With buffers a partition seldom fills: librdkafka drops its prefetch of a partition it pauses.
        "noop-buffers-rdkafka": ("gkbroad on librdkafka, no-op handler, max_buffer_records 20,000",
                                 {"limit": size["records"], "client_library": "librdkafka", "max_buffer_records": 20_000}),
        "io-key-400-rdkafka": ("2 ms handler: gkbroad on librdkafka, ordering=key, 400 processors",
                               {**fast, "ordering": "key", "processors": 400, "client_library": "librdkafka"}),
        "c-block-greenlet": ("10 ms C-blocking handler: gkbroad executor=greenlet, 32 processors",
                             {"c_block": C_BLOCK, "processors": 32, "limit": size["c_block_greenlet"]}),
        "c-block-thread": ("10 ms C-blocking handler: gkbroad executor=thread, 32 processors",
                           {"c_block": C_BLOCK, "processors": 32, "executor": "thread", "limit": size["c_block_thread"]}),
        # Consume-transform-produce, timed until the group committed every record (pipeline.stop() included).
        "write-none": ("gkbroad, no-op handler, no output, until committed", {"limit": size["records"], "write": "none"}),
        "write-alo": ("gkbroad, one output per record, at least once, until committed",
                      {"limit": size["records"], "write": "alo"}),
        "write-eos": ("gkbroad, one output per record, exactly_once, until committed",
                      {"limit": size["records"], "write": "eos"}),
    }  # fmt: skip


def all_steps(size: dict) -> dict[str, tuple[str, dict]]:
    """Every throughput case's description and settings, the baseline variants included."""
    steps = {}
    for case, (what, settings) in {**plan(size), **peer_plan(size)}.items():
        steps[case] = (what, settings)
        if case in GKBROAD_CASES:
            steps[baseline_of(case)] = (f"{what} [baseline]", settings)
    return steps


class Bench:
    def __init__(self, bootstrap: str, size: dict, baseline: Path | None = None):
        self.bootstrap = bootstrap
        self.size = size
        self.baseline = baseline
        # The bundled broker holds a group's first join for about half the session timeout.
        self.group_settings = {
            "session_timeout_ms": size["session_timeout_ms"],
            "heartbeat_interval_ms": size["session_timeout_ms"] // 6,
            "partitions": PARTITIONS,
        }
        self.main_topic = self.topic("main", size["records"])

    # -- data ----------------------------------------------------------------

    def topic(self, prefix: str, records: int) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="gkbroad-bench")
        try:
            admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        finally:
            admin.close()
        if records:
            started = time.monotonic()
            produce(self.bootstrap, name, records)
            log(f"produced {records:,} records to {name} in {time.monotonic() - started:.1f}s")
        return name

    # -- one run ---------------------------------------------------------------

    def run(self, case: str, topic: str, settings: dict, on_event=None) -> dict:
        """Run `case` in its own process; its result, or {"error": ...}."""
        config = {
            "bootstrap": self.bootstrap,
            "topic": topic,
            "group": f"bench-{case}-{uuid.uuid4().hex[:8]}",
            **self.group_settings,
            **settings,
        }
        env = None
        if case in PEER_CASES:
            command = [str(peers_python()), str(HERE / "bench" / "peer_cases.py")]
        elif case.endswith(BASELINE):
            # The other checkout's case code and its gkbroad package, ahead of this one's.
            assert self.baseline is not None, f"{case} needs --baseline"
            command = [sys.executable, str(self.baseline / "scripts" / "bench" / "run_case.py")]
            env = {**os.environ, "PYTHONPATH": str(self.baseline)}
        else:
            command = [sys.executable, str(HERE / "bench" / "run_case.py")]
        process = subprocess.Popen(
            [*command, without_baseline(case), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
        reader.start()
        timer = threading.Timer(CASE_TIMEOUT, process.kill)
        timer.start()
        result, extra = None, {}
        try:
            for line in process.stdout:
                event = parse(line)
                if event is None:
                    continue
                if event["event"] == "result":
                    result = event
                elif on_event is not None:
                    extra.update(on_event(event, process) or {})
            code = process.wait()
            if "signalled_at" in extra:  # the driver signalled the process: time it took to exit
                extra["seconds"] = round(time.monotonic() - extra.pop("signalled_at"), 2)
        finally:
            timer.cancel()
        reader.join(5)
        if code != 0 or result is None:
            tail = "".join(stderr[-15:])
            log(f"{case}: FAILED (exit {code})\n{tail}")
            return {"case": case, "error": f"exit {code}: {tail[-500:]}"}
        return {**result, **extra}

    # -- the cases ---------------------------------------------------------------

    def throughput(self, reps: int, cases: list[str]) -> dict[str, list[dict]]:
        topic = self.main_topic
        steps = all_steps(self.size)
        runs: dict[str, list[dict]] = {case: [] for case in cases}
        for rep in range(reps):
            order = cases if rep % 2 == 0 else list(reversed(cases))
            for case in order:
                result = self.run(case, topic, steps[case][1])
                runs[case].append(result)
                log(f"rep {rep + 1}/{reps} {case}: {describe(result)}")
        return runs

    def memory(self, cases: list[str]) -> dict[str, list[dict]]:
        if not cases:
            return {}  # the backlog takes a while to produce
        topic = self.topic("backlog", self.size["backlog"])
        settings = {"sleep": IO_SLEEP, "duration": self.size["memory_seconds"]}
        runs = {}
        for case in cases:
            runs[case] = [self.run(case, topic, settings)]
            log(f"{case}: {describe(runs[case][0])}")
        return runs

    def latency(self, reps: int, case: str) -> list[dict]:
        """`case` ("latency": gkbroad, "latency-raw": the kafka-python loop) consuming
        records produced at a fixed rate from the moment it owns every partition."""
        rate, seconds = 5000, self.size["latency_seconds"]
        runs = []
        for _ in range(reps):
            topic = self.topic("latency", 0)

            def on_event(event, process, topic=topic):
                if event["event"] == "assigned":
                    threading.Thread(
                        target=produce_at_rate, args=(self.bootstrap, topic, rate, seconds), daemon=True
                    ).start()

            settings = {"limit": rate * seconds, "latency": True, "fetch_max_wait_ms": FETCH_MAX_WAIT_MS}
            result = self.run(case, topic, settings, on_event)
            runs.append(result)
            log(f"{case}: {describe(result)}")
        return runs

    def shutdown(self, reps: int, case: str = "shutdown") -> list[dict]:
        settings = {"sleep": IO_SLEEP, "ordering": "key", "processors": 100, "in_flight": self.size["in_flight"]}
        settings["max_demand"] = int(self.size["in_flight"] * 1.1) // 100
        runs = []
        for _ in range(reps):

            def on_event(event, process):
                if event["event"] == "ready":
                    process.send_signal(signal.SIGTERM)
                    return {"in_flight": event["in_flight"], "signalled_at": time.monotonic()}

            result = self.run(case, self.main_topic, settings, on_event)
            runs.append(result)
            log(f"{case}: {describe(result)}")
        return runs


def produce(bootstrap: str, topic: str, count: int) -> None:
    """`count` records of VALUE_BYTES bytes over KEYS keys (the key picks the partition)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    filler = os.urandom(VALUE_BYTES)
    try:
        for i in range(count):
            producer.send(topic, key=b"key-%d" % (i % KEYS), value=b"%010d" % i + filler[10:])
        producer.flush()
    finally:
        producer.close()


def produce_at_rate(bootstrap: str, topic: str, rate: int, seconds: float) -> None:
    """`rate` records a second for `seconds`, sent in 10 ms ticks; each record's
    timestamp is taken by the client when it is sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    filler = os.urandom(VALUE_BYTES)
    per_tick, ticks = rate // 100, int(seconds * 100)
    started = time.monotonic()
    try:
        for tick in range(ticks):
            delay = started + tick / 100 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for i in range(tick * per_tick, (tick + 1) * per_tick):
                producer.send(topic, key=b"key-%d" % (i % KEYS), value=b"%010d" % i + filler[10:])
        producer.flush()
    finally:
        producer.close()


# -- reporting -------------------------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting the bundled broker")
    parser.add_argument("--quick", action="store_true", help="small sizes and one repetition (a smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions of each case (default 3, 1 with --quick)")
    parser.add_argument("--records", type=int, help=f"records in the main topic (default {FULL['records']:,})")
    parser.add_argument("--cases", help=f"comma-separated subset of: {', '.join(ALL_CASES)}")
    parser.add_argument(
        "--peers",
        action="store_true",
        help=f"also run {', '.join(PEER_CASES)} (installs {' and '.join(PEER_PACKAGES)} into .bench/venv once)",
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help=f"run only {', '.join(OBSERVABILITY_CASES)}: the cost of tracing and Prometheus against noop",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run every gkbroad case against the checkout at this path (its scripts/bench and its gkbroad), "
        "as CASE@baseline, taking turns with the others: a before/after comparison within one run",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (summary, machine and every run)")
    args = parser.parse_args()
    size = dict(QUICK if args.quick else FULL)
    if args.records:
        size["records"] = args.records
    reps = args.reps or size["reps"]
    if reps < 1:
        parser.error(f"--reps must be at least 1, got {reps}")
    cases = args.cases.split(",") if args.cases else list(OBSERVABILITY_CASES if args.observability else ALL_CASES)
    known = ALL_CASES + OBSERVABILITY_CASES[1:]
    unknown = sorted(set(cases) - set(known))
    if unknown:
        parser.error(f"--cases: unknown case(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    info = {"machine": machine(), "sizes": size, "reps": reps}
    started = time.monotonic()
    broker = None
    if args.bootstrap_servers:
        bootstrap, info["broker"] = args.bootstrap_servers, args.bootstrap_servers
    else:
        broker = LocalBroker().start()
        bootstrap, info["broker"] = broker.bootstrap_servers, "bundled Tansu (in memory) on loopback"
    if args.baseline is not None:
        if not (args.baseline / "scripts" / "bench" / "run_case.py").exists():
            parser.error(f"--baseline: expected a gkbroad checkout with scripts/bench/run_case.py, got {args.baseline}")
        cases += [baseline_of(case) for case in cases if case in GKBROAD_CASES]
    try:
        bench = Bench(bootstrap, size, args.baseline)
        throughput = [case for case in all_steps(size) if case in cases] + (PEER_CASES if args.peers else [])
        runs = bench.throughput(reps, throughput)
        runs.update(bench.memory([case for case in ("memory", baseline_of("memory")) if case in cases]))
        for case in ("latency-raw", "latency", baseline_of("latency")):
            if case in cases:
                runs[case] = bench.latency(reps, case)
        for case in ("shutdown", baseline_of("shutdown")):
            if case in cases:
                runs[case] = bench.shutdown(reps, case)
        if "processes" in cases:  # noop under gkbroad run --processes 2 and 1 (scripts/bench/processes_case.py)
            runs.update(processes_cases(bench, reps))
    finally:
        if broker is not None:
            broker.stop()
    info["seconds"] = round(time.monotonic() - started, 1)
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    rows = summarize(runs, size, all_steps(size), PARTITIONS / IO_SLEEP, FETCH_MAX_WAIT_MS) + processes_rows(runs)
    if args.json:
        print(json.dumps({**info, "summary": rows, "runs": runs}, indent=2))
    else:
        print(table(rows))
        print(f"\n{info['machine']['cpus']} CPUs, load {info['machine']['load_average']} -> "
              f"{info['load_average_after']}; {info['broker']}; {reps} repetition(s); {info['seconds']}s")  # fmt: skip
    failed = [r.get("case") for results in runs.values() for r in results if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
