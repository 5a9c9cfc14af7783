"""The kafka-python private names gkbroad.kafka.client relies on still exist."""

import inspect
import re

import kafka
import pytest

from gkbroad.kafka.client import KAFKA_PYTHON_CHECKED, PRIVATE_NAMES
from gkbroad.kafka.client import consumer as client_module

# Patch-neutral (pure data): scripts/test.sh runs it once, without gevent's patching.
pytestmark = pytest.mark.patch_neutral


def _defines(cls, name):
    """True if ``cls`` has ``name`` as a class attribute or assigns ``self.<name>`` in its source."""
    if hasattr(cls, name):
        return True
    source = "".join(inspect.getsource(klass) for klass in cls.__mro__ if klass.__module__.startswith("kafka"))
    return re.search(rf"self\.{re.escape(name)}\s*[:=]", source) is not None


@pytest.mark.parametrize("cls, name", PRIVATE_NAMES, ids=[f"{c.__name__}.{n}" for c, n in PRIVATE_NAMES])
def test_each_private_name_used_exists_in_the_installed_kafka_python(cls, name):
    assert _defines(cls, name), (
        f"kafka-python {kafka.__version__} has no {cls.__name__}.{name}; gkbroad.kafka.client was checked "
        f"against {', '.join(KAFKA_PYTHON_CHECKED)}"
    )


def test_the_check_notices_a_missing_attribute():
    assert not _defines(PRIVATE_NAMES[0][0], "_no_such_attribute")


def test_the_docstring_lists_every_private_name_and_the_version_checked():
    doc = client_module.__doc__
    for cls, name in PRIVATE_NAMES:
        assert f"{cls.__name__}.{name}" in doc or f"``{name}``" in doc, name
    for version in KAFKA_PYTHON_CHECKED:
        assert version in doc
