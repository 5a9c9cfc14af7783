"""A watchdog that names the handler blocking the gevent hub.

gevent makes blocking calls cooperative only when they go through patched
Python I/O. A C driver waiting on the network (psycopg2, mysqlclient), a C
extension holding the GIL or a CPU-bound loop blocks the whole process: no
other handler, no heartbeat, no status page runs meanwhile. gevent ships a
monitor thread that notices when the hub did not switch for longer than
``max_blocking_time`` and emits an ``EventLoopBlocked`` event; this module
turns that event into one WARNING per handler and minute that says which stage
and which user callback held the hub, with the stack, and counts it.

The monitor thread and ``max_blocking_time`` are process-wide settings of
gevent: with several pipelines in one process the smallest threshold applies,
and every watchdog hears every block (each reports only its own stages).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from types import FrameType

import gevent
from gevent import config as gevent_config
from gevent import events

__all__ = ["BlockingWatchdog", "USER_CALLBACKS"]

logger = logging.getLogger(__name__)

# Pipeline methods that run user code; the innermost frame of one of these
# names the culprit.
USER_CALLBACKS = ("handle_message", "handle_batch", "handle_failed", "prepare_messages")

# One warning per handler at most this often (seconds).
WARNING_INTERVAL = 60.0


class BlockingWatchdog:
    """Warns when a stage of pipeline ``name`` blocks the hub for over ``threshold_ms``.

    ``on_blocked(stage, handler)`` (optional) is called for every block seen,
    also those not logged because of the once-a-minute limit; metrics and the
    status page count them through it. It runs on gevent's monitor thread, so
    it must only do quick, thread-safe work.
    """

    _active: list[BlockingWatchdog] = []
    _lock = threading.Lock()

    def __init__(self, name: str, threshold_ms: int, on_blocked: Callable[[str, str], None] | None = None):
        self.name = name
        self.threshold = threshold_ms / 1000.0
        self.on_blocked = on_blocked
        self.blocked = 0
        self._last_warning: dict[str, float] = {}

    def start(self) -> None:
        """Turn gevent's monitor thread on (once per process) and listen to its reports."""
        with self._lock:
            if self not in self._active:
                self._active.append(self)
            gevent_config.max_blocking_time = min(w.threshold for w in self._active)
            gevent_config.print_blocking_reports = False
            if self._notify not in events.subscribers:
                events.subscribers.append(self._notify)
        gevent_config.monitor_thread = True
        with warnings.catch_warnings():
            # gevent also offers memory monitoring, which needs psutil; we do not use it.
            warnings.filterwarnings("ignore", message="Unable to monitor memory usage")
            gevent.get_hub().start_periodic_monitoring_thread()

    def stop(self) -> None:
        """Stop listening. The monitor thread itself stays (gevent has no way to end it)."""
        with self._lock:
            if self in self._active:
                self._active.remove(self)
            if self._notify in events.subscribers:
                events.subscribers.remove(self._notify)
            if self._active:
                gevent_config.max_blocking_time = min(w.threshold for w in self._active)

    def _notify(self, event: object) -> None:
        if not isinstance(event, events.EventLoopBlocked):
            return
        stage = getattr(event.greenlet, "name", None) or ""
        if not stage.startswith(f"{self.name}."):
            return
        frame = _hub_frame(event.hub)
        handler = _culprit(frame) if frame is not None else "unknown code"
        self.blocked += 1
        if self.on_blocked is not None:
            self.on_blocked(stage, handler)
        now = time.monotonic()
        if now - self._last_warning.get(handler, -WARNING_INTERVAL) < WARNING_INTERVAL:
            return
        self._last_warning[handler] = now
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        logger.warning(
            "[%s] %s blocked the gevent hub for over %.0f ms in %s: no other greenlet (handlers, heartbeats, "
            "the status page) ran meanwhile. Use a gevent-friendly driver (psycogreen for psycopg2, PyMySQL "
            "instead of mysqlclient) or executor='thread' for this stage. Blocking stack:\n%s",
            self.name,
            stage,
            self.threshold * 1000,
            handler,
            stack,
        )


def _hub_frame(hub: object) -> FrameType | None:
    ident = getattr(hub, "thread_ident", None)
    return sys._current_frames().get(ident) if ident is not None else None


def _culprit(frame: FrameType) -> str:
    """``Class.method (file:line)`` of the innermost user callback on the stack,
    else the innermost frame, which is the best clue left."""
    innermost = frame
    while frame is not None:
        code = frame.f_code
        owner = frame.f_locals.get("self")
        if code.co_name in USER_CALLBACKS and owner is not None and not _is_gkbroad(code.co_filename):
            return f"{type(owner).__name__}.{code.co_name} ({code.co_filename}:{frame.f_lineno})"
        frame = frame.f_back
    code = innermost.f_code
    return f"{code.co_name} ({code.co_filename}:{innermost.f_lineno})"


def _is_gkbroad(filename: str) -> bool:
    return filename.startswith(_PACKAGE_DIR)


_PACKAGE_DIR = __file__.rsplit("/", 1)[0] + "/"
