"""The demo: sample orders through `gkbroad run examples/orders.toml`, with progress and a summary.

    python examples/demo.py                                      # starts the bundled broker itself
    python examples/demo.py --bootstrap-servers localhost:9092   # your Kafka

It runs the command line a user would: `gkbroad produce` loads sample orders
into a fresh topic, `gkbroad run examples/orders.toml --status 127.0.0.1:PORT`
consumes them (16 processors, blocking handlers, one batcher) while this
script prints progress every second (consumed, rate, lag per partition, read
from Kafka like `gkbroad lag` does). Once everything is committed it sends
SIGTERM, as an operator would, and exits 0 only if `gkbroad run` stopped
cleanly (exit 0) and the committed offsets equal the end offsets.
"""

from gevent import monkey

monkey.patch_all()  # first, before kafka is imported anywhere

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402

from gkbroad.cli.lag import lag_rows, total_lag  # noqa: E402
from gkbroad.kafka.client.admin import committed_offsets, log_offsets  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "examples/orders.toml"
SHOWN = re.compile(r" (WARNING|ERROR|CRITICAL) | INFO (gkbroad\.pipeline|gkbroad\.cli|examples\.orders): |^(?!\d{4}-)")
TALLY = re.compile(r"orders tally: handled=(\d+) failed=(\d+) batches=(\d+)")


def gkbroad(*args):
    """The command line for `gkbroad ARGS` with this interpreter (same as the console script)."""
    return [sys.executable, "-m", "gkbroad", *args]


def show(command, env=()):
    """Print the command as a user would type it (with the environment it gets)."""
    settings = "".join(f"{name}={value} " for name, value in env)
    print(f"$ {settings}gkbroad " + " ".join(command[3:]), flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def echo_and_watch(stream, tally, verbose):
    """Pass `gkbroad run`'s log lines through (all of them with --verbose, else the pipeline's
    own lines and any warning) and keep the pipeline's final tally."""
    for line in stream:
        if verbose or SHOWN.search(line):
            sys.stderr.write("    " + line)
        match = TALLY.search(line)
        if match:
            tally.update(zip(("handled", "failed", "batches"), map(int, match.groups()), strict=True))


def run(servers, args):
    topic = f"demo-orders-{uuid.uuid4().hex[:6]}"
    group = f"{topic}-group"
    client = {"bootstrap_servers": servers}
    settings = {"KAFKA_BOOTSTRAP_SERVERS": servers, "ORDERS_TOPIC": topic, "ORDERS_GROUP": group}  # read by the TOML

    command = gkbroad("produce", "--bootstrap-servers", servers, "--topic", topic)
    command += ["--partitions", str(args.partitions), "--count", str(args.orders), "--keyed"]
    show(command)
    subprocess.run(command, check=True, cwd=ROOT)
    partitions = [(topic, p) for p in range(args.partitions)]
    ends = {p: end for (_, p), (_, end) in log_offsets(client, partitions).items()}

    command = gkbroad("run", CONFIG)
    port = args.status_port or free_port()
    command += ["--status", f"127.0.0.1:{port}"]
    status_url = f"http://127.0.0.1:{port}/"
    show(command, settings.items())
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **settings}, stderr=subprocess.PIPE, text=True)
    tally = {}
    reader = gevent.spawn(echo_and_watch, process.stderr, tally, args.verbose)
    print(f"== status page: {status_url} (health: {status_url}healthz, JSON: {status_url}status.json)")
    print(f"== consuming {args.orders} orders from {topic} ({args.partitions} partitions), group {group}")

    started = last_time = time.monotonic()
    committed, last_done = {}, 0
    while time.monotonic() - started < args.timeout and process.poll() is None:
        gevent.sleep(1.0)
        committed = {p: offset for (_, p), offset in committed_offsets(client, group).items()}
        rows = lag_rows(
            {(topic, p): o for p, o in committed.items()}, {(topic, p): (0, end) for p, end in ends.items()}
        )
        done = args.orders - total_lag(rows)
        now = time.monotonic()
        rate = (done - last_done) / (now - last_time)
        last_done, last_time = done, now
        if not committed:
            print("  waiting for the group to assign partitions...", flush=True)
            continue
        lag = " ".join(f"p{row.partition}:{row.lag}" for row in rows)
        print(f"  consumed {done:>6}/{args.orders}  {rate:>7.0f} rec/s  lag {lag}", flush=True)
        if committed == ends:
            break
    elapsed = time.monotonic() - started
    if process.poll() is None:
        print("== all committed; sending SIGTERM to gkbroad run" if committed == ends else "== timed out; SIGTERM")
        process.send_signal(signal.SIGTERM)
    try:
        exit_code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        exit_code = process.wait()
    reader.join(5)
    committed = {p: offset for (_, p), offset in committed_offsets(client, group).items()}

    print("== summary")
    print(f"  orders produced      {args.orders}")
    print(f"  handled              {tally.get('handled', '?')} ({tally.get('batches', '?')} batches written)")
    print(f"  failed               {tally.get('failed', '?')} (invalid amount, sent to handle_failed)")
    print(f"  time                 {elapsed:.1f}s ({args.orders / elapsed:.0f} orders/s)")
    print(f"  committed = end      {committed == ends}  {committed}")
    print(f"  gkbroad run exit     {exit_code} ({'clean stop' if exit_code == 0 else 'NOT clean'})")
    return 0 if exit_code == 0 and committed == ends else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting the bundled broker")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--status-port", type=int, default=0, help="port of the status page (default: a free one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="show every log line of gkbroad run")
    args = parser.parse_args()
    if args.bootstrap_servers:
        return run(args.bootstrap_servers, args)
    from gkbroad.testing.broker import LocalBroker

    with LocalBroker() as broker:
        print(f"== started the bundled broker on {broker.bootstrap_servers}")
        return run(broker.bootstrap_servers, args)


if __name__ == "__main__":
    sys.exit(main())
