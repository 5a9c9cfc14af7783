"""A watchdog that names the handler blocking the gevent hub.

gevent makes blocking calls cooperative only when they go through patched
Python I/O. A C driver waiting on the network (psycopg2, mysqlclient), a C
extension holding the GIL or a CPU-bound loop blocks the whole process: no
other handler, no heartbeat, no status page runs meanwhile. gevent ships a
monitor thread that checks every ``max_blocking_time`` seconds whether the hub
switched greenlets since its last check, and emits an ``EventLoopBlocked``
event when it did not. This module turns those events into one WARNING per
handler and minute that says which stage and which user callback held the hub,
with the stack, and counts every block.

gevent's check only sees a block that spans two whole check intervals, so a
block just over the threshold would mostly go unseen if the monitor checked
once per threshold. The watchdog therefore has it check CHECKS_PER_THRESHOLD
times per threshold, and measures how long the hub has been blocked with a
beat: a timer in the hub notes the time every BEATS_PER_THRESHOLD-th of the
threshold, so the time since the last beat is how long the event loop has not
turned (within one beat), and all reports with the same last beat are one
block (two handler calls that block one after the other, with no turn of the
loop between them, are one block). A block is reported once it lasted
``threshold``; every block longer than about 1.4 x ``threshold`` is (the
monitor thread needs a check or two to see it).

The monitor thread and ``max_blocking_time`` are process-wide settings of
gevent: with several pipelines in one process the smallest threshold applies,
and every watchdog hears every block (each reports only its own stages). The
monitor thread runs while at least one watchdog does, unless it was running
before the first one started (then it is left as it was found).

The monitor thread is started from the hub, at its next turn: gevent's monitor
ends itself, silently, at its first check if the hub greenlet has not run yet
(a hub not yet started is false, which the monitor takes for a hub gone), and
a watchdog is mostly started before the program first waits. On a loaded
machine that first check often came first (13 of 13 starts of a probe beside
eight busy processes), and then no block was ever reported. No greenlet runs before the hub's first turn,
so no block is missed by starting the monitor then.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent
from gevent import config as gevent_config
from gevent import events

if TYPE_CHECKING:
    from gevent._monitor import PeriodicMonitoringThread
    from gevent.hub import Hub

__all__ = ["BlockingWatchdog", "USER_CALLBACKS"]

logger = logging.getLogger(__name__)

# Pipeline methods that run user code; the innermost frame of one of these
# names the culprit.
USER_CALLBACKS = ("handle_message", "handle_batch", "handle_failed", "prepare_messages")

# One warning per handler at most this often (seconds).
WARNING_INTERVAL = 60.0

# How many times per threshold gevent's monitor checks the hub, and the hub notes a beat
# (see the module docstring).
CHECKS_PER_THRESHOLD = 4
BEATS_PER_THRESHOLD = 8


class BlockingWatchdog:
    """Warns when a stage of pipeline ``name`` blocks the hub for over ``threshold_ms``.

    ``on_blocked(stage, handler)`` (optional) is called once for every block
    seen, also those not logged because of the once-a-minute limit; metrics
    and the status page count them through it. The monitor thread hands each
    block over to the hub's thread (``loop.run_callback_threadsafe``), so the
    warning and ``on_blocked`` run there, among the greenlets, as soon as the
    block ends.
    """

    _active: list[BlockingWatchdog] = []
    _lock = threading.Lock()
    _owned_monitor: PeriodicMonitoringThread | None = None  # gevent's monitor thread when a watchdog started it
    _monitor_start: Any = None  # the hub callback that starts the monitor thread, until it ran

    def __init__(self, name: str, threshold_ms: int, on_blocked: Callable[[str, str], None] | None = None):
        self.name = name
        self.threshold = threshold_ms / 1000.0
        self.on_blocked = on_blocked
        self.blocked = 0
        self._last_warning: dict[str, float] = {}
        self._last_beat = 0.0  # monotonic time the hub last ran the beat timer
        self._reported_beat = 0.0  # the last beat before the block last reported
        self._beat: Any = None

    def start(self) -> None:
        """Turn gevent's monitor thread on (once per process) and listen to its reports."""
        cls = type(self)
        hub = gevent.get_hub()
        if self._beat is None:
            self._last_beat = time.monotonic()
            interval = self.threshold / BEATS_PER_THRESHOLD
            self._beat = hub.loop.timer(interval, interval, ref=False)  # ref=False: it keeps no program alive
            self._beat.start(self._on_beat)
        with self._lock:
            if self not in self._active:
                self._active.append(self)
            _set_check_interval(self._active)
            gevent_config.print_blocking_reports = False
            if self._notify not in events.subscribers:
                events.subscribers.append(self._notify)
            if hub.periodic_monitoring_thread is None and cls._monitor_start is None:
                cls._monitor_start = hub.loop.run_callback(cls._start_monitor_in_hub, hub)

    def stop(self) -> None:
        """Stop listening; the last watchdog to stop also stops the monitor thread if a watchdog started it."""
        cls = type(self)
        if self._beat is not None:
            self._beat.close()
            self._beat = None
        with self._lock:
            if self in self._active:
                self._active.remove(self)
            if self._notify in events.subscribers:
                events.subscribers.remove(self._notify)
            if self._active:
                _set_check_interval(self._active)
                return
            if cls._monitor_start is not None:  # stopped before the hub turned: the monitor never starts
                cls._monitor_start.stop()
                cls._monitor_start = None
            hub = gevent.get_hub()
            monitor = cls._owned_monitor
            if monitor is not None and hub.periodic_monitoring_thread is monitor:
                monitor.kill()
                hub.periodic_monitoring_thread = None
            cls._owned_monitor = None

    @classmethod
    def _start_monitor_in_hub(cls, hub: Hub) -> None:
        """Runs in the hub (so it has started) at its first turn after the first watchdog started."""
        with cls._lock:
            cls._monitor_start = None
            if cls._active and hub.periodic_monitoring_thread is None:
                cls._owned_monitor = _start_monitor(hub)

    def _on_beat(self) -> None:
        self._last_beat = time.monotonic()

    def _notify(self, event: object) -> None:
        """Runs on gevent's monitor thread, while the hub is still blocked."""
        if not isinstance(event, events.EventLoopBlocked) or event.hub is None:
            return
        stage = getattr(event.greenlet, "name", None) or ""
        if not stage.startswith(f"{self.name}."):
            return
        beat = self._last_beat
        if beat == self._reported_beat or time.monotonic() - beat < self.threshold:
            return  # this block was reported already, or is not long enough yet
        self._reported_beat = beat
        frame = _hub_frame(event.hub)
        handler = _culprit(frame) if frame is not None else "unknown code"
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        event.hub.loop.run_callback_threadsafe(self._report, stage, handler, stack)

    def _report(self, stage: str, handler: str, stack: str) -> None:
        """Runs in the hub's thread once the block is over: count, tell on_blocked, warn once a minute."""
        self.blocked += 1
        if self.on_blocked is not None:
            self.on_blocked(stage, handler)
        now = time.monotonic()
        if now - self._last_warning.get(handler, -WARNING_INTERVAL) < WARNING_INTERVAL:
            return
        self._last_warning[handler] = now
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


def _set_check_interval(watchdogs: list[BlockingWatchdog]) -> None:
    gevent_config.max_blocking_time = min(w.threshold for w in watchdogs) / CHECKS_PER_THRESHOLD


def _start_monitor(hub: Hub) -> PeriodicMonitoringThread:
    """Start gevent's monitor thread for `hub` only: the process-wide setting is put back at once,
    so the hubs of other threads (a thread executor's workers) do not start monitors of their own."""
    enabled = gevent_config.monitor_thread
    gevent_config.monitor_thread = True
    try:
        with warnings.catch_warnings():
            # gevent also offers memory monitoring, which needs psutil; we do not use it.
            warnings.filterwarnings("ignore", message="Unable to monitor memory usage")
            return hub.start_periodic_monitoring_thread()
    finally:
        gevent_config.monitor_thread = enabled


def _hub_frame(hub: object) -> FrameType | None:
    ident = getattr(hub, "thread_ident", None)
    return sys._current_frames().get(ident) if ident is not None else None


def _culprit(frame: FrameType) -> str:
    """``Class.method (file:line)`` of the innermost user callback on the stack,
    else the innermost frame, which is the best clue left."""
    current: FrameType | None = frame
    while current is not None:
        code = current.f_code
        owner = current.f_locals.get("self")
        if code.co_name in USER_CALLBACKS and owner is not None and not _is_gkbroad(code.co_filename):
            return f"{type(owner).__name__}.{code.co_name} ({code.co_filename}:{current.f_lineno})"
        current = current.f_back
    code = frame.f_code
    return f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"


def _is_gkbroad(filename: str) -> bool:
    return filename.startswith(_PACKAGE_DIR)


# The directory of the top-level package, found from its module rather than
# from this file's place in it, so that moving this module cannot make the
# watchdog blame gkbroad's own frames.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(sys.modules[__name__.partition(".")[0]].__file__ or "")) + os.sep
