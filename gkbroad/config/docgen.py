"""Markdown option tables generated from the marshmallow schemas.

A documentation page keeps each table between ``<!-- options:NAME -->`` and
``<!-- /options:NAME -->`` markers; `render_option_tables` rewrites what is
between them, `scripts/gen_docs.py` writes every page that has markers
(`pages_with_option_tables`), and a unit test fails when a page and the
schemas disagree. An option left unset so that kafka-python's own default
applies (its field names the setting in ``metadata["kafka_setting"]``) shows
that default as read from the installed kafka-python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.validate import OneOf

from . import fields as engine_fields
from . import schemas as engine

__all__ = ["TABLES", "documentation_pages", "pages_with_option_tables", "render_option_tables", "schema_table"]

_TYPE_NAMES: list[tuple[type, str]] = [
    (engine_fields.NonNegativeInt, "int >= 0"),
    (engine_fields.PositiveInt, "int >= 1"),
    (engine_fields.NamedStages, "mapping of name -> options"),
    (engine_fields.Callable, "callable or dotted path"),
    (fields.Nested, "mapping"),
    (fields.List, "list"),
    (fields.String, "str"),
    (fields.Boolean, "bool"),
    (fields.Raw, "any"),
]


def _type_name(field: fields.Field[Any]) -> str:
    for validator in getattr(field, "validators", ()):
        if isinstance(validator, OneOf):
            return " \\| ".join(f'`"{choice}"`' for choice in validator.choices)
    custom = getattr(field, "doc_type", None)
    if custom:
        return str(custom)
    for cls, name in _TYPE_NAMES:
        if isinstance(field, cls):
            return name
    return "any"


def _kafka_default(setting: str) -> str:
    """The installed kafka-python's default for `setting` (read, not remembered: it changes between versions)."""
    from ..kafka.client import CONSUMER_DEFAULTS

    return f"kafka-python's: `{CONSUMER_DEFAULTS[setting]!r}`"


def _default(field: fields.Field[Any]) -> str:
    if field.required:
        return "required"
    if "default_text" in field.metadata:
        return str(field.metadata["default_text"])
    value = field.load_default
    if value is missing or value is None:
        setting = field.metadata.get("kafka_setting")
        return _kafka_default(setting) if setting else "-"
    if callable(value):
        value = value()
    return f"`{value!r}`"


def schema_table(schema: type[Schema]) -> str:
    rows = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    instance = schema()
    for name, field in instance.fields.items():
        description = field.metadata.get("description", "")
        rows.append(f"| `{name}` | {_type_name(field)} | {_default(field)} | {description} |")
    return "\n".join(rows)


def _kafka_tables() -> dict[str, type[Schema]]:
    from ..kafka import options as kafka

    return {
        "kafka-producer": kafka.KafkaProducerOptions,
        "kafka-topic": kafka.TopicOptions,
        "kafka-fetch-strategy": kafka.FetchStrategyOptions,
        "kafka-dead-letter": kafka.DeadLetterOptions,
        "kafka-outputs": kafka.OutputOptions,
        "kafka-exactly-once": kafka.ExactlyOnceOptions,
        "kafka-retry-topic": kafka.RetryTopicOptions,
    }


def _engine_tables() -> dict[str, type[Schema]]:
    return {
        "pipeline": engine.PipelineOptions,
        "producer-stage": engine.ProducerStageOptions,
        "rate-limiting": engine.RateLimitingOptions,
        "processor": engine.ProcessorOptions,
        "processor-retry": engine.RetryOptions,
        "batcher": engine.BatcherOptions,
        "statsd": engine.StatsdOptions,
        "prometheus": engine.PrometheusOptions,
        "run": engine.RunOptions,
    }


TABLES: list[Callable[[], dict[str, type[Schema]]]] = [_engine_tables, _kafka_tables]

_BLOCK = re.compile(r"(<!-- options:(?P<name>[\w-]+) -->\n)(?:.*?\n)?(<!-- /options:(?P=name) -->)", re.S)


def render_option_tables(text: str) -> str:
    """`text` with every option block replaced by the table generated from its schema."""
    schemas: dict[str, Any] = {}
    for group in TABLES:
        schemas.update(group())

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in schemas:
            raise KeyError(f"unknown option table {name!r}; known: {', '.join(sorted(schemas))}")
        return match.group(1) + schema_table(schemas[name]) + "\n" + match.group(3)

    return _BLOCK.sub(replace, text)


def documentation_pages(root: Path) -> list[Path]:
    """The Markdown pages of a checkout at `root`: README.md, then every page under docs/, sorted."""
    readme = root / "README.md"
    return ([readme] if readme.exists() else []) + sorted((root / "docs").rglob("*.md"))


def pages_with_option_tables(root: Path) -> list[Path]:
    """The documentation pages that hold at least one generated option table."""
    return [page for page in documentation_pages(root) if _BLOCK.search(page.read_text())]
