"""Suite-wide set-up.

GKBROAD_GEVENT_PATCH=1 applies gevent.monkey.patch_all() before anything else
is imported, the way a gevent application must start; scripts/test.sh runs the
suite once without and once with it.

The `report` fixture collects figures that tests measured (records, seconds,
duplicates); they are printed at the end of the run.
"""

import os

if os.environ.get("GKBROAD_GEVENT_PATCH") == "1":
    from gevent import monkey

    monkey.patch_all()

import pytest  # noqa: E402

_reports: list[str] = []


@pytest.fixture
def report():
    """report("what was measured"): printed in the run's summary."""
    return _reports.append


def pytest_terminal_summary(terminalreporter):
    if _reports:
        terminalreporter.section("gkbroad measurements")
        for line in _reports:
            terminalreporter.write_line(line)
