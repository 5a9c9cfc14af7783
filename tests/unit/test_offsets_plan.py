"""The rules of `gkbroad offsets reset` (cli/offsets.py), a topic's timestamp start policy, and
the scrubbing of secrets out of library messages, checked by value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gkbroad.cli.offsets import Move, parse_topic_partitions, plan
from gkbroad.config.fields import timestamp_ms
from gkbroad.config.redact import REDACTED, scrub
from gkbroad.config.validation import validate
from gkbroad.errors import ConfigError
from gkbroad.kafka.options import TopicOptions

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

LOGS = {("t", 0): (10, 50), ("t", 1): (0, 0)}


def targets(move, committed=None, at_time=None):
    return [(m.target, m.note) for m in plan(move, committed or {}, LOGS, at_time)]


def test_each_kind_of_move():
    assert targets(Move("earliest")) == [(10, None), (0, None)]
    assert targets(Move("latest")) == [(50, None), (0, None)]
    assert targets(Move("shift", -5), {("t", 0): 30}) == [
        (25, None),
        (0, "no committed offset: shifted from the log start; -5 is outside the log [0, 0]: clamped to the log start"),
    ]
    assert targets(Move("datetime", 123), at_time={("t", 0): 40, ("t", 1): None}) == [
        (40, None),
        (0, "no record at or after that time: set to the log end"),
    ]


def test_targets_outside_the_log_are_clamped_and_say_so():
    assert targets(Move("offset", 5)) == [
        (10, "5 is outside the log [10, 50]: clamped to the log start"),
        (0, "5 is outside the log [0, 0]: clamped to the log end"),
    ]
    assert targets(Move("shift", 100), {("t", 0): 30})[0] == (
        50,
        "130 is outside the log [10, 50]: clamped to the log end",
    )


def test_topic_partition_selection():
    counts = {"t": 8, "gone": None}
    assert parse_topic_partitions("t", counts) == ("t", list(range(8)))
    assert parse_topic_partitions("t:0,2,5-6", counts) == ("t", [0, 2, 5, 6])
    with pytest.raises(ValueError, match=r"'t' has partitions 0-7, not \[8, 9\]"):
        parse_topic_partitions("t:8-9", counts)
    with pytest.raises(ValueError, match="no such topic 'gone'"):
        parse_topic_partitions("gone", counts)
    with pytest.raises(ValueError, match="expected TOPIC:N,M,A-B"):
        parse_topic_partitions("t:x", counts)


def test_timestamps_from_datetimes_strings_and_milliseconds():
    assert timestamp_ms("1970-01-01T00:00:01Z") == 1000
    assert timestamp_ms("1970-01-01T01:00:01+01:00") == 1000
    assert timestamp_ms(datetime(1970, 1, 1, 0, 0, 2)) == 2000  # no zone: UTC
    assert timestamp_ms(datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)) == 2000
    assert timestamp_ms(5) == 5
    for bad in ("yesterday", -1, True, 1.5):
        with pytest.raises(ValueError, match="expected"):
            timestamp_ms(bad)


def test_the_offset_reset_policy_takes_a_timestamp():
    loaded = validate(TopicOptions, {"name": "t", "offset_reset_policy": {"timestamp": "1970-01-01T00:00:03Z"}})
    assert loaded["offset_reset_policy"] == 3000
    assert validate(TopicOptions, {"name": "t"})["offset_reset_policy"] == "latest"
    with pytest.raises(ConfigError, match='offset_reset_policy: must be "earliest", "latest" or'):
        validate(TopicOptions, {"name": "t", "offset_reset_policy": "sometimes"})
    with pytest.raises(ConfigError, match="offset_reset_policy: timestamp: expected an ISO-8601 date-time"):
        validate(TopicOptions, {"name": "t", "offset_reset_policy": {"timestamp": "soon"}})


def test_scrub_replaces_secret_values_quoted_in_a_message():
    settings = {"sasl_plain_username": "svc", "sasl_plain_password": "hunter2", "bootstrap_servers": "h:1"}
    assert scrub("auth failed for svc with hunter2 at h:1", settings) == f"auth failed for svc with {REDACTED} at h:1"
