"""The `gkbroad` console script (also `python -m gkbroad`).

For now it has one command, `gkbroad broker`, which runs the bundled test
broker for local experiments. The pipeline commands (run, check, lag) come later.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gkbroad", description="Kafka pipelines of gevent greenlets.")
    parser.add_argument("--version", action="version", version=f"gkbroad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    broker = commands.add_parser(
        "broker",
        help="run the bundled Kafka-compatible test broker on loopback (needs gkbroad[broker])",
        description="Start the bundled Tansu broker (in-memory storage) on 127.0.0.1, print its "
        "address, run until Ctrl-C.",
    )
    broker.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    broker.set_defaults(handler=_run_broker)
    return parser


def _run_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .broker import BrokerError, LocalBroker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker = LocalBroker(port=args.port or None)
    try:
        broker.start()
    except BrokerError as exc:
        print(f"gkbroad broker: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print(f"broker listening on {broker.bootstrap_servers} (Ctrl-C to stop)", flush=True)
        stop.wait()
    finally:
        broker.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
