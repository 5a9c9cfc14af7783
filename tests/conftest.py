"""Suite-wide set-up.

GKBROAD_GEVENT_PATCH=1 applies gevent.monkey.patch_all() before anything else
is imported, the way a gevent application must start; scripts/test.sh runs the
suite once without and once with it.

`--slow` runs the fault tests at full size (.ci/run turns it on); the `slow`
fixture tells a test whether it was given.

The `report` fixture collects figures that tests measured (records, seconds,
duplicates); they are printed at the end of the run, also when pytest-xdist
ran the tests in worker processes.

Tests marked `long` (tens of seconds each) are collected first, the longest
first (`@pytest.mark.long(seconds=N)` says how long a test takes when that is
well above the rest), so that a parallel run (scripts/test.sh passes `-n`)
starts them at once instead of ending on one of them. pytest-xdist hands each
worker two consecutive tests to begin with and the second waits for the first,
so the first two per worker are paired longest with shortest.
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


LONG_SECONDS = 20
"""What a test marked `long` without `seconds=` is taken to need."""


def _expected_seconds(item) -> float:
    marker = item.get_closest_marker("long")
    return 0 if marker is None else marker.kwargs.get("seconds", LONG_SECONDS)


def pytest_collection_modifyitems(items):
    items.sort(key=_expected_seconds, reverse=True)  # stable: the rest keep their order
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    first = items[: 2 * workers]
    if workers and len(first) == 2 * workers:
        # Worker i is given first[2i] and first[2i + 1]: the i-th longest with the i-th shortest of these.
        items[: 2 * workers] = [pick for i in range(workers) for pick in (first[i], first[-1 - i])]


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
