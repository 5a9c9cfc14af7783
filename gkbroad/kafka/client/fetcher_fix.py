"""Work around a pause/resume bug of kafka-python 3.0.12's Fetcher.

The Fetcher keeps the batch it is returning in ``_next_partition_records``.
When a partition is paused while its batch is only partly returned, the batch
is parked; on resume it is put back only ``if self._next_partition_records is
None``. But a fully returned batch stays in that slot as an *exhausted* object
(falsy, not None), which is the normal state after any poll that emptied a
batch. So once another partition's batch has been drained, the parked batch of
the resumed partition is never restored, and because the Fetcher also refuses
to fetch a partition that has parked data, that partition is stuck for good
(``seek()`` does not help).

Clearing the exhausted batch before each poll lets the Fetcher restore parked
data as intended. It is safe: an exhausted batch has nothing left to return,
and the Fetcher treats a falsy slot and an empty one alike everywhere else.
Remove this module once kafka-python restores parked batches correctly
(tests/integration/test_consumer_group.py checks that the bug still exists).
"""

from typing import Any

__all__ = ["release_exhausted_batch"]


def release_exhausted_batch(consumer: Any) -> None:
    """Empty the Fetcher's in-line slot if it only holds an exhausted batch.

    Call it from the greenlet that polls ``consumer``, before each ``poll()``.
    """
    fetcher = consumer._fetcher
    current = fetcher._next_partition_records
    if current is not None and not current:
        fetcher._next_partition_records = None
