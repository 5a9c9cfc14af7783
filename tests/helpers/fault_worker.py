"""One pipeline process for the fault tests, killed and restarted by them.

    python -m tests.helpers.fault_worker BOOTSTRAP TOPIC GROUP OUTFILE [--max-sleep S] [--assignor A] [--drain-timeout MS]
        [--proxy-url URL] [--request-timeout MS] [--ordering key] [--session-timeout MS] [--client-library L]

``--proxy-url`` and ``--request-timeout`` become kafka-python's ``proxy_url`` and
``request_timeout_ms`` (the network-partition tests reach the broker through a
SOCKS5 redirector; librdkafka has no proxy setting, and its request timeout is
``socket.timeout.ms``); ``--ordering`` is the producer's ordering option;
``--session-timeout`` replaces the tests' usual ``session_timeout_ms``;
``--client-library`` is the producer's ``client_library``.

handle_message sleeps a random bit (so a kill lands while records are being
handled); handle_batch appends one line per record to OUTFILE and fsyncs before
it returns, so every acknowledged (hence every committable) offset is on disk
first. Lines, each ending with the CLOCK_MONOTONIC time (the same clock in
every process on Linux):

    handled PARTITION OFFSET T
    start PARTITION T           (the member was given the partition)
    stop PARTITION REASON T     (it gave it up, after the drain)
    commit PARTITION OFFSET T   (the broker accepted a commit: OFFSET is the last processed one)
    exit clean|unclean T

A process killed mid-write leaves at most one partial last line, which the
checker (fault_check.py) ignores. Its log (INFO and up, gkbroad's and
kafka-python's) goes to OUTFILE.log, and SIGUSR1 dumps the running stack to
OUTFILE.stacks (it works even when the process spins), for when a test fails.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

import gkbroad  # noqa: E402
from gkbroad.kafka import ConsumerGroup, Producer  # noqa: E402
from tests.helpers.kafka_options import SESSION_TIMEOUT_MS, client_settings, producer_options  # noqa: E402


class Journal:
    """OUTFILE, appended to and fsynced per write."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, lines: list[str]) -> None:
        now = time.monotonic()
        os.write(self.fd, "".join(f"{line} {now:.6f}\n" for line in lines).encode())
        os.fsync(self.fd)


def journaled(commit, journal: Journal):
    """``commit`` (offsets, timeout) -> future, writing a "commit" line for every commit the broker
    accepted, when its answer arrived."""

    def send(offsets, timeout=None):
        future = commit(offsets, timeout)
        taken = dict(offsets)
        future.add_both(
            lambda _: (
                None if future.failed() else journal.write([f"commit {tp.partition} {o}" for tp, o in taken.items()])
            )
        )
        return future

    return send


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "group", "outfile"):
        parser.add_argument(name)
    parser.add_argument("--max-sleep", type=float, default=0.002)
    parser.add_argument("--assignor", default="cooperative-sticky")
    parser.add_argument("--drain-timeout", type=int, default=10000)
    parser.add_argument("--proxy-url")
    parser.add_argument("--request-timeout", type=int)
    parser.add_argument("--ordering")
    parser.add_argument("--session-timeout", type=int, default=SESSION_TIMEOUT_MS)
    parser.add_argument("--client-library", default="kafka-python")
    args = parser.parse_args()
    logging.basicConfig(
        filename=f"{args.outfile}.log", level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    journal = Journal(args.outfile)
    stacks = open(f"{args.outfile}.stacks", "w")  # noqa: SIM115 - open for the process lifetime
    faulthandler.register(signal.SIGUSR1, file=stacks)

    connection = client_settings(args.bootstrap, args.client_library)
    if args.proxy_url:
        connection["proxy_url"] = args.proxy_url
    if args.request_timeout:
        timeout = "socket.timeout.ms" if args.client_library == "librdkafka" else "request_timeout_ms"
        connection[timeout] = args.request_timeout

    class FaultGroup(ConsumerGroup):
        client = connection

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.commit_through(journaled(self.consumer_client.commit, journal))

        def handle_consumer_start(self, topic, partition, group_name):
            journal.write([f"start {partition}"])

        def handle_consumer_stop(self, topic, partition, group_name, reason):
            journal.write([f"stop {partition} {reason}"])

    class FaultPipeline(gkbroad.Pipeline):
        def handle_message(self, processor, message, context):
            gevent.sleep(random.uniform(0, args.max_sleep))
            return message

        def handle_batch(self, batcher, messages, batch_info, context):
            journal.write([f"handled {m.metadata['partition']} {m.metadata['offset']}" for m in messages])
            return messages

    pipeline = FaultPipeline(
        name="fault-worker",
        producer={
            "module": (
                Producer,
                producer_options(
                    args.bootstrap,
                    args.group,
                    [args.topic],
                    consumer_group=FaultGroup,
                    message_format="value",
                    drain_timeout=args.drain_timeout,
                    partition_assignment_strategy=args.assignor,
                    session_timeout_ms=args.session_timeout,
                    client_library=args.client_library,
                    **({"ordering": args.ordering} if args.ordering else {}),
                ),
            )
        },
        processors={"default": {"concurrency": 8, "max_demand": 10}},
        batchers={"default": {"batch_size": 50, "batch_timeout": 100, "concurrency": 4}},
    )
    clean = pipeline.run()
    journal.write([f"exit {'clean' if clean else 'unclean'}"])


if __name__ == "__main__":
    main()
