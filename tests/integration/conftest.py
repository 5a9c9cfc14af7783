"""Fixtures of the integration tests: a real Kafka-compatible broker.

The broker is the one in GKBROAD_TEST_BOOTSTRAP_SERVERS if set, else a Tansu
started for the session on a free loopback port (gkbroad.testing.broker.LocalBroker).
No broker means failed tests, never skipped ones: a suite that silently skips
its Kafka tests proves nothing.

kafka-python must run under gevent here, exactly as in production, so these
tests require GKBROAD_GEVENT_PATCH=1 (tests/conftest.py then patches before
anything imports kafka); scripts/test.sh sets it.
"""

import os

import pytest

from gkbroad.errors import ConfigError
from gkbroad.kafka.client.gevent_check import check_gevent_patched
from gkbroad.testing.broker import BrokerError, LocalBroker
from tests.helpers.kafka_helpers import Cluster

try:
    check_gevent_patched()
    _PATCH_PROBLEM = None
except ConfigError as exc:
    _PATCH_PROBLEM = str(exc)


@pytest.fixture(autouse=True)
def _require_gevent_patch():
    if _PATCH_PROBLEM:
        pytest.fail(
            "integration tests run only under gevent: set GKBROAD_GEVENT_PATCH=1 "
            f"(scripts/test.sh does). {_PATCH_PROBLEM}",
            pytrace=False,
        )


@pytest.fixture(params=["kafka-python", "librdkafka"])
def client_library(request):
    """The consumer's client library: a test taking this fixture runs on kafka-python and on librdkafka."""
    return request.param


@pytest.fixture(scope="session")
def bootstrap_servers():
    """host:port of the broker the integration tests use."""
    external = os.environ.get("GKBROAD_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    try:
        broker = LocalBroker().start()
    except BrokerError as exc:
        pytest.fail(
            f"no Kafka broker for the integration tests: {exc} (or point GKBROAD_TEST_BOOTSTRAP_SERVERS at one)",
            pytrace=False,
        )
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def cluster(bootstrap_servers):
    """Topic, group id, produce and offset helpers bound to the test broker."""
    return Cluster(bootstrap_servers)
