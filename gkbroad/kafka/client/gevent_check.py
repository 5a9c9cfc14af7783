"""Refuse to run Kafka parts unless gevent patched the standard library first.

kafka-python runs its network I/O on a background "thread" and picks its
selector class when its modules are imported (``selectors.DefaultSelector``
is copied into class-level default configs). gkbroad needs that thread to be
a greenlet and that selector to be gevent's. Two mistakes break this, and both
show up later as hangs rather than errors:

- ``gevent.monkey.patch_all()`` was never called;
- it was called, but after something had already imported kafka.

This module detects both and says how to fix them.
"""

import selectors
import sys

from gevent import monkey

from ...errors import ConfigError

__all__ = ["check_gevent_patched"]

_FIX = (
    "call `from gevent import monkey; monkey.patch_all()` as the very first lines of "
    "the program's entry point, before anything imports gkbroad or kafka"
)

_PATCHED_MODULES = ("socket", "select", "selectors", "threading", "time")

# kafka-python classes whose default config captured selectors.DefaultSelector
# at import time: module name -> class name.
_SELECTOR_CAPTURES = {
    "kafka.net.selector": "NetworkSelector",
    "kafka.consumer.group": "KafkaConsumer",
    "kafka.producer.kafka": "KafkaProducer",
    "kafka.admin.client": "KafkaAdminClient",
}


def check_gevent_patched() -> None:
    """Raise ConfigError if gevent's monkey patching is missing or came too late."""
    unpatched = [name for name in _PATCHED_MODULES if not monkey.is_module_patched(name)]
    if unpatched:
        raise ConfigError(
            "gkbroad's Kafka consumer runs on gevent, but gevent.monkey.patch_all() has not "
            "been applied (unpatched modules: {}); {}.".format(", ".join(unpatched), _FIX)
        )
    stale = []
    for module_name, class_name in _SELECTOR_CAPTURES.items():
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None)
        if cls is not None and cls.DEFAULT_CONFIG.get("selector") is not selectors.DefaultSelector:
            stale.append(f"{module_name}.{class_name}")
    if stale:
        raise ConfigError(
            "kafka was imported before gevent.monkey.patch_all() ran, so kafka-python kept "
            "the blocking selector ({}) and would hang under gevent; {}.".format(", ".join(stale), _FIX)
        )
