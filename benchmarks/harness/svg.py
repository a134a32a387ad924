"""Plots as inline SVG, written by hand: no plotting library, nothing fetched at view time."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
W, H = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 34, 44  # margins; the legend sits on the right


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks if len(ticks) > 1 else [ticks[0], ticks[0] + step]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


class _Frame:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], y_zero: bool = True) -> None:
        self.xt = nice_ticks(min(xs), max(xs)) if xs else [0.0, 1.0]
        lo_y = 0.0 if y_zero else min(ys)
        self.yt = nice_ticks(lo_y, max(ys) if ys else 1.0)
        self.x0, self.x1 = self.xt[0], self.xt[-1]
        self.y0, self.y1 = self.yt[0], self.yt[-1]

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / ((self.x1 - self.x0) or 1) * (W - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return H - BOTTOM - (y - self.y0) / ((self.y1 - self.y0) or 1) * (H - TOP - BOTTOM)


def _axes(f: _Frame, title: str, x_label: str, y_label: str, x_ticks: bool = True) -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
           f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    for y in f.yt:
        py = f.py(y)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    if x_ticks:
        for x in f.xt:
            px = f.px(x)
            out.append(f'<text x="{px:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{_fmt(x)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#111827"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#111827"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 8}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">{escape(y_label)}</text>')
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 6 + i * 16
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<rect x="{W - RIGHT + 12}" y="{y - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{W - RIGHT + 27}" y="{y + 1}">{escape(name)}</text>')
    return out


def _target(f: _Frame, target: float | None, label: str) -> list[str]:
    if target is None or not f.y0 <= target <= f.y1:
        return []
    py = f.py(target)
    return [f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="#dc2626" stroke-dasharray="5 4"/>',
            f'<text x="{W - RIGHT - 4}" y="{py - 4:.1f}" text-anchor="end" fill="#dc2626">{escape(label)}</text>']


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str, x_label: str, y_label: str,
               target: float | None = None, target_label: str = "target", markers: bool = False,
               phases: Sequence[tuple[float, str]] = ()) -> str:
    """One polyline per named series of (x, y) points; `phases` are labelled vertical lines."""
    pts = [p for s in series.values() for p in s if p[1] is not None]
    if not pts:
        return empty_chart(title)
    ys = [p[1] for p in pts] + ([target] if target is not None else [])
    f = _Frame([p[0] for p in pts], ys)
    out = _axes(f, title, x_label, y_label)
    for x, label in phases:
        if f.x0 <= x <= f.x1:
            px = f.px(x)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#9ca3af" '
                       f'stroke-dasharray="3 3"/><text x="{px + 3:.1f}" y="{TOP + 10}" fill="#6b7280">'
                       f'{escape(label)}</text>')
    for i, (_, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        good = [(x, y) for x, y in s if y is not None]
        coords = " ".join(f"{f.px(x):.1f},{f.py(y):.1f}" for x, y in good)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}"/>')
        if markers:
            out += [f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="3" fill="{colour}"/>' for x, y in good]
    out += _target(f, target, target_label) + _legend(list(series)) + ["</svg>"]
    return "\n".join(out)


def bar_chart(groups: Sequence[str], bars: Mapping[str, Sequence[float | None]], title: str, y_label: str,
              target: float | None = None, target_label: str = "target") -> str:
    """Grouped bars: one group per label in `groups`, one bar per named series in each."""
    values = [v for vs in bars.values() for v in vs if v is not None]
    if not groups or not values:
        return empty_chart(title)
    f = _Frame([0, 1], values + ([target] if target is not None else []))
    out = _axes(f, title, "", y_label, x_ticks=False)
    span = (W - LEFT - RIGHT) / len(groups)
    width = span * 0.8 / max(1, len(bars))
    for g, label in enumerate(groups):
        gx = LEFT + g * span + span * 0.1
        out.append(f'<text x="{LEFT + (g + 0.5) * span:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                   f'{escape(label)}</text>')
        for i, (_, vs) in enumerate(bars.items()):
            v = vs[g] if g < len(vs) else None
            if v is None:
                continue
            top = f.py(v)
            colour = COLOURS[i % len(COLOURS)]
            out.append(f'<rect x="{gx + i * width:.1f}" y="{top:.1f}" width="{width * 0.9:.1f}" '
                       f'height="{H - BOTTOM - top:.1f}" fill="{colour}"><title>{_fmt(v)}</title></rect>')
    out += _target(f, target, target_label) + _legend(list(bars)) + ["</svg>"]
    return "\n".join(out)


def empty_chart(title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 60" width="{W}" height="60" '
            f'font-family="sans-serif" font-size="12"><text x="10" y="20" font-weight="bold">{escape(title)}</text>'
            f'<text x="10" y="42" fill="#6b7280">no data in this run</text></svg>')
