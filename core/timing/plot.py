"""Curve pictures drawn with Pillow (no matplotlib): previews for nodes, the CLI and the README."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .curves import Curve

_BG = (250, 250, 248)
_GRID = (222, 222, 218)
_AXIS = (90, 90, 90)
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189)]
_PEAK = (214, 39, 40)


def _nice_step(span: float, target: int = 8) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def plot_curves(
    curves: Sequence[tuple[str, Curve]],
    *,
    peaks: Sequence[float] = (),
    marks: Sequence[tuple[str, Sequence[float]]] = (),
    width: int = 1024,
    height: int = 320,
    title: str = "",
) -> np.ndarray:
    """Draw labelled curves on one time axis; ``peaks`` as red ticks, ``marks`` as extra rows.

    Returns an RGB uint8 array [height, width, 3]. Each curve is scaled to its own min/max so
    curves of different units (raw and smoothed) share the plot.
    """
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), _BG)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 48, 16, 24 if title else 10, 28 + 14 * len(marks)
    pw, ph = width - left - right, height - top - bottom
    duration = max([float(c.duration) for _, c in curves] + [1e-6])

    def x_of(t: float) -> float:
        return left + pw * min(max(t / duration, 0.0), 1.0)

    step = _nice_step(duration)
    t = 0.0
    while t <= duration + 1e-9:
        x = x_of(t)
        d.line([(x, top), (x, top + ph)], fill=_GRID)
        d.text((x - 8, top + ph + 4), f"{t:g}s", fill=_AXIS, font=font)
        t += step
    d.rectangle([left, top, left + pw, top + ph], outline=_AXIS)
    if title:
        d.text((left, 6), title, fill=_AXIS, font=font)

    for t in peaks:
        x = x_of(float(t))
        d.line([(x, top), (x, top + ph)], fill=_PEAK, width=1)

    for i, (label, c) in enumerate(curves):
        colour = _COLOURS[i % len(_COLOURS)]
        v = np.asarray(c.values, dtype=np.float64)
        if v.size == 0:
            continue
        lo, hi = float(v.min()), float(v.max())
        span = hi - lo if hi > lo else 1.0
        tt = np.asarray(c.times, dtype=np.float64)
        if c.rate:  # uniform grids are drawn at interval centres
            tt = tt + 0.5 / c.rate
        pts = [(x_of(float(a)), top + ph - ph * 0.92 * (float(b) - lo) / span - ph * 0.04) for a, b in zip(tt, v)]
        if len(pts) == 1:
            pts = pts * 2
        d.line(pts, fill=colour, width=2)
        d.text((left + 6, top + 4 + 12 * i), label, fill=colour, font=font)

    for row, (label, times) in enumerate(marks):
        y = top + ph + 18 + 14 * row
        d.text((2, y - 5), label[:7], fill=_AXIS, font=font)
        for t in times:
            x = x_of(float(t))
            d.line([(x, y - 4), (x, y + 4)], fill=_COLOURS[(row + 2) % len(_COLOURS)], width=2)
    return np.asarray(img, dtype=np.uint8)


def save_png(image: np.ndarray, path: str) -> str:
    """Write an RGB array as PNG atomically."""
    from PIL import Image

    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path
