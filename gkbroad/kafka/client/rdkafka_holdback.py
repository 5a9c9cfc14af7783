"""Holdback: what LibrdkafkaClient keeps of the partitions gkbroad paused, so that a pause costs no prefetch.

librdkafka's ``pause`` drops the records it prefetched for a partition, and
its ``resume`` waits for a fresh fetch. gkbroad pauses a partition whenever
its buffer fills (and resumes it once half of it was pulled), so pausing
librdkafka at once would make every partition wait for the broker again and
again. Instead, a partition gkbroad pauses stays fetching in librdkafka: the
records ``consume()`` still returns for it are held back here, not handed to
gkbroad, and only once a poll's worth (the poll batch) is held is librdkafka
asked to pause it. A resume hands the held records out first, in offset
order, at the next poll, and librdkafka is resumed only if it was paused.

Memory stays bounded: librdkafka pauses a partition as soon as it has a poll
batch held, and one ``consume()`` returns at most a poll batch, so fewer than
two poll batches are held per paused partition (at most half its
``max_buffer_records``, since the poll batch is at most a quarter of it).

Held records were never handed to gkbroad: they are not delivered, so never
acknowledged or committed, and a seek, a revocation or a loss of their
partition simply drops them (librdkafka's position is moved or given up with
the partition). Pure data: the client makes the librdkafka calls this class
answers for.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Holdback"]

Partition = TypeVar("Partition", bound=Hashable)
Record = TypeVar("Record")


class Holdback(Generic[Partition, Record]):
    """The partitions gkbroad paused, those librdkafka paused (a subset), and the records held for them.

    Partitions are any hashable (TopicPartitions in the client); records are
    kept as they came, in the order ``hold`` saw them.
    """

    def __init__(self) -> None:
        self._paused: set[Partition] = set()  # paused as gkbroad sees it
        self._stopped: set[Partition] = set()  # paused in librdkafka too
        self._held: dict[Partition, list[Record]] = {}
        self._ready: dict[Partition, list[Record]] = {}  # released by a resume, for the next poll

    @property
    def paused(self) -> set[Partition]:
        """The partitions paused as gkbroad sees them (a copy)."""
        return set(self._paused)

    def stopped(self, tp: Partition) -> bool:
        """True when librdkafka itself has ``tp`` paused."""
        return tp in self._stopped

    def pause(self, tps: Iterable[Partition]) -> None:
        """gkbroad pauses ``tps``: what comes for them from now on is held. Records a resume had made
        ready and no poll took yet go back to being held."""
        for tp in tps:
            self._paused.add(tp)
            ready = self._ready.pop(tp, None)
            if ready:
                self._held[tp] = ready + self._held.get(tp, [])

    def hold(
        self, fetched: Mapping[Partition, list[Record]], batch: int
    ) -> tuple[dict[Partition, list[Record]], list[Partition]]:
        """Split what one ``consume()`` brought: (what goes to gkbroad, the partitions librdkafka must pause
        now, having a poll ``batch`` or more held). The records of paused partitions are held."""
        delivered: dict[Partition, list[Record]] = {}
        to_stop = []
        for tp, run in fetched.items():
            if tp not in self._paused:
                delivered[tp] = run
                continue
            held = self._held.setdefault(tp, [])
            held.extend(run)
            if len(held) >= batch and tp not in self._stopped:
                self._stopped.add(tp)
                to_stop.append(tp)
        return delivered, to_stop

    def resume(self, tps: Iterable[Partition]) -> list[Partition]:
        """gkbroad resumes ``tps``: their held records are ready for the next poll. Returns those of
        ``tps`` librdkafka paused, which it must resume."""
        tps = list(tps)
        for tp in tps:
            held = self._held.pop(tp, None)
            if held:
                self._ready[tp] = held
        return self._unpause(tps)

    def take_ready(self) -> dict[Partition, list[Record]]:
        """The records resumes released since the last call, by partition, in offset order."""
        ready, self._ready = self._ready, {}
        return ready

    def discard(self, tp: Partition) -> None:
        """``tp`` was moved (a seek): what was held or ready for it is stale; its pauses stay."""
        self._held.pop(tp, None)
        self._ready.pop(tp, None)

    def forget(self, tps: Iterable[Partition]) -> list[Partition]:
        """``tps`` were revoked or lost: drop their records and pauses. Returns those librdkafka paused,
        which it must resume before they go, or they would stay paused when assigned again."""
        tps = list(tps)
        for tp in tps:
            self.discard(tp)
        return self._unpause(tps)

    def _unpause(self, tps: list[Partition]) -> list[Partition]:
        """Take the pauses of ``tps`` away; those librdkafka had paused (to resume there), in order."""
        self._paused.difference_update(tps)
        to_start = [tp for tp in tps if tp in self._stopped]
        self._stopped.difference_update(to_start)
        return to_start

    def clear(self) -> None:
        """The consumer closed: nothing is paused or held any more."""
        self._paused.clear()
        self._stopped.clear()
        self._held.clear()
        self._ready.clear()
