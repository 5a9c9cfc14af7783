"""Where the one-shot commands connect: ``--bootstrap-servers``, a pipeline's TOML file, or both.

`gkbroad lag`, `produce` and `offsets` talk to the cluster a pipeline runs on,
and a secured cluster needs more than an address: SASL and SSL settings. Rather
than repeat them as flags (and put passwords in shell history), these commands
read them from the pipeline's own configuration file (``--config FILE``): the
Kafka producer's ``client`` table, or the ``client`` attribute of its
``consumer_group`` class, checked as the pipeline checks them.
``--bootstrap-servers`` given as well replaces the file's addresses (the same
credentials against another listener). The file also supplies the group id
for commands that take ``--group``, so that neither needs repeating.

Nothing here prints a setting's value: errors name the option path, and the
settings reach kafka-python only through gkbroad.kafka.client.admin, whose
errors redact every secret value.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

__all__ = ["Connection", "add_connection_arguments", "connection", "kafka_python_client"]

_PRODUCER_PATH = "producer.module"


@dataclass(frozen=True)
class Connection:
    """The kafka-python settings to connect with, and the group id the config file names (if any)."""

    client: dict[str, Any]
    group: str | None = None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="comma-separated brokers (required unless --config gives them; with --config, replaces its addresses)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a pipeline's TOML file: its Kafka client settings (SASL, SSL, ...) and its group_name are used",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Kafka (default 10)")


def connection(args: argparse.Namespace) -> Connection:
    """The settings `args` ask for; ConfigProblems when neither flag gives an address or the file's are wrong."""
    from ..config.toml import ConfigProblems

    servers = _servers(args.bootstrap_servers) if args.bootstrap_servers else None
    if args.config is None:
        if not servers:
            raise ConfigProblems(["--bootstrap-servers or --config is required (the brokers to ask)"])
        return Connection({"bootstrap_servers": servers})
    client, group = _from_config(args.config)
    if servers:
        client["bootstrap_servers"] = servers
    return Connection(client, group)


def _servers(text: str) -> list[str]:
    return [server.strip() for server in text.split(",") if server.strip()]


def _from_config(path: str) -> tuple[dict[str, Any], str | None]:
    """(client settings, group_name) of the Kafka producer a pipeline file configures."""
    # Imported here: the parser is built without importing kafka-python (see commands).
    from ..config.toml import ConfigProblems, read_config
    from ..kafka.options import ClientSettings, ConsumerGroupClass

    config = read_config(path)
    producer = config.options.get("producer")
    module = producer.get("module") if isinstance(producer, dict) else None
    options = module[1] if isinstance(module, tuple) else None
    if not isinstance(options, dict):
        raise ConfigProblems(
            [f'{path}: {_PRODUCER_PATH}: expected ["gkbroad.kafka.Producer", {{client = {{...}}, ...}}]']
        )
    group = options.get("group_name")
    group = group if isinstance(group, str) and group else None
    library = options.get("client_library")
    if options.get("client") is not None:
        where = f"{_PRODUCER_PATH}.client"
        client = _checked(ClientSettings(), options["client"], where, path, options)
    elif options.get("consumer_group") is not None:
        group_class = _checked(
            ConsumerGroupClass(), options["consumer_group"], f"{_PRODUCER_PATH}.consumer_group", path, options
        )
        client, where = group_class.client, f"{_PRODUCER_PATH}.consumer_group.client"
    else:
        raise ConfigProblems(
            [f"{path}: {_PRODUCER_PATH}: has neither client nor consumer_group, nothing to connect with"]
        )
    translated, problems = kafka_python_client(client, library, where)
    if problems:
        raise ConfigProblems([f"{path}: {problem}" for problem in problems])
    return translated, group


def kafka_python_client(client: dict[str, Any], library: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    """(the ``client`` settings at `where` in kafka-python's names, problems): the commands talk kafka-python,
    so a librdkafka consumer's settings are translated, and a security setting kafka-python has no
    counterpart for is a problem (without it the commands could not get in)."""
    from ..kafka.client import kafka_python_connection, untranslated_security

    if library != "librdkafka":
        return dict(client), []
    problems = [
        f"{where}.{key}: the command line connects with kafka-python, which has no counterpart for this "
        "librdkafka setting (see docs/cli.md, a pipeline on librdkafka)"
        for key in untranslated_security(client)
    ]
    return kafka_python_connection(client), problems


def _checked(field: Any, value: Any, where: str, path: str, options: dict[str, Any]) -> Any:
    """The field's deserialized value (checked as a field of ``options``); its problems as
    ConfigProblems lines (``option.path: problem``)."""
    from marshmallow import ValidationError

    from ..config.toml import ConfigProblems

    try:
        return field.deserialize(value, data=options)
    except ValidationError as exc:
        raise ConfigProblems([f"{path}: {line}" for line in _lines(exc.messages, where)]) from None


def _lines(messages: Any, where: str) -> list[str]:
    if isinstance(messages, dict):
        return [line for key, sub in messages.items() for line in _lines(sub, f"{where}.{key}")]
    if isinstance(messages, list):
        return [line for item in messages for line in _lines(item, where)]
    return [f"{where}: {messages}"]
