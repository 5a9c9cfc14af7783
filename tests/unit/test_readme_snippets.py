"""Every Python block of README.md and docs/**/*.md runs: the ones that need no broker here, the others
in tests/integration/test_readme_broker_snippets.py (see tests/readme_snippets.py for the markers)."""

import subprocess
import sys

import pytest

from tests.readme_snippets import Snippet, all_snippets, snippets, write_workspace

# Patch-neutral (the blocks run in child processes of their own, which the patching of this one
# does not reach): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

SNIPPETS = all_snippets()
PLAIN = [s for s in SNIPPETS if not s.broker]


def test_the_pages_have_python_blocks_of_both_kinds():
    pages = {s.page for s in SNIPPETS}
    assert "README.md" in pages and any(page.startswith("docs/") for page in pages), sorted(pages)
    assert len(PLAIN) >= 3, [str(s) for s in SNIPPETS]
    assert any(s.broker for s in SNIPPETS), [str(s) for s in SNIPPETS]


def test_every_block_compiles():
    for snippet in SNIPPETS:
        compile(snippet.code, str(snippet), "exec")


def test_file_names_are_unique_across_pages():
    seen: dict[str, str] = {}
    for snippet in SNIPPETS:
        assert snippet.file not in seen, f"{snippet} and {seen[snippet.file]} are both saved as {snippet.file}"
        seen[snippet.file] = str(snippet)


def test_blocks_that_run_until_sigterm_say_when_they_are_ready():
    for snippet in SNIPPETS:
        if snippet.run in ("sigterm", "gunicorn"):
            assert snippet.broker and snippet.ready, f"{snippet}: needs `broker` and `ready=`"
        if snippet.run == "gunicorn":
            assert snippet.app, f"{snippet}: run=gunicorn needs app=module:app"


def test_markers_are_checked():
    text = "x\n<!-- snippet: file=a.py run=forever -->\n```python\npass\n```\n"
    with pytest.raises(ValueError, match=r"docs/x\.md:3: run must be one of"):
        snippets(text, "docs/x.md")
    parsed = snippets("<!-- snippet: file=a.py broker topics=t1,t2 -->\n```python\npass\n```\n```sh\nls\n```\n", "p.md")
    assert parsed == [Snippet(page="p.md", line=2, code="pass\n", file="a.py", broker=True, topics=("t1", "t2"))]


def test_an_indented_block_is_a_snippet_and_unnamed_ones_are_named_by_page_and_line():
    text = "1. Do this:\n\n   ```python\n   if True:\n       pass\n   ```\n"
    assert snippets(text, "docs/guides/x.md") == [
        Snippet(page="docs/guides/x.md", line=3, code="if True:\n    pass\n", file="snippet_docs_guides_x_3.py")
    ]


@pytest.mark.parametrize("snippet", PLAIN, ids=str)
def test_block_runs(snippet, tmp_path):
    write_workspace(tmp_path, SNIPPETS, rewrite={})
    if snippet.run == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", snippet.file]
    else:
        command = [sys.executable, snippet.file]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{snippet} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
