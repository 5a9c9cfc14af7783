"""Option schemas of the Kafka producer stage (`producer.module` options).

Same names and meaning as the reference producer where it has them; the Kafka
option tables of docs/options.md are generated from these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validates_schema
from marshmallow import validate as mm_validate

from ..config.fields import (
    NonEmptyString,
    NonNegativeInt,
    PositiveInt,
    import_or_error,
    one_of,
    option,
    timestamp_ms,
)
from ..config.redact import SecretSettings
from .client import (
    ASSIGNORS,
    CONSUMER_DEFAULTS,
    LIBRDKAFKA_ASSIGNORS,
    LIBRDKAFKA_PARTITION_FETCH_BYTES,
    LIBRDKAFKA_POLL_INTERVAL_MS,
    PARTITION_FETCH_BYTES,
    PRODUCER_DEFAULTS,
    ExtraMissing,
    import_confluent_kafka,
    librdkafka_producer_setting_errors,
    librdkafka_setting_errors,
)
from .decoding import DeserializerField, SchemaClassField
from .formats import MESSAGE_FORMATS
from .routing import ORDERINGS

__all__ = [
    "DeadLetterOptions",
    "ExactlyOnceOptions",
    "FetchStrategyOptions",
    "RetryTopicOptions",
    "KafkaProducerOptions",
    "OutputOptions",
    "TopicOptions",
    "CLIENT_SETTINGS_MANAGED",
]

# KafkaConsumer settings that gkbroad sets itself, and the option to use instead.
CLIENT_SETTINGS_MANAGED = {
    "group_id": "group_name",
    "group_instance_id": "instance_id",
    "enable_auto_commit": None,
    "auto_commit_interval_ms": None,
    "auto_offset_reset": "topics[].offset_reset_policy",
    "partition_assignment_strategy": "partition_assignment_strategy",
    "session_timeout_ms": "session_timeout_ms",
    "heartbeat_interval_ms": "heartbeat_interval_ms",
    "max_poll_records": None,
    "fetch_max_wait_ms": "fetch_strategy.max_wait_ms",
    "fetch_min_bytes": "fetch_strategy.min_bytes",
    "fetch_max_bytes": "fetch_strategy.max_bytes",
    "isolation_level": "topics[].isolation_level",
    "consumer_timeout_ms": None,
    "default_offset_commit_callback": None,
    "selector": None,
    "kafka_client": None,
}

# kafka-python runs these inside its fetcher, where a record they cannot decode
# makes every poll fail on it again: the poll loop spins and the partition stalls.
CLIENT_SETTINGS_REFUSED = {"key_deserializer", "value_deserializer"}


# gkbroad's own default for the fetch size (kafka-python's is 50 MiB per fetch): a pipeline runs in every
# web worker, and a fetch's data is most of its memory (see docs/performance.md for what smaller fetches
# cost). The per-partition default depends on the client (client.PARTITION_FETCH_BYTES and
# LIBRDKAFKA_PARTITION_FETCH_BYTES).
FETCH_BYTES = 1024 * 1024


def kafka_option(description: str, setting: str, default_text: str | None = None) -> dict[str, Any]:
    """`option()` for a field passed on as kafka-python's `setting`: when the option is unset
    and has no default of its own, kafka-python's default applies, and docs/options.md shows the
    installed one (or ``default_text``, when gkbroad picks the default per client)."""
    fields_kwargs = option(description, default_text)
    fields_kwargs["metadata"]["kafka_setting"] = setting
    return fields_kwargs


def _client_setting_errors(settings: dict[str, Any]) -> dict[str, Any]:
    """{setting: [problem]} for a dict of kafka-python KafkaConsumer settings."""
    errors = {}
    for key in settings:
        if key in CLIENT_SETTINGS_REFUSED:
            errors[key] = [
                "runs inside kafka-python's fetcher, where one record it cannot decode stalls the poll loop; "
                f"use the topic option {key!r} (in topics[] or default_topic_config) instead, which turns "
                "such a record into a failed message"
            ]
        elif key in CLIENT_SETTINGS_MANAGED:
            instead = CLIENT_SETTINGS_MANAGED[key]
            errors[key] = [
                f"is set by gkbroad; {'use the ' + repr(instead) + ' option' if instead else 'leave it out'}"
            ]
        elif key not in CONSUMER_DEFAULTS:
            errors[key] = ["is not a kafka-python KafkaConsumer setting"]
    if "bootstrap_servers" not in settings:
        errors["bootstrap_servers"] = ["missing required option"]
    elif not settings["bootstrap_servers"]:
        errors["bootstrap_servers"] = ["must name at least one host:port"]
    return errors


CLIENT_LIBRARIES = ("kafka-python", "librdkafka")


def client_setting_errors(settings: dict[str, Any], library: str) -> dict[str, Any]:
    """{setting: [problem]} for the ``client`` settings of a consumer on ``library``."""
    if library == "librdkafka":
        return librdkafka_setting_errors(settings)
    return _client_setting_errors(settings)


def _library(data: Mapping[str, Any] | None) -> str:
    """The client library the options being loaded ask for (a field reads its siblings in ``data``)."""
    library = data.get("client_library") if isinstance(data, Mapping) else None
    return library if library in CLIENT_LIBRARIES else "kafka-python"


def _known_settings(settings: dict[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The problems of ``settings`` for the library ``data`` asks for; none when confluent-kafka, needed
    to check librdkafka's, is missing (the schema says that, at client_library)."""
    try:
        return client_setting_errors(settings, _library(data))
    except ExtraMissing:
        return {}


class ClientSettings(fields.Field[Any]):
    """The consumer's connection settings, in the names of its client library (``client_library``),
    passed through after checking them."""

    doc_type = "mapping"

    default_error_messages = {"invalid": "must be a mapping of consumer settings"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        errors = _known_settings(value, data)
        if errors:
            raise ValidationError(errors)
        return SecretSettings(value)


# KafkaProducer settings a dead-letter writer cannot take, and why.
DEAD_LETTER_SETTINGS_REFUSED = {
    "key_serializer": "dead letters carry the record's own bytes; leave it out",
    "value_serializer": "dead letters carry the record's own bytes; leave it out",
}


# The options whose `client` holds a writer's producer settings.
WRITER_OPTIONS = ("outputs", "dead_letter", "retry_topic", "exactly_once")


def writer_setting_errors(settings: Mapping[str, Any], library: str) -> dict[str, list[str]]:
    """{setting: [problem]} for a writer's own ``client`` settings, in the producer names of ``library``."""
    if library == "librdkafka":
        return librdkafka_producer_setting_errors(settings)
    errors = {}
    for key in settings:
        if key in DEAD_LETTER_SETTINGS_REFUSED:
            errors[key] = [DEAD_LETTER_SETTINGS_REFUSED[key]]
        elif key not in PRODUCER_DEFAULTS:
            errors[key] = ["is not a kafka-python KafkaProducer setting"]
    if settings.get("acks", 1) == 0:
        errors["acks"] = [
            "must be 1 or 'all': a record (output, dead letter or retry) counts as written only once the broker acknowledged it"
        ]
    return errors


class DeadLetterClientSettings(fields.Field[Any]):
    """A writer's producer settings, in the names of the Kafka producer's ``client_library``: checked
    with the Kafka producer's options (``KafkaProducerOptions``), which know the library."""

    doc_type = "mapping"
    default_error_messages = {"invalid": "must be a mapping of producer settings"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        return SecretSettings(value)


class OutputOptions(Schema):
    """How a writer of records (the outputs; dead letters and retry records add their topic) writes."""

    class Meta:
        unknown = RAISE

    client = DeadLetterClientSettings(
        load_default=None,
        allow_none=True,
        **option(
            "Producer settings in the names of `client_library`: kafka-python KafkaProducer settings (acks, "
            "compression_type, or another cluster's bootstrap_servers and security settings), or librdkafka "
            "producer settings (acks, compression.type, bootstrap.servers, security.protocol, sasl.*, ssl.*, "
            "...); they override the connection settings taken from the Kafka producer's `client`."
        ),
    )
    max_attempts = PositiveInt(
        load_default=3, **option("Attempts of one write before the pipeline fails (the partition stops advancing).")
    )
    backoff = NonNegativeInt(
        load_default=1000, **option("Milliseconds before the second attempt; doubled (with jitter) after each failure.")
    )
    timeout = PositiveInt(load_default=10000, **option("Milliseconds one attempt may take (connecting included)."))


class DeadLetterOptions(OutputOptions):
    topic = NonEmptyString(required=True, **option("The topic failed messages are written to."))


class ExactlyOnceOptions(Schema):
    class Meta:
        unknown = RAISE

    transactional_id = NonEmptyString(
        required=True,
        validate=mm_validate.Length(max=249, error="must be at most 249 characters"),
        **option(
            "The transactional id of this member's producer: the same on every restart of one member (so the "
            "restart aborts what the last run left open), different for each member running at once (the same "
            "id fences the other member). E.g. the group name and a stable member name."
        ),
    )
    timeout = PositiveInt(
        load_default=10000,
        **option(
            "Milliseconds each step of a transaction (init, begin, send, offsets, commit, abort) may take; a step "
            "that takes longer fails the pipeline."
        ),
    )
    client = DeadLetterClientSettings(
        load_default=None,
        allow_none=True,
        **option(
            "Settings of the transactional producer in the names of `client_library` (kafka-python: "
            "transaction_timeout_ms, compression_type, ...; librdkafka: transaction.timeout.ms, "
            "compression.type, ...); they override the connection settings taken from the Kafka producer's "
            "`client`."
        ),
    )


class RetryTopicOptions(DeadLetterOptions):
    topic = NonEmptyString(
        required=True,
        **option(
            "The topic failed attempts wait in until they are due; this pipeline's group consumes it too. One "
            "retry topic per consumer group: another group's retries would be handled here."
        ),
    )
    create = fields.Boolean(
        load_default=False,
        **option("Create the topic at start when it does not exist (with `partitions` partitions, replication 1)."),
    )
    partitions = PositiveInt(load_default=1, **option("Partitions of the retry topic when `create` creates it."))


class ConsumerGroupClass(fields.Field[Any]):
    doc_type = "ConsumerGroup subclass or dotted path"
    default_error_messages = {
        "invalid": "must be a subclass of gkbroad.kafka.ConsumerGroup (or a dotted path to one)",
        "client": "must carry its consumer settings in a `client` class attribute (a dict)",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        from .group.consumer_group import ConsumerGroup

        if isinstance(value, str):
            value = import_or_error(value)
        if not (isinstance(value, type) and issubclass(value, ConsumerGroup)):
            raise self.make_error("invalid")
        if not isinstance(value.client, dict):
            raise self.make_error("client")
        errors = _known_settings(value.client, data)
        if errors:
            raise ValidationError({"client": errors})
        return value


class OffsetResetPolicy(fields.Field[Any]):
    """ "earliest", "latest", or ``{timestamp = ...}``: loaded as the string, or as milliseconds since the epoch."""

    doc_type = '"earliest", "latest" or {timestamp = ...}'
    default_error_messages = {
        "invalid": 'must be "earliest", "latest" or {{timestamp = <date-time or ms since the epoch>}}',
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if value in ("earliest", "latest"):
            return value
        if not (isinstance(value, dict) and set(value) == {"timestamp"}):
            raise self.make_error("invalid")
        try:
            return timestamp_ms(value["timestamp"])
        except ValueError as exc:
            raise ValidationError(f"timestamp: {exc}") from None


class TopicOptions(Schema):
    class Meta:
        unknown = RAISE

    name = NonEmptyString(required=True, **option("The topic to consume."))
    offset_reset_policy = OffsetResetPolicy(
        load_default="latest",
        **option(
            "Where to start in a partition the group has no committed offset for (or whose committed offset "
            "is out of range): the log's first record, its end, or `{timestamp = 2026-05-01T12:00:00Z}` (a TOML "
            "date-time, an ISO-8601 string, or ms since the epoch; no zone means UTC): the first record at or "
            "after that time, or the end when there is none. See Starting from a point in time."
        ),
    )
    fetch_max_bytes = PositiveInt(
        load_default=None,
        allow_none=True,
        **kafka_option(
            "Most bytes fetched per partition per request (the largest of all topics applies to all). With "
            "`fetch_strategy.max_bytes` it bounds the fetched data the process holds; see Performance.",
            "max_partition_fetch_bytes",
            default_text=(
                f"the client's: `{PARTITION_FETCH_BYTES}` on kafka-python, "
                f"`{LIBRDKAFKA_PARTITION_FETCH_BYTES}` on librdkafka"
            ),
        ),
    )
    max_buffer_records = PositiveInt(
        load_default=1000,
        **option("Records buffered per partition before its fetching pauses (resumes once pulled below half)."),
    )
    isolation_level = one_of(
        ("read_uncommitted", "read_committed"),
        "read_committed hides records of open transactions (the consumer stops at the last stable offset) and, "
        "on Apache Kafka, those of aborted ones; the bundled Tansu broker still delivers aborted records. "
        "See Exactly once.",
        load_default="read_uncommitted",
    )
    value_deserializer = DeserializerField(
        load_default="bytes",
        **option(
            "Turns each record's value bytes into the value handlers see (`str`: UTF-8, `json`: json.loads, or your "
            "function). A value it cannot decode fails that message; see Decoding."
        ),
    )
    key_deserializer = DeserializerField(
        load_default="bytes",
        **option("Turns each record's key bytes into the message's key, like value_deserializer."),
    )
    value_schema = SchemaClassField(
        load_default=None,
        allow_none=True,
        **option(
            "Decoded values are loaded through this marshmallow Schema, so handlers get validated data; a value "
            "it refuses fails that message with marshmallow's messages."
        ),
    )

    @validates_schema
    def _schema_needs_decoded_values(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("value_schema") is not None and data.get("value_deserializer") == "bytes":
            raise ValidationError(
                'loads decoded values; set value_deserializer too (e.g. "json"), the default "bytes" keeps raw bytes',
                field_name="value_schema",
            )


class FetchStrategyOptions(Schema):
    class Meta:
        unknown = RAISE

    max_wait_ms = NonNegativeInt(
        load_default=None,
        allow_none=True,
        **kafka_option("How long the broker may hold a fetch waiting for min_bytes.", "fetch_max_wait_ms"),
    )
    min_bytes = PositiveInt(
        load_default=None,
        allow_none=True,
        **kafka_option("The least data the broker should gather before answering a fetch.", "fetch_min_bytes"),
    )
    max_bytes = PositiveInt(
        load_default=FETCH_BYTES,
        **kafka_option(
            "Most bytes one fetch response may carry, all partitions together: the largest share of the "
            "process's memory at the defaults; see Performance.",
            "fetch_max_bytes",
        ),
    )


class KafkaProducerOptions(Schema):
    class Meta:
        unknown = RAISE

    client = ClientSettings(
        load_default=None,
        allow_none=True,
        **option(
            "Connection settings in the names of `client_library`: for kafka-python `bootstrap_servers` "
            "(required) and any of security_protocol, sasl_*, ssl_*, client_id, request_timeout_ms, ...; for "
            "librdkafka `bootstrap.servers` (required), security.protocol, sasl.*, ssl.*, client.id, ... "
            "Exactly one of `client` or `consumer_group`."
        ),
    )
    consumer_group = ConsumerGroupClass(
        load_default=None,
        allow_none=True,
        **option(
            "A gkbroad.kafka.ConsumerGroup subclass carrying `client` as a class attribute, for its "
            "lifecycle callbacks. Exactly one of `client` or `consumer_group`."
        ),
    )
    group_name = NonEmptyString(required=True, **option("The Kafka consumer group id."))
    topics = fields.List(
        fields.Nested(TopicOptions),
        required=True,
        validate=mm_validate.Length(min=1, error="must list at least one topic"),
        **option("The topics to consume, each a mapping of the topic options below (`name` required)."),
    )
    default_topic_config = fields.Nested(
        TopicOptions,
        exclude=("name",),
        load_default=None,
        allow_none=True,
        **option("Topic options applied to every topic that does not set them itself."),
    )
    receive_interval = NonNegativeInt(
        load_default=1000,
        **option(
            "Milliseconds a producer waits after a round that found no records (it wakes early when records arrive)."
        ),
    )
    message_format = one_of(
        MESSAGE_FORMATS,
        "Shape of each message: see Message formats.",
        load_default="record",
    )
    ordering = one_of(
        ORDERINGS,
        "What is handled in offset order, one record at a time: each `partition` (concurrency up to the "
        "partition count), each `key` within a partition (different keys run concurrently; records without "
        "a key are ordered with each other), or `none` (any record may run concurrently). Offsets are "
        "committed correctly in every mode; see Ordering.",
        load_default="partition",
    )
    fetch_strategy = fields.Nested(
        FetchStrategyOptions,
        load_default=None,
        allow_none=True,
        **option("Fetch tuning; see below (its defaults apply when it is left out)."),
    )
    committers_count = PositiveInt(load_default=1, **option("Greenlets that send offset commits."))
    commit_interval = NonNegativeInt(
        load_default=100,
        **option(
            "Least time (ms) between two commits of one partition; acknowledgements that arrive meanwhile "
            "go into the next commit. 0 commits after every acknowledgement round. The final commits "
            "of revoked partitions, and the commits while the pipeline stops, are not held back."
        ),
    )
    instance_id = NonEmptyString(
        load_default=None,
        allow_none=True,
        validate=mm_validate.Regexp(
            r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}$",
            error="must be 1-249 characters of ASCII letters, digits, '.', '_' and '-' (not '.' or '..')",
        ),
        **option(
            "Static membership id (group_instance_id): a restart within the session timeout keeps the "
            "partitions. Needs a real Kafka to take full effect."
        ),
    )
    rebalance_timeout_ms = PositiveInt(
        load_default=None,
        allow_none=True,
        **kafka_option(
            "How long the coordinator waits for members to rejoin during a rebalance (passed as kafka-python's "
            "max_poll_interval_ms, which it sends as the rebalance timeout).",
            "max_poll_interval_ms",
        ),
    )
    session_timeout_ms = PositiveInt(
        load_default=None,
        allow_none=True,
        **kafka_option(
            "Member is dropped when no heartbeat arrived for this long; a member that heard nothing from its "
            "coordinator for this less a quarter (at least 1 s) gives its partitions up first.",
            "session_timeout_ms",
        ),
    )
    heartbeat_interval_ms = PositiveInt(
        load_default=None,
        allow_none=True,
        **kafka_option("Time between heartbeats.", "heartbeat_interval_ms"),
    )
    drain_timeout = NonNegativeInt(
        load_default=30000,
        **option(
            "On revocation, how long in-flight messages of the revoked partitions may take to be "
            "acknowledged before the partitions are given up anyway."
        ),
    )
    stall_timeout_ms = PositiveInt(
        load_default=None,
        allow_none=True,
        **option(
            "How long the member may be out of a stable generation (joining, rebalancing) or without a "
            "reachable broker before /healthz turns red; half of it brings a WARNING that names the state. "
            "Unset: 60000, or drain_timeout + 30000 when that is longer. Must be above drain_timeout: "
            "a rebalance waits for the other members' drains."
        ),
    )
    dead_letter = fields.Nested(
        DeadLetterOptions,
        load_default=None,
        allow_none=True,
        **option(
            "Write every failed message to a dead-letter topic before it is acknowledged: "
            "`{'topic': ..., 'client': {...}}`; see Dead letters and the options below. Off by default."
        ),
    )
    outputs = fields.Nested(
        OutputOptions,
        load_default=None,
        allow_none=True,
        **option(
            "How records that handlers add with add_output are written when exactly_once is off (at least "
            "once: a message is acknowledged after the broker acknowledged its outputs); see Outputs."
        ),
    )
    exactly_once = fields.Nested(
        ExactlyOnceOptions,
        load_default=None,
        allow_none=True,
        **option(
            "Commit each message's outputs (and dead letters) in one Kafka transaction with the offsets that "
            "cover it: `{'transactional_id': ...}`; see Exactly once. Off by default. With it, every topic's "
            "isolation_level is read_committed."
        ),
    )
    retry_topic = fields.Nested(
        RetryTopicOptions,
        load_default=None,
        allow_none=True,
        **option(
            'For `processors.default.retry.mode = "topic"`: the topic failed attempts wait in, '
            "`{'topic': ..., 'create': true}`; see Retry topics and the options below. Off by default."
        ),
    )
    client_library = one_of(
        CLIENT_LIBRARIES,
        "The Kafka client the consumer runs on: kafka-python (pure Python, the default) or librdkafka "
        "(confluent-kafka, `pip install 'gkbroad[librdkafka]'`: much less CPU per record in the client); the "
        "writers (dead letters, outputs, retry topic, exactly_once) produce through the same one; see Choosing "
        "the Kafka client.",
        load_default="kafka-python",
    )
    partition_assignment_strategy = one_of(
        tuple(sorted(ASSIGNORS)),
        "cooperative-sticky moves only the partitions that change owner; the others are eager (stop-the-world).",
        load_default="cooperative-sticky",
    )

    @pre_load
    def _fetch_defaults(self, data: Any, **kwargs: Any) -> Any:
        """fetch_strategy left out (or None) still gets its defaults: they bound the fetch sizes."""
        if isinstance(data, dict) and data.get("fetch_strategy") is None:
            data = {**data, "fetch_strategy": {}}
        return data

    @pre_load
    def _merge_topic_defaults(self, data: Any, **kwargs: Any) -> Any:
        defaults, topics = data.get("default_topic_config"), data.get("topics")
        if isinstance(data.get("exactly_once"), dict):
            # kafka-python asks the coordinator for stable offsets (KIP-447 require_stable) only when it
            # reads committed: a new owner then waits for a transaction still committing offsets.
            defaults = {"isolation_level": "read_committed", **(defaults if isinstance(defaults, dict) else {})}
        if isinstance(defaults, dict) and isinstance(topics, list):
            data = {**data, "topics": [{**defaults, **t} if isinstance(t, dict) else t for t in topics]}
        return data

    @validates_schema
    def _exactly_once_without_retry_topic(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("exactly_once") is not None and data.get("retry_topic") is not None:
            raise ValidationError(
                "cannot be used with exactly_once: the records parked in the retry topic are not part of the "
                "transactions, so an aborted one would park an attempt twice; retry in memory instead",
                field_name="retry_topic",
            )

    @validates_schema
    def _exactly_once_reads_committed(self, data: dict[str, Any], **kwargs: Any) -> None:
        uncommitted = [t["name"] for t in data["topics"] if t["isolation_level"] != "read_committed"]
        if data.get("exactly_once") is not None and uncommitted:
            raise ValidationError(
                f"must read committed records with exactly_once (isolation_level read_committed, the default "
                f"then); topic(s) {', '.join(uncommitted)} set read_uncommitted",
                field_name="topics",
            )

    @validates_schema
    def _one_connection(self, data: dict[str, Any], **kwargs: Any) -> None:
        has_client, has_group = data.get("client") is not None, data.get("consumer_group") is not None
        if not has_client and not has_group:
            raise ValidationError("one of client or consumer_group is required in the Kafka producer options")
        if has_client and has_group:
            raise ValidationError(
                "client and consumer_group are mutually exclusive in the Kafka producer options; set only one of them"
            )

    @validates_schema
    def _librdkafka_installed(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["client_library"] == "librdkafka":
            try:
                import_confluent_kafka()
            except ExtraMissing as exc:
                raise ValidationError(str(exc), field_name="client_library") from None

    @validates_schema
    def _librdkafka_can_do_it(self, data: dict[str, Any], **kwargs: Any) -> None:
        """What gkbroad does not do on librdkafka yet is refused, not half done."""
        if data["client_library"] != "librdkafka":
            return
        if data["partition_assignment_strategy"] not in LIBRDKAFKA_ASSIGNORS:
            raise ValidationError(
                f"must be one of {', '.join(sorted(LIBRDKAFKA_ASSIGNORS))} with librdkafka (it has no eager sticky "
                "assignor)",
                field_name="partition_assignment_strategy",
            )

    @validates_schema
    def _writer_settings_known(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The writers' own ``client`` settings, in the producer names of ``client_library``."""
        library = data["client_library"]
        for name in WRITER_OPTIONS:
            settings = (data.get(name) or {}).get("client")
            if not settings:
                continue
            try:
                errors = writer_setting_errors(settings, library)
            except ExtraMissing:
                return  # said at client_library
            if errors:
                raise ValidationError({"client": errors}, field_name=name)

    @validates_schema
    def _one_isolation_level(self, data: dict[str, Any], **kwargs: Any) -> None:
        levels = {topic["isolation_level"] for topic in data["topics"]}
        if len(levels) > 1:
            chosen = ", ".join(f"{topic['name']}={topic['isolation_level']}" for topic in data["topics"])
            raise ValidationError(
                "must all have the same isolation_level (kafka-python reads all topics of a consumer with "
                f"one); they have {chosen}",
                field_name="topics",
            )

    @validates_schema
    def _dead_letters_elsewhere(self, data: dict[str, Any], **kwargs: Any) -> None:
        dead_letter = data.get("dead_letter")
        if dead_letter and dead_letter["topic"] in {topic["name"] for topic in data.get("topics") or ()}:
            raise ValidationError(
                {
                    "topic": [
                        "must not be one of the consumed topics: each dead letter would be read back and fail again"
                    ]
                },
                field_name="dead_letter",
            )

    @validates_schema
    def _retries_elsewhere(self, data: dict[str, Any], **kwargs: Any) -> None:
        retry_topic = data.get("retry_topic")
        if not retry_topic:
            return
        if retry_topic["topic"] in {topic["name"] for topic in data.get("topics") or ()}:
            raise ValidationError(
                {"topic": ["must not be one of the consumed topics: it is consumed as the retry topic"]},
                field_name="retry_topic",
            )
        if data.get("dead_letter") and data["dead_letter"]["topic"] == retry_topic["topic"]:
            raise ValidationError(
                {"topic": ["must not be the dead-letter topic: dead letters would be retried"]},
                field_name="retry_topic",
            )

    @validates_schema
    def _timeouts_fit_together(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Combinations kafka-python only refuses when the consumer is built, inside the
        poll greenlet after start(): refused here instead, when the pipeline is built."""
        client = data["client"] or getattr(data["consumer_group"], "client", None) or {}
        defaults = CONSUMER_DEFAULTS

        def setting(value: Any, key: str) -> Any:
            return defaults[key] if value is None else value

        session = setting(data["session_timeout_ms"], "session_timeout_ms")
        heartbeat = setting(data["heartbeat_interval_ms"], "heartbeat_interval_ms")
        if heartbeat >= session:
            raise ValidationError(
                f"must be lower than session_timeout_ms ({session})", field_name="heartbeat_interval_ms"
            )
        if data["client_library"] == "librdkafka":
            # librdkafka's own max.poll.interval.ms (it refuses the other combinations when the consumer is built).
            rebalance = data["rebalance_timeout_ms"] or LIBRDKAFKA_POLL_INTERVAL_MS
        else:
            fetch_wait = setting((data["fetch_strategy"] or {}).get("max_wait_ms"), "fetch_max_wait_ms")
            request = client.get("request_timeout_ms", defaults["request_timeout_ms"])
            idle = client.get("connections_max_idle_ms", defaults["connections_max_idle_ms"])
            if not fetch_wait < request < idle:
                raise ValidationError(
                    f"kafka-python needs fetch_strategy.max_wait_ms ({fetch_wait}) < client.request_timeout_ms "
                    f"({request}) < client.connections_max_idle_ms ({idle})",
                    field_name="fetch_strategy",
                )
            rebalance = data["rebalance_timeout_ms"] or client.get(
                "max_poll_interval_ms", defaults["max_poll_interval_ms"]
            )
        if data["drain_timeout"] >= rebalance:
            raise ValidationError(
                f"must be lower than the rebalance timeout ({rebalance} ms, from rebalance_timeout_ms or "
                "client.max_poll_interval_ms): a drain that outlasts it costs the member its place in the group",
                field_name="drain_timeout",
            )
        if data["stall_timeout_ms"] is not None and data["stall_timeout_ms"] <= data["drain_timeout"]:
            raise ValidationError(
                f"must be above drain_timeout ({data['drain_timeout']} ms): a rebalance waits for the other "
                "members' drains, and a member waiting for them is not stalled",
                field_name="stall_timeout_ms",
            )
