"""The core installs and runs without the optional extras: prometheus-client, opentelemetry and
confluent-kafka are needed only by the options that use them, and a missing one is a ConfigError naming the extra.

The check runs in a fresh interpreter whose import system refuses both packages, as on a machine
where they were never installed (this venv has them, for the tests of the extras themselves)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import requires

from tests.helpers.support import root_on_pythonpath

EXTRA_PACKAGES = ("prometheus_client", "opentelemetry", "confluent_kafka")

WITHOUT_EXTRAS = f"""
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRA_PACKAGES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, Refuse())

import gkbroad
from gkbroad import testing
from gkbroad.errors import ConfigError
from gkbroad.wsgi import status_app

class Passing(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        return message

result = {{}}
with testing.running(Passing, name="core", producer={{"module": testing.DummyProducer}}, processors={{"default": {{}}}}) as running:
    result["acked"] = len(testing.wait_for_ack(running, testing.test_batch(running, [1, 2, 3]))[0])
    answer = {{}}
    body = b"".join(status_app(running)({{"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}},
                                        lambda status, headers: answer.update(status=status)))
    result["metrics"] = [answer["status"], body.decode()]
librdkafka = {{"group_name": "g", "client_library": "librdkafka", "client": {{"bootstrap.servers": "x:1"}},
               "topics": [{{"name": "t"}}]}}
from gkbroad.kafka import Producer
for options in ({{"tracing": True}}, {{"metrics": {{"prometheus": {{}}}}}}, {{"producer": {{"module": (Producer, librdkafka)}}}}):
    try:
        Passing(**{{"name": "x", "producer": {{"module": testing.DummyProducer}}, "processors": {{"default": {{}}}}, **options}})
    except ConfigError as exc:
        result.setdefault("errors", []).append(str(exc))
result["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in {EXTRA_PACKAGES!r})
print(json.dumps(result))
"""


def test_the_core_runs_and_serves_its_pages_without_the_extras():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS], capture_output=True, text=True, timeout=60, env=root_on_pythonpath()
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["acked"] == 3
    assert result["metrics"][0].startswith("404")
    assert "pip install 'gkbroad[prometheus]'" in result["metrics"][1]
    tracing, prometheus, librdkafka = result["errors"]
    assert tracing.startswith("tracing: needs the 'otel' extra") and "pip install 'gkbroad[otel]'" in tracing
    assert prometheus.startswith("metrics.prometheus: needs the 'prometheus' extra")
    assert librdkafka.startswith("producer.module.client_library: needs the 'librdkafka' extra")
    assert "pip install 'gkbroad[librdkafka]'" in librdkafka
    assert result["loaded"] == []


def test_the_extras_are_not_requirements_of_the_core():
    extra_only = [
        r
        for r in requires("gkbroad") or ()
        if r.split()[0].lower().startswith(("prometheus", "opentelemetry", "confluent"))
    ]
    assert extra_only and all("extra ==" in r for r in extra_only), extra_only
