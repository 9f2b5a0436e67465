"""Charts as inline SVG, drawn on the server: no JavaScript, nothing fetched, exports as is.

Every mark that stands for a run is an SVG ``<a>`` to that run's page, with a ``<title>``
that the browser shows on hover. The builders are pure functions of plain data and return
the SVG text (marked safe for Jinja2).
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any, Iterable

from markupsafe import Markup

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _range(values: Iterable[float], include: Iterable[float] = ()) -> tuple[float, float]:
    vals = [v for v in (*values, *include) if v is not None and math.isfinite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if lo == hi:
        pad = abs(lo) * 0.1 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _link(href: str | None, inner: str) -> str:
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def _svg(width: int, height: int, body: str, label: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" {FONT}>{body}</svg>'
    )


def line_chart(series: list[dict], labels: list[str], *, title: str, width: int = 760, height: int = 240,
               threshold: float | None = None, y_range: tuple[float, float] | None = None) -> Markup:
    """Lines over categorical x positions (batches, versions).

    Args:
        series: ``[{"name", "points": [{"x": index into labels, "y", "href", "title"}]}]``.
        labels: the x axis labels, in order.
        threshold: a dashed horizontal line (a drift share limit, say).
    """
    left, right, top, bottom = 54, 120, 22, 42
    pw, ph = width - left - right, height - top - bottom
    ys = [p["y"] for s in series for p in s["points"] if p.get("y") is not None]
    lo, hi = y_range or _range(ys, [threshold] if threshold is not None else [])
    n = max(len(labels), 1)

    def x(i: float) -> float:
        return left + (pw * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    parts = [f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>']
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>')
    longest = max((len(str(label)[:14]) for label in labels), default=1)
    every = max(1, math.ceil(n * (longest * 6.5 + 8) / pw))  # labels that fit side by side
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#555">'
                         f'{escape(str(label)[:14])}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>')
    if threshold is not None:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                     f'stroke="#999" stroke-dasharray="4 3"/><text x="{left + pw + 4}" y="{y(threshold) + 4:.1f}" '
                     f'fill="#777">limit {_fmt(threshold)}</text>')
    for k, s in enumerate(series):
        color = s.get("color") or PALETTE[k % len(PALETTE)]
        pts = [p for p in s["points"] if p.get("y") is not None and math.isfinite(p["y"])]
        if len(pts) > 1:
            path = " ".join(f"{x(p['x']):.1f},{y(p['y']):.1f}" for p in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for p in pts:
            dot = (f'<circle class="point" cx="{x(p["x"]):.1f}" cy="{y(p["y"]):.1f}" r="4" fill="{color}">'
                   f'<title>{escape(p.get("title") or "")}</title></circle>')
            parts.append(_link(p.get("href"), dot))
        ly = top + 12 + 16 * k
        parts.append(f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{left + pw + 22}" y="{ly + 1}">{escape(str(s["name"])[:16])}</text>')
    return _svg(width, height, "".join(parts), title)


def bar_chart(bars: list[dict], *, title: str, width: int = 360) -> Markup:
    """Horizontal bars, one per run: ``[{"label", "value", "href", "title"}]``."""
    row, left, top = 14, 120, 22
    height = top + row * len(bars) + 24
    values = [b["value"] for b in bars]
    lo, hi = _range(values, [0])
    lo = min(lo, 0.0)
    pw = width - left - 44

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    parts = [f'<text x="4" y="14" font-weight="600">{escape(title[:48])}</text>']
    for i, b in enumerate(bars):
        yy = top + i * row
        x0, x1 = sorted((x(0), x(b["value"])))
        bar = (f'<rect class="bar" x="{x0:.1f}" y="{yy + 1}" width="{max(x1 - x0, 1):.1f}" height="{row - 3}" '
               f'fill="{PALETTE[0]}"><title>{escape(b.get("title") or "")}</title></rect>')
        parts.append(f'<text x="{left - 4}" y="{yy + row - 4}" text-anchor="end" fill="#555">'
                     f'{escape(str(b["label"])[-18:])}</text>')
        parts.append(_link(b.get("href"), bar))
        parts.append(f'<text x="{x1 + 3:.1f}" y="{yy + row - 4}" fill="#333">{_fmt(b["value"])}</text>')
    for t in _ticks(lo, hi, 4):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle" fill="#777">{_fmt(t)}</text>')
    return _svg(width, height, "".join(parts), title)


def heatmap(rows: list[str], cols: list[str], cells: dict[tuple[int, int], dict], *, title: str,
            legend: str = "") -> Markup:
    """A grid: ``cells[(row, col)] = {"color", "href", "title", "text"}``; empty cells stay blank."""
    cell_w = max(10, min(40, 720 // max(len(cols), 1)))
    cell_h, left, top = 18, 130, 24
    width = max(left + cell_w * len(cols) + 10, 460)
    height = top + cell_h * len(rows) + 84
    parts = [f'<text x="4" y="14" font-weight="600">{escape(title)}</text>']
    if legend:
        parts.append(f'<text x="{left}" y="{height - 6}" fill="#555">{escape(legend)}</text>')
    for r, name in enumerate(rows):
        parts.append(f'<text x="{left - 6}" y="{top + r * cell_h + 13}" text-anchor="end">{escape(name[:20])}</text>')
    every = max(1, math.ceil(len(cols) * 40 / 720))
    for c, name in enumerate(cols):
        if c % every == 0:
            cx = left + c * cell_w + cell_w / 2
            yy = top + len(rows) * cell_h + 12
            parts.append(f'<text x="{cx:.1f}" y="{yy}" text-anchor="end" fill="#555" '
                         f'transform="rotate(-35 {cx:.1f} {yy})">{escape(name[:14])}</text>')
    for (r, c), cell in cells.items():
        rect = (f'<rect class="cell" x="{left + c * cell_w}" y="{top + r * cell_h}" width="{cell_w - 1}" '
                f'height="{cell_h - 1}" fill="{cell["color"]}"><title>{escape(cell.get("title") or "")}</title></rect>')
        parts.append(_link(cell.get("href"), rect))
    return _svg(width, height, "".join(parts), title)


def parallel_coordinates(axes: list[str], lines: list[dict], *, title: str, color_axis: str | None = None,
                         width: int = 900, height: int = 320) -> Markup:
    """One polyline per run across numeric axes: ``lines = [{"values": {axis: number}, "href", "title"}]``.

    Lines are coloured by ``color_axis`` (blue low, red high).
    """
    left, right, top, bottom = 40, 40, 34, 28
    pw, ph = width - left - right, height - top - bottom
    ranges = {a: _range([ln["values"].get(a) for ln in lines]) for a in axes}
    n = max(len(axes) - 1, 1)

    def ax_x(i: int) -> float:
        return left + pw * i / n

    def ax_y(a: str, v: float) -> float:
        lo, hi = ranges[a]
        return top + ph - (v - lo) / (hi - lo) * ph

    parts = [f'<text x="4" y="14" font-weight="600">{escape(title)}</text>']
    c_lo, c_hi = ranges.get(color_axis, (0.0, 1.0)) if color_axis else (0.0, 1.0)
    for ln in lines:
        pts = [(ax_x(i), ax_y(a, ln["values"][a])) for i, a in enumerate(axes) if ln["values"].get(a) is not None]
        if len(pts) < 2:
            continue
        share = 0.5
        if color_axis and ln["values"].get(color_axis) is not None:
            share = (ln["values"][color_axis] - c_lo) / (c_hi - c_lo)
        color = f"rgb({int(40 + 200 * share)},{int(80 + 40 * (1 - abs(share - 0.5) * 2))},{int(240 - 200 * share)})"
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        poly = (f'<polyline class="line" points="{path}" fill="none" stroke="{color}" stroke-width="1.4" '
                f'stroke-opacity="0.8"><title>{escape(ln.get("title") or "")}</title></polyline>')
        parts.append(_link(ln.get("href"), poly))
    room = max(8, int(pw / max(len(axes), 1) / 6.5))  # characters that fit between two axes
    for i, a in enumerate(axes):
        seen = [v for v in (ln["values"].get(a) for ln in lines) if v is not None]
        xx = ax_x(i)
        anchor = "start" if i == 0 else "end" if i == len(axes) - 1 else "middle"
        label = a if len(a) <= room else "…" + a[-(room - 1):]
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + ph}" stroke="#444"/>'
                     f'<text x="{xx:.1f}" y="{top - 8}" text-anchor="{anchor}" font-weight="600">{escape(label)}'
                     f'<title>{escape(a)}</title></text>')
        if seen:
            parts.append(f'<text x="{xx + 3:.1f}" y="{ax_y(a, max(seen)) - 3:.1f}" fill="#555">{_fmt(max(seen))}</text>'
                         f'<text x="{xx + 3:.1f}" y="{ax_y(a, min(seen)) + 12:.1f}" fill="#555">{_fmt(min(seen))}</text>')
    return _svg(width, height, "".join(parts), title)


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def timeline(lanes: list[str], events: list[dict], *, title: str, width: int = 900) -> Markup:
    """Events on a time axis, one lane each: ``[{"lane", "at" (ISO), "label", "href", "title", "color"}]``."""
    lane_h, left, top = 30, 120, 24
    height = top + lane_h * max(len(lanes), 1) + 30
    pw = width - left - 30
    times = [_time(e["at"]) for e in events]
    lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
    if hi - lo < 1:
        lo, hi = lo - 1800, hi + 1800

    def x(t: float) -> float:
        return left + (t - lo) / (hi - lo) * pw

    parts = [f'<text x="4" y="14" font-weight="600">{escape(title)}</text>']
    for i, lane in enumerate(lanes):
        yy = top + i * lane_h + lane_h / 2
        parts.append(f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end">{escape(lane[:18])}</text>'
                     f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
    for t in (lo, (lo + hi) / 2, hi):
        stamp = datetime.utcfromtimestamp(t).strftime("%Y-%m-%d %H:%M") if times else ""
        parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle" fill="#777">{stamp}</text>')
    index = {lane: i for i, lane in enumerate(lanes)}
    last_label: dict[str, float] = {}
    for e, t in sorted(zip(events, times), key=lambda pair: pair[1]):
        yy = top + index.get(e["lane"], 0) * lane_h + lane_h / 2
        label = str(e.get("label") or "")[:10]
        # a label only where it does not run into the previous one of its lane
        show = x(t) - last_label.get(e["lane"], -1e9) > len(label) * 6.5 + 6
        if show:
            last_label[e["lane"]] = x(t)
        text = (f'<text x="{x(t):.1f}" y="{yy - 9:.1f}" text-anchor="middle" fill="#333">{escape(label)}</text>'
                if show else "")
        mark = (f'<g class="event"><circle cx="{x(t):.1f}" cy="{yy:.1f}" r="6" fill="{e.get("color") or PALETTE[0]}" '
                f'fill-opacity="0.8"><title>{escape(e.get("title") or "")}</title></circle>{text}</g>')
        parts.append(_link(e.get("href"), mark))
    return _svg(width, height, "".join(parts), title)


def color_scale(share: float) -> str:
    """Green (0) to red (1)."""
    share = min(max(share, 0.0), 1.0)
    return f"rgb({int(60 + 190 * share)},{int(170 - 120 * share)},{int(80 - 30 * share)})"


def numeric(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
