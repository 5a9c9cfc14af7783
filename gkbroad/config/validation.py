"""Apply a schema to options, and say what was wrong in lines a person can act on.

`validate()` turns marshmallow's nested error dicts into one ConfigError whose
lines read ``path.to.option: what was expected, got <what was given>``, with
secrets in the value redacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from marshmallow import Schema, ValidationError, fields

from ..errors import ConfigError
from .fields import NamedStages
from .redact import redact

__all__ = ["validate"]


def validate(schema: type[Schema], data: Any, path: str = "") -> dict[str, Any]:
    """Load `data` with `schema`, or raise ConfigError listing every problem with its path."""
    if not isinstance(data, dict):
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}expected a mapping of options, got {_short_repr(redact(data))}")
    try:
        loaded: dict[str, Any] = schema().load(data)
        return loaded
    except ValidationError as exc:
        lines = sorted(_describe(exc.messages, schema(), data, path))
        raise ConfigError("invalid options:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0]) from None


_MISSING = object()


def _describe(errors: Any, node: Any, data: Any, path: str) -> Iterator[str]:
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
    """One error line; the value shown has its secrets redacted (see gkbroad.config.redact)."""
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
