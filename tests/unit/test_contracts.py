"""The typed contracts (Protocols) and the classes that implement them agree.

The Protocols: the Kafka client seam (gkbroad.kafka.client.group_client and,
for the writers, gkbroad.kafka.client.writers and .transactions), the
producer contract (gkbroad.producer) and the hook contract
(gkbroad.observability.hook_protocols). mypy checks gkbroad's own
implementations in scripts/test.sh, and the unit tests' fake client where
fake_kafka.make_group hands it to the group as a ``GroupClient[FakeFuture]``;
these tests check the same at run time, by name, kind and signature, so an
implementation cannot drift from its contract unnoticed even where mypy is
not run.
"""

import inspect

import pytest
from kafka.future import Future

from gkbroad.kafka import Producer as KafkaProducer
from gkbroad.kafka.client import (
    CommitFuture,
    ConsumerClient,
    GroupClient,
    KafkaRecordProducer,
    KafkaTransactionalClient,
    LibrdkafkaClient,
    RecordProducer,
    TransactionalClient,
)
from gkbroad.kafka.client.rdkafka_producer import LibrdkafkaRecordProducer
from gkbroad.kafka.client.rdkafka_transactions import LibrdkafkaTransactionalClient
from gkbroad.kafka.dead_letter import DeadLetter
from gkbroad.kafka.group import ConsumerGroup
from gkbroad.kafka.retry_topic import RetryTopic
from gkbroad.kafka.transactions import Transactions
from gkbroad.message import Acknowledger, Message
from gkbroad.observability import HOOK_METHODS, hook_protocols
from gkbroad.observability.hooks import Hooks
from gkbroad.producer import (
    BaseProducer,
    ProducerProtocol,
    Service,
    SupportsDraining,
    SupportsIdle,
    SupportsPrepareForStart,
    SupportsReceiveChunks,
    SupportsReportCommits,
    SupportsReportDeadLetters,
    SupportsReportRebalances,
    SupportsReportRetries,
    SupportsSupervise,
)
from gkbroad.testing import DummyProducer
from gkbroad.testing.helpers import TestChannel
from tests.helpers.fake_kafka import FakeConsumerClient, FakeFuture, FakeTransactionalProducer


def _members(protocol: type) -> dict[str, object]:
    """The members a Protocol declares, by name (its methods and properties)."""
    return {name: value for name, value in vars(protocol).items() if not name.startswith("_")}


def _drift(protocol: type, implementation: object) -> list[str]:
    """How ``implementation`` (a class or an instance) differs from ``protocol``; empty when it keeps it."""
    problems = []
    for name, declared in _members(protocol).items():
        if not hasattr(implementation, name):
            problems.append(f"{name}: missing")
            continue
        if isinstance(declared, property):
            if callable(inspect.getattr_static(implementation, name)):
                problems.append(f"{name}: a method where an attribute or property is declared")
            continue
        provided = getattr(implementation, name)
        if inspect.iscoroutinefunction(declared) != inspect.iscoroutinefunction(provided):
            problems.append(f"{name}: async in one and not in the other")
        expected = _parameters(declared)
        found = _parameters(provided)
        # A positional-only parameter may have any name; every other one is matched by name.
        if len(expected) != len(found) or any(
            e.kind is not e.POSITIONAL_ONLY and e.name != f.name for e, f in zip(expected, found, strict=True)
        ):
            problems.append(f"{name}: parameters {[f.name for f in found]}, declared {[e.name for e in expected]}")
    return problems


def _parameters(function: object) -> list[inspect.Parameter]:
    """The named parameters of ``function`` without ``self`` (``*args`` and ``**kwargs`` left out).

    A plain function (a method read from its class) still has ``self``; a bound
    method (read from an instance, or a class method) has not."""
    parameters = list(inspect.signature(function).parameters.values())
    if inspect.isfunction(function):
        parameters = parameters[1:]
    return [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_check_notices_drift():
    class Drifted:
        bootstrap_servers = "x:9092"

        def poll(self, timeout, max_records):  # renamed parameter
            return {}

        def wait(self, future, timeout):  # not async
            return True

        def connected(self):  # a method, not a property
            return True

    problems = _drift(GroupClient, Drifted)
    assert "connect: missing" in problems
    assert "poll: parameters ['timeout', 'max_records'], declared ['timeout_ms', 'max_records']" in problems
    assert "wait: async in one and not in the other" in problems
    assert "connected: a method where an attribute or property is declared" in problems


# -- the Kafka client seam ---------------------------------------------------------------------


def test_the_client_protocol_declares_what_the_group_uses():
    assert {"connect", "poll", "commit", "wait", "close", "abandon", "connected"} <= set(_members(GroupClient))


@pytest.mark.parametrize(
    "client", [ConsumerClient, LibrdkafkaClient, FakeConsumerClient], ids=["kafka-python", "librdkafka", "fake"]
)
def test_each_client_keeps_the_group_client_contract(client):
    assert _drift(GroupClient, client) == []


@pytest.mark.parametrize(
    "producer", [KafkaRecordProducer, LibrdkafkaRecordProducer], ids=["kafka-python", "librdkafka"]
)
def test_each_record_producer_keeps_the_writers_contract(producer):
    assert _drift(RecordProducer, producer) == []


@pytest.mark.parametrize(
    "producer",
    [KafkaTransactionalClient, LibrdkafkaTransactionalClient, FakeTransactionalProducer],
    ids=["kafka-python", "librdkafka", "fake"],
)
def test_each_transactional_producer_keeps_the_transactions_contract(producer):
    assert _drift(TransactionalClient, producer) == []


@pytest.mark.parametrize("future", [Future(), FakeFuture()], ids=["kafka-python", "fake"])
def test_each_future_keeps_the_commit_future_contract(future):
    assert _drift(CommitFuture, future) == []


# -- the producer contract ---------------------------------------------------------------------


@pytest.mark.parametrize("producer", [BaseProducer, DummyProducer, KafkaProducer])
@pytest.mark.parametrize("protocol", [ProducerProtocol, SupportsIdle, SupportsDraining, SupportsPrepareForStart])
def test_gkbroad_producers_keep_the_producer_contract(producer, protocol):
    assert _drift(protocol, producer) == []


def test_the_kafka_producer_keeps_the_chunk_contract():
    assert _drift(SupportsReceiveChunks, KafkaProducer) == []


@pytest.mark.parametrize(
    "service, protocols",
    [
        (ConsumerGroup, [Service, SupportsSupervise, SupportsReportCommits, SupportsReportRebalances]),
        (DeadLetter, [Service, SupportsReportDeadLetters]),
        (RetryTopic, [Service, SupportsSupervise, SupportsReportRetries]),
        (Transactions, [Service, SupportsSupervise, SupportsReportDeadLetters]),
        (TestChannel, [Service]),
    ],
)
def test_gkbroad_services_keep_the_service_contract(service, protocols):
    assert [problem for protocol in protocols for problem in _drift(protocol, service)] == []


# -- the hook contract -------------------------------------------------------------------------


def _hook_protocols() -> dict[str, type]:
    """Each hook Protocol by the method it declares."""
    found = {}
    for name in hook_protocols.__all__:
        protocol = getattr(hook_protocols, name)
        if isinstance(protocol, type):
            (method,) = _members(protocol)
            found[method] = protocol
    return found


def test_each_hook_method_has_its_protocol():
    assert sorted(_hook_protocols()) == sorted(HOOK_METHODS)


def test_the_dispatcher_calls_each_hook_method_as_its_protocol_declares():
    calls = []

    class Recorder:
        def __getattr__(self, name):
            if name not in HOOK_METHODS:
                raise AttributeError(name)
            return lambda *args: calls.append((name, args))

    hooks = Hooks([Recorder()])
    pipeline = object()
    hooks.pipeline_started(pipeline)
    hooks.message_done(hooks.call_started())
    hooks.acked([Message(data="m", acknowledger=Acknowledger(object(), 0, None))], [])
    hooks.retried("in_place")
    hooks.dead_lettered(2)
    hooks.rebalanced("t", 0, "assigned")
    hooks.batch_done("default", 3, hooks.call_started())
    hooks.hub_blocked("p.processor.0", "Handler.handle_message (x.py:1)")
    hooks.committed(0.01, [("t", 0)])
    hooks.around_message("message", print)("handle_message", "default", "message", None)
    hooks.around_batch("default", ["message"], print)("handle_batch", "default", ["message"], "info", None)
    hooks.pipeline_stopping(pipeline)
    hooks.pipeline_stopped(pipeline, True)

    protocols = _hook_protocols()
    assert sorted(name for name, _ in calls) == sorted(HOOK_METHODS)
    for name, args in calls:
        declared = inspect.signature(getattr(protocols[name], name))
        declared.bind(None, *args)  # raises TypeError when the dispatcher's call does not fit
