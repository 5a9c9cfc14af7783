"""The pipeline's stages, one module each: producer, processor, batcher, batch processor.

Each stage runs as one or more greenlets that talk through bounded gevent
queues; `gkbroad.engine.topology` wires them together and stops them in order.
"""

from .base import STOP
from .batch_processor import BatchProcessorStage
from .batcher import BatcherInbox, BatcherStage
from .processor import ProcessorStage
from .producer_stage import ProducerStage
from .router import Router

__all__ = ["BatchProcessorStage", "BatcherInbox", "BatcherStage", "ProcessorStage", "ProducerStage", "Router", "STOP"]
