"""The one exception hierarchy of gkbroad: catch GkbroadError to catch them all."""


class GkbroadError(Exception):
    """Base class of every error gkbroad raises on purpose."""


class ConfigError(GkbroadError, ValueError):
    """An option was missing or invalid.

    Raised at construction or start, never later, with a message that names the
    option path, what was expected and what was given.
    """


class PipelineStateError(GkbroadError, RuntimeError):
    """A pipeline was asked to do something its current state does not allow
    (start twice, push test messages before start, ...)."""
