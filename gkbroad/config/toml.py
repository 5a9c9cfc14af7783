"""Pipeline configuration files: a TOML file -> the options `Pipeline(**options)` takes.

The file's structure is exactly the options dict, so the option tables of
docs/options.md apply as they are. Four things are added for TOML:

- a top-level ``pipeline = "pkg.module:Class"`` names the Pipeline subclass
  (``gkbroad run --pipeline`` overrides it);
- a ``[run]`` table says how ``gkbroad run`` runs the pipeline (how many
  processes; schema `RunOptions`); it is not passed to the pipeline;
- TOML has no tuples, so a two-item array ``[string, table]`` is read as the
  pair ``(string, table)`` (how ``producer.module`` takes its options);
- ``${NAME}`` and ``${NAME:-default}`` inside strings are replaced by
  environment variables, so that secrets and addresses stay out of the file
  (``$${`` writes a literal ``${``).

Building a pipeline stops at its first failing step (option schema, handler
methods, the producer's own options). `build_pipeline` runs the steps it did
not reach as well, so that a user sees every problem in one go.
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from ..errors import ConfigError
from ..pipeline import Pipeline
from ..producer import BaseProducer
from .fields import ProducerModule, import_object
from .schemas import PipelineOptions, RunOptions
from .validation import validate

__all__ = ["ConfigProblems", "PipelineConfig", "build_pipeline", "load_pipeline", "pipeline_class", "read_config"]

PIPELINE_KEY = "pipeline"
RUN_KEY = "run"

# The arguments the stages pass to each handler (after self).
_HANDLER_ARGUMENTS = {
    "handle_message": ("processor", "message", "context"),
    "handle_batch": ("batcher", "messages", "batch_info", "context"),
    "handle_failed": ("messages", "context"),
    "prepare_messages": ("messages", "context"),
}

_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigProblems(ConfigError):
    """Every problem found in a configuration, one line each (``option.path: what is wrong``)."""

    def __init__(self, problems: list[str]):
        self.problems = list(dict.fromkeys(problems))  # in order, without repeats
        super().__init__("\n".join(self.problems))


@dataclass
class PipelineConfig:
    """What a configuration file holds: the pipeline class path, the pipeline's options, and the
    validated ``[run]`` table (`RunOptions`, defaults filled in)."""

    source: str
    pipeline: str | None
    options: dict[str, Any]
    run: dict[str, Any]


def read_config(path: str) -> PipelineConfig:
    """Read a TOML configuration file; raises ConfigProblems when it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigProblems([f"{path}: cannot read the file ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigProblems([f"{path}: not valid TOML ({exc})"]) from None
    problems: list[str] = []
    options = _from_toml(data, "", problems)
    pipeline = options.pop(PIPELINE_KEY, None)
    if pipeline is not None and not isinstance(pipeline, str):
        problems.append(f"{PIPELINE_KEY}: must be a string like 'pkg.module:Class', got {pipeline!r}")
        pipeline = None
    run: dict[str, Any] = {}
    try:
        run = validate(RunOptions, options.pop(RUN_KEY, {}), RUN_KEY)
    except ConfigError as exc:
        problems += _problem_lines(exc)
    if problems:
        raise ConfigProblems(problems)
    return PipelineConfig(source=path, pipeline=pipeline, options=options, run=run)


def _from_toml(value: Any, path: str, problems: list[str]) -> Any:
    """Pairs become tuples and environment references are replaced, recursively."""
    if isinstance(value, dict):
        return {key: _from_toml(item, _join(path, key), problems) for key, item in value.items()}
    if isinstance(value, list):
        items = [_from_toml(item, _join(path, index), problems) for index, item in enumerate(value)]
        if len(items) == 2 and isinstance(items[0], str) and isinstance(items[1], dict):
            return tuple(items)
        return items
    if isinstance(value, str):
        return _expand_environment(value, path, problems)
    return value


def _expand_environment(text: str, path: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set (write ${{{name}:-default}} for a default)")
        return match.group(0)

    return _ENV_REFERENCE.sub(replace, text)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def pipeline_class(path: str | None) -> type[Pipeline]:
    """Import the Pipeline subclass named ``pkg.module:Class``; ConfigProblems when that fails."""
    if not path:
        raise ConfigProblems(
            [
                f'{PIPELINE_KEY}: missing; set {PIPELINE_KEY} = "pkg.module:Class" at the top of the file or pass --pipeline'
            ]
        )
    try:
        cls = import_object(path)
    except Exception as exc:  # the user's module may fail to import in any way
        raise ConfigProblems([f"{PIPELINE_KEY}: cannot import {path!r} ({type(exc).__name__}: {exc})"]) from None
    if not (isinstance(cls, type) and issubclass(cls, Pipeline)):
        raise ConfigProblems([f"{PIPELINE_KEY}: {path!r} must name a gkbroad.Pipeline subclass, got {cls!r}"])
    return cls


def load_pipeline(config: PipelineConfig, pipeline: str | None = None) -> Pipeline:
    """The pipeline a configuration describes (`pipeline` overrides the file's class path).

    Raises ConfigProblems listing every problem found, the class and the options together.
    """
    try:
        cls = pipeline_class(pipeline or config.pipeline)
    except ConfigProblems as exc:
        raise ConfigProblems(exc.problems + _unreached_problems(None, config.options, schema_failed=True)) from None
    return build_pipeline(cls, config.options)


def build_pipeline(cls: type[Pipeline], options: dict[str, Any]) -> Pipeline:
    """``cls(**options)``, or ConfigProblems listing every problem, not only the first step's.

    Also refuses handler methods that could not be called the way the stages call them
    (the pipeline itself would only find out at the first message).
    """
    signature_problems = _signature_problems(cls)
    try:
        pipeline = cls(**copy.deepcopy(options))
    except ConfigProblems:
        raise
    except ConfigError as exc:
        first = _problem_lines(exc)
    else:
        if signature_problems:
            raise ConfigProblems(signature_problems)
        return pipeline
    try:
        validate(PipelineOptions, options)
        schema_failed = False
    except ConfigError:
        schema_failed = True
    raise ConfigProblems(first + _unreached_problems(cls, options, schema_failed) + signature_problems) from None


def _signature_problems(cls: type[Pipeline]) -> list[str]:
    """Handler methods of `cls` that do not accept the arguments the stages pass."""
    problems = []
    for name, arguments in _HANDLER_ARGUMENTS.items():
        method = getattr(cls, name)
        if method is getattr(Pipeline, name):
            continue
        expected = f"{name}(self, {', '.join(arguments)})"
        if not callable(method):
            problems.append(f"{name}: {cls.__name__}.{name} must be a method {expected}, got {method!r}")
            continue
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):  # some callables have no introspectable signature
            continue
        bound_already = isinstance(inspect.getattr_static(cls, name), (staticmethod, classmethod))
        try:
            signature.bind(*(arguments if bound_already else (None, *arguments)))
        except TypeError:
            problems.append(f"{name}: {cls.__name__}.{name}{signature} cannot be called as {expected}")
    return problems


def _problem_lines(exc: ConfigError) -> list[str]:
    """The problems of one ConfigError (gkbroad.config.validation.validate lists several under a heading)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":") and ": " not in lines[0]:
        lines = lines[1:]
    return lines


def _unreached_problems(cls: type[Pipeline] | None, options: dict[str, Any], schema_failed: bool) -> list[str]:
    """Problems of the construction steps after a failed one: schema, handlers, producer options."""
    problems: list[str] = []
    if schema_failed:
        try:
            validate(PipelineOptions, options)
        except ConfigError as exc:
            problems += _problem_lines(exc)
        if cls is not None:
            problems += _handler_problems(cls, options)
    problems += _producer_problems(options)
    return problems


def _handler_problems(cls: type[Pipeline], options: dict[str, Any]) -> list[str]:
    """Does `cls` define the handlers these options need? Asked of the Pipeline itself,
    with minimal valid options, so that the rules live in one place."""
    batchers = options.get("batchers")
    names = [name for name in batchers if isinstance(name, str) and name] if isinstance(batchers, dict) else []
    try:
        cls(
            name="check",
            producer={"module": BaseProducer},
            processors={"default": {}},
            batchers={name: {} for name in names},
        )
    except ConfigError as exc:
        return _problem_lines(exc)
    return []


def _producer_problems(options: dict[str, Any]) -> list[str]:
    """The producer's own options, checked by its prepare_for_start as Pipeline would."""
    producer = options.get("producer")
    if not isinstance(producer, dict) or "module" not in producer:
        return []
    module: object = producer["module"]  # not None: marshmallow then types the result as a pair
    try:
        producer_cls, producer_options = ProducerModule().deserialize(module)
    except ValidationError:
        return []  # the option schema reported it
    prepare = getattr(producer_cls, "prepare_for_start", None)
    if prepare is None:
        return []
    pipeline_options = copy.deepcopy(options)
    pipeline_options["producer"] = {**producer, "module": (producer_cls, producer_options)}
    try:
        prepare(copy.deepcopy(producer_options), pipeline_options)
    except ConfigError as exc:
        return _problem_lines(exc)
    except Exception:  # options the schema refused can trip a producer that trusts them
        return []
    return []
