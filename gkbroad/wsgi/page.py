"""The status page: one self-contained HTML document, no script, no external assets.

It refreshes itself with a meta tag. Inline SVG charts (gkbroad.wsgi.charts) show
throughput, failures and total lag over the last 15 minutes; the lag of each
partition is a bar whose length is relative to the largest lag on the page,
with an arrow for its trend over the last minute. Every value is escaped.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from ..observability.counters import total_lag
from .charts import render_charts

__all__ = ["REFRESH_SECONDS", "document", "health_line", "pipeline_sections", "render_page"]

REFRESH_SECONDS = 3

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.ok { color: #176317; } .bad { color: #a01010; font-weight: bold; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { padding: .2em .7em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
.bar { background: #4a7fd0; height: .8em; min-width: 1px; }
.barcell { width: 16em; text-align: left; }
.counters span { margin-right: 1.5em; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { margin: 0; } .chart figcaption { font-size: .85em; color: #555; }
.note { font-size: .85em; color: #777; margin-top: 0; }
.rising { color: #a01010; } .falling { color: #176317; }
"""

# lag_trend of a partition -> (arrow, class)
_TRENDS = {"rising": ("&uarr;", "rising"), "falling": ("&darr;", "falling"), "steady": ("&rarr;", "steady")}


def render_page(status: dict[str, Any]) -> str:
    """The HTML page for a snapshot (gkbroad.observability.status.snapshot)."""
    body = [
        f"<h1>{escape(status['name'])} &mdash; {escape(status['state'])}</h1>",
        f"<p>{health_line(status)} &middot; pid {status['pid']}</p>",
        *pipeline_sections(status),
    ]
    return document(status["name"], body)


def health_line(status: dict[str, Any]) -> str:
    """Healthy or why not, and ready or why not, from a status's unhealthy_reason, ready and readiness."""
    problem = status["unhealthy_reason"]
    health = f'<span class="bad">unhealthy: {escape(problem)}</span>' if problem else '<span class="ok">healthy</span>'
    ready = "ready" if status["ready"] else "not ready"
    return health + (
        f' &middot; <span class="{"ok" if status["ready"] else "bad"}">{ready}: {escape(status["readiness"])}</span>'
    )


def document(title: str, body: list[str]) -> str:
    """A whole page around `body` (HTML fragments, already escaped): refresh, style, links to the other routes."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>gkbroad: {escape(title)}</title><style>{_STYLE}</style></head><body>",
        *body,
        '<p><a href="status.json">status.json</a> &middot; <a href="healthz">healthz</a> &middot; '
        '<a href="readyz">readyz</a> &middot; <a href="metrics">metrics</a></p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def pipeline_sections(status: dict[str, Any]) -> list[str]:
    """The counters, partitions and stages of one pipeline's snapshot, as HTML fragments."""
    counters = status["counters"]
    lag = total_lag(status)
    return [
        '<p class="counters">',
        f"<span>{status['records_per_second']:.1f} records/s (last minute)</span>",
        f"<span>handled {counters['handled']}</span>",
        f"<span>failed {counters['failed']}</span>",
        f"<span>batches {counters['batches']}</span>",
        f"<span>hub blocked {counters['hub_blocked']}</span>",
        f"<span>in flight {status['in_flight']}</span>",
        f"<span>total lag {'?' if lag is None else lag}</span>",
        "</p>",
        render_charts(status.get("trends")),
        _partition_table(status["partitions"]),
        *map(_transactions_line, status.get("transactions") or ()),
        _stage_table(status),
    ]


def _paused(row: dict[str, Any]) -> str:
    """The paused cell: a handler's pause shows its reason and end."""
    pause = row.get("pause")
    if not pause:
        return "yes" if row["paused"] else "no"
    until = pause["until"]
    end = "until resumed" if until is None else "until " + time.strftime("%H:%M:%S", time.localtime(until))
    return escape(f"by a handler {end}" + (f": {pause['reason']}" if pause["reason"] else ""))


def _partition_table(partitions: list[dict[str, Any]]) -> str:
    if not partitions:
        return "<p>No partitions assigned to this process.</p>"
    widest = max((p["lag"] or 0) for p in partitions) or 1
    rows = [
        "<table><tr><th>topic-partition</th><th>committed</th><th>end offset</th><th>lag</th>"
        '<th class="barcell"></th><th>buffered</th><th>in flight</th><th>paused</th><th>epoch</th></tr>'
    ]
    for p in partitions:
        width = 100.0 * (p["lag"] or 0) / widest
        rows.append(
            f"<tr><td>{escape(p['topic'])}-{p['partition']}</td><td>{_cell(p['committed'])}</td>"
            f"<td>{_cell(p['end_offset'])}</td><td>{_cell(p['lag'])} {_trend(p.get('lag_trend'))}</td>"
            f'<td class="barcell"><div class="bar" style="width:{width:.1f}%"></div></td>'
            f"<td>{_cell(p['buffered'])}</td><td>{_cell(p['in_flight'])}</td>"
            f"<td>{_paused(p)}</td><td>{_cell(p['epoch'])}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _stage_table(status: dict[str, Any]) -> str:
    rows = ["<table><tr><th>stage</th><th>greenlets</th></tr>"]
    rows += [f"<tr><td>{escape(name)}</td><td>{count}</td></tr>" for name, count in status["concurrency"].items()]
    rows.append("</table>")
    for producer in status["producers"]:
        owned = producer["partitions"]
        text = "-" if owned is None else ", ".join(f"{topic}-{partition}" for topic, partition in owned) or "none"
        rows.append(f"<p>{escape(producer['name'])}: {escape(text)}</p>")
    return "\n".join(rows)


def _transactions_line(writer: dict[str, Any]) -> str:
    """One exactly-once writer: its transactional id and state, transactions committed and aborted."""
    duration = writer["last_duration"]
    return (
        f"<p>transactional_id {escape(str(writer['transactional_id']))}: {escape(str(writer['state']))}, "
        f"{writer['committed']} transactions committed, {writer['aborted']} aborted, "
        f"{writer['offset_only']} offset-only commits, {writer['staged_records']} records staged"
        f"{'' if duration is None else f', last took {duration * 1000:.0f} ms'}</p>"
    )


def _trend(trend: str | None) -> str:
    if trend is None:
        return ""
    arrow, css = _TRENDS[trend]
    return f'<span class="{css}" title="lag {trend} over the last minute">{arrow}</span>'


def _cell(value: object) -> str:
    return "-" if value is None else escape(str(value))
