"""Every Python block of README.md runs: the ones that need no broker here, the others in
tests/integration/test_readme_broker_snippets.py (see tests/readme_snippets.py for the markers)."""

import subprocess
import sys

import pytest

from tests.readme_snippets import Snippet, snippets, write_workspace

SNIPPETS = snippets()
PLAIN = [s for s in SNIPPETS if not s.broker]


def test_the_readme_has_python_blocks_of_both_kinds():
    assert len(PLAIN) >= 3
    assert any(s.broker for s in SNIPPETS)


def test_every_block_compiles():
    for snippet in SNIPPETS:
        compile(snippet.code, str(snippet), "exec")


def test_file_names_are_unique():
    names = [s.file for s in SNIPPETS]
    assert len(names) == len(set(names)), names


def test_blocks_that_run_until_sigterm_say_when_they_are_ready():
    for snippet in SNIPPETS:
        if snippet.run in ("sigterm", "gunicorn"):
            assert snippet.broker and snippet.ready, f"{snippet}: needs `broker` and `ready=`"
        if snippet.run == "gunicorn":
            assert snippet.app, f"{snippet}: run=gunicorn needs app=module:app"


def test_markers_are_checked():
    text = "x\n<!-- snippet: file=a.py run=forever -->\n```python\npass\n```\n"
    with pytest.raises(ValueError, match="run must be one of"):
        snippets(text)
    parsed = snippets("<!-- snippet: file=a.py broker topics=t1,t2 -->\n```python\npass\n```\n```sh\nls\n```\n")
    assert parsed == [Snippet(line=2, code="pass\n", file="a.py", broker=True, topics=("t1", "t2"))]


@pytest.mark.parametrize("snippet", PLAIN, ids=str)
def test_block_runs(snippet, tmp_path):
    write_workspace(tmp_path, SNIPPETS, rewrite={})
    if snippet.run == "pytest":
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", snippet.file]
    else:
        command = [sys.executable, snippet.file]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{snippet} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
