"""Records for trying pipelines: sample orders, or the lines of a file (`gkbroad produce`).

The sample orders are JSON objects ``{"id", "customer", "amount"}``, about 1%
of them invalid (amount 0), the same every time for a given count; keyed, their
key is the customer, so one customer's orders share a partition.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator

from ..errors import ConfigError

__all__ = ["file_records", "sample_orders"]

Record = tuple[bytes | None, bytes]


def sample_orders(count: int, keyed: bool = True, seed: int = 7) -> Iterator[Record]:
    """`count` sample orders as ``(key, value)`` records (key None unless `keyed`)."""
    rng = random.Random(seed)
    for order_id in range(count):
        amount = 0 if rng.random() < 0.01 else round(rng.uniform(1, 500), 2)
        customer = f"customer-{rng.randrange(200)}"
        value = json.dumps({"id": order_id, "customer": customer, "amount": amount}).encode()
        yield (customer.encode() if keyed else None), value


def file_records(lines: Iterable[str], keyed: bool, source: str = "input") -> list[Record]:
    """One record per non-empty line; with `keyed`, each line is ``key<TAB>value``.

    Reads everything first, so a malformed line is reported before anything is produced.
    """
    records: list[Record] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line:
            continue
        if not keyed:
            records.append((None, line.encode()))
            continue
        key, tab, value = line.partition("\t")
        if not tab:
            raise ConfigError(f"{source}:{number}: expected key<TAB>value (--keyed), got {line[:60]!r}")
        records.append((key.encode(), value.encode()))
    return records
