"""The exactly-once commit barrier (gkbroad.kafka.transactions) over the in-memory clients.

The group is a real ConsumerGroup over FakeConsumerClient; the transactional
producer is FakeTransactionalProducer, which records each transaction's
records and offsets, and can fail or hang any step.
"""

from __future__ import annotations

import gevent
import pytest
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import TopicPartition

from gkbroad.kafka.client import TransactionalClient
from gkbroad.kafka.outputs import OutputRecord
from gkbroad.kafka.transactions import TransactionBroken, Transactions
from tests.helpers.fake_kafka import FakeConsumerClient, FakeTransactionalProducer, make_group, pull_all
from tests.helpers.support import wait_until

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture
def eos():
    groups = []

    def start(logs, timeout=0.5, **options):
        client = FakeConsumerClient(logs)
        producer = FakeTransactionalProducer()
        seam: TransactionalClient = producer  # mypy: the fake keeps the contract
        transactions = Transactions(seam, "unit-0", timeout)
        group = make_group(client, ["t"], **options)
        transactions.bind(group.consumer_client, group.is_current)
        group.commit_through(transactions.commit)
        failures: list[str] = []
        transactions.supervise(failures.append)
        transactions.start()
        group.start()
        groups.append(group)
        wait_until(lambda: client.connected, 5, "the fake client to connect")
        return group, client, producer, transactions, failures

    yield start
    for group in groups:
        group.stop(1)


def output(partition: int, offset: int) -> OutputRecord:
    return OutputRecord("out", None, b"%d:%d" % (partition, offset), [])


def handle(transactions, group, partition, epoch, offsets):
    """What the Kafka producer's ack does with exactly-once on: stage, then acknowledge."""
    for offset in offsets:
        transactions.stage(("t", partition, offset, epoch), [output(partition, offset)])
    group.ack([("t", partition, offset, epoch) for offset in offsets])


def test_a_transaction_carries_exactly_the_outputs_its_offsets_cover(eos):
    group, client, producer, transactions, _ = eos({("t", 0): 10})
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 10)
    # 5..9 are handled and staged first, but 0..4 are not acknowledged: nothing may be committed
    for offset in range(5, 10):
        transactions.stage(("t", 0, offset, epoch), [output(0, offset)])
    group.ack([("t", 0, o, epoch) for o in range(5, 10)])
    gevent.sleep(0.3)
    assert producer.committed == [] and transactions.staged_records() == 5
    handle(transactions, group, 0, epoch, range(3))
    wait_until(lambda: producer.committed, 5, "the first transaction")
    records, offsets = producer.committed[0]
    assert [r.value for r in records] == [b"0:0", b"0:1", b"0:2"] and offsets == {T0: 2}
    handle(transactions, group, 0, epoch, range(3, 5))
    wait_until(lambda: client.committed.get(T0) == 10 or len(producer.committed) == 2, 5, "the second transaction")
    wait_until(lambda: group.stats()["partitions"][("t", 0)]["committed"] == 10, 5, "the offsets booked")
    records, offsets = producer.committed[1]
    assert [r.value for r in records] == [b"0:%d" % o for o in range(3, 10)] and offsets == {T0: 9}
    assert transactions.staged_records() == 0 and transactions.committed == 2
    assert T0 not in client.committed  # every offset went through a transaction, none out of band


def test_offsets_without_records_use_the_consumer_commit_not_an_empty_transaction(eos):
    group, client, producer, transactions, _ = eos({("t", 0): 5})
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 5)
    group.ack([("t", 0, o, epoch) for o in range(5)])
    wait_until(lambda: client.committed.get(T0) == 5, 5, "the commit of 0..4")
    assert "begin" not in producer.calls and transactions.offset_only >= 1


def test_a_failed_step_aborts_and_the_retry_carries_the_same_records(eos):
    group, client, producer, transactions, failures = eos({("t", 0): 3})
    producer.fail["commit"] = KafkaError("fake: coordinator moved")
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 3)
    handle(transactions, group, 0, epoch, range(3))
    wait_until(lambda: producer.committed, 10, "the transaction after the abort")
    assert [r.value for r in producer.aborted[0][0]] == [r.value for r in producer.committed[0][0]]
    assert transactions.aborted == 1 and transactions.committed == 1 and failures == []
    wait_until(lambda: group.stats()["partitions"][("t", 0)]["committed"] == 3, 5, "the offsets booked")


@pytest.mark.parametrize("trouble", ["hang", "fenced"])
def test_a_step_that_hangs_or_is_fenced_breaks_the_writer_and_nothing_is_committed(eos, trouble):
    group, client, producer, transactions, failures = eos({("t", 0): 3}, timeout=0.3)
    if trouble == "hang":
        producer.hang.add("commit")
    else:
        producer.fail["send_offsets"] = ProducerFencedError()
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 3)
    handle(transactions, group, 0, epoch, range(3))
    wait_until(lambda: failures, 5, "the failure report")
    assert transactions.state == "broken" and producer.committed == []
    assert ("did not return within" in failures[0]) == (trouble == "hang")
    assert "abort" not in producer.calls  # a hung or fenced producer cannot abort: the next start does
    gevent.sleep(0.3)  # the committer retries: every retry fails at once
    assert group.stats()["partitions"][("t", 0)]["committed"] is None and T0 not in client.committed
    with pytest.raises(TransactionBroken):
        transactions._transact([output(0, 0)], {T0: 0})


def test_records_of_an_earlier_epoch_are_dropped_not_committed(eos):
    group, client, producer, transactions, _ = eos({("t", 0): 4})
    client.assign(("t", 0))
    old_epoch, _ = pull_all(group, 0, 2)
    transactions.stage(("t", 0, 0, old_epoch), [output(0, 0)])
    client.lose(("t", 0))
    wait_until(lambda: not group.assigned_partitions(), 5, "the partition lost")
    client.assign(("t", 0))
    wait_until(lambda: group.assigned_partitions(), 5, "the partition back")
    epoch, _ = pull_all(group, 0, 4)
    assert epoch != old_epoch
    handle(transactions, group, 0, epoch, range(4))
    wait_until(lambda: producer.committed, 5, "the transaction")
    assert [r.value for r in producer.committed[0][0]] == [b"0:%d" % o for o in range(4)]
    assert transactions.staged_records() == 0


def test_acks_wait_once_too_many_records_are_staged_until_a_transaction_takes_them(eos, monkeypatch):
    monkeypatch.setattr("gkbroad.kafka.transactions.MAX_STAGED_RECORDS", 3)
    group, client, producer, transactions, _ = eos({("t", 0): 4}, commit_interval=300)
    client.assign(("t", 0))
    epoch, _ = pull_all(group, 0, 4)
    handle(transactions, group, 0, epoch, [0])
    wait_until(lambda: producer.committed, 5, "the first transaction")  # the next waits for the interval
    handle(transactions, group, 0, epoch, range(1, 4))
    waiting = gevent.spawn(transactions.wait_for_room)
    gevent.sleep(0.1)
    assert not waiting.dead and transactions.staged_records() == 3
    waiting.join(5)
    assert waiting.dead and len(producer.committed) == 2 and transactions.staged_records() == 0


def test_exactly_once_reads_committed_records_and_refuses_read_uncommitted():
    from gkbroad.config.validation import validate
    from gkbroad.errors import ConfigError
    from gkbroad.kafka.options import KafkaProducerOptions

    base = {"client": {"bootstrap_servers": "x:1"}, "group_name": "g", "topics": [{"name": "a"}, {"name": "b"}]}
    on = validate(KafkaProducerOptions, {**base, "exactly_once": {"transactional_id": "g-0"}}, "producer.module")
    assert [t["isolation_level"] for t in on["topics"]] == ["read_committed"] * 2
    assert validate(KafkaProducerOptions, base, "producer.module")["topics"][0]["isolation_level"] == "read_uncommitted"
    refused = {
        **base,
        "default_topic_config": {"isolation_level": "read_uncommitted"},
        "exactly_once": {"transactional_id": "g-0"},
    }
    with pytest.raises(ConfigError, match="topic\\(s\\) a, b set read_uncommitted"):
        validate(KafkaProducerOptions, refused, "producer.module")


def test_exactly_once_refuses_a_retry_topic_whose_records_the_transactions_would_not_hold():
    from gkbroad.config.validation import validate
    from gkbroad.errors import ConfigError
    from gkbroad.kafka.options import KafkaProducerOptions

    options = {
        "client": {"bootstrap_servers": "x:1"},
        "group_name": "g",
        "topics": [{"name": "a"}],
        "retry_topic": {"topic": "a.retry"},
        "exactly_once": {"transactional_id": "g-0"},
    }
    with pytest.raises(ConfigError, match="retry_topic: cannot be used with exactly_once"):
        validate(KafkaProducerOptions, options, "producer.module")


def test_only_the_last_attempt_of_a_message_counts_and_a_failed_message_has_no_outputs():
    from gkbroad.kafka.outputs import add_output, outputs_of
    from gkbroad.message import Acknowledger, Message

    message = Message(b"x", Acknowledger(None, None, ("t", 0, 0, 1)))
    add_output(message, "out", "first", key="k", headers=[("h", "v")])
    assert outputs_of(message) == [OutputRecord("out", b"k", b"first", [("h", b"v")])]
    message.metadata["attempt"] = 1
    add_output(message, "out", b"attempt 1")
    message.metadata["attempt"] = 2  # attempt 1 raised and was retried; attempt 2 adds nothing
    assert outputs_of(message) == []
    add_output(message, "out", b"attempt 2")
    assert [r.value for r in outputs_of(message)] == [b"attempt 2"]
    assert outputs_of(message.failed("no")) == []
