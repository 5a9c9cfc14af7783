"""Secrets in client settings never show: a known password is passed through every bad-option path and
must not appear in any error message, log line or repr. The DEBUG-level run against a broker is in
tests/integration/test_secrets_kafka.py."""

import logging

import pytest

from gkbroad import ConfigError, testing
from gkbroad.config.redact import REDACTED, SecretSettings, is_secret, redact, redacted_repr
from gkbroad.config.validation import validate
from gkbroad.kafka import ConsumerGroup, Producer
from gkbroad.kafka.options import KafkaProducerOptions
from tests.helpers.engine_support import RecordingPipeline

SECRET = "hunter2-Sup3rS3cret"


class TokenProvider:
    def token(self):
        return SECRET

    def __repr__(self):
        return f"TokenProvider({SECRET})"


def secret_client(**extra):
    return {
        "bootstrap_servers": "x:1",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "orders",
        "sasl_plain_password": SECRET,
        "ssl_password": SECRET,
        "sasl_oauth_token_provider": TokenProvider(),
        "proxy_url": f"http://orders:{SECRET}@proxy:3128",
        **extra,
    }


class SecretGroup(ConsumerGroup):
    client = secret_client()


class BadSecretGroup(ConsumerGroup):
    client = secret_client(group_id="not-allowed")


BASE = {"group_name": "g", "topics": [{"name": "t"}]}

# Every way the Kafka producer options can be wrong while the client carries secrets.
BAD_KAFKA_OPTIONS = {
    "client and consumer_group both": {"client": secret_client(), "consumer_group": SecretGroup},
    "a managed client setting": {"client": secret_client(group_id="other")},
    "an unknown client setting": {"client": secret_client(no_such_setting=1)},
    "kafka-python's deserializer": {"client": secret_client(value_deserializer=len)},
    "no bootstrap servers": {"client": {**secret_client(), "bootstrap_servers": ""}},
    "the consumer group's client": {"consumer_group": BadSecretGroup},
    "a secret outside client": {"client": secret_client(), "sasl_plain_password": SECRET},
    "a bad topic": {"client": secret_client(), "topics": [{"name": "t", "value_deserializer": "yaml"}]},
    "mixed isolation levels": {
        "client": secret_client(),
        "topics": [{"name": "a", "isolation_level": "read_committed"}, {"name": "b"}],
    },
    "timeouts that do not fit": {"client": secret_client(max_poll_interval_ms=1000)},
    "fetch wait over the request timeout": {"client": secret_client(), "fetch_strategy": {"max_wait_ms": 40000}},
    "a misspelt secret setting": {"client": secret_client(sasl_plain_passwrd=SECRET)},
    "a client that is not a mapping": {"client": [("sasl_plain_password", SECRET)]},
}


@pytest.fixture
def captured(caplog, capsys):
    """Everything logged (at DEBUG and up) or printed during the test, as one string."""
    caplog.set_level(logging.DEBUG)

    def text():
        out, err = capsys.readouterr()
        return caplog.text + out + err

    return text


@pytest.mark.parametrize("bad", BAD_KAFKA_OPTIONS.values(), ids=BAD_KAFKA_OPTIONS.keys())
def test_no_configuration_error_shows_a_secret(bad, captured):
    with pytest.raises(ConfigError) as caught:
        RecordingPipeline(name="s", producer={"module": (Producer, {**BASE, **bad})}, processors={"default": {}})
    message = str(caught.value)
    assert SECRET not in message
    assert SECRET not in repr(caught.value)
    assert SECRET not in captured()


def test_the_mutually_exclusive_error_still_says_what_was_given():
    client = {"bootstrap_servers": "x:1", "ssl_password": SECRET}
    options = {"client": client, "consumer_group": SecretGroup, "group_name": "g", "topics": [{"name": "t"}]}
    with pytest.raises(ConfigError) as caught:
        validate(KafkaProducerOptions, options, "p")
    assert "client and consumer_group are mutually exclusive" in str(caught.value)
    assert f"{{'client': {{'bootstrap_servers': 'x:1', 'ssl_password': '{REDACTED}'}}" in str(caught.value)


def test_a_bad_producer_module_pair_does_not_show_its_secrets():
    with pytest.raises(ConfigError) as caught:
        RecordingPipeline(
            name="s", producer={"module": (Producer, {"client": secret_client()}, "extra")}, processors={"default": {}}
        )
    assert "producer.module: must be a producer class" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_validating_something_that_is_not_a_mapping_does_not_show_it():
    with pytest.raises(ConfigError) as caught:
        validate(KafkaProducerOptions, [secret_client()], "producer.module")
    assert SECRET not in str(caught.value)


def test_the_dummy_producer_refusing_kafka_options_does_not_show_them():
    with pytest.raises(ConfigError) as caught:
        testing.DummyProducer.prepare_for_start({**BASE, "client": secret_client()}, {})
    assert "DummyProducer takes no options" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_validated_options_have_a_repr_without_secrets():
    options = validate(KafkaProducerOptions, {**BASE, "client": secret_client()})
    assert isinstance(options["client"], SecretSettings)
    assert options["client"]["sasl_plain_password"] == SECRET  # the real value is still there for the client
    assert SECRET not in repr(options)
    assert SECRET not in str(options["client"])
    assert SECRET not in f"{options}"


@pytest.mark.parametrize(
    "name",
    ["sasl_plain_password", "ssl_password", "sasl_oauth_token_provider", "proxy_url", "socks5_proxy", "db_token"],
)
def test_secret_settings_are_recognised(name):
    assert is_secret(name)


@pytest.mark.parametrize("name", ["bootstrap_servers", "sasl_plain_username", "ssl_cafile", "client_id", None, 3])
def test_ordinary_settings_are_shown(name):
    assert not is_secret(name)


def test_redact_walks_nested_structures_and_keeps_the_rest():
    value = {"client": secret_client(), "pairs": [({"ssl_password": SECRET},)], "n": 1}
    shown = redact(value)
    assert SECRET not in repr(shown)
    assert shown["client"]["bootstrap_servers"] == "x:1"
    assert shown["client"]["sasl_plain_password"] == REDACTED
    assert shown["pairs"] == [({"ssl_password": REDACTED},)]
    assert value["client"]["sasl_plain_password"] == SECRET  # the original is untouched
    assert redacted_repr(SECRET, "ssl_password") == repr(REDACTED)
    assert redact(None, "ssl_password") is None
