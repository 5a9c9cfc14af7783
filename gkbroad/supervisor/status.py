"""The supervisor's status: every worker's own status, asked for when a page is asked for, put together.

Each worker serves gkbroad.wsgi's status app on a private loopback port (see
worker.py); `SupervisorStatus` asks each running worker for its /status.json at
once, with a short timeout, and serves the same routes over the whole
(`gkbroad.wsgi.status_routes`). The supervisor is healthy only when every worker
is running, answers, and is healthy itself: a worker that is missing (starting,
dead and waiting to be started again) or does not answer counts against it.
It is ready when every worker is ready.
"""

from __future__ import annotations

import http.client
import json
import os
from html import escape
from typing import Any

import gevent

from ..wsgi.metrics import metrics_response
from ..wsgi.page import document, health_line, pipeline_sections
from .process import WorkerProcess
from .supervisor import Supervisor

__all__ = ["STATUS_TIMEOUT", "SupervisorStatus"]

# Seconds a worker has to answer for its status before it counts as not answering.
STATUS_TIMEOUT = 2.0

_COUNTERS = ("handled", "failed", "batches", "hub_blocked")


class SupervisorStatus:
    """The status routes' source (gkbroad.wsgi.StatusSource) for a Supervisor and its workers."""

    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor

    def unhealthy(self) -> str | None:
        reason: str | None = self.status()["unhealthy_reason"]
        return reason

    def readiness(self) -> tuple[bool, str]:
        status = self.status()
        return status["ready"], status["readiness"]

    def status(self) -> dict[str, Any]:
        """The supervisor's state, the totals, and one entry per worker (its own status under "status")."""
        workers = self.supervisor.workers
        asked = [gevent.spawn(_ask_status, worker.status_port) for worker in workers]
        gevent.joinall(asked)
        entries = [_entry(worker, job.value) for worker, job in zip(workers, asked, strict=True)]
        problems = [entry["unhealthy_reason"] for entry in entries if entry["unhealthy_reason"]]
        if self.supervisor.state != "running":
            problems.insert(0, f"the supervisor is {self.supervisor.state}")
        not_ready = [entry["readiness"] for entry in entries if not entry["ready"]]
        notes = [entry["readiness"] for entry in entries if entry["ready"] and entry["readiness"] != "ready"]
        statuses = [entry["status"] for entry in entries if entry["status"] is not None]
        lags = [entry["lag"] for entry in entries if entry["lag"] is not None]
        return {
            "name": self.supervisor.name,
            "state": self.supervisor.state,
            "pid": os.getpid(),
            "processes": len(workers),
            "healthy": not problems,
            "unhealthy_reason": "; ".join(problems) or None,
            "ready": not problems and not not_ready,
            "readiness": "; ".join(problems + not_ready) or "; ".join(notes) or "ready",
            "counters": {name: sum(status["counters"][name] for status in statuses) for name in _COUNTERS},
            "records_per_second": round(sum(status["records_per_second"] for status in statuses), 1),
            "total_lag": sum(lags) if lags else None,
            "workers": entries,
        }

    def metrics(self) -> tuple[str, str, bytes]:
        """The supervisor's /metrics: with ``PROMETHEUS_MULTIPROC_DIR`` set, the sums over every worker."""
        return metrics_response(None)

    def page(self, status: dict[str, Any]) -> str:
        counters = status["counters"]
        lag = status["total_lag"]
        body = [
            f"<h1>{escape(status['name'])} &mdash; supervisor {escape(status['state'])}</h1>",
            f"<p>{health_line(status)} &middot; supervisor pid {status['pid']} &middot; "
            f"{status['processes']} workers</p>",
            '<p class="counters">',
            f"<span>{status['records_per_second']:.1f} records/s (last minute, all workers)</span>",
            f"<span>handled {counters['handled']}</span>",
            f"<span>failed {counters['failed']}</span>",
            f"<span>total lag {'?' if lag is None else lag}</span>",
            "</p>",
            _worker_table(status["workers"]),
        ]
        for entry in status["workers"]:
            if entry["status"] is not None:
                body.append(f"<h2>worker {entry['index']} &mdash; pid {entry['pid']}</h2>")
                body += pipeline_sections(entry["status"])
        return document(status["name"], body)


def _ask_status(port: int | None) -> dict[str, Any] | str | None:
    """A worker's /status.json, or why it could not be had (a string); None when it has no port yet."""
    if port is None:
        return None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=STATUS_TIMEOUT)
    try:
        connection.request("GET", "/status.json")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return f"its status app answered {response.status} {response.reason}"
        status: dict[str, Any] = json.loads(body)
        return status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"it did not answer its status request within {STATUS_TIMEOUT:.0f}s ({type(exc).__name__}: {exc})"
    finally:
        connection.close()


def _entry(worker: WorkerProcess, answer: dict[str, Any] | str | None) -> dict[str, Any]:
    """One worker's line of the supervisor's status: what the supervisor knows, and what the worker said."""
    status = answer if isinstance(answer, dict) else None
    who = worker.describe()
    if worker.state in ("restarting", "exited"):
        problem = f"{who} is not running" + (f" (it {worker.last_exit})" if worker.last_exit else "")
    elif status is None and isinstance(answer, str):
        problem = f"{who}: {answer}"
    elif status is None:
        problem = f"{who} is {worker.state}: its pipeline has not started yet"
    elif status["unhealthy_reason"]:
        problem = f"{who}: {status['unhealthy_reason']}"
    else:
        problem = None
    ready = problem is None and status is not None and bool(status["ready"])
    readiness = problem or (f"{who}: {status['readiness']}" if status and status["readiness"] != "ready" else "ready")
    partitions = [f"{p['topic']}-{p['partition']}" for p in status["partitions"]] if status else []
    lags = [p["lag"] for p in status["partitions"] if p["lag"] is not None] if status else []
    return {
        "index": worker.index,
        "pid": worker.pid,
        "state": worker.state,
        "restarts": worker.restarts,
        "last_exit": worker.last_exit,
        "healthy": problem is None,
        "unhealthy_reason": problem,
        "ready": ready,
        "readiness": readiness,
        "partitions": partitions,
        "lag": sum(lags) if lags else None,
        "records_per_second": status["records_per_second"] if status else None,
        "status": status,
    }


def _worker_table(entries: list[dict[str, Any]]) -> str:
    rows = [
        "<table><tr><th>worker</th><th>pid</th><th>state</th><th>health</th><th>records/s</th><th>lag</th>"
        "<th>partitions</th><th>restarts</th><th>last exit</th></tr>"
    ]
    for entry in entries:
        health = (
            '<span class="ok">healthy</span>'
            if entry["healthy"]
            else f'<span class="bad">{escape(entry["unhealthy_reason"])}</span>'
        )
        rate = "-" if entry["records_per_second"] is None else f"{entry['records_per_second']:.1f}"
        rows.append(
            f"<tr><td>{entry['index']}</td><td>{entry['pid'] or '-'}</td><td>{escape(entry['state'])}</td>"
            f"<td>{health}</td><td>{rate}</td><td>{'-' if entry['lag'] is None else entry['lag']}</td>"
            f"<td>{escape(', '.join(entry['partitions'])) or '-'}</td><td>{entry['restarts']}</td>"
            f"<td>{escape(entry['last_exit'] or '-')}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)
