"""The processes case of scripts/bench.py: the noop handler under `gkbroad run --processes 2` and `--processes 1`.

Runs the real command line on the main topic (fresh group each time; the two
take turns per repetition), reads the progress its processes print
(processes_pipeline.py), and once `records` were handled in all sends SIGTERM
and waits for the exit. The rate counts from the first report after every
process has handled records (so a worker that joined the group late, and the
rebalance it caused, are not measured) to the last record handled; over the
same span it reads the CPU time the gkbroad processes used (from their
reports) and the broker used (from /proc, when the broker listens on this
machine), in cores: a core busy all the time is 1.0. With too few records for
that span (every process handled its share between two of its reports, as in
`--quick`), the rate is timed from the launch instead and says so
(`"timed_from_launch"`): start-up and the join are then counted in.
Both runs serve a status page (the single process on a free port), so that
both time their handler calls as a supervised worker does.

Driver side: no gevent, kafka or gkbroad import here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from common import parse
from report import describe, median

HERE = Path(__file__).resolve().parent
CASES = {1: "noop-processes-1", 2: "noop-processes-2"}
TIMEOUT = 300.0

CONFIG = """\
pipeline = "processes_pipeline:CountingPipeline"
name = "bench"

[producer]
module = ["gkbroad.kafka.Producer", {{ client = {{ bootstrap_servers = "{bootstrap}" }}, group_name = "{group}", topics = [{{ name = "{topic}", offset_reset_policy = "earliest" }}], session_timeout_ms = {session_timeout_ms}, heartbeat_interval_ms = {heartbeat_interval_ms} }}]

[processors.default]
concurrency = 10
max_demand = 10
"""


def processes_cases(bench, reps: int) -> dict[str, list[dict]]:
    """Both cases, `reps` times each, taking turns."""
    runs: dict[str, list[dict]] = {case: [] for case in CASES.values()}
    for rep in range(reps):
        for processes in (2, 1) if rep % 2 == 0 else (1, 2):
            result = run_case(bench.bootstrap, bench.main_topic, processes, bench.size["records"], bench.group_settings)
            runs[CASES[processes]].append(result)
            print(f"rep {rep + 1}/{reps} {CASES[processes]}: {describe(result)}", file=sys.stderr, flush=True)
    return runs


def run_case(bootstrap: str, topic: str, processes: int, limit: int, group: dict) -> dict:
    case = CASES[processes]
    settings = {
        "session_timeout_ms": group["session_timeout_ms"],
        "heartbeat_interval_ms": group["heartbeat_interval_ms"],
    }
    config = CONFIG.format(bootstrap=bootstrap, topic=topic, group=f"bench-{case}-{uuid.uuid4().hex[:8]}", **settings)
    broker_pid = listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(config)
    command = [
        sys.executable,
        "-m",
        "gkbroad",
        "run",
        handle.name,
        "--processes",
        str(processes),
        "--log-level",
        "WARNING",
    ]
    if processes == 1:
        command += ["--status", "127.0.0.1:0"]
    launched = time.perf_counter()  # CLOCK_MONOTONIC on Linux, as the reports' "last"
    process = subprocess.Popen(command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    timer = threading.Timer(TIMEOUT, process.kill)
    timer.start()
    latest: dict[int, dict] = {}  # pid -> its latest report
    start = None  # the reports and the broker's CPU when every process had handled records
    broker_cpu_last = None
    try:
        for line in process.stdout:
            event = parse(line)
            if event is None or event["event"] != "progress":
                continue
            latest[event["pid"]] = event
            if start is None and len(latest) == processes:
                start = {"reports": dict(latest), "broker_cpu": cpu_seconds(broker_pid)}
            if sum(e["count"] for e in latest.values()) >= limit:
                broker_cpu_last = cpu_seconds(broker_pid)
                process.send_signal(signal.SIGTERM)
                break
        process.stdout.read()  # what the processes print while they stop
        process.wait()
    finally:
        timer.cancel()
        os.unlink(handle.name)
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    count = sum(e["count"] for e in latest.values())
    if process.returncode != 0 or count < limit or start is None:
        tail = "".join(stderr[-15:])[-500:]
        return {"case": case, "error": f"exit {process.returncode}, {count} of {limit} handled: {tail}"}
    began = start["reports"]
    counted = count - sum(e["count"] for e in began.values())
    end = max(e["last"] for e in latest.values())
    span = end - max(e["last"] for e in began.values())
    gkbroad_cpu = sum(e["cpu"] - began[pid]["cpu"] for pid, e in latest.items())
    from_launch = counted <= 0 or span <= 0
    if from_launch:
        counted, span, gkbroad_cpu = count, end - launched, sum(e["cpu"] for e in latest.values())
    result = {"case": case, "count": count, "rate": round(counted / span, 1), "processes_seen": len(latest),
              "cpu_us": round(gkbroad_cpu * 1e6 / counted, 2), "gkbroad_cores": round(gkbroad_cpu / span, 2),
              "clean": process.returncode == 0}  # fmt: skip
    if from_launch:
        result["timed_from_launch"] = True
    elif start["broker_cpu"] is not None and broker_cpu_last is not None:
        result["broker_cores"] = round((broker_cpu_last - start["broker_cpu"]) / span, 2)
    return result


def processes_rows(runs: dict[str, list[dict]]) -> list[dict]:
    """The table's rows for the two cases, with the ratio and the CPU the broker took."""
    rows = []
    one = median(runs.get(CASES[1], []), "rate")
    for processes, case in CASES.items():
        if case not in runs:
            continue
        results = runs[case]
        rate = median(results, "rate")
        notes = [f"{rate / one:.2f} x --processes 1"] if processes == 2 and rate and one else []
        if any(r.get("timed_from_launch") for r in results):
            notes.append("timed from the launch: too few records for the steady span")
        for key, who in (("gkbroad_cores", "gkbroad"), ("broker_cores", "broker")):
            cores = median(results, key)
            if cores is not None:
                notes.append(f"{who} {cores:.2f} cores")
        failed = sum("error" in r for r in results)
        rows.append({"case": case, "what": f"gkbroad run --processes {processes}, no-op handler", "median": rate,
                     "unit": "records/s", "cpu_us": median(results, "cpu_us"), "runs": len(results) - failed,
                     "failed": failed, "vs": ", ".join(notes)})  # fmt: skip
    return rows


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds process `pid` used so far (Linux /proc), None when it cannot be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` of this machine (Linux /proc), None when it is not found here."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None
