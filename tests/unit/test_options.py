"""Bad configuration fails fast, at construction, with a ConfigError that names
the option path, what was expected, and what was given."""

import copy

import pytest

import gkbroad.config.schemas
from gkbroad import ConfigError, testing
from gkbroad.config.schemas import BatcherOptions
from gkbroad.config.validation import validate
from tests.helpers.engine_support import RecordingPipeline, SourceProducer

VALID = {
    "name": "opts",
    "producer": {"module": testing.DummyProducer, "rate_limiting": {"allowed_messages": 10, "interval": 100}},
    "processors": {"default": {}},
    "batchers": {"sql": {}},
}


class NoReceive:
    """A class that does not follow the producer protocol."""


def with_option(path, value, base=VALID):
    """A copy of `base` with the option at dotted `path` set to `value`."""
    options = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = options
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return options


BAD_OPTIONS = [
    ("processors.default.concurrency", 0, "must be a positive integer, got 0"),
    ("processors.default.concurrency", True, "must be a positive integer, got True"),
    ("processors.default.max_demand", "10", "must be a positive integer, got '10'"),
    ("processors.default.max_demand", -3, "must be a positive integer, got -3"),
    ("processors.default.partition_by", 5, "must be a callable or an importable dotted path to one, got 5"),
    (
        "processors.default.bogus",
        1,
        "unknown option (known options: concurrency, executor, max_demand, partition_by, retry), got 1",
    ),
    ("processors", {"other": {}}, "must have exactly the keys 'default', got {'other': {}}"),
    ("processors.default", "x", "invalid input type, got 'x'"),
    ("batchers", "x", "must be a mapping of name -> options, got 'x'"),
    ("batchers.sql.batch_size", 0, "must be a positive integer, got 0"),
    ("batchers.sql.batch_timeout", 1.5, "must be a positive integer, got 1.5"),
    ("batchers.sql.concurrency", "2", "must be a positive integer, got '2'"),
    ("batchers.sql.max_demand", 0, "must be a positive integer, got 0"),
    (
        "batchers.sql.partition_by",
        "no_such_module:fn",
        "cannot import 'no_such_module:fn' (No module named 'no_such_module'), got 'no_such_module:fn'",
    ),
    ("producer.concurrency", 0, "must be a positive integer, got 0"),
    ("producer.module", 42, "must be a producer class, a dotted path to one, or a (class, options dict) pair, got 42"),
    (
        "producer.module",
        "tests.helpers.engine_support:NoSuchProducer",
        "cannot import 'tests.helpers.engine_support:NoSuchProducer' "
        "(module 'tests.helpers.engine_support' has no attribute 'NoSuchProducer'), "
        "got 'tests.helpers.engine_support:NoSuchProducer'",
    ),
    (
        "producer.module",
        (testing.DummyProducer, "x"),
        f"the second item of the pair must be a dict of producer options, got {(testing.DummyProducer, 'x')!r}",
    ),
    ("producer.module", NoReceive, f"must be a producer class with a receive(demand) method, got {NoReceive!r}"),
    ("producer.rate_limiting", "fast", "invalid input type, got 'fast'"),
    ("producer.rate_limiting.allowed_messages", 0, "must be a positive integer, got 0"),
    ("producer.rate_limiting.interval", "100ms", "must be a positive integer, got '100ms'"),
    ("shutdown_timeout", -1, "must be a non-negative integer, got -1"),
    ("name", "", "must be a non-empty string, got ''"),
    ("name", 7, "must be a non-empty string, got 7"),
    ("partition_by", 5, "must be a callable or an importable dotted path to one, got 5"),
    (
        "procesors",
        {},
        "unknown option (known options: batchers, blocking_warning_ms, context, metrics, name, on_failure, partition_by, processors, "
        "producer, shutdown_timeout, stuck_handler_timeout, tracing), got {}",
    ),
    ("on_failure.max_consecutive", 0, "must be a positive integer, got 0"),
]

ON_FAILURE_EXPECTED = 'must be "ack", {"max_consecutive": N} or {"max_rate": 0 < r <= 1, "window": N}'

BAD_ON_FAILURE = [
    ("skip", f"on_failure: {ON_FAILURE_EXPECTED}, got 'skip'"),
    ({"max_failures": 3}, f"on_failure: {ON_FAILURE_EXPECTED}, got {{'max_failures': 3}}"),
    ({"max_rate": 0, "window": 10}, "on_failure.max_rate: must be a number above 0 and at most 1, got 0"),
    ({"max_rate": 1.5, "window": 10}, "on_failure.max_rate: must be a number above 0 and at most 1, got 1.5"),
    ({"max_rate": 0.5}, "on_failure.window: missing required option"),
    ({"max_rate": 0.5, "window": 10**6}, "on_failure.window: must be at most 100000, got 1000000"),
    ({"max_consecutive": 3, "window": 10}, "on_failure.window: unknown field, got 10"),
]


@pytest.mark.parametrize("value, expected", BAD_ON_FAILURE, ids=[repr(v) for v, _ in BAD_ON_FAILURE])
def test_a_bad_failure_policy_says_what_was_expected(value, expected):
    assert error_for(with_option("on_failure", value)) == expected


@pytest.mark.parametrize("value", ["ack", {"max_consecutive": 5}, {"max_rate": 0.5, "window": 100}])
def test_the_failure_policies_are_accepted(value):
    assert validate(gkbroad.config.schemas.PipelineOptions, with_option("on_failure", value))["on_failure"] == value


def error_for(options, cls=RecordingPipeline):
    with pytest.raises(ConfigError) as caught:
        cls(**options)
    return str(caught.value)


@pytest.mark.parametrize("path, value, expected", BAD_OPTIONS, ids=[f"{p}={v!r}" for p, v, _ in BAD_OPTIONS])
def test_a_bad_option_names_its_path_and_what_was_given(path, value, expected):
    message = error_for(with_option(path, value))

    assert message == f"{path}: {expected}"


@pytest.mark.parametrize(
    "missing", ["name", "producer", "processors", "producer.module", "producer.rate_limiting.interval"]
)
def test_a_missing_required_option_is_named(missing):
    options = copy.deepcopy(VALID)
    *parents, leaf = missing.split(".")
    node = options
    for key in parents:
        node = node[key]
    del node[leaf]

    assert error_for(options) == f"{missing}: missing required option"


def test_every_problem_is_reported_at_once():
    options = with_option("shutdown_timeout", "x")
    options = with_option("name", 1, options)
    options = with_option("processors.default.concurrency", 0, options)

    assert error_for(options).splitlines() == [
        "invalid options:",
        "  name: must be a non-empty string, got 1",
        "  processors.default.concurrency: must be a positive integer, got 0",
        "  shutdown_timeout: must be a non-negative integer, got 'x'",
    ]


def test_a_stage_name_must_be_a_non_empty_string():
    assert error_for(with_option("batchers", {"": {}})).startswith("batchers.'': stage names must be non-empty strings")


def test_validate_refuses_something_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match=r"^batchers\.sql: expected a mapping of options, got 5$"):
        validate(BatcherOptions, 5, "batchers.sql")


def test_producer_options_are_checked_by_the_producer():
    options = with_option("producer.module", (testing.DummyProducer, {"topics": ["x"]}))

    assert error_for(options) == "producer.module: DummyProducer takes no options, got {'topics': ['x']}"


class MessagesOnly(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        return message


class BatchOnly(gkbroad.Pipeline):
    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


def test_batchers_without_handle_batch_is_a_config_error():
    message = error_for(VALID, cls=MessagesOnly)
    assert message.startswith("batchers: MessagesOnly configures batchers (sql)") and "handle_batch" in message


def test_a_pipeline_without_handle_message_is_a_config_error():
    assert "BatchOnly must define handle_message" in error_for(VALID, cls=BatchOnly)


def test_defaults_are_filled_in():
    options = RecordingPipeline(
        name="d", producer={"module": testing.DummyProducer}, processors={"default": None}, batchers={"b": {}}
    ).options

    assert options["processors"]["default"] == {
        "concurrency": 10,
        "max_demand": 10,
        "partition_by": None,
        "executor": "greenlet",
        "retry": None,
    }
    assert options["batchers"]["b"] == {
        "batch_size": 100,
        "batch_timeout": 1000,
        "concurrency": 1,
        "max_demand": None,
        "partition_by": None,
        "executor": "greenlet",
    }
    assert options["blocking_warning_ms"] == 500
    assert (options["shutdown_timeout"], options["context"], options["partition_by"]) == (30000, None, None)
    assert (options["producer"]["concurrency"], options["producer"]["rate_limiting"]) == (1, None)


@pytest.mark.parametrize(
    "path", ["tests.helpers.engine_support:SourceProducer", "tests.helpers.engine_support.SourceProducer"]
)
def test_producer_module_may_be_a_dotted_path(path):
    options = RecordingPipeline(
        name="p", producer={"module": (path, {"source": None})}, processors={"default": {}}
    ).options

    assert options["producer"]["module"] == (SourceProducer, {"source": None})


def key_of(message):
    return 0


def own_key(message):
    return 1


def test_pipeline_partition_by_applies_to_every_stage_without_its_own():
    options = RecordingPipeline(
        name="p",
        producer={"module": testing.DummyProducer},
        partition_by=f"{__name__}:key_of",
        processors={"default": {}},
        batchers={"a": {}, "b": {"partition_by": own_key}},
    ).options

    assert options["processors"]["default"]["partition_by"] is key_of
    assert options["batchers"]["a"]["partition_by"] is key_of
    assert options["batchers"]["b"]["partition_by"] is own_key


def test_the_producer_may_add_services_and_rewrite_its_options():
    pipeline = RecordingPipeline(name="p", producer={"module": testing.DummyProducer}, processors={"default": {}})

    (channel,) = pipeline.services
    assert pipeline.options["producer"]["module"] == (testing.DummyProducer, {"channel": channel})
