"""README.md's links into the repository lead somewhere.

`mkdocs build --strict` checks every link between the pages of docs/, anchors
included; README.md is not one of those pages, so its links are checked here,
against the heading ids the docs site gives each page.
"""

import pathlib
import re

import pytest
from markdown.extensions.toc import slugify

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

ROOT = pathlib.Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#+ (.+)$", re.M)


def _anchors(page: pathlib.Path) -> set[str]:
    return {slugify(heading.replace("`", ""), "-") for heading in _HEADING.findall(page.read_text())}


def _relative_links(text: str) -> list[str]:
    return [m.group("target") for m in _LINK.finditer(text) if "://" not in m.group("target")]


def _broken(text: str) -> list[str]:
    broken = []
    for target in _relative_links(text):
        path, _, anchor = target.partition("#")
        page = ROOT / path
        if not page.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(page):
            broken.append(f"{target}: {path} has no heading with that id")
    return broken


def test_every_relative_link_of_the_readme_resolves():
    text = (ROOT / "README.md").read_text()
    assert len(_relative_links(text)) >= 10
    assert _broken(text) == []


def test_a_broken_link_or_anchor_is_reported():
    text = "[a](docs/cli.md) [b](docs/nowhere.md) [c](docs/cli.md#nowhere) [d](https://example.org/x.md)"
    assert _broken(text) == [
        "docs/nowhere.md: no such file",
        "docs/cli.md#nowhere: docs/cli.md has no heading with that id",
    ]
