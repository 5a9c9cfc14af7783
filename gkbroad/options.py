"""Option schemas of the pipeline and its stages, and the one function that applies them.

Every option is declared once here, with its default and a description; the
README's option tables are generated from these schemas (`scripts/gen_docs.py`),
so the docs cannot drift from what is enforced. Unknown keys are rejected.
`validate()` turns marshmallow's nested error dicts into one ConfigError whose
lines read ``path.to.option: what was expected, got <what was given>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow import validate as mm_validate

from .errors import ConfigError
from .executor import EXECUTORS
from .redact import redact

__all__ = [
    "BatcherOptions",
    "MetricsOptions",
    "StatsdOptions",
    "PipelineOptions",
    "ProcessorOptions",
    "ProducerStageOptions",
    "RateLimitingOptions",
    "RetryOptions",
    "validate",
    "import_object",
    "import_or_error",
    "PositiveInt",
    "NonNegativeInt",
    "Callable",
    "NamedStages",
    "option",
    "one_of",
]


def option(description: str, **kwargs) -> dict:
    """The keyword arguments that attach a description (shown in the README) to a field."""
    return {"metadata": {"description": description}, **kwargs}


def one_of(choices: Iterable[str], description: str, **kwargs: Any) -> fields.String:
    """A string field restricted to `choices`, with an error that lists them."""
    return fields.String(
        validate=mm_validate.OneOf(choices, error="must be one of {choices}"),
        **option(description, **kwargs),
    )


class PositiveInt(fields.Integer):
    """A whole number >= 1; booleans and strings are refused (no silent coercion)."""

    minimum = 1
    default_error_messages = {"invalid": "must be a positive integer"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise self.make_error("invalid")
        return value


class NonNegativeInt(PositiveInt):
    minimum = 0
    default_error_messages = {"invalid": "must be a non-negative integer"}


class NonEmptyString(fields.String):
    default_error_messages = {"invalid": "must be a non-empty string"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value:
            raise self.make_error("invalid")
        return value


class Callable(fields.Field):
    """A function (or any callable); a dotted path string is imported."""

    default_error_messages = {"invalid": "must be a callable or an importable dotted path to one"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = import_or_error(value)
        if not callable(value):
            raise self.make_error("invalid")
        return value


class NamedStages(fields.Field):
    """A mapping of stage name -> options validated by `schema`, with errors keyed by name.

    Used for `processors` and `batchers`, so that an error reads
    ``batchers.sql.batch_size: ...`` rather than marshmallow's key/value split.
    """

    default_error_messages = {
        "invalid": "must be a mapping of name -> options",
        "names": "must have exactly the keys {allowed}",
        "empty": "must name at least one stage",
    }

    def __init__(self, schema: type[Schema], allowed_names: tuple[str, ...] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.schema = schema
        self.allowed_names = allowed_names

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if self.allowed_names is not None and set(value) != set(self.allowed_names):
            raise self.make_error("names", allowed=", ".join(repr(n) for n in self.allowed_names))
        if not value and self.required:
            raise self.make_error("empty")
        result, errors = {}, {}
        for name, options in value.items():
            if not isinstance(name, str) or not name:
                errors[repr(name)] = ["stage names must be non-empty strings"]
                continue
            try:
                result[name] = self.schema().load(options if options is not None else {})
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return result


class ProducerModule(fields.Field):
    """`ProducerClass`, `"pkg.module:ProducerClass"`, or `(either, {options})`."""

    doc_type = "class, dotted path, or (class, options) pair"

    default_error_messages = {
        "invalid": "must be a producer class, a dotted path to one, or a (class, options dict) pair",
        "options": "the second item of the pair must be a dict of producer options",
        "protocol": "must be a producer class with a receive(demand) method",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        options: Any = {}
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise self.make_error("invalid")
            value, options = value
            if not isinstance(options, dict):
                raise self.make_error("options")
        if isinstance(value, str):
            value = import_or_error(value)
        if not isinstance(value, type):
            raise self.make_error("invalid")
        if not callable(getattr(value, "receive", None)):
            raise self.make_error("protocol")
        return value, dict(options)


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` or ``"package.module.attr"``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImportError(f"{path!r} is not a dotted path like 'package.module:Name'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def import_or_error(path: str) -> Any:
    """import_object for a field: an import failure becomes a ValidationError naming the path."""
    try:
        return import_object(path)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"cannot import {path!r} ({exc})") from exc


MAX_FAILURE_WINDOW = 100_000
_WINDOW_LIMIT = mm_validate.Range(max=MAX_FAILURE_WINDOW, error=f"must be at most {MAX_FAILURE_WINDOW}")


class ConsecutiveFailures(Schema):
    class Meta:
        unknown = RAISE

    max_consecutive = PositiveInt(required=True, validate=_WINDOW_LIMIT)


class FailureRate(Schema):
    class Meta:
        unknown = RAISE

    max_rate = fields.Float(
        required=True,
        allow_nan=False,
        validate=mm_validate.Range(min=0, max=1, min_inclusive=False, error="must be a number above 0 and at most 1"),
    )
    window = PositiveInt(required=True, validate=_WINDOW_LIMIT)


class FailureMode(fields.Field):
    """`"ack"`, `{"max_consecutive": N}` or `{"max_rate": r, "window": N}`."""

    doc_type = '`"ack"` or mapping'

    default_error_messages = {
        # Doubled braces: marshmallow formats error messages with str.format.
        "invalid": 'must be "ack", {{"max_consecutive": N}} or {{"max_rate": 0 < r <= 1, "window": N}}',
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "ack":
            return value
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if "max_consecutive" in value:
            return ConsecutiveFailures().load(value)
        if "max_rate" in value or "window" in value:
            return FailureRate().load(value)
        raise self.make_error("invalid")


class RateLimitingOptions(Schema):
    class Meta:
        unknown = RAISE

    allowed_messages = PositiveInt(
        required=True,
        **option("How many messages the producers may emit per interval, all producer greenlets together."),
    )
    interval = PositiveInt(required=True, **option("The length of the interval, in milliseconds."))


class ProducerStageOptions(Schema):
    class Meta:
        unknown = RAISE

    module = ProducerModule(
        required=True,
        **option(
            "The producer class, or a dotted path to it (`'pkg.mod:Class'`), or a pair "
            "`(class_or_path, {producer options})`."
        ),
    )
    concurrency = PositiveInt(
        load_default=1, **option("How many producer greenlets run; each is given its index and the count.")
    )
    rate_limiting = fields.Nested(
        RateLimitingOptions,
        load_default=None,
        allow_none=True,
        **option("Caps how fast messages are produced: `{'allowed_messages': N, 'interval': ms}`."),
    )


class ExceptionClasses(fields.Field):
    """A list of exception classes, or dotted paths to them; loaded as a tuple for isinstance()."""

    doc_type = "list of exception classes or dotted paths"
    default_error_messages = {
        "invalid": "must be a non-empty list of exception classes (or dotted paths to them)",
        "item": "item {index} must be an exception class or a dotted path to one, got {value!r}",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, (list, tuple)) or not value:
            raise self.make_error("invalid")
        classes = []
        for index, item in enumerate(value):
            found = import_or_error(item) if isinstance(item, str) else item
            if not (isinstance(found, type) and issubclass(found, BaseException)):
                raise self.make_error("item", index=index, value=item)
            classes.append(found)
        return tuple(classes)


class RetryOptions(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = PositiveInt(
        required=True,
        validate=mm_validate.Range(min=2, error="must be at least 2 (1 means no retry)"),
        **option(
            "How many times handle_message is called for one message at most, the first call included (2 or more)."
        ),
    )
    backoff = NonNegativeInt(
        load_default=100, **option("Milliseconds before the second attempt; each further wait doubles, with jitter.")
    )
    max_backoff = NonNegativeInt(
        load_default=10000, **option("The longest wait between two attempts, in milliseconds.")
    )
    retry_on = ExceptionClasses(
        load_default=None,
        **option(
            "The exceptions worth another attempt (subclasses included). Default: every exception that fails "
            "the message. A handler that returns `message.failed(...)` is never retried."
        ),
    )


class ProcessorOptions(Schema):
    class Meta:
        unknown = RAISE

    concurrency = PositiveInt(
        load_default=10,
        **option(
            "How many processor greenlets call handle_message. Blocking I/O that gevent made cooperative "
            "(patched sockets, time.sleep) overlaps across them; for calls that block in C see `executor`."
        ),
    )
    max_demand = PositiveInt(
        load_default=10,
        **option(
            "How many messages each processor greenlet may hold at once. The pipeline never has more than "
            "concurrency x max_demand messages in its processors; beyond that the producers wait."
        ),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option("A function message -> int; messages with the same result always go to the same processor."),
    )
    retry = fields.Nested(
        RetryOptions,
        load_default=None,
        allow_none=True,
        **option(
            "Retry a message whose handle_message raised, in its own lane: "
            "`{'max_attempts': N, 'backoff': ms, 'max_backoff': ms, 'retry_on': [...]}`; see Retries. Off by default."
        ),
    )
    executor = one_of(
        EXECUTORS,
        "Where handle_message and prepare_messages (and handle_failed for this stage's failures) run. "
        '`"greenlet"`: on the processor\'s greenlet. `"thread"`: in a pool of `concurrency` native threads, '
        "for handlers that block in C code gevent cannot patch (see Blocking code gevent cannot patch).",
        load_default="greenlet",
    )


class BatcherOptions(Schema):
    class Meta:
        unknown = RAISE

    batch_size = PositiveInt(load_default=100, **option("A batch is sent once it holds this many messages."))
    batch_timeout = PositiveInt(
        load_default=1000,
        **option("Milliseconds after a batch received its first message when it is sent, full or not."),
    )
    concurrency = PositiveInt(load_default=1, **option("How many batch processor greenlets call handle_batch."))
    max_demand = PositiveInt(
        load_default=None,
        allow_none=True,
        **option("How many handled messages may wait for this batcher at once (default: batch_size)."),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option(
            "A function message -> int; batches are routed to a batch processor by the result for their "
            "first message, so one key always lands on the same batch processor."
        ),
    )
    executor = one_of(
        EXECUTORS,
        'Where handle_batch (and handle_failed for this batcher\'s failures) runs. `"greenlet"`: on the batch '
        'processor\'s greenlet. `"thread"`: in a pool of `concurrency` native threads, for handlers that block '
        "in C code gevent cannot patch.",
        load_default="greenlet",
    )


class StatsdOptions(Schema):
    class Meta:
        unknown = RAISE

    host = NonEmptyString(load_default="127.0.0.1", **option("Host of the statsd server (UDP)."))
    port = PositiveInt(load_default=8125, **option("UDP port of the statsd server."))
    prefix = NonEmptyString(
        load_default="gkbroad", **option("First part of every metric name: `<prefix>.<pipeline name>.<metric>`.")
    )
    interval = PositiveInt(
        load_default=10, **option("Seconds between two reports of the gauges (in_flight, partitions, lag).")
    )


class MetricsOptions(Schema):
    class Meta:
        unknown = RAISE

    statsd = fields.Nested(
        StatsdOptions, required=True, **option("Send counters, timers and gauges to statsd; see below.")
    )


class PipelineOptions(Schema):
    class Meta:
        unknown = RAISE

    name = NonEmptyString(required=True, **option("Names the pipeline in logs, metrics and greenlet names."))
    producer = fields.Nested(ProducerStageOptions, required=True, **option("The producer stage; see below."))
    processors = NamedStages(
        ProcessorOptions,
        allowed_names=("default",),
        required=True,
        **option("Exactly one entry, `default`, with the processor options below."),
    )
    batchers = NamedStages(
        BatcherOptions,
        load_default=dict,
        **option("Named batchers; a handled message goes to the one its `batcher` names. Optional."),
    )
    context = fields.Raw(
        load_default=None, allow_none=True, **option("Any object; it is passed to every callback as `context`.")
    )
    shutdown_timeout = NonNegativeInt(
        load_default=30000,
        **option(
            "Milliseconds the whole stop may take: draining in-flight messages, then stopping the producer's "
            "services (for Kafka: the final commit and leaving the group), which keep at least a quarter of it."
        ),
    )
    partition_by = Callable(
        load_default=None,
        allow_none=True,
        **option("Default partition_by for the processors and every batcher that sets none of its own."),
    )
    on_failure = FailureMode(
        load_default="ack",
        **option(
            'What failed messages do. `"ack"`: they are acknowledged like successful ones (for Kafka: '
            'committed) after handle_failed. A circuit breaker, `{"max_consecutive": N}` (N failures in a row) '
            'or `{"max_rate": r, "window": N}` (at least r x N of the last N messages failed), holds failures '
            "back until they can no longer trip it, and when it trips stops the pipeline as failed without "
            "acknowledging them or anything after them. See Lifecycle."
        ),
    )
    metrics = fields.Nested(
        MetricsOptions,
        load_default=None,
        allow_none=True,
        **option("Where to send metrics: `{'statsd': {...}}`; see Metrics. Off by default."),
    )
    stuck_handler_timeout = PositiveInt(
        load_default=300,
        **option("Seconds after which a handler call still running turns /healthz red (see Health)."),
    )
    blocking_warning_ms = NonNegativeInt(
        load_default=500,
        **option(
            "Log a WARNING naming the stage and the handler, with its stack, when a stage holds the gevent hub "
            "(no other greenlet runs) for longer than this many milliseconds; at most once a minute per handler, "
            "every time counted in metrics and /status.json. 0 turns the watchdog off."
        ),
    )


def validate(schema: type[Schema], data: Any, path: str = "") -> dict:
    """Load `data` with `schema`, or raise ConfigError listing every problem with its path."""
    if not isinstance(data, dict):
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}expected a mapping of options, got {_short_repr(redact(data))}")
    try:
        return schema().load(data)
    except ValidationError as exc:
        lines = sorted(_describe(exc.messages, schema(), data, path))
        raise ConfigError("invalid options:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0]) from None


_MISSING = object()


def _describe(errors: Any, node: Any, data: Any, path: str):
    """Yield ``path: message, got value`` lines, walking errors, schema and input together."""
    if isinstance(errors, (list, tuple)) and all(isinstance(e, str) for e in errors):
        for message in errors:
            yield _line(path, message, data)
        return
    if not isinstance(errors, dict):
        yield _line(path, str(errors), data)
        return
    if isinstance(node, fields.Nested):
        node = node.schema
    for key, sub in errors.items():
        if key == "_schema":
            yield from _describe(sub, node, data, path)
            continue
        child_path = f"{path}.{key}" if path else str(key)
        child_data = _lookup(data, key)
        child_node = _child(node, key)
        if isinstance(node, Schema) and child_node is None:
            known = ", ".join(sorted(node.fields))
            yield _line(child_path, f"unknown option (known options: {known})", child_data)
        else:
            yield from _describe(sub, child_node, child_data, child_path)


def _lookup(data: Any, key: Any) -> Any:
    if isinstance(data, dict):
        return data.get(key, _MISSING)
    if isinstance(data, (list, tuple)) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return _MISSING


def _child(node: Any, key: Any) -> Any:
    if isinstance(node, Schema):
        return node.fields.get(key)
    if isinstance(node, NamedStages):
        return node.schema()
    if isinstance(node, fields.List):
        return node.inner
    return None


def _line(path: str, message: str, value: Any) -> str:
    """One error line; the value shown has its secrets redacted (see gkbroad.redact)."""
    message = _friendly(message)
    where = f"{path}: " if path else ""
    if value is _MISSING:
        return f"{where}{message}"
    return f"{where}{message}, got {_short_repr(redact(value, path.rpartition('.')[2]))}"


def _friendly(message: str) -> str:
    if message == "Missing data for required field.":
        return "missing required option"
    if message == "Field may not be null.":
        return "may not be None"
    if message.endswith("."):
        message = message[:-1]
    return message[:1].lower() + message[1:]


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
