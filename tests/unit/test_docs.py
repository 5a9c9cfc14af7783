"""The README's option tables are generated from the schemas and must match them."""

import pathlib

from gkbroad.docgen import render_readme, schema_table
from gkbroad.options import BatcherOptions

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_option_tables_match_the_schemas():
    text = README.read_text()
    assert render_readme(text) == text, "README.md is stale: run .venv/bin/python scripts/gen_docs.py"


def test_every_table_block_is_filled():
    text = README.read_text()
    assert text.count("<!-- options:") == text.count("<!-- /options:") >= 8
    assert "| `batch_size` | int >= 1 | `100` |" in text


def test_table_lists_every_field_with_its_description():
    table = schema_table(BatcherOptions)
    for name, field in BatcherOptions().fields.items():
        assert f"| `{name}` |" in table
        assert field.metadata["description"] in table
