"""Dead letters without a broker: what a dead letter holds, the option checks, and handle_failed
refusing to acknowledge (the path DeadLetter.send takes when it gives up)."""

from __future__ import annotations

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from gkbroad import ConfigError, testing
from gkbroad.errors import NotAcknowledged
from gkbroad.kafka import DeadLetter, Producer
from gkbroad.kafka.dead_letter import ERROR_LIMIT, dead_letter_record
from gkbroad.kafka.formats import build_messages
from tests.helpers.engine_support import RecordingPipeline

GOOD = {"group_name": "g", "client": {"bootstrap_servers": "x:1"}, "topics": [{"name": "t"}]}


def record(key=b"k", value=b"v", headers=(("trace", b"1"),), offset=7):
    return ConsumerRecord("t", 2, None, offset, 0, 0, key, value, list(headers), None, 1, len(value or b""), -1)


def failed(message_format, reason=None, **fields):
    [message] = build_messages([record(**fields)], 3, None, 0, message_format)
    return message.failed(reason or ValueError("bad"))


@pytest.mark.parametrize("message_format", ["record", "value"])
def test_a_dead_letter_has_the_original_key_value_and_headers_and_the_source_headers(message_format):
    key, value, headers = dead_letter_record(failed(message_format), "orders")

    assert (key, value) == (b"k", b"v")
    assert headers == [
        ("trace", b"1"),
        ("source_topic", b"t"),
        ("source_partition", b"2"),
        ("source_offset", b"7"),
        ("source_group", b"orders"),
        ("error", b"ValueError: bad"),
    ]


def test_raw_bytes_kept_by_decoding_win_over_the_decoded_data():
    message = failed("value")
    message.data, message.metadata["key"] = {"decoded": True}, "decoded key"
    message.metadata.update(raw_key=b"rk", raw_value=b"rv")

    key, value, _ = dead_letter_record(message, "g")

    assert (key, value) == (b"rk", b"rv")


def test_source_headers_of_an_earlier_dead_letter_are_replaced_not_repeated():
    headers = [("source_topic", b"older"), ("error", b"older"), ("keep", b"me")]
    _, _, written = dead_letter_record(failed("record", headers=headers), "g")

    names = [name for name, _ in written]
    assert names.count("source_topic") == 1 and names.count("error") == 1 and "keep" in names
    assert dict(written)["source_topic"] == b"t"


def test_the_error_header_is_cut_and_a_reason_that_is_not_an_exception_is_written_as_is():
    _, _, headers = dead_letter_record(failed("record", reason="x" * 5000), "g")
    error = dict(headers)["error"]
    assert len(error) == ERROR_LIMIT and error.endswith(b"...")
    _, _, headers = dead_letter_record(failed("record", reason="handler said no"), "g")
    assert dict(headers)["error"] == b"handler said no"


def test_a_value_that_is_not_bytes_any_more_cannot_be_written():
    message = failed("value")
    message.data = {"replaced": "by the handler"}
    with pytest.raises(ValueError, match="the value of offset 7 is a dict, not the record's bytes"):
        dead_letter_record(message, "g")


def test_the_dead_letter_repr_shows_no_settings():
    writer = DeadLetter("dlq", {"bootstrap_servers": "x:1", "sasl_plain_password": "hunter2"}, group_name="g")
    assert "hunter2" not in repr(writer) and "hunter2" not in repr(writer._writer._producer)


def error_for(dead_letter):
    with pytest.raises(ConfigError) as caught:
        RecordingPipeline(
            name="k",
            producer={"module": (Producer, {**GOOD, "dead_letter": dead_letter})},
            processors={"default": {}},
        )
    return str(caught.value)


@pytest.mark.parametrize(
    ("dead_letter", "expected"),
    [
        ({}, "producer.module.dead_letter.topic: missing required option"),
        ({"topic": "t"}, "producer.module.dead_letter.topic: must not be one of the consumed topics"),
        (
            {"topic": "d", "client": {"acks": 0}},
            "producer.module.dead_letter.client.acks: must be 1 or 'all': a record (output, dead letter or retry) "
            "counts as written only once the broker acknowledged it",
        ),
        (
            {"topic": "d", "client": {"value_serializer": str}},
            "producer.module.dead_letter.client.value_serializer: dead letters carry the record's own bytes",
        ),
        (
            {"topic": "d", "client": {"group_id": "x"}},
            "producer.module.dead_letter.client.group_id: is not a kafka-python KafkaProducer setting",
        ),
        ({"topic": "d", "max_attempts": 0}, "producer.module.dead_letter.max_attempts: must be a positive integer"),
    ],
)
def test_bad_dead_letter_options_name_the_option(dead_letter, expected):
    assert expected in error_for(dead_letter)


def test_handle_failed_raising_not_acknowledged_fails_the_pipeline_and_acknowledges_nothing_of_them(run_testing):
    class CannotWrite(RecordingPipeline):
        def on_message(self, message):
            return message.failed("bad") if message.data == "bad" else message

        def handle_failed(self, messages, context):
            raise NotAcknowledged("the dead-letter topic is down")

    pipeline = run_testing(CannotWrite, processors={"default": {"concurrency": 1}})
    good = testing.test_message(pipeline, "good")
    assert testing.wait_for_ack(pipeline, good)[0][0].data == "good"
    ref = testing.test_message(pipeline, "bad")

    with pytest.raises(TimeoutError, match="0 of 1"):
        testing.wait_for_ack(pipeline, ref, timeout=0.5)
    assert pipeline.failure == "handle_failed: the dead-letter topic is down; 1 failed message(s) are not acknowledged"
