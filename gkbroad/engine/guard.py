"""The one rule for exceptions escaping user code: fail the work, never the pipeline, except on a stop.

Every place that calls user code (handlers, partition_by, producer methods)
catches ``BaseException`` so that nothing a handler raises can kill a stage
greenlet, and first hands the exception to `reraise_stops`, which lets through
what must stop the process or the greenlet: KeyboardInterrupt, SystemExit and
gevent's GreenletExit (a kill). The success path pays nothing.
"""

from __future__ import annotations

from ..errors import STOP_PROCESS

__all__ = ["reraise_stops"]


def reraise_stops(exc: BaseException, *also: type[BaseException]) -> None:
    """Re-raise `exc` if it stops the process or the greenlet, or is one of `also`."""
    if isinstance(exc, STOP_PROCESS) or (also and isinstance(exc, also)):
        raise exc
