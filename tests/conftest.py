"""Suite-wide set-up.

GKBROAD_GEVENT_PATCH=1 applies gevent.monkey.patch_all() before anything else
is imported, the way a gevent application must start; scripts/test.sh runs the
suite once without and once with it.

`--slow` runs the fault tests at full size (.ci/run turns it on); the `slow`
fixture tells a test whether it was given.

The `report` fixture collects figures that tests measured (records, seconds,
duplicates); they are printed at the end of the run.
"""

import os

if os.environ.get("GKBROAD_GEVENT_PATCH") == "1":
    from gevent import monkey

    monkey.patch_all()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import gevent

        def _keep_hub_awake():
            while True:
                gevent.sleep(1)

        gevent.spawn(_keep_hub_awake)

import pytest  # noqa: E402

_reports: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run the fault tests at full size (CI does)")


@pytest.fixture
def slow(request) -> bool:
    return request.config.getoption("--slow")


@pytest.fixture
def report():
    """report("what was measured"): printed in the run's summary."""
    return _reports.append


def pytest_terminal_summary(terminalreporter):
    if _reports:
        terminalreporter.section("gkbroad measurements")
        for line in _reports:
            terminalreporter.write_line(line)
