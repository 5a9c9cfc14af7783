"""The README's Python blocks, read so that tests can run each one as a user would.

Every ```python block of README.md is a snippet. An HTML comment on the line
before its fence (invisible on GitHub) says how to run it, as space-separated
words and key=value pairs:

    <!-- snippet: file=orders.py broker run=sigterm ready=file:orders.jsonl topics=orders -->

- ``file=NAME``: the file the block is saved as. Every named block is written
  next to the one being run, so a block may import another (``from orders
  import Orders``). Unnamed blocks get ``snippet_<line>.py``.
- ``broker``: it needs a Kafka broker; only the integration test runs it,
  with ``localhost:9092`` / ``127.0.0.1:9092`` rewritten to the test broker.
- ``topics=a,b``: topics the integration test creates before running it.
- ``run=``: ``python`` (default: ``python FILE`` must exit 0), ``pytest``
  (``python -m pytest FILE`` must pass), ``sigterm`` (started, then SIGTERM
  once ``ready`` holds; must exit 0) or ``gunicorn`` (``gunicorn -c FILE
  APP`` with ``app=module:app``, then likewise).
- ``ready=``: ``file:NAME`` (the file exists and is not empty) or
  ``http:PATH`` (answers 200 on the port given in the PORT variable).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:(?P<words>.*?)-->\s*$")
_RUN_MODES = ("python", "pytest", "sigterm", "gunicorn")


@dataclasses.dataclass
class Snippet:
    line: int
    code: str
    file: str
    run: str = "python"
    broker: bool = False
    topics: tuple[str, ...] = ()
    ready: str | None = None
    app: str | None = None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.file})"


def _parse_marker(words: str, line: int) -> dict:
    settings: dict = {}
    for word in words.split():
        key, sep, value = word.partition("=")
        if not sep:
            if key != "broker":
                raise ValueError(f"README.md:{line}: unknown snippet flag {key!r}")
            settings["broker"] = True
        elif key == "topics":
            settings["topics"] = tuple(value.split(","))
        elif key in ("file", "run", "ready", "app"):
            settings[key] = value
        else:
            raise ValueError(f"README.md:{line}: unknown snippet setting {key!r}")
    if settings.get("run", "python") not in _RUN_MODES:
        raise ValueError(f"README.md:{line}: run must be one of {', '.join(_RUN_MODES)}, got {settings['run']!r}")
    return settings


def snippets(text: str | None = None) -> list[Snippet]:
    """Every python block of the README, in order, with its marker's settings."""
    lines = (README.read_text() if text is None else text).splitlines()
    found = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if fence.group(1) == "python":
            marker = _MARKER.match(lines[start - 1]) if start else None
            settings = _parse_marker(marker.group("words"), start) if marker else {}
            settings.setdefault("file", f"snippet_{start + 1}.py")
            found.append(Snippet(line=start + 1, code="\n".join(lines[start + 1 : end]) + "\n", **settings))
        i = end + 1
    return found


def write_workspace(directory: pathlib.Path, all_snippets: list[Snippet], rewrite: dict[str, str]) -> None:
    """Save every snippet as its file in `directory`, with the `rewrite` replacements applied."""
    for snippet in all_snippets:
        code = snippet.code
        for old, new in rewrite.items():
            code = code.replace(old, new)
        (directory / snippet.file).write_text(code)
