"""One consumer-group membership: the ConsumerGroup and the parts it is wired from.

`GroupState` (state.py) is the one state object, pure data, with the
`OffsetTracker`; `Poller`, `Committer` and `Rebalancer` each act on it through
the client of `gkbroad.kafka.client`. Nothing here imports the engine's stages.
"""

from .consumer_group import ConsumerGroup
from .offset_tracker import OffsetTracker

__all__ = ["ConsumerGroup", "OffsetTracker"]
