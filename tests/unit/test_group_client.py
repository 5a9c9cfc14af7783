"""Both clients of the consumer group keep the contract of gkbroad.kafka.client.group_client.

mypy checks it in scripts/test.sh (fake_kafka.make_group hands the fake to the
group as a ``GroupClient[FakeFuture]``); these tests check the same at run
time, by name, kind and signature, so the fake cannot drift from the real
client unnoticed even where mypy is not run.
"""

import inspect

import pytest
from fake_kafka import FakeConsumerClient, FakeFuture
from kafka.future import Future

from gkbroad.kafka.client import CommitFuture, ConsumerClient, GroupClient


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
        expected = _parameters(declared, without_self=True)
        found = _parameters(provided, without_self=inspect.isclass(implementation))
        # A positional-only parameter may have any name; every other one is matched by name.
        if len(expected) != len(found) or any(
            e.kind is not e.POSITIONAL_ONLY and e.name != f.name for e, f in zip(expected, found, strict=True)
        ):
            problems.append(f"{name}: parameters {[f.name for f in found]}, declared {[e.name for e in expected]}")
    return problems


def _parameters(function: object, without_self: bool) -> list[inspect.Parameter]:
    """The named parameters of ``function`` (``*args`` and ``**kwargs`` left out)."""
    parameters = list(inspect.signature(function).parameters.values())[1 if without_self else 0 :]
    return [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_protocol_declares_what_the_group_uses():
    assert {"connect", "poll", "commit", "wait", "close", "abandon", "connected"} <= set(_members(GroupClient))


@pytest.mark.parametrize("client", [ConsumerClient, FakeConsumerClient], ids=["real", "fake"])
def test_each_client_keeps_the_group_client_contract(client):
    assert _drift(GroupClient, client) == []


@pytest.mark.parametrize("future", [Future(), FakeFuture()], ids=["kafka-python", "fake"])
def test_each_future_keeps_the_commit_future_contract(future):
    assert _drift(CommitFuture, future) == []


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
