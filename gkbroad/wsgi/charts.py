"""Small line charts of the status page's samples, as inline SVG (no script, no font, no request).

Each chart spans the window the samples cover (up to the 15 minutes of
gkbroad.observability.trends), the newest sample at the right edge; its
y axis runs from 0 to the largest value shown, written in the corner with the
newest value. A chart with fewer than two samples says it is waiting for them,
one whose value is unknown (the lag of a pipeline without partitions) says so.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["CHARTS", "render_charts"]

WIDTH, HEIGHT, PAD = 300, 70, 4

# (sample field, title, line colour): the browser test looks for these colours in its screenshot.
CHARTS = (
    ("handled_per_second", "handled / s", "#1f6fb2"),
    ("failed_per_second", "failed / s", "#c0392b"),
    ("lag", "total lag", "#7d3c98"),
)


def render_charts(trends: dict[str, Any] | None) -> str:
    """The charts of a snapshot's ``trends`` (None: a status without the Trends hook)."""
    if not trends:
        return ""
    samples = trends["samples"]
    figures = [_chart(samples, field, title, colour) for field, title, colour in CHARTS]
    minutes = len(samples) * trends["interval"] / 60.0
    caption = f"<p class='note'>{len(samples)} samples, {trends['interval']:g} s apart ({minutes:.1f} min)</p>"
    return '<div class="charts">' + "".join(figures) + "</div>" + caption


def _chart(samples: list[dict[str, Any]], field: str, title: str, colour: str) -> str:
    points = [(s["time"], s[field]) for s in samples if s[field] is not None]
    head = f'<figure class="chart"><figcaption>{escape(title)}'
    if len(samples) < 2:
        return head + ": waiting for samples</figcaption></figure>"
    if len(points) < 2:  # the lag, while no partition reports one
        return head + ": not known</figcaption></figure>"
    first, last = points[0][0], points[-1][0]
    span = (last - first) or 1.0
    top = max(value for _, value in points) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    coords = " ".join(
        f"{PAD + inner_w * (t - first) / span:.1f},{PAD + inner_h * (1 - value / top):.1f}" for t, value in points
    )
    newest = points[-1][1]
    return (
        head + f": {newest:g} now, {top:g} max</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)} over {span:.0f} s">'
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#f6f7f9" stroke="#d5d8dc"/>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        "</svg></figure>"
    )
