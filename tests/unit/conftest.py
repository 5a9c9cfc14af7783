"""Fixtures that start pipelines for a test and always stop them afterwards.

Teardown stops are guarded by a gevent.Timeout, so an engine that hangs on
stop fails the test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib

import gevent
import pytest

from gkbroad import testing
from tests.helpers.engine_support import SourceProducer

TEARDOWN_STOP_LIMIT = 15.0


def _with_defaults(options: dict) -> dict:
    options.setdefault("name", "unit")
    options.setdefault("processors", {"default": {}})
    return options


@pytest.fixture
def run_testing():
    """run_testing(PipelineClass, **options): started under gkbroad.testing (DummyProducer)."""
    with contextlib.ExitStack() as stack:

        def start(cls, **options):
            pipeline = stack.enter_context(testing.running(cls, **_with_defaults(options)))
            stack.callback(_stop_guarded, pipeline)  # runs before running()'s own stop
            return pipeline

        yield start


@pytest.fixture
def run_source():
    """run_source(PipelineClass, source, **options): started with SourceProducer reading `source`
    (or, with producer concurrency > 1, `sources=[...]`, one per producer greenlet), unless
    `producer` names its own module."""
    started = []

    def start(cls, source=None, *, sources=None, producer=None, **options):
        producer = dict(producer or {})
        if "module" not in producer:
            producer["module"] = (SourceProducer, {"sources": sources} if sources is not None else {"source": source})
        pipeline = cls(producer=producer, **_with_defaults(options))
        pipeline.start()
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        _stop_guarded(pipeline)


def _stop_guarded(pipeline) -> None:
    with gevent.Timeout(TEARDOWN_STOP_LIMIT, AssertionError(f"stop() of {pipeline.name!r} hung")):
        pipeline.stop()
