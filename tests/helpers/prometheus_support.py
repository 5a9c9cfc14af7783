"""Reading a /metrics answer the way Prometheus does: prometheus_client's own text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.web_support import get


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of every sample at `url`."""
    status, body = get(url)
    assert status == 200, (status, body[:300])
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly `labels`, or None."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples `name` whose labels include `labels` (over processes, partitions...)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))
