"""The console script's broker command and the demo, run as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gkbroad_broker_prints_a_working_address_and_stops_on_sigint():
    process = subprocess.Popen([sys.executable, "-m", "gkbroad", "broker"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("broker listening on 127.0.0.1:"), line
        address = line.split()[3]
        admin = KafkaAdminClient(bootstrap_servers=address, client_id="gkbroad-tests")
        try:
            admin.create_topics([NewTopic("entry-point-check", num_partitions=1, replication_factor=1)])
            assert "entry-point-check" in admin.list_topics()
        finally:
            admin.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_demo_consumes_every_order_and_commits_to_the_end(bootstrap_servers):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "demo.py"),
            "--bootstrap-servers",
            bootstrap_servers,
            "--orders",
            "600",
            "--partitions",
            "4",
            "--timeout",
            "90",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "committed = end      True" in result.stdout
    assert "orders produced      600" in result.stdout
