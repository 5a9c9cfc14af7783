"""Keeping secrets out of everything gkbroad shows: errors, logs, reprs, status pages, metrics.

Client settings carry passwords and tokens. Whatever displays options or
settings passes them through `redact()` first (or keeps them in a
`SecretSettings`, whose repr redacts itself), so a secret never reaches a
ConfigError message, a log line or a status page.

A setting is secret when kafka-python documents it as one (`SECRET_SETTINGS`)
or when its name says so (password, secret, token, credential, ...); proxy
URLs count too, since they may carry ``user:password@``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "SECRET_SETTINGS", "SecretSettings", "is_secret", "redact", "redacted_repr", "scrub"]

REDACTED = "<redacted>"

# kafka-python and librdkafka settings that hold a secret or may embed one (librdkafka's
# sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, ... are caught by their names).
SECRET_SETTINGS = frozenset(
    {
        "sasl_plain_password",
        "ssl_password",
        "sasl_oauth_token_provider",
        "sasl_kerberos_name",
        "ssl_context",
        "proxy_url",
        "socks5_proxy",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    }
)

# Options that hold a mapping of settings: anything else given there is shown by its type only.
_SETTINGS_MAPPINGS = frozenset({"client"})

_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|private|api_?key", re.IGNORECASE)


def is_secret(name: Any) -> bool:
    """True when a setting of this name may hold a secret."""
    return isinstance(name, str) and (name in SECRET_SETTINGS or _SECRET_NAME.search(name) is not None)


def redact(value: Any, name: Any = None) -> Any:
    """A copy of `value` safe to show: every secret setting's value replaced by REDACTED.

    Walks mappings, lists and tuples; `name` is the setting `value` belongs to,
    if any (a secret's value is redacted whatever its type, and something
    other than a mapping given as `client` is shown by its type only). Other
    values are returned as they are.
    """
    if is_secret(name) and value is not None:
        return REDACTED
    if name in _SETTINGS_MAPPINGS and value is not None and not isinstance(value, dict):
        return f"<{type(value).__name__}, not shown>"
    if isinstance(value, dict):
        return {key: redact(item, key) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(redact(item) for item in value)
    return value


def redacted_repr(value: Any, name: Any = None) -> str:
    """repr() of `value` with its secrets redacted."""
    return repr(redact(value, name))


def scrub(text: str, settings: Any) -> str:
    """`text` with the value of every secret setting of `settings` that it quotes replaced by REDACTED.

    For messages built from something else's words (a library's exception), which
    may quote a setting back: redact() cannot reach inside such a string."""
    if not isinstance(settings, dict):
        return text
    secrets = [str(value) for name, value in settings.items() if is_secret(name) and isinstance(value, (str, bytes))]
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class SecretSettings(dict[str, Any]):
    """A dict of client settings whose repr and str never show a secret.

    It is an ordinary dict otherwise: code that needs the real values (the
    kafka-python adapter) reads them as usual.
    """

    def __repr__(self) -> str:
        return redacted_repr(dict(self))

    __str__ = __repr__
