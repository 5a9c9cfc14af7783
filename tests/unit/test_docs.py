"""The option tables of the documentation pages are generated from the schemas and must match them."""

import pathlib

import pytest

from gkbroad.config.docgen import TABLES, pages_with_option_tables, render_option_tables, schema_table
from gkbroad.config.schemas import BatcherOptions

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = pages_with_option_tables(ROOT)


def _all_tables_text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def test_every_page_with_option_tables_matches_the_schemas():
    assert PAGES, "no documentation page holds an option table"
    for page in PAGES:
        text = page.read_text()
        stale = render_option_tables(text) != text
        assert not stale, f"{page.relative_to(ROOT)} is stale: run .venv/bin/python scripts/gen_docs.py"


def test_every_schema_has_its_table_once_and_each_is_filled():
    text = _all_tables_text()
    names = sorted(name for group in TABLES for name in group())
    for name in names:
        opened, closed = text.count(f"<!-- options:{name} -->"), text.count(f"<!-- /options:{name} -->")
        assert opened == closed == 1, f"table {name}: {opened} opening and {closed} closing markers in {PAGES}"
    assert "| `batch_size` | int >= 1 | `100` |" in text


def test_table_lists_every_field_with_its_description():
    table = schema_table(BatcherOptions)
    for name, field in BatcherOptions().fields.items():
        assert f"| `{name}` |" in table
        assert field.metadata["description"] in table


def test_unset_kafka_options_show_the_installed_kafka_python_default():
    from gkbroad.kafka.client import CONSUMER_DEFAULTS

    text = _all_tables_text()
    session = CONSUMER_DEFAULTS["session_timeout_ms"]
    assert f"| `session_timeout_ms` | int >= 1 | kafka-python's: `{session}` |" in text


def test_fetch_max_bytes_shows_each_clients_default():
    from gkbroad.kafka.client import LIBRDKAFKA_PARTITION_FETCH_BYTES, PARTITION_FETCH_BYTES

    text = _all_tables_text()
    assert (
        f"| `fetch_max_bytes` | int >= 1 | the client's: `{PARTITION_FETCH_BYTES}` on kafka-python, "
        f"`{LIBRDKAFKA_PARTITION_FETCH_BYTES}` on librdkafka |" in text
    )


def test_each_kafka_setting_named_in_the_tables_is_the_one_the_option_sets():
    """The `kafka_setting` metadata the table reads its default from must be where the value goes."""
    from gkbroad.config.validation import validate
    from gkbroad.kafka.group.settings import GroupSettings
    from gkbroad.kafka.options import FetchStrategyOptions, KafkaProducerOptions, TopicOptions

    base = {"group_name": "g", "client": {"bootstrap_servers": "x:1"}, "drain_timeout": 1000}
    checked = 0
    for schema, place in ((KafkaProducerOptions, "top"), (FetchStrategyOptions, "fetch"), (TopicOptions, "topic")):
        for name, field in schema().fields.items():
            setting = field.metadata.get("kafka_setting")
            if not setting:
                continue
            options = {**base, "topics": [{"name": "t"}]}
            if place == "top":
                options[name] = 12345
            elif place == "fetch":
                options["fetch_strategy"] = {name: 12345}
            else:
                options["topics"][0][name] = 12345
            group = GroupSettings.from_options(validate(KafkaProducerOptions, options))
            settings = group.kafka_settings(group.client)
            assert settings.get(setting) == 12345, f"{schema.__name__}.{name} does not set {setting}"
            checked += 1
    assert checked == 7
