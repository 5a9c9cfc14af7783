"""Message helpers change the message in place and return it, so they chain."""

import pytest

from gkbroad import Acknowledger, GkbroadError, Message

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral


@pytest.fixture
def message():
    return Message(data={"id": 1}, acknowledger=Acknowledger(object(), "ref", ("t", 0, 5)))


def test_defaults(message):
    assert message.metadata == {}
    assert (message.batcher, message.batch_key, message.batch_mode) == ("default", "default", "bulk")
    assert message.status == "ok" and not message.is_failed and message.failure_reason is None


def test_metadata_is_not_shared_between_messages():
    ack = Acknowledger(None, None, None)
    first, second = Message(1, ack), Message(2, ack)
    first.metadata["k"] = "v"
    assert second.metadata == {}


def test_failed_marks_status_and_keeps_reason(message):
    reason = ValueError("bad payload")
    assert message.failed(reason) is message
    assert message.status == "failed" and message.is_failed
    assert message.failure_reason is reason


def test_update_data_applies_function(message):
    assert message.update_data(lambda d: {**d, "seen": True}) is message
    assert message.data == {"id": 1, "seen": True}


def test_put_data_replaces_data(message):
    assert message.put_data("new") is message
    assert message.data == "new"


def test_put_batcher_and_batch_key(message):
    assert message.put_batcher("sql") is message
    assert message.put_batch_key(("orders", 3)) is message
    assert (message.batcher, message.batch_key) == ("sql", ("orders", 3))


@pytest.mark.parametrize("mode", ["bulk", "flush"])
def test_put_batch_mode_accepts_known_modes(message, mode):
    assert message.put_batch_mode(mode) is message
    assert message.batch_mode == mode


def test_put_batch_mode_refuses_unknown_mode_naming_it(message):
    with pytest.raises(GkbroadError, match=r"batch_mode must be one of .*got 'eager'"):
        message.put_batch_mode("eager")
    assert message.batch_mode == "bulk"


def test_helpers_chain(message):
    result = message.put_data(2).put_batcher("b").put_batch_key("k").put_batch_mode("flush").failed("r")
    assert result is message
    assert (message.data, message.batcher, message.batch_key, message.batch_mode, message.failure_reason) == (
        2,
        "b",
        "k",
        "flush",
        "r",
    )


def test_acknowledger_fields():
    handler = object()
    ack = Acknowledger(handler, "ref", {"offset": 7})
    assert (ack.handler, ack.ref, ack.data) == (handler, "ref", {"offset": 7})
