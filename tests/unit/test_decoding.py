"""Topic decoding: each deserializer, schema validation, and how a record that fails becomes a failed
message with its raw bytes kept. The end-to-end path (handle_failed, offsets) is in
tests/integration/test_decoding_kafka.py."""

import json
from decimal import Decimal

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from marshmallow import Schema, fields

from gkbroad import ConfigError
from gkbroad.config.validation import validate
from gkbroad.kafka import Producer
from gkbroad.kafka.decoding import DecodeError, Decoding, TopicDecoder
from gkbroad.kafka.formats import build_messages
from gkbroad.kafka.options import KafkaProducerOptions, TopicOptions
from tests.helpers.engine_support import RecordingPipeline


class Order(Schema):
    id = fields.Integer(required=True)
    amount = fields.Decimal(required=True)
    note = fields.String(load_default="")


def upper(raw):
    return raw.decode().upper()


def record(value, key=b"k1", topic="orders", partition=2, offset=17):
    return ConsumerRecord(topic, partition, -1, offset, 1700000000000, 0, key, value, [("h", b"1")], None, 2, 5, 3)


def decoder(**options):
    return TopicDecoder(TopicOptions().load({"name": "orders", **options}))


def decode_error(**options):
    raw = options.pop("raw")
    with pytest.raises(DecodeError) as caught:
        decoder(**options).decode(record(raw))
    return caught.value


def test_bytes_is_the_default_and_decodes_nothing():
    assert not decoder().active
    assert decoder().decode(record(b"\xff\x00")) == (b"k1", b"\xff\x00")


def test_str_decodes_utf8():
    assert decoder(value_deserializer="str", key_deserializer="str").decode(record("é".encode())) == ("k1", "é")


def test_str_fails_on_bytes_that_are_not_utf8():
    error = decode_error(value_deserializer="str", raw=b"\xff\xfe")
    assert error.part == "value"
    assert str(error).startswith("value of orders[2] offset 17: value_deserializer 'str' failed: UnicodeDecodeError:")
    assert isinstance(error.__cause__, UnicodeDecodeError)


def test_json_decodes_and_fails_on_non_json():
    assert decoder(value_deserializer="json").decode(record(b'{"a": [1, 2]}'))[1] == {"a": [1, 2]}
    error = decode_error(value_deserializer="json", raw=b"not json")
    assert "value_deserializer 'json' failed: JSONDecodeError: Expecting value" in str(error)


def test_a_callable_and_a_dotted_path_are_deserializers():
    assert decoder(value_deserializer=upper).decode(record(b"abc"))[1] == "ABC"
    assert decoder(value_deserializer="json:loads").decode(record(b"[1]"))[1] == [1]
    assert decoder(key_deserializer=f"{__name__}:upper").decode(record(b"x", key=b"key"))[0] == "KEY"


def test_an_exception_of_a_user_deserializer_names_it():
    def explode(raw):
        raise RuntimeError("no idea what this is")

    error = decode_error(key_deserializer=explode, raw=b"v")
    assert error.part == "key"
    assert "key_deserializer test_an_exception_of_a_user_deserializer_names_it.<locals>.explode failed" in str(error)
    assert "RuntimeError: no idea what this is" in str(error)


def test_null_keys_and_tombstones_stay_none():
    topic = decoder(value_deserializer="json", key_deserializer="str", value_schema=Order)
    assert topic.decode(record(None, key=None)) == (None, None)


def test_the_schema_loads_decoded_values():
    topic = decoder(value_deserializer="json", value_schema=Order)
    key, value = topic.decode(record(b'{"id": "7", "amount": "12.50"}'))
    assert value == {"id": 7, "amount": Decimal("12.50"), "note": ""}


def test_a_value_the_schema_refuses_carries_marshmallows_messages():
    error = decode_error(value_deserializer="json", value_schema=Order, raw=b'{"id": "x"}')
    assert error.errors == {"id": ["Not a valid integer."], "amount": ["Missing data for required field."]}
    assert str(error).startswith("value of orders[2] offset 17: value_schema Order refused it: {")
    assert "Not a valid integer." in str(error) and "Missing data for required field." in str(error)


def test_the_schema_refuses_a_decoded_value_that_is_not_a_mapping():
    error = decode_error(value_deserializer="json", value_schema=f"{__name__}:Order", raw=b"[1, 2]")
    assert error.errors == {"_schema": ["Invalid input type."]}


def message_for(raw, message_format, **options):
    rec = record(raw)
    [message] = build_messages([rec], 1, None, 0, message_format)
    decoding = Decoding([TopicOptions().load({"name": "orders", **options})], message_format)
    return decoding.apply(message, rec)


def test_value_format_gets_the_decoded_value_and_key():
    message = message_for(b'{"id": 1, "amount": "2"}', "value", value_deserializer="json", key_deserializer="str")
    assert not message.is_failed
    assert message.data == {"id": 1, "amount": "2"}
    assert message.metadata["key"] == "k1"
    assert (message.metadata["raw_key"], message.metadata["raw_value"]) == (b"k1", b'{"id": 1, "amount": "2"}')


def test_record_format_gets_a_record_with_the_decoded_value():
    message = message_for(b'{"id": 1, "amount": "2"}', "record", value_deserializer="json", value_schema=Order)
    assert message.data.value == {"id": 1, "amount": Decimal("2"), "note": ""}
    assert (message.data.topic, message.data.partition, message.data.offset, message.data.key) == (
        "orders",
        2,
        17,
        b"k1",
    )


@pytest.mark.parametrize("message_format", ["record", "value"])
def test_a_record_that_fails_is_a_failed_message_with_its_raw_bytes(message_format):
    message = message_for(b"{broken", message_format, value_deserializer="json")
    assert message.is_failed
    assert isinstance(message.failure_reason, DecodeError)
    assert message.metadata["raw_value"] == b"{broken"
    assert message.metadata["raw_key"] == b"k1"
    assert message.acknowledger.data == ("orders", 2, 17, 1)


def test_topics_without_decoding_leave_messages_untouched():
    decoding = Decoding([TopicOptions().load({"name": "orders"})], "value")
    assert not decoding


def test_default_topic_config_decodes_every_topic():
    options = validate(
        KafkaProducerOptions,
        {
            "client": {"bootstrap_servers": "x:1"},
            "group_name": "g",
            "topics": [{"name": "a"}, {"name": "b", "value_deserializer": "str"}],
            "default_topic_config": {"value_deserializer": "json"},
        },
    )
    assert [t["value_deserializer"] for t in options["topics"]] == ["json", "str"]
    decoding = Decoding(options["topics"], "value")
    assert decoding.decoders["a"].value_deserializer is json.loads


def config_error(**kafka_options):
    options = {"client": {"bootstrap_servers": "x:1"}, "group_name": "g", "topics": [{"name": "t"}], **kafka_options}
    with pytest.raises(ConfigError) as caught:
        RecordingPipeline(name="d", producer={"module": (Producer, options)}, processors={"default": {}})
    return str(caught.value)


@pytest.mark.parametrize("setting", ["value_deserializer", "key_deserializer"])
def test_kafka_pythons_own_deserializers_are_refused_with_a_pointer_to_the_topic_option(setting):
    message = config_error(client={"bootstrap_servers": "x:1", setting: json.loads})
    assert message.startswith(f"producer.module.client.{setting}: runs inside kafka-python's fetcher")
    assert f"use the topic option '{setting}' (in topics[] or default_topic_config)" in message


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (
            {"value_deserializer": "yaml"},
            'producer.module.topics.0.value_deserializer: must be "bytes", "str", "json", a callable of the raw '
            "bytes, or a dotted path to one, got 'yaml'",
        ),
        (
            {"key_deserializer": "nowhere.module:loads"},
            "producer.module.topics.0.key_deserializer: cannot import 'nowhere.module:loads'",
        ),
        (
            {"value_deserializer": "json", "value_schema": dict},
            "producer.module.topics.0.value_schema: must be a marshmallow Schema subclass or a dotted path to one, "
            "got <class 'dict'>",
        ),
        (
            {"value_schema": Order},
            'producer.module.topics.0.value_schema: loads decoded values; set value_deserializer too (e.g. "json")',
        ),
    ],
)
def test_bad_decoding_options_name_the_option(topic, expected):
    assert expected in config_error(topics=[{"name": "t", **topic}])
