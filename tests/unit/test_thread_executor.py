"""executor="thread": a stage's callbacks run in native threads, with the same ordering,
acknowledgement and failure handling as on greenlets, and the hub keeps running meanwhile.

The unpatched time.sleep stands in for a C driver: it blocks whatever thread calls it.
"""

import time

import pytest
from gevent import monkey

from gkbroad import ConfigError, testing
from tests.helpers.engine_support import RecordingPipeline, Source
from tests.helpers.hub_gaps import hub_gaps
from tests.helpers.support import wait_until

blocking_sleep = monkey.get_original("time", "sleep")
thread_ident = monkey.get_original("_thread", "get_ident")  # the OS thread, even under monkey patching
HUB_THREAD = thread_ident()

THREADS = {"executor": "thread"}


class InThreads(RecordingPipeline):
    """Records the OS thread of every callback call; handlers block briefly in "C"."""

    def __init__(self, **options):
        self.threads = {
            "handle_message": set(),
            "prepare_messages": set(),
            "handle_batch": set(),
            "handle_failed": set(),
        }
        super().__init__(**options)

    def _note(self, callback):
        self.threads[callback].add(thread_ident())

    def prepare_messages(self, messages, context):
        self._note("prepare_messages")
        return messages

    def on_message(self, message):
        self._note("handle_message")
        blocking_sleep(0.002)
        if message.data == "raise":
            raise ValueError("bad record")
        if message.data == "wrong":
            return "not a message"
        return message

    def on_batch(self, messages, info):
        self._note("handle_batch")
        return messages

    def handle_failed(self, messages, context):
        self._note("handle_failed")
        return super().handle_failed(messages, context)


def test_thread_handlers_keep_order_per_key_and_acknowledge_each_message_once(run_source):
    source = Source([(key, seq) for seq in range(30) for key in "abcdef"])
    pipeline = run_source(
        InThreads,
        source,
        partition_by=lambda message: ord(message.data[0]),
        processors={"default": {"concurrency": 4, "max_demand": 5, **THREADS}},
        batchers={"default": {"batch_size": 10, "batch_timeout": 20, "concurrency": 2, **THREADS}},
    )

    wait_until(lambda: source.acknowledger.acked == 180, what="every message acknowledged")

    source.assert_each_produced_message_acked_once()
    for key in "abcdef":
        assert [seq for _, (k, seq) in pipeline.handled if k == key] == list(range(30)), f"key {key} out of order"
    for callback in ("handle_message", "prepare_messages", "handle_batch"):
        assert pipeline.threads[callback], f"{callback} was never called"
        assert HUB_THREAD not in pipeline.threads[callback], f"{callback} ran in the hub's thread"
    assert len(pipeline.threads["handle_message"]) <= 4  # one thread per processor at most
    counters = pipeline.status()["counters"]
    assert (counters["handled"], counters["failed"]) == (180, 0)


@pytest.mark.parametrize("executor", ["greenlet", "thread"])
def test_failures_are_handled_the_same_on_threads_and_on_greenlets(run_testing, executor):
    pipeline = run_testing(InThreads, processors={"default": {"concurrency": 2, "executor": executor}})

    successful, failed = testing.wait_for_ack(pipeline, testing.test_batch(pipeline, ["ok", "raise", "wrong"]))

    assert [m.data for m in successful] == ["ok"]
    reasons = {m.data: m.failure_reason for m in failed}
    assert set(reasons) == {"raise", "wrong"}
    assert isinstance(reasons["raise"], ValueError) and str(reasons["raise"]) == "bad record"
    assert reasons["wrong"].startswith("handle_message must return a Message, got str")
    assert pipeline.failed_counts == {"raise": 1, "wrong": 1}
    in_hub = {HUB_THREAD} == pipeline.threads["handle_failed"]
    assert in_hub is (executor == "greenlet"), f"handle_failed ran in {pipeline.threads['handle_failed']}"


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
def test_a_stop_the_process_exception_in_a_thread_fails_the_pipeline_as_on_a_greenlet(run_source, exception):
    class Exits(RecordingPipeline):
        def on_message(self, message):
            if message.data == 5:
                raise exception
            return message

    source = Source(range(20))
    pipeline = run_source(Exits, source, processors={"default": {"concurrency": 1, "max_demand": 1, **THREADS}})

    wait_until(lambda: pipeline.failure is not None, what="the pipeline to fail")
    assert type(exception).__name__ in pipeline.failure and "processor" in pipeline.failure
    assert pipeline.join(timeout=10)
    assert {m.data for m in source.acknowledger.successful} == set(range(5)), "acked past the unfinished message"


class SlowInC(RecordingPipeline):
    """handle_message blocks the calling thread for `seconds` (class attribute)."""

    seconds = 0.3

    def on_message(self, message):
        blocking_sleep(self.seconds)
        return message


def test_stop_waits_for_a_call_running_in_a_thread(run_source):
    source = Source(["slow"])
    pipeline = run_source(SlowInC, source, processors={"default": {"concurrency": 1, **THREADS}})
    wait_until(lambda: pipeline.handled, what="the call to begin")

    assert pipeline.stop() is True

    source.assert_each_produced_message_acked_once()


def test_stop_gives_up_on_a_thread_call_after_the_shutdown_timeout_and_the_pool_ends(run_source):
    class Stuck(SlowInC):
        seconds = 1.5

    source = Source(["stuck"])
    pipeline = run_source(Stuck, source, shutdown_timeout=300, processors={"default": {"concurrency": 1, **THREADS}})
    wait_until(lambda: pipeline.handled, what="the call to begin")
    pool = pipeline._topology.callbacks.executors.processor("default").pool

    began = time.monotonic()
    assert pipeline.stop() is False
    assert time.monotonic() - began < 1.4, "stop() waited for the call past its shutdown timeout"

    assert source.acknowledger.acked == 0, "the unfinished message was acknowledged"
    wait_until(lambda: pool.size == 0, timeout=5, what="the pool's thread to end after its call")


def test_the_hub_keeps_running_while_thread_handlers_block(run_source):
    """Four lanes of five 0.1 s calls: in a row on greenlets that is 2 s of a blocked hub."""
    source = Source([(lane, i) for i in range(5) for lane in range(4)])
    with hub_gaps(0.02) as gaps:
        began = time.monotonic()
        run_source(
            type("Slow", (SlowInC,), {"seconds": 0.1}),
            source,
            partition_by=lambda message: message.data[0],
            processors={"default": {"concurrency": 4, "max_demand": 1, **THREADS}},
        )
        wait_until(lambda: source.acknowledger.acked == 20, what="every message acknowledged")
        took = time.monotonic() - began
    assert took < 1.6, f"the four lanes did not overlap: {took:.2f}s"
    assert gaps.longest < 0.25, f"the hub stalled for {gaps.longest:.2f}s"


def test_an_unknown_executor_names_the_option():
    with pytest.raises(
        ConfigError, match=r"processors\.default\.executor: must be one of greenlet, thread, got 'fork'"
    ):
        RecordingPipeline(
            name="x", producer={"module": testing.DummyProducer}, processors={"default": {"executor": "fork"}}
        )
    with pytest.raises(ConfigError, match=r"batchers\.b\.executor: must be one of greenlet, thread, got 'threads'"):
        RecordingPipeline(
            name="x",
            producer={"module": testing.DummyProducer},
            processors={"default": {}},
            batchers={"b": {"executor": "threads"}},
        )


def test_a_handler_in_a_thread_can_stop_its_pipeline(run_source):
    class StopsOnThree(RecordingPipeline):
        def on_message(self, message):
            if message.data == 3:
                self.stop_result = self.stop()
            return message

    source = Source(range(10))
    pipeline = run_source(StopsOnThree, source, processors={"default": {"concurrency": 1, "max_demand": 1, **THREADS}})

    assert pipeline.join(timeout=10), "the pipeline did not stop"
    assert pipeline.stop_result is False  # the stop began; the handler did not wait for itself
    assert pipeline.stop() is True
    source.assert_each_produced_message_acked_once()
