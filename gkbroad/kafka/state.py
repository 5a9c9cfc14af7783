"""Small pieces the ConsumerGroup's modules share: what is held per
assigned partition, the retry backoff of its greenlets, and log text."""

import random
from collections import deque

__all__ = ["PartitionState", "Backoff", "describe", "CONNECT_BACKOFF_MAX", "COMMIT_BACKOFF_MAX"]

_BACKOFF_FIRST = 0.1
# Commits usually fail because a rebalance is under way, which is over soon.
CONNECT_BACKOFF_MAX, COMMIT_BACKOFF_MAX = 5.0, 1.0


class PartitionState:
    """What this process holds for one assigned partition, for one epoch."""

    __slots__ = (
        "tp",
        "epoch",
        "limit",
        "records",
        "paused",
        "released",
        "first_offset",
        "last_buffered",
        "acked",
        "committed",
    )

    def __init__(self, tp, epoch, limit):
        self.tp = tp
        self.epoch = epoch
        self.limit = limit
        self.records = deque()
        self.paused = False
        # Set once revocation or shutdown began: no more pulls nor commits by
        # the committers; the listener does the final commit.
        self.released = False
        self.first_offset = None  # first offset buffered in this epoch
        self.last_buffered = -1
        self.acked = None  # last processed offset (contiguously acked)
        self.committed = None  # last processed offset Kafka confirmed

    def restart_offset(self):
        """First offset not processed yet in this epoch, None if none was seen."""
        return self.acked + 1 if self.acked is not None else self.first_offset


class Backoff:
    """Exponential delay with jitter between retries of a failing operation."""

    def __init__(self, limit):
        self.limit = limit
        self.failures = 0

    def next(self):
        delay = min(self.limit, _BACKOFF_FIRST * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self):
        self.failures = 0


def describe(partitions):
    """Short text for logs: 'topic:partition[@offset], ...'."""
    if isinstance(partitions, dict):
        return ", ".join(f"{tp.topic}:{tp.partition}@{offset}" for tp, offset in sorted(partitions.items()))
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(partitions))
