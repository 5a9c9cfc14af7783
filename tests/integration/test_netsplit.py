"""A network partition between one member of a group and the broker (issue 18): no split brain.

Two fault_worker.py members share a group on a broker of their own that
advertises a CutProxy's port. Member "cut" reaches the broker through the
proxy; member "whole" through a Socks5Redirector (kafka-python's proxy_url)
that goes round it. The proxy is cut for CUT_SECONDS, then healed. The test
samples the group's committed offsets throughout (through the redirector)
and checks, from the journals: nothing lost, the cut member handled no record
of a partition after the other member began handling it (GRACE seconds for
handlers already running), no commit of the cut member was accepted for a
partition after it moved, the committed offsets never went backwards (in the
samples, nor in both members' journals of accepted commits), the group
committed to the end, both members exited cleanly and the cut member
rejoined after the heal.

scripts/netsplit_loop.sh runs it repeatedly for the figures; the suite runs
it once per ordering with the cut member on kafka-python, and once with the
cut member on librdkafka.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient

from gkbroad.testing.broker import LocalBroker
from tests.helpers.fault_check import Worker, holders, missing
from tests.helpers.kafka_helpers import create_topic, end_offsets, produce, unique_name
from tests.helpers.kafka_options import SESSION_TIMEOUT_MS
from tests.helpers.netsplit import CutProxy, Socks5Redirector
from tests.helpers.netsplit_check import split_figures
from tests.helpers.support import free_port, wait_until

PARTITIONS = 8
RECORDS = 30_000
CUT_SECONDS = 20.0
GRACE = 1.0
REQUEST_TIMEOUT_MS = 3000
# About 400 records a second per member: the cut lands while both are busy.
MAX_SLEEP = "0.04"


@pytest.fixture
def split_broker():
    """(proxy, redirector, broker): a broker that advertises the proxy's address."""
    proxy = CutProxy(free_port())
    broker = LocalBroker(port=proxy.target_port, advertised_port=proxy.port).start()
    redirector = Socks5Redirector({proxy.port: broker.port})
    try:
        yield proxy, redirector, broker
    finally:
        proxy.heal()
        redirector.close()
        proxy.close()
        broker.stop()


class CommitSampler:
    """Reads the group's committed offsets through the redirector (so the cut does not stop it)."""

    def __init__(self, bootstrap: str, proxy_url: str, group: str, topic: str):
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, proxy_url=proxy_url, client_id="gkbroad-sampler")
        self.group, self.topic = group, topic
        self.samples: list[dict[int, int]] = []

    def sample(self) -> dict[int, int]:
        offsets = self._admin.list_group_offsets(self.group)[self.group]
        now = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic and meta.offset >= 0}
        self.samples.append(now)
        return now

    def close(self) -> None:
        self._admin.close()


@pytest.mark.long(seconds=100)
@pytest.mark.parametrize(
    ("ordering", "cut_library"), [(None, "kafka-python"), ("key", "kafka-python"), (None, "librdkafka")]
)
def test_a_cut_member_stops_before_its_partitions_move(split_broker, tmp_path, report, ordering, cut_library):
    """``cut_library`` is the cut member's client; the other member is on kafka-python, whose ``proxy_url``
    takes it round the cut (librdkafka has no proxy setting)."""
    proxy, redirector, _ = split_broker
    bootstrap, socks = proxy.address, f"socks5://{redirector.address}"
    topic, group = create_topic(bootstrap, unique_name("split"), PARTITIONS), unique_name("split-group")
    produce(bootstrap, topic, RECORDS, partitions=PARTITIONS)
    ends = end_offsets(bootstrap, topic, PARTITIONS)
    common = ["--max-sleep", MAX_SLEEP, "--request-timeout", str(REQUEST_TIMEOUT_MS)]
    if ordering:
        common += ["--ordering", ordering]
    cut = Worker(bootstrap, topic, group, tmp_path / "cut", *common, "--client-library", cut_library)
    whole = Worker(bootstrap, topic, group, tmp_path / "whole", *common, "--proxy-url", socks)
    sampler = CommitSampler(bootstrap, socks, group, topic)

    def seen() -> str:
        return f"holders {holders([cut.run(), whole.run()])}, committed {sampler.samples[-1:]} of {ends}"

    try:
        wait_until(
            lambda: set(holders([cut.run(), whole.run()]).values()) == {"cut", "whole"} and cut.handled_count() > 500,
            120,
            "both members to hold partitions and handle records",
            0.5,
            seen,
        )
        proxy.cut()
        while time.monotonic() < proxy.cut_at + CUT_SECONDS:
            sampler.sample()
            time.sleep(0.25)
        proxy.heal()

        def committed_to_end() -> bool:
            return sampler.sample() == ends

        wait_until(committed_to_end, 180, "the group to commit every record", 0.25, seen)
        codes = [cut.terminate(), whole.terminate()]
    finally:
        sampler.close()
        for worker in (cut, whole):
            if worker.process.poll() is None:
                worker.kill()
    runs = [cut.run(), whole.run()]
    figures = split_figures(runs[0], runs[1], proxy.cut_at, SESSION_TIMEOUT_MS / 1000, GRACE, sampler.samples)
    report(f"netsplit (ordering {ordering}, cut member on {cut_library}): {figures.line()}")
    print(f"netsplit figures (ordering {ordering}, cut member on {cut_library}): {figures.line()}")
    assert not missing(runs, ends), f"{len(missing(runs, ends))} records lost"
    assert codes == [0, 0] and [run.exit for run in runs] == ["clean", "clean"], f"exit codes {codes}"
    rejoined = [at for kind, _, _, at in runs[0].events if kind == "start" and at > proxy.healed_at]
    assert rejoined, "the cut member was given no partition after the heal"
    assert figures.after_expiry == 0, figures.line()
    assert figures.overlap_records == 0, figures.line()
    assert figures.commits > 0, f"no commit journaled: {figures.line()}"
    assert figures.commits_after_move == 0, figures.line()
    assert not figures.backwards, figures.line()
