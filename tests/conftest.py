"""Suite-wide set-up.

GKBROAD_GEVENT_PATCH=1 applies gevent.monkey.patch_all() before anything else
is imported, the way a gevent application must start; scripts/test.sh runs the
suite once without and once with it.

`--slow` runs the fault tests at full size (.ci/run turns it on); the `slow`
fixture tells a test whether it was given.

The `report` fixture collects figures that tests measured (records, seconds,
duplicates); they are printed at the end of the run, also when pytest-xdist
ran the tests in worker processes.

Tests marked `long` (tens of seconds each) are collected first, so that a
parallel run (scripts/test.sh passes `-n`) starts them at once instead of
ending on one of them.
"""

import os

if os.environ.get("GKBROAD_GEVENT_PATCH") == "1":
    from gevent import monkey

    monkey.patch_all()

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import gevent

        def _keep_the_hub_awake():
            """A pytest-xdist worker waits for its next test on an Event that execnet's reader
            thread (a real thread, started before the patch) sets; the patched Event is gevent's,
            and a hub with nothing else to wait on would end that wait with LoopExit."""
            while True:
                gevent.sleep(1)

        gevent.spawn(_keep_the_hub_awake)

import pytest  # noqa: E402

MEASUREMENT = "gkbroad measurement"
_reports: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run the fault tests at full size (CI does)")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def slow(request) -> bool:
    return request.config.getoption("--slow")


@pytest.fixture
def report(request):
    """report("what was measured"): printed in the run's summary."""

    def add(line: str) -> None:
        request.node.user_properties.append((MEASUREMENT, line))

    return add


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _reports.extend(line for key, line in report.user_properties if key == MEASUREMENT)


def pytest_terminal_summary(terminalreporter):
    if _reports:
        terminalreporter.section("gkbroad measurements")
        for line in _reports:
            terminalreporter.write_line(line)
