"""gkbroad.cli.lag (lag per partition from offsets) and gkbroad.cli.samples (records for `gkbroad produce`)."""

from __future__ import annotations

import json

import pytest

from gkbroad.cli.lag import PartitionLag, lag_rows, render_json, render_table, total_lag
from gkbroad.cli.samples import file_records, sample_orders
from gkbroad.errors import ConfigError

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral


def test_lag_is_end_minus_committed_and_the_whole_log_when_nothing_was_committed():
    rows = lag_rows(
        {("t", 0): 4, ("t", 1): 10, ("u", 0): 12},
        {("t", 1): (0, 10), ("t", 0): (0, 10), ("t", 2): (3, 10), ("u", 0): (0, 10)},
    )
    assert rows == [
        PartitionLag("t", 0, 4, 10, 6),
        PartitionLag("t", 1, 10, 10, 0),
        PartitionLag("t", 2, None, 10, 7),  # never committed: everything still in the log
        PartitionLag("u", 0, 12, 10, 0),  # committed past a stale end: never negative
    ]
    assert total_lag(rows) == 13


def test_renderings():
    rows = [PartitionLag("orders", 0, 4, 10, 6), PartitionLag("orders", 11, None, 5, 5)]
    assert render_table("g", rows).splitlines() == [
        "group g",
        "TOPIC   PARTITION  COMMITTED  END  LAG",
        "orders  0          4          10   6",
        "orders  11         -          5    5",
        "total lag 11",
    ]
    assert json.loads(render_json("g", rows)) == {
        "group": "g",
        "partitions": [
            {"topic": "orders", "partition": 0, "committed": 4, "end": 10, "lag": 6},
            {"topic": "orders", "partition": 11, "committed": None, "end": 5, "lag": 5},
        ],
        "total_lag": 11,
    }


def test_sample_orders_are_repeatable_json_keyed_by_customer_when_asked():
    keyed = list(sample_orders(300))
    assert keyed == list(sample_orders(300))
    orders = [json.loads(value) for _, value in keyed]
    assert [order["id"] for order in orders] == list(range(300))
    assert all(key == order["customer"].encode() for (key, _), order in zip(keyed, orders, strict=True))
    assert 0 < sum(order["amount"] == 0 for order in orders) < 15  # about 1% invalid
    assert {key for key, _ in sample_orders(10, keyed=False)} == {None}


def test_file_records_one_per_line_keyed_on_a_tab():
    lines = ["a\tfirst\n", "\n", "b\tsecond\twith tab\r\n"]
    assert file_records(lines, keyed=True) == [(b"a", b"first"), (b"b", b"second\twith tab")]
    assert file_records(["x\n", "", "y"], keyed=False) == [(None, b"x"), (None, b"y")]
    with pytest.raises(ConfigError, match=r"^data.txt:2: expected key<TAB>value \(--keyed\), got 'no tab'$"):
        file_records(["k\tv", "no tab"], keyed=True, source="data.txt")
