"""gkbroad: consume Kafka through a pipeline of gevent greenlets with plain blocking handlers.

Subclass `Pipeline`, write `handle_message` (and `handle_batch`), give it a
producer (`gkbroad.kafka.Producer` for Kafka, `gkbroad.testing.DummyProducer`
in tests) and `start()` it. See docs/ for the guides.
"""

from .errors import ConfigError, GkbroadError, NotAcknowledged, PipelineStateError
from .message import Acknowledger, BatchInfo, Message
from .pipeline import Pipeline
from .producer import BaseProducer

__version__ = "0.1.0"

__all__ = [
    "Acknowledger",
    "BaseProducer",
    "BatchInfo",
    "ConfigError",
    "GkbroadError",
    "Message",
    "NotAcknowledged",
    "Pipeline",
    "PipelineStateError",
    "__version__",
]
