"""gkbroad.testing: run a pipeline on test data and wait for the acknowledgements."""

import pytest

from gkbroad import GkbroadError, PipelineStateError, testing
from tests.helpers.engine_support import RecordingPipeline

WAITING_BATCHER = {"default": {"batch_size": 2, "batch_timeout": 60_000}}


def test_test_message_comes_back_acknowledged_with_its_data_and_metadata(run_testing):
    pipeline = run_testing(RecordingPipeline)
    metadata = {"key": "k1"}

    successful, failed = testing.wait_for_ack(pipeline, testing.test_message(pipeline, {"id": 1}, metadata=metadata))

    (message,) = successful
    assert failed == [] and message.data == {"id": 1} and message.metadata == metadata
    assert message.metadata is not metadata


def test_test_batch_waits_for_every_message_of_the_ref(run_testing):
    pipeline = run_testing(RecordingPipeline)
    first, second = testing.test_batch(pipeline, [1, 2, 3]), testing.test_batch(pipeline, [4])

    assert sorted(m.data for m in testing.wait_for_ack(pipeline, first)[0]) == [1, 2, 3]
    assert [m.data for m in testing.wait_for_ack(pipeline, second)[0]] == [4]


def test_test_message_is_in_flush_mode_so_it_does_not_wait_for_the_batch_timeout(run_testing):
    pipeline = run_testing(RecordingPipeline, batchers=WAITING_BATCHER)

    successful, _ = testing.wait_for_ack(pipeline, testing.test_message(pipeline, "x"), timeout=2)

    assert [m.data for m in successful] == ["x"]
    assert pipeline.batches[0].info.trigger == "flush"


def test_wait_for_ack_times_out_saying_how_many_were_acknowledged(run_testing):
    pipeline = run_testing(RecordingPipeline, batchers=WAITING_BATCHER)
    ref = testing.test_batch(pipeline, ["full", "batch", "waits"])  # bulk: the third waits for a partner

    with pytest.raises(TimeoutError, match=rf"^ref {ref}: 2 of 3 messages acknowledged after 0.2s$"):
        testing.wait_for_ack(pipeline, ref, timeout=0.2)


def test_wait_for_ack_refuses_an_unknown_or_already_collected_ref(run_testing):
    pipeline = run_testing(RecordingPipeline)
    ref = testing.test_message(pipeline, 1)
    testing.wait_for_ack(pipeline, ref)

    for unknown in (ref, "nope"):
        with pytest.raises(GkbroadError, match="unknown test ref"):
            testing.wait_for_ack(pipeline, unknown)


def test_helpers_refuse_a_pipeline_without_dummy_producer():
    pipeline = RecordingPipeline(
        name="real",
        producer={"module": ("tests.helpers.engine_support:SourceProducer", {})},
        processors={"default": {}},
    )

    with pytest.raises(GkbroadError, match="does not use gkbroad.testing.DummyProducer"):
        testing.test_message(pipeline, 1)


def test_running_stops_the_pipeline_on_exit_even_after_an_error():
    with (
        pytest.raises(ZeroDivisionError),
        testing.running(RecordingPipeline, name="t", processors={"default": {}}) as pipeline,
    ):
        assert pipeline.running
        raise ZeroDivisionError
    assert not pipeline.running


def test_running_swaps_only_the_producer_module_and_keeps_its_other_options():
    with testing.running(
        RecordingPipeline,
        name="t",
        processors={"default": {}},
        producer={"module": "somewhere:KafkaProducer", "concurrency": 2},
    ) as pipeline:
        assert pipeline.options["producer"]["module"][0] is testing.DummyProducer
        assert pipeline.options["producer"]["concurrency"] == 2
        assert testing.wait_for_ack(pipeline, testing.test_batch(pipeline, range(10)))[1] == []


def test_a_stopping_pipeline_refuses_test_messages(run_testing):
    pipeline = run_testing(RecordingPipeline)
    pipeline.stop()

    with pytest.raises(PipelineStateError, match="stopping"):
        testing.test_message(pipeline, 1)
