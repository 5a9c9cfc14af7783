"""The one exception hierarchy of gkbroad: catch GkbroadError to catch them all."""

from gevent import GreenletExit


class GkbroadError(Exception):
    """Base class of every error gkbroad raises on purpose."""


class ConfigError(GkbroadError, ValueError):
    """An option was missing or invalid, or gkbroad was set up in a way that cannot work
    (gevent patched too late, a gunicorn hook without a pipeline, an object that is no hook).

    Raised at construction or start, never later, with a message that names the
    option path (or the call), what was expected and what was given.
    """


class PipelineStateError(GkbroadError, RuntimeError):
    """A pipeline was asked to do something its current state does not allow
    (start twice, push test messages before start, ...)."""


class NotAcknowledged(GkbroadError):
    """Raised from handle_failed when its failed messages must not be acknowledged, because what
    should have been done with them (a dead-letter write) could not be done. They are left
    unacknowledged (for Kafka: nothing is committed past them, so they are read again) and the
    pipeline stops as failed with this message as the reason."""


class PausePartition(GkbroadError):
    """Raise it from handle_message (or handle_batch) to pause the partition of the message (of each
    message of the batch) for `seconds`, or until resumed early (``Pipeline.resume_partition``) when
    `seconds` is None: for a downstream service that answered "429, try later" or is down.

    The message is neither acknowledged nor failed: it, and what followed it in its partition, is
    delivered again, in order, once the pause ends. The other partitions keep flowing, and the
    group membership is kept. `reason` is shown on the status page beside the pause's end.
    """

    def __init__(self, seconds: float | None = None, reason: str = ""):
        if seconds is not None and not seconds >= 0:
            raise ConfigError(f"PausePartition: seconds must be None or a number >= 0, got {seconds!r}")
        super().__init__(f"pause for {seconds} s" if seconds is not None else "pause until resumed", reason)
        self.seconds = seconds
        self.reason = reason


STOP_PROCESS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GreenletExit)
"""The exceptions that mean "stop this process" (GreenletExit: the pipeline killing its own
greenlet). Every other exception raised by code gkbroad calls (handlers, partition_by functions,
producers), `gevent.Timeout` included, is caught where it is called and fails only the messages
concerned; these propagate, end the stage, and stop the pipeline as failed."""
