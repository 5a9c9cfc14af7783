"""A trace drawn as a waterfall (one bar per span, children indented under their parents), as an
HTML page of inline SVG: what the browser test screenshots for the docs, from the spans the SDK's
in-memory exporter kept."""

from __future__ import annotations

from html import escape

BAR = "#2e86c1"
ROW, LABEL_WIDTH, BAR_WIDTH = 26, 430, 520


def _depths(spans) -> dict[int, int]:
    by_id = {s.context.span_id: s for s in spans}
    depths = {}

    def depth(span) -> int:
        if span.context.span_id not in depths:
            parent = by_id.get(span.parent.span_id) if span.parent else None
            depths[span.context.span_id] = 0 if parent is None else depth(parent) + 1
        return depths[span.context.span_id]

    for span in spans:
        depth(span)
    return depths


def render_trace(spans, title: str) -> str:
    """The page of one trace's `spans` (ReadableSpan objects), in start order."""
    spans = sorted(spans, key=lambda s: s.start_time)
    depths = _depths(spans)
    # The scale is the consumer's side; the producer's spans came seconds before (a group join)
    # and are drawn at the left edge with how long before they were.
    consumer_side = [s for s in spans if s.kind.name != "PRODUCER"] or spans
    start, end = consumer_side[0].start_time, max(s.end_time for s in spans)
    total = max(end - start, 1)
    height = ROW * len(spans) + 10
    rows = []
    for i, span in enumerate(spans):
        y = 5 + i * ROW
        before = start - span.start_time
        x = LABEL_WIDTH + BAR_WIDTH * max(span.start_time - start, 0) / total
        width = max(BAR_WIDTH * (span.end_time - span.start_time) / total, 2) if before <= 0 else 3
        millis = (span.end_time - span.start_time) / 1e6
        note = f"{millis:.1f} ms" + (f", {before / 1e9:.1f} s earlier" if before > 0 else "")
        label = f"{'  ' * depths[span.context.span_id]}{span.name} ({span.kind.name.lower()})"
        rows.append(
            f'<text x="4" y="{y + 17}" xml:space="preserve">{escape(label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" fill="{BAR}" rx="2"/>'
            f'<text x="{min(x + width + 4, LABEL_WIDTH + BAR_WIDTH - 60):.1f}" y="{y + 17}">{escape(note)}</text>'
        )
    trace_id = f"{spans[0].context.trace_id:032x}"
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
        "body { font: 14px system-ui, sans-serif; margin: 1.2em; } text { font: 13px monospace; }"
        f"</style></head><body><h3>{escape(title)}</h3><p>trace {trace_id}, {len(spans)} spans</p>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + BAR_WIDTH + 20}" height="{height}">'
        + "".join(rows)
        + "</svg></body></html>"
    )
