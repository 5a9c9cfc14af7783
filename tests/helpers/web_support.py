"""What the WSGI embedding tests share: sample orders, a free port, HTTP reads, example processes."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

from gkbroad.cli.samples import sample_orders
from tests.helpers.support import ROOT, root_on_pythonpath

EXAMPLES = str(ROOT / "examples")


def order_values(count: int) -> list[bytes]:
    """The demo's sample orders (JSON, about 1% invalid), as record values."""
    return [value for _, value in sample_orders(count)]


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET on a new connection; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> dict:
    status, body = get(url)
    assert status == 200, (status, body)
    return json.loads(body)


def example_env(bootstrap_servers: str, topic: str, group: str, client_library: str = "kafka-python") -> dict:
    """The environment the examples read their Kafka settings from (examples/orders_service.py)."""
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "ORDERS_TOPIC": topic,
        "ORDERS_GROUP": group,
        "KAFKA_CLIENT_LIBRARY": client_library,
    }
    return {**root_on_pythonpath(), **settings}


def stop_process(process: subprocess.Popen, log_path) -> str:
    """Kill a process a failed test left running; returns its log for the failure message."""
    if process.poll() is None:
        process.kill()
        process.wait(10)
    return open(log_path).read()[-4000:]
