"""librdkafka's settings for a consumer group and its writers: importing the binding, checking names.

A pipeline with ``client_library = "librdkafka"`` passes its ``client``
mapping in librdkafka's own names (``bootstrap.servers``,
``security.protocol``, ``sasl.password``, ...). They are checked by
librdkafka itself: a throwaway consumer is configured with them (without
``bootstrap.servers`` it connects nowhere), so whatever the installed
librdkafka knows is accepted and nothing else, with librdkafka's own words
for what is wrong. The settings that carry gkbroad's consumer-group semantics
(manual commits, offsets stored by gkbroad only, gkbroad's offset reset, the
assignor, the timeouts of the group protocol) are set here and refused from
``client``, naming the option to use instead.

The writers (dead letters, outputs, the retry topic, the transactional
producer) of such a pipeline produce through librdkafka too: they connect
with the connection and security settings of ``client``
(``librdkafka_connection``) and take their own ``client`` settings in
librdkafka's producer names, checked the same way by a throwaway producer.

confluent-kafka is an optional extra: it is imported on first use, and its
absence is an error naming the extra to install.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ...config.redact import is_secret
from ...errors import ConfigError
from .consumer import CONSUMER_DEFAULTS
from .producer import PRODUCER_DEFAULTS

__all__ = [
    "LIBRDKAFKA_ASSIGNORS",
    "LIBRDKAFKA_MANAGED",
    "LIBRDKAFKA_PARTITION_FETCH_BYTES",
    "LIBRDKAFKA_POLL_INTERVAL_MS",
    "LIBRDKAFKA_WRITER_MANAGED",
    "ExtraMissing",
    "import_confluent_kafka",
    "kafka_python_connection",
    "librdkafka_connection",
    "librdkafka_producer_setting_errors",
    "librdkafka_setting_errors",
]

INSTALL_HINT = "pip install 'gkbroad[librdkafka]'"

# partition_assignment_strategy option -> librdkafka's name; librdkafka has no eager "sticky".
LIBRDKAFKA_ASSIGNORS = {"cooperative-sticky": "cooperative-sticky", "range": "range", "roundrobin": "roundrobin"}

# librdkafka's max.poll.interval.ms default: the rebalance timeout when rebalance_timeout_ms is unset.
LIBRDKAFKA_POLL_INTERVAL_MS = 300000

# gkbroad's default for librdkafka's max.partition.fetch.bytes (librdkafka's own is 1 MiB), when no topic
# sets fetch_max_bytes: librdkafka prefetches each partition, and smaller fetches come back sooner and keep
# less of a partition in memory (scripts/bench.py --cases noop-rdkafka; see docs/guides/clients.md).
LIBRDKAFKA_PARTITION_FETCH_BYTES = 64 * 1024

# librdkafka settings gkbroad sets itself, and the option to use instead (None: leave it out).
LIBRDKAFKA_MANAGED = {
    "group.id": "group_name",
    "group.instance.id": "instance_id",
    "enable.auto.commit": None,
    "auto.commit.interval.ms": None,
    "enable.auto.offset.store": None,
    "auto.offset.reset": "topics[].offset_reset_policy",
    "partition.assignment.strategy": "partition_assignment_strategy",
    "session.timeout.ms": "session_timeout_ms",
    "heartbeat.interval.ms": "heartbeat_interval_ms",
    "max.poll.interval.ms": "rebalance_timeout_ms",
    "fetch.wait.max.ms": "fetch_strategy.max_wait_ms",
    "fetch.min.bytes": "fetch_strategy.min_bytes",
    "fetch.max.bytes": "fetch_strategy.max_bytes",
    "max.partition.fetch.bytes": "topics[].fetch_max_bytes",
    "queued.min.messages": "topics[].max_buffer_records",
    "isolation.level": "topics[].isolation_level",
    "enable.partition.eof": None,
    "statistics.interval.ms": None,
    "on_commit": None,
    "stats_cb": None,
    "error_cb": None,
    "logger": None,
}

# librdkafka producer settings the writers set themselves, and the option to use instead (None: leave it out).
LIBRDKAFKA_WRITER_MANAGED = {
    "transactional.id": "exactly_once.transactional_id",
    "on_delivery": None,
    "dr_cb": None,
    "dr_msg_cb": None,
    "error_cb": None,
    "logger": None,
}

# The consumer settings a writer connects with: where the brokers are and how to reach and authenticate to them.
_CONNECTION_NAMES = frozenset(
    {"bootstrap.servers", "metadata.broker.list", "client.dns.lookup", "connections.max.idle.ms", "oauth_cb"}
)
_SECURITY_PREFIXES = ("security.", "sasl.", "ssl.", "ssl_", "enable.ssl.", "enable.sasl.", "https.")
_CONNECTION_PREFIXES = (
    *_SECURITY_PREFIXES,
    "socket.",
    "broker.",
    "api.version.",
    "reconnect.backoff.",
)

# librdkafka connection settings -> kafka-python's, for the command line's one-shot requests and the retry
# topic's creation, which go through kafka-python whatever the consumer runs on.
_KAFKA_PYTHON_NAMES = {
    "bootstrap.servers": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
}

# librdkafka's message for a refused setting names it in double quotes.
_NAMED = re.compile(r'property:? "([^"]+)"')


class ExtraMissing(ConfigError):
    """confluent-kafka is not installed (the ``gkbroad[librdkafka]`` extra): a configuration problem,
    raised when the options are checked or the consumer group is built."""


def import_confluent_kafka() -> ModuleType:
    """The confluent_kafka module; ExtraMissing, naming the extra, when it is not installed."""
    try:
        return importlib.import_module("confluent_kafka")
    except ImportError as exc:
        raise ExtraMissing(
            f"needs the 'librdkafka' extra (confluent-kafka, not installed: {exc}); install it with `{INSTALL_HINT}`"
        ) from None


def librdkafka_setting_errors(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """{setting: [problem]} for a ``client`` mapping in librdkafka's names; empty when librdkafka takes it.
    Raises ExtraMissing when confluent-kafka is not installed."""
    errors = _name_errors(settings, LIBRDKAFKA_MANAGED, CONSUMER_DEFAULTS)
    if not settings.get("bootstrap.servers"):
        errors["bootstrap.servers"] = ["missing required option: librdkafka's host:port list"]
    return errors or _refused(settings, "Consumer", {"group.id": "gkbroad-settings-check"})


def librdkafka_producer_setting_errors(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """{setting: [problem]} for a writer's own ``client`` mapping in librdkafka's producer names (they
    add to the consumer's connection settings, so ``bootstrap.servers`` is optional); empty when
    librdkafka takes it. Raises ExtraMissing when confluent-kafka is not installed."""
    errors = _name_errors(settings, LIBRDKAFKA_WRITER_MANAGED, PRODUCER_DEFAULTS)
    for key in ("acks", "request.required.acks"):
        if str(settings.get(key, "")) == "0":
            errors[key] = [
                "must be 1 or 'all': a record (output, dead letter or retry) counts as written only once the "
                "broker acknowledged it"
            ]
    return errors or _refused(settings, "Producer", {})


def _name_errors(
    settings: Mapping[str, Any], managed: Mapping[str, str | None], kafka_python_names: Mapping[str, Any]
) -> dict[str, list[str]]:
    """{setting: [problem]} for the settings gkbroad sets itself (``managed``: the option to use instead,
    or None) and for kafka-python's underscored spellings of librdkafka's names."""
    errors: dict[str, list[str]] = {}
    for key in settings:
        if key in managed:
            instead = managed[key]
            errors[key] = [
                f"is set by gkbroad; {'use the ' + repr(instead) + ' option' if instead else 'leave it out'}"
            ]
        elif key in kafka_python_names and key.replace("_", ".") != key:
            errors[key] = [f"is kafka-python's name; librdkafka's settings are dotted, e.g. {key.replace('_', '.')!r}"]
    return errors


class _Unheard:
    """The logger of a throwaway client: librdkafka's lines about a client that never runs help no one."""

    def log(self, level: int, message: str, *args: Any) -> None:
        pass


def _refused(settings: Mapping[str, Any], kind: str, extra: Mapping[str, Any]) -> dict[str, list[str]]:
    """What librdkafka says of ``settings`` when a throwaway ``kind`` ("Consumer" or "Producer") is
    configured with them (without ``bootstrap.servers``, so it connects nowhere)."""
    module = import_confluent_kafka()
    trial = {key: value for key, value in settings.items() if key != "bootstrap.servers"}
    try:
        # A `debug` setting raises librdkafka's log level whatever log_level says: the lines go nowhere.
        getattr(module, kind)({**trial, **extra, "log_level": 0, "logger": _Unheard()}).close()
    except module.KafkaException as exc:
        message = exc.args[0].str() if exc.args else str(exc)
        named = _NAMED.search(message)
        key = named.group(1) if named else "client"
        # librdkafka quotes a refused value; a secret's value is never repeated.
        if named and key in settings and is_secret(key):
            message = f'Invalid value for configuration property "{key}"'
        return {key: [f"librdkafka refused it: {message}"]}
    return {}


def librdkafka_connection(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a librdkafka consumer ``client`` mapping that say where the brokers are and how to
    reach and authenticate to them (bootstrap.servers, security.*, sasl.*, ssl.*, socket.*, broker.*, ...),
    for the writers' producers; the consumer's tuning is left out."""
    return {
        key: value
        for key, value in settings.items()
        if key in _CONNECTION_NAMES or key.startswith(_CONNECTION_PREFIXES)
    }


def untranslated_security(settings: Mapping[str, Any]) -> list[str]:
    """The security settings of a librdkafka ``client`` mapping that kafka_python_connection cannot carry
    over (OAUTHBEARER, Kerberos, PEM keys, ...): a kafka-python client without them would not get in."""
    return sorted(
        key
        for key in settings
        if key not in _KAFKA_PYTHON_NAMES
        and key != "ssl.endpoint.identification.algorithm"
        and (key == "oauth_cb" or key.startswith(_SECURITY_PREFIXES))
    )


def kafka_python_connection(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The connection settings of a librdkafka ``client`` mapping in kafka-python's names (the others,
    consumer tuning or security settings kafka-python names otherwise, are left out)."""
    connection = {_KAFKA_PYTHON_NAMES[key]: value for key, value in settings.items() if key in _KAFKA_PYTHON_NAMES}
    if isinstance(connection.get("security_protocol"), str):
        connection["security_protocol"] = connection["security_protocol"].upper()
    if settings.get("ssl.endpoint.identification.algorithm") == "none":
        connection["ssl_check_hostname"] = False
    return connection
