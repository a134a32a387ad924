"""Small statistics without numpy: percentiles, summaries, a least-squares line."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks, as numpy's default.

    None for no values: a missing figure must not look like a zero.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be from 0 to 100, got {q}")
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p99 and max of `values`, each times `scale` (1000: seconds to ms)."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, digits)

    return {
        "count": len(values),
        "mean": r(sum(values) / len(values)) if values else None,
        "p50": r(percentile(values, 50)),
        "p90": r(percentile(values, 90)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
    }


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line; None with fewer than two distinct x."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if y is not None]
    if len({x for x, _ in pts}) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return slope, my - slope * mx


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0
