"""gkbroad.config.toml: TOML files -> pipeline options, and every problem of a bad one."""

from __future__ import annotations

import textwrap

import pytest

import gkbroad
from gkbroad.config.toml import ConfigProblems, build_pipeline, load_pipeline, pipeline_class, read_config
from gkbroad.testing import DummyProducer


class Handles(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        return message


class HandlesBatches(Handles):
    def handle_batch(self, batcher, messages, batch_info, context):
        return messages


def write(tmp_path, text):
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_file_is_the_options_dict_with_pairs_as_tuples(tmp_path):
    config = read_config(
        write(
            tmp_path,
            """\
            pipeline = "pkg.module:Class"
            name = "orders"
            context = { tags = ["a", "b"], limits = [1, 2] }
            [producer]
            module = ["gkbroad.kafka.Producer", { group_name = "g", topics = [{ name = "t" }] }]
            [processors.default]
            concurrency = 5
            """,
        )
    )
    assert config.pipeline == "pkg.module:Class"
    assert config.options == {
        "name": "orders",
        "context": {"tags": ["a", "b"], "limits": [1, 2]},
        "producer": {"module": ("gkbroad.kafka.Producer", {"group_name": "g", "topics": [{"name": "t"}]})},
        "processors": {"default": {"concurrency": 5}},
    }


def test_environment_references_are_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("GKB_TEST_SERVERS", "kafka-1:9093")
    monkeypatch.delenv("GKB_TEST_UNSET", raising=False)
    config = read_config(
        write(
            tmp_path,
            """\
            name = "${GKB_TEST_SERVERS}"
            context = { topic = "${GKB_TEST_UNSET:-orders}", literal = "$${GKB_TEST_SERVERS}", empty = "${GKB_TEST_UNSET:-}" }
            """,
        )
    )
    assert config.options == {
        "name": "kafka-1:9093",
        "context": {"topic": "orders", "literal": "${GKB_TEST_SERVERS}", "empty": ""},
    }


def test_unset_environment_variables_are_problems_with_their_path(tmp_path, monkeypatch):
    monkeypatch.delenv("GKB_TEST_UNSET", raising=False)
    path = write(tmp_path, 'name = "${GKB_TEST_UNSET}"\ncontext = { hosts = ["x", "${GKB_TEST_UNSET}"] }\n')
    with pytest.raises(ConfigProblems) as caught:
        read_config(path)
    assert caught.value.problems == [
        "name: environment variable GKB_TEST_UNSET is not set (write ${GKB_TEST_UNSET:-default} for a default)",
        "context.hosts.1: environment variable GKB_TEST_UNSET is not set (write ${GKB_TEST_UNSET:-default} for a default)",
    ]


def test_unreadable_and_invalid_files_name_the_file(tmp_path):
    missing = str(tmp_path / "missing.toml")
    with pytest.raises(ConfigProblems, match=r"missing\.toml: cannot read the file \(No such file or directory\)"):
        read_config(missing)
    with pytest.raises(ConfigProblems, match=r"pipeline\.toml: not valid TOML \(.*line 1"):
        read_config(write(tmp_path, "name = \n"))
    with pytest.raises(ConfigProblems, match=r"pipeline: must be a string like 'pkg.module:Class', got 3"):
        read_config(write(tmp_path, "pipeline = 3\n"))


def test_pipeline_class_must_be_an_importable_pipeline_subclass():
    assert pipeline_class(f"{__name__}:Handles") is Handles
    assert pipeline_class(f"{__name__}.Handles") is Handles
    with pytest.raises(ConfigProblems, match=r"^pipeline: missing; set pipeline = "):
        pipeline_class(None)
    with pytest.raises(ConfigProblems, match=r"cannot import 'no_such_module_x:P' \(ModuleNotFoundError"):
        pipeline_class("no_such_module_x:P")
    with pytest.raises(ConfigProblems, match=r"must name a gkbroad.Pipeline subclass, got <class 'dict'>"):
        pipeline_class("builtins:dict")


def valid_options(**changes):
    options = {"name": "unit", "producer": {"module": "gkbroad.testing:DummyProducer"}, "processors": {"default": {}}}
    options.update(changes)
    return options


def test_a_valid_configuration_builds_the_pipeline():
    pipeline = build_pipeline(HandlesBatches, valid_options(batchers={"default": {"batch_size": 5}}))
    assert isinstance(pipeline, HandlesBatches)
    assert pipeline.options["producer"]["module"][0] is DummyProducer
    assert pipeline.options["batchers"]["default"]["batch_size"] == 5


def test_every_problem_is_listed_schema_handlers_and_producer_together():
    options = valid_options(
        name="",
        producer={"module": ("gkbroad.testing:DummyProducer", {"unexpected": 1}), "concurrency": 0},
        processors={"default": {"max_demand": "many"}},
        batchers={"default": {}},
    )
    with pytest.raises(ConfigProblems) as caught:
        build_pipeline(Handles, options)
    assert caught.value.problems == [
        "name: must be a non-empty string, got ''",
        "processors.default.max_demand: must be a positive integer, got 'many'",
        "producer.concurrency: must be a positive integer, got 0",
        "batchers: Handles configures batchers (default) but does not define "
        "handle_batch(self, batcher, messages, batch_info, context)",
        "producer.module: DummyProducer takes no options, got {'unexpected': 1}",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_a_handler_problem_does_not_hide_the_producer_problem():
    options = valid_options(producer={"module": ("gkbroad.testing:DummyProducer", {"x": 1})}, batchers={"b": {}})
    with pytest.raises(ConfigProblems) as caught:
        build_pipeline(Handles, options)
    assert caught.value.problems == [
        "batchers: Handles configures batchers (b) but does not define "
        "handle_batch(self, batcher, messages, batch_info, context)",
        "producer.module: DummyProducer takes no options, got {'x': 1}",
    ]


def test_an_unloadable_class_is_listed_with_the_option_problems(tmp_path):
    path = write(tmp_path, 'pipeline = "no_such_module_x:P"\nname = 5\n[processors.default]\n')
    with pytest.raises(ConfigProblems) as caught:
        load_pipeline(read_config(path))
    assert caught.value.problems == [
        "pipeline: cannot import 'no_such_module_x:P' (ModuleNotFoundError: No module named 'no_such_module_x')",
        "name: must be a non-empty string, got 5",
        "producer: missing required option",
    ]


def test_the_pipeline_argument_overrides_the_file(tmp_path):
    path = write(
        tmp_path,
        """\
        pipeline = "no_such_module_x:P"
        name = "unit"
        [producer]
        module = "gkbroad.testing:DummyProducer"
        [processors.default]
        """,
    )
    pipeline = load_pipeline(read_config(path), f"{__name__}:Handles")
    assert type(pipeline) is Handles


class WrongSignatures(gkbroad.Pipeline):
    def handle_message(self, message):
        return message

    def handle_batch(self, batcher, messages, batch_info, context, extra):
        return messages

    @staticmethod
    def handle_failed(messages, context):
        return messages

    prepare_messages = "not a method"


class FlexibleSignatures(gkbroad.Pipeline):
    def handle_message(self, *args, **kwargs):
        return args[1]

    @classmethod
    def handle_failed(cls, messages, context=None):
        return messages


def test_handlers_that_cannot_be_called_as_the_stages_call_them_are_problems():
    with pytest.raises(ConfigProblems) as caught:
        build_pipeline(WrongSignatures, valid_options(batchers={"default": {}}))
    assert caught.value.problems == [
        "handle_message: WrongSignatures.handle_message(self, message) cannot be called as "
        "handle_message(self, processor, message, context)",
        "handle_batch: WrongSignatures.handle_batch(self, batcher, messages, batch_info, context, extra) cannot be "
        "called as handle_batch(self, batcher, messages, batch_info, context)",
        "prepare_messages: WrongSignatures.prepare_messages must be a method prepare_messages(self, messages, "
        "context), got 'not a method'",
    ]
    assert isinstance(build_pipeline(FlexibleSignatures, valid_options()), FlexibleSignatures)


def test_signature_problems_come_with_the_option_problems():
    with pytest.raises(ConfigProblems) as caught:
        build_pipeline(WrongSignatures, valid_options(name=""))
    assert caught.value.problems[0] == "name: must be a non-empty string, got ''"
    assert caught.value.problems[-1].startswith("prepare_messages: WrongSignatures.prepare_messages must be a method")
