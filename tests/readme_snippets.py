"""The Python blocks of README.md and docs/**/*.md, read so that tests can run each one as a user would.

Every ```python block of those pages is a snippet. An HTML comment on the line
before its fence (invisible on GitHub and on the docs site) says how to run it,
as space-separated words and key=value pairs:

    <!-- snippet: file=orders.py broker run=sigterm ready=file:orders.jsonl topics=orders -->

- ``file=NAME``: the file the block is saved as. Every block of every page is
  written next to the one being run, so a block may import another, from its
  own page or any other (``from orders import Orders``, the README's quick
  start). Names must be unique across all pages. Unnamed blocks get
  ``snippet_<page>_<line>.py``.
- ``broker``: it needs a Kafka broker; only the integration test runs it,
  with ``localhost:9092`` / ``127.0.0.1:9092`` rewritten to the test broker.
- ``topics=a,b``: topics the integration test creates before running it.
- ``run=``: ``python`` (default: ``python FILE`` must exit 0), ``pytest``
  (``python -m pytest FILE`` must pass), ``sigterm`` (started, then SIGTERM
  once ``ready`` holds; must exit 0) or ``gunicorn`` (``gunicorn -c FILE
  APP`` with ``app=module:app``, then likewise).
- ``ready=``: ``file:NAME`` (the file exists and is not empty) or
  ``http:PATH`` (answers 200 on the port given in the PORT variable).

A snippet is named ``page:line`` (``docs/guides/retries.md:14``), in test ids
and in every error about its marker.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

from gkbroad.config.docgen import documentation_pages

ROOT = pathlib.Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:(?P<words>.*?)-->\s*$")
_RUN_MODES = ("python", "pytest", "sigterm", "gunicorn")


@dataclasses.dataclass
class Snippet:
    page: str
    line: int
    code: str
    file: str
    run: str = "python"
    broker: bool = False
    topics: tuple[str, ...] = ()
    ready: str | None = None
    app: str | None = None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.file})"


def _parse_marker(words: str, where: str) -> dict:
    settings: dict = {}
    for word in words.split():
        key, sep, value = word.partition("=")
        if not sep:
            if key != "broker":
                raise ValueError(f"{where}: unknown snippet flag {key!r}")
            settings["broker"] = True
        elif key == "topics":
            settings["topics"] = tuple(value.split(","))
        elif key in ("file", "run", "ready", "app"):
            settings[key] = value
        else:
            raise ValueError(f"{where}: unknown snippet setting {key!r}")
    if settings.get("run", "python") not in _RUN_MODES:
        raise ValueError(f"{where}: run must be one of {', '.join(_RUN_MODES)}, got {settings['run']!r}")
    return settings


def _default_file(page: str, line: int) -> str:
    return f"snippet_{re.sub(r'[^0-9A-Za-z]+', '_', page.removesuffix('.md'))}_{line}.py"


def snippets(text: str, page: str) -> list[Snippet]:
    """Every python block of one page's `text`, in order, with its marker's settings."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i].strip())
        if not fence:
            i += 1
            continue
        start = i
        end = start + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if fence.group(1) == "python":
            line = start + 1
            indent = len(lines[start]) - len(lines[start].lstrip())
            marker = _MARKER.match(lines[start - 1].strip()) if start else None
            settings = _parse_marker(marker.group("words"), f"{page}:{line}") if marker else {}
            settings.setdefault("file", _default_file(page, line))
            code = "\n".join(text_line[indent:] for text_line in lines[start + 1 : end]) + "\n"
            found.append(Snippet(page=page, line=line, code=code, **settings))
        i = end + 1
    return found


def all_snippets(root: pathlib.Path = ROOT) -> list[Snippet]:
    """Every python block of README.md and of every page under docs/."""
    found = []
    for path in documentation_pages(root):
        found += snippets(path.read_text(), str(path.relative_to(root)))
    return found


def write_workspace(directory: pathlib.Path, every_snippet: list[Snippet], rewrite: dict[str, str]) -> None:
    """Save every snippet as its file in `directory`, with the `rewrite` replacements applied."""
    for snippet in every_snippet:
        code = snippet.code
        for old, new in rewrite.items():
            code = code.replace(old, new)
        (directory / snippet.file).write_text(code)
