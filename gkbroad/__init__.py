"""gkbroad: consume Kafka through a pipeline of gevent greenlets with plain blocking handlers.

Subclass `Pipeline`, write `handle_message` (and `handle_batch`), give it a
producer (`gkbroad.kafka.Producer` for Kafka, `gkbroad.testing.DummyProducer`
in tests) and `start()` it. See docs/ for the guides.

The producer contract is typed: `ProducerProtocol` (an instance), `ProducerClass`
(the class given as ``producer.module``) and `Service` (what its
``prepare_for_start`` returns); the optional methods have Protocols of their own
in `gkbroad.producer`. The hook contract's Protocols are in `gkbroad.observability`.
"""

from .errors import ConfigError, GkbroadError, NotAcknowledged, PausePartition, PipelineStateError
from .message import Acknowledger, BatchInfo, Message
from .pipeline import Pipeline
from .producer import BaseProducer, ProducerClass, ProducerProtocol, Service

__version__ = "0.1.0"

__all__ = [
    "Acknowledger",
    "BaseProducer",
    "BatchInfo",
    "ConfigError",
    "GkbroadError",
    "Message",
    "NotAcknowledged",
    "PausePartition",
    "Pipeline",
    "PipelineStateError",
    "ProducerClass",
    "ProducerProtocol",
    "Service",
    "__version__",
]
