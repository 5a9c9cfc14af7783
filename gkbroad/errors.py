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


STOP_PROCESS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GreenletExit)
"""The exceptions that mean "stop this process" (GreenletExit: the pipeline killing its own
greenlet). Every other exception raised by code gkbroad calls (handlers, partition_by functions,
producers), `gevent.Timeout` included, is caught where it is called and fails only the messages
concerned; these propagate, end the stage, and stop the pipeline as failed."""
