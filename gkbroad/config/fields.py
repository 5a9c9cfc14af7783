"""The marshmallow field types gkbroad's options are made of, and how a field gets its description.

Each field refuses what it cannot use with a message that says what was
expected (``must be a positive integer``); `validation.validate` adds the
option's path and the value given. A field's ``metadata["description"]`` is
what the generated option reference shows, so every option is described once.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow import validate as mm_validate

from ..errors import ConfigError

__all__ = [
    "Callable",
    "ExceptionClasses",
    "FailureMode",
    "NamedStages",
    "NonEmptyString",
    "NonNegativeInt",
    "PositiveInt",
    "ProducerModule",
    "import_object",
    "import_or_error",
    "one_of",
    "option",
    "timestamp_ms",
]


def option(description: str, default_text: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments that attach a description (shown in docs/options.md) to a field, and the words
    docs/options.md shows as its default where the field's own default (None) stands for one chosen later."""
    metadata = {"description": description}
    if default_text is not None:
        metadata["default_text"] = default_text
    return {"metadata": metadata, **kwargs}


def timestamp_ms(value: Any) -> int:
    """Milliseconds since the Unix epoch of `value`: an aware or naive (read as UTC) datetime, an
    ISO-8601 string such as ``2026-05-01T12:00:00Z``, or already an int of milliseconds.
    Raises ConfigError (a ValueError) saying what it expected."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a date-time or milliseconds since the epoch, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"expected milliseconds since the epoch (not negative), got {value}")
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"expected an ISO-8601 date-time such as 2026-05-01T12:00:00Z, got {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        milliseconds = int(value.timestamp() * 1000)
        if milliseconds < 0:
            raise ConfigError(f"expected a date-time after 1970-01-01, got {value.isoformat()}")
        return milliseconds
    raise ConfigError(f"expected a date-time or milliseconds since the epoch, got {type(value).__name__}: {value!r}")


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

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise self.make_error("invalid")
        return value


class NonNegativeInt(PositiveInt):
    minimum = 0
    default_error_messages = {"invalid": "must be a non-negative integer"}


class NonEmptyString(fields.String):
    default_error_messages = {"invalid": "must be a non-empty string"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise self.make_error("invalid")
        return value


class Callable(fields.Field[Any]):
    """A function (or any callable); a dotted path string is imported."""

    default_error_messages = {"invalid": "must be a callable or an importable dotted path to one"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = import_or_error(value)
        if not callable(value):
            raise self.make_error("invalid")
        return value


class NamedStages(fields.Field[Any]):
    """A mapping of stage name -> options validated by `schema`, with errors keyed by name.

    Used for `processors` and `batchers`, so that an error reads
    ``batchers.sql.batch_size: ...`` rather than marshmallow's key/value split.
    """

    default_error_messages = {
        "invalid": "must be a mapping of name -> options",
        "names": "must have exactly the keys {allowed}",
        "empty": "must name at least one stage",
    }

    def __init__(self, schema: type[Schema], allowed_names: tuple[str, ...] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.schema = schema
        self.allowed_names = allowed_names

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if self.allowed_names is not None and set(value) != set(self.allowed_names):
            raise self.make_error("names", allowed=", ".join(repr(n) for n in self.allowed_names))
        if not value and self.required:
            raise self.make_error("empty")
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}  # stage name -> its validation messages
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


class ProducerModule(fields.Field[tuple[type[Any], dict[str, Any]]]):
    """`ProducerClass`, `"pkg.module:ProducerClass"`, or `(either, {options})`."""

    doc_type = "class, dotted path, or (class, options) pair"

    default_error_messages = {
        "invalid": "must be a producer class, a dotted path to one, or a (class, options dict) pair",
        "options": "the second item of the pair must be a dict of producer options",
        "protocol": "must be a producer class with a receive(demand) method",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
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


class FailureMode(fields.Field[Any]):
    """`"ack"`, `{"max_consecutive": N}` or `{"max_rate": r, "window": N}`."""

    doc_type = '`"ack"` or mapping'

    default_error_messages = {
        # Doubled braces: marshmallow formats error messages with str.format.
        "invalid": 'must be "ack", {{"max_consecutive": N}} or {{"max_rate": 0 < r <= 1, "window": N}}',
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if value == "ack":
            return value
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if "max_consecutive" in value:
            return ConsecutiveFailures().load(value)
        if "max_rate" in value or "window" in value:
            return FailureRate().load(value)
        raise self.make_error("invalid")


class ExceptionClasses(fields.Field[Any]):
    """A list of exception classes, or dotted paths to them; loaded as a tuple for isinstance()."""

    doc_type = "list of exception classes or dotted paths"
    default_error_messages = {
        "invalid": "must be a non-empty list of exception classes (or dotted paths to them)",
        "item": "item {index} must be an exception class or a dotted path to one, got {value!r}",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.make_error("invalid")
        classes = []
        for index, item in enumerate(value):
            found = import_or_error(item) if isinstance(item, str) else item
            if not (isinstance(found, type) and issubclass(found, BaseException)):
                raise self.make_error("item", index=index, value=item)
            classes.append(found)
        return tuple(classes)
