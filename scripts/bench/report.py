"""Turning the cases' results into the table scripts/bench.py prints (gkbroad-free)."""

from __future__ import annotations

import os
import platform
import statistics
from importlib.metadata import version


def describe(result: dict) -> str:
    if "error" in result:
        return "FAILED"
    shown = ("rate", "cpu_us", "p50_ms", "p99_ms", "peak_rss_mb", "seconds", "in_flight", "count", "clean", "wall")
    return " ".join(f"{key}={result[key]}" for key in shown if key in result)


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None and "error" not in r]
    return statistics.median(values) if values else None


def summarize(runs: dict[str, list[dict]], size: dict, steps: dict, ceiling: float, fetch_wait_ms: int) -> list[dict]:
    """One row per case: the median, its unit, and the ratios the targets are about.

    `steps` describes the throughput cases (scripts/bench.py's plan), `ceiling`
    is the io cases' partitions / handler time.
    """
    rates = {case: median(results, "rate") for case, results in runs.items() if case in steps}

    def ratio(case: str, base: str | float) -> float | None:
        denominator = rates.get(base) if isinstance(base, str) else base
        return round(rates[case] / denominator, 2) if rates.get(case) and denominator else None

    comparisons = {
        "noop": [("raw", "raw")],
        "noop-batch": [("raw", "raw")],
        "noop-traced-api": [("noop", "tracing off")],
        "noop-traced-sdk": [("noop", "tracing off")],
        "noop-prometheus": [("noop", "no metrics")],
        "io-partition": [("io-raw", "io-raw"), (ceiling, f"ceiling {ceiling:,.0f}/s")],
        "io-key-100": [("io-raw", "io-raw"), ("io-threadpool", "thread pool")],
        "io-key-400": [("io-raw", "io-raw"), ("io-threadpool", "thread pool")],
        "io-threadpool": [("io-raw", "io-raw")],
        "c-block-thread": [("c-block-greenlet", "executor=greenlet")],
        "write-alo": [("write-none", "no output")],
        "write-eos": [("write-none", "no output"), ("write-alo", "at least once")],
        "noop-rdkafka": [("raw-rdkafka", "raw-rdkafka"), ("noop", "gkbroad noop"), ("quix-noop", "quixstreams")],
        "noop-buffers-rdkafka": [
            ("noop-rdkafka", "noop-rdkafka"),
            ("noop", "gkbroad noop"),
            ("quix-noop", "quixstreams"),
        ],
        "raw-rdkafka": [("raw", "raw")],
        "io-key-400-rdkafka": [("io-key-400", "io-key-400 on kafka-python")],
        "quix-noop": [("raw", "raw"), ("noop", "gkbroad noop")],
        "faust-noop": [("raw", "raw"), ("noop", "gkbroad noop")],
        "quix-io": [("io-raw", "io-raw")],
        "faust-io": [("io-raw", "io-raw")],
    }
    rows = []
    for case, (what, _) in steps.items():
        if case not in runs:
            continue
        kind = case.removesuffix("@baseline")  # a baseline's row compares with the same cases
        notes = [f"{ratio(case, base)} x {label}" for base, label in comparisons.get(kind, []) if ratio(case, base)]
        cpu = median(runs[case], "cpu_us")
        raw = "raw-rdkafka" if kind.endswith("-rdkafka") else "raw"  # the raw loop of the same client
        base_cpu = median(runs.get(raw, []), "cpu_us")
        if kind.startswith("noop") and cpu and base_cpu:
            notes.append(f"CPU {cpu - base_cpu:+.1f} us/record over {raw}")
        for base, least, label in THROUGHPUT_TARGETS.get(kind, []):
            achieved = ratio(case, ceiling if base == "ceiling" else base)
            if achieved is not None:
                notes.append(f"target {label}: {'met' if achieved >= least else 'not met'}")
        rows.append(_row(case, what, runs[case], rates[case], "records/s", ", ".join(notes), cpu))
    for case in ("memory", "memory@baseline"):
        if case in runs:
            peak = median(runs[case], "peak_rss_mb")
            notes = f"backlog {size['backlog']:,}, 2 ms handler, default options"
            if peak is not None:
                notes += f"; target < {MEMORY_TARGET_MB} MB: {'met' if peak < MEMORY_TARGET_MB else 'not met'}"
            rows.append(_row(case, "peak RSS", runs[case], peak, "MB", notes))
    raw_p99 = median(runs.get("latency-raw", []), "p99_ms")
    for case, who in (("latency-raw", "kafka-python loop"), ("latency", "gkbroad"), ("latency@baseline", "gkbroad")):
        if case in runs:
            p50, p99 = median(runs[case], "p50_ms"), median(runs[case], "p99_ms")
            what = f"{who}, 5,000 records/s, record timestamp -> handler (fetch max wait {fetch_wait_ms} ms)"
            notes = f"p50 {p50} ms"
            if case != "latency-raw" and p99 is not None and raw_p99 is not None:
                notes += f"; target p99 <= latency-raw's: {'met' if p99 <= raw_p99 else 'not met'}"
            rows.append(_row(case, what, runs[case], p99, "ms p99", notes))
    for case in ("shutdown", "shutdown@baseline"):
        if case in runs:
            clean = all(r.get("clean") for r in runs[case])
            notes = f"{size['in_flight']:,} in flight, ordering=key, 100 processors, 2 ms handler; clean={clean}"
            rows.append(_row(case, "SIGTERM -> exit", runs[case], median(runs[case], "seconds"), "s", notes))
    return rows


# The targets of issues 14 and 21 (librdkafka), per case: (the case or "ceiling" its rate is divided by, the least
# ratio, how the target reads). A target is shown when both rates were measured.
THROUGHPUT_TARGETS: dict[str, list[tuple[str, float, str]]] = {
    "noop-rdkafka": [("noop", 2.0, ">= 2 x gkbroad noop on kafka-python"), ("quix-noop", 2.0, ">= 2 x quixstreams")],
    "io-key-400-rdkafka": [("io-key-400", 1.5, ">= 1.5 x io-key-400 on kafka-python")],
    "noop": [("raw", 0.9, ">= 0.9 x raw"), ("quix-noop", 1.0, "ahead of quixstreams")],
    "io-partition": [("ceiling", 0.8, ">= 0.8 x ceiling")],
    "io-key-400": [("io-raw", 50.0, ">= 50 x io-raw"), ("io-threadpool", 1.0, "ahead of the thread pool")],
}
MEMORY_TARGET_MB = 80


def _row(case: str, what: str, results: list[dict], value, unit: str, notes: str, cpu_us=None) -> dict:
    failed = sum("error" in r for r in results)
    return {"case": case, "what": what, "median": value, "unit": unit, "cpu_us": cpu_us,
            "runs": len(results) - failed, "failed": failed, "vs": notes}  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| case | what | median | CPU us/record | runs | ratio / notes |", "|---|---|---|---|---|---|"]
    for row in rows:
        value = (
            "FAILED"
            if row["median"] is None
            else f"{row['median']:,.{0 if row['median'] >= 100 else 1}f} {row['unit']}"
        )
        runs = f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        cpu = "" if row["cpu_us"] is None else f"{row['cpu_us']:.1f}"
        lines.append(f"| {row['case']} | {row['what']} | {value} | {cpu} | {runs} | {row['vs']} |")
    return "\n".join(lines)  # fmt: skip


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kafka-python": version("kafka-python"),
        "gevent": version("gevent"),
        "platform": platform.platform(),
    }
