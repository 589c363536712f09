"""Curve pictures, drawn with matplotlib: node previews, the CLI's ``--plot`` and the README.

One function, :func:`plot_curves`, shared by the nodes and the commands. It draws on a private
``matplotlib.figure.Figure`` with the Agg canvas (never ``pyplot``), so importing or calling it
changes no global matplotlib state (backend, rc parameters, open figures). Sizes of text and
lines follow the picture's size, so a preview that ComfyUI shrinks to a node's width stays
readable; long curves are decimated to the pixel columns (min/max envelope, no peak lost), and
hit points and marks are thinned to what the width can show.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .curves import Curve

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")
_PEAK = "#d62728"
_MARK_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
_BG = "#fafaf8"
_MIN_GAP_PX = 4.0  # hit points and marks closer than this on the picture are drawn as one


def _decimate(t: np.ndarray, v: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 points per pixel column: each column's minimum and maximum, in time order."""
    if t.size <= 2 * columns or columns < 1:
        return t, v
    edges = np.linspace(t[0], t[-1], columns + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, columns - 1)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    ends = np.r_[starts[1:], v.size]
    arg_lo = np.array([s + int(np.argmin(v[s:e])) for s, e in zip(starts, ends)])
    arg_hi = np.array([s + int(np.argmax(v[s:e])) for s, e in zip(starts, ends)])
    first_lo = arg_lo <= arg_hi
    a = np.where(first_lo, arg_lo, arg_hi)
    b = np.where(first_lo, arg_hi, arg_lo)
    keep = np.unique(np.concatenate([a, b, [0, v.size - 1]]))
    return t[keep], v[keep]


def _thin(times: Sequence[float], seconds_per_px: float) -> np.ndarray:
    """Times no closer than ``_MIN_GAP_PX`` pixels (the first of a close group is kept)."""
    ts = np.sort(np.asarray([float(x) for x in times], dtype=np.float64))
    if ts.size < 2:
        return ts
    gap = _MIN_GAP_PX * seconds_per_px
    kept = [ts[0]]
    for x in ts[1:]:
        if x - kept[-1] >= gap:
            kept.append(x)
    return np.asarray(kept)


_TIME_STEPS = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _time_axis(ax, duration: float, width: int) -> None:
    """Ticks at round seconds or minutes, about one per 110 pixels; minutes as m:ss past 2 min."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    want = max(2, int(width / 110))
    step = next((s for s in _TIME_STEPS if duration / s <= want), _TIME_STEPS[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step))
    if duration >= 120:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x // 60)}:{int(round(x % 60)):02d}"
                                                   if x >= 0 else ""))
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))


def _curve_xy(c: Curve, columns: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(c.times, dtype=np.float64)
    v = np.asarray(c.values, dtype=np.float64)
    if c.rate:  # a uniform grid: sample j stands for [j/rate, (j+1)/rate); draw it at the centre
        t = t + 0.5 / float(c.rate)
    return _decimate(t, v, columns)


def _range(v: np.ndarray) -> float:
    return float(np.ptp(v)) if v.size else 0.0


# Node previews are shown a node's width wide (the templates' preview nodes: >= 420 px of canvas at >= 0.72
# zoom): pictures this size with text ~1/26 of the width read at >= 9 screen pixels there. The CLI's PNGs
# use the same size.
PREVIEW_WIDTH, PREVIEW_HEIGHT = 640, 360


def plot_curves(
    curves: Sequence[tuple[str, Curve]],
    *,
    peaks: Sequence[float] = (),
    marks: Sequence[tuple[str, Sequence[float]]] = (),
    width: int = PREVIEW_WIDTH,
    height: int = PREVIEW_HEIGHT,
    title: str = "",
    notes: Sequence[str] = (),
) -> np.ndarray:
    """Labelled curves on one time axis, with ``peaks`` (hit points) and ``marks`` rows below.

    Returns an RGB uint8 array [rows, width, 3]: ``height`` rows for the plot, plus what the wrapped
    ``notes`` (warnings, in red above the plot) need. Curves share the left axis (event strength in
    standard deviations); a curve whose range is far from the first one's (e.g. a smoothed curve
    beside the raw spikes) gets the right axis, said in its legend entry. ``marks`` are named
    rows of times (cuts, beats, window joins...) drawn as ticks under the curves.
    """
    fig = figure(curves, peaks=peaks, marks=marks, width=width, height=height, title=title, notes=notes)
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def figure(curves, *, peaks=(), marks=(), width: int = PREVIEW_WIDTH, height: int = PREVIEW_HEIGHT, title: str = "",
           notes: Sequence[str] = ()):
    """The drawn ``matplotlib.figure.Figure`` behind :func:`plot_curves` (tests measure its text)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = max(int(width), 160), max(int(height), 120)
    dpi = 100.0
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=_BG, layout="constrained")
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    # Text in pixels ~ 1/26 of the width (clamped): the preview is shrunk to a node's width.
    font_px = min(max(min(width / 26.0, height / 13.0), 11.0), 30.0)
    fs = font_px * 72.0 / dpi
    line_w = max(1.2, font_px / 10.0)
    durations = [float(c.duration) for _, c in curves] + [float(t) for _, ts in marks for t in ts[-1:]]
    duration = max(durations + [1e-6])
    usable = width * 0.97  # what a line of text may span

    title_text = _wrap(fig, renderer, title, fs * 0.95, usable) if title else ""
    note_text = "\n".join(_wrap(fig, renderer, "⚠ " + str(n), fs * 0.8, usable) for n in notes)
    note_px = 0.0
    if note_text:  # the picture grows by what the notes need, so the plot keeps its size
        note_px = _extent(fig, renderer, note_text, fs * 0.8).height + font_px * 0.6
        fig.set_size_inches(width / dpi, (height + note_px) / dpi)

    n_rows = len(marks)
    mark_frac = min(0.13 * n_rows, 0.42)
    plot_frac = height / (height + note_px)
    ratios = (([1 - plot_frac] if note_text else []) + [plot_frac * (1 - mark_frac)]
              + ([plot_frac * mark_frac] if n_rows else []))
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
    if note_text:  # warnings the user must see, above the plot in a darker red
        box = fig.add_subplot(grid[0])
        box.axis("off")
        from matplotlib.transforms import blended_transform_factory

        box.text(0.01, 1.0, note_text, va="top", ha="left", fontsize=fs * 0.8, color="#a01010",
                 transform=blended_transform_factory(fig.transFigure, box.transAxes))  # from the picture's left
    ax = fig.add_subplot(grid[1 if note_text else 0])
    ax.set_facecolor("white")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.8)
    ax.tick_params(labelsize=fs * 0.85)
    ax.set_xlim(0, duration)
    _time_axis(ax, duration, width)
    columns = max(int(width * 0.9), 16)
    seconds_per_px = duration / columns

    handles, right = [], None
    base_range = None
    for i, (label, c) in enumerate(curves):
        if len(c) == 0:
            continue
        t, v = _curve_xy(c, columns)
        target = ax
        if base_range is None:
            base_range = _range(v)
        elif base_range > 0 and not (1 / 3 <= (_range(v) or base_range) / base_range <= 3):
            if right is None:
                right = ax.twinx()
                right.spines["top"].set_visible(False)
                right.tick_params(labelsize=fs * 0.85)
            target, label = right, f"{label} (right axis)"
        if t.size == 1:
            t, v = np.r_[t, t + 1e-6], np.r_[v, v]
        # the first curve is the one the picture is about: drawn on top, the others thinner below it
        (h,) = target.plot(t, v, color=_COLOURS[i % len(_COLOURS)], linewidth=line_w if i == 0 else line_w * 0.7,
                           alpha=1.0 if i == 0 else 0.85, label=label, zorder=3 + len(curves) - i)
        handles.append(h)

    shown = _thin(peaks, seconds_per_px)
    if len(peaks):
        from matplotlib.lines import Line2D

        if shown.size <= 40:  # few: full-height lines through the curves
            ax.vlines(shown, 0, 1, transform=ax.get_xaxis_transform(), color=_PEAK, linewidth=max(1.0, line_w * 0.7),
                      alpha=0.55, zorder=2)
        else:  # many: a rug along the top, so the curves stay visible
            ax.vlines(shown, 0.9, 1, transform=ax.get_xaxis_transform(), color=_PEAK, linewidth=1.0, alpha=0.8,
                      zorder=4)
        label = (f"hit points ({len(peaks)})" if shown.size == len(peaks)
                 else f"hit points ({len(peaks)}, {shown.size} drawn)")
        handles.append(Line2D([], [], color=_PEAK, linewidth=line_w, alpha=0.7, label=label))

    ax.set_ylabel("strength (σ)", fontsize=fs * 0.8)
    if handles:  # above the plot, under the title: never over the data; as many columns as the width holds
        widths = [_extent(fig, renderer, h.get_label(), fs * 0.8).width + 2.6 * font_px for h in handles]
        ncol = max(1, max(k for k in range(1, len(handles) + 1) if _columns_fit(widths, k, usable)))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=fs * 0.8, frameon=False,
                  ncol=ncol, handlelength=1.2, columnspacing=1.0, borderaxespad=0.1, borderpad=0.1,
                  handletextpad=0.4)
    if title_text:
        fig.suptitle(title_text, x=0.01, ha="left", fontsize=fs * 0.95)

    xlabel_ax = ax
    if n_rows:
        ax.tick_params(labelbottom=False)
        rows = fig.add_subplot(grid[-1], sharex=ax)
        _draw_marks(rows, marks, seconds_per_px, fs, line_w)
        xlabel_ax = rows
    xlabel_ax.set_xlabel("time (min:s)" if duration >= 120 else "time (s)", fontsize=fs * 0.85)
    fig.canvas.draw()
    return fig


def _extent(fig, renderer, text: str, fontsize: float):
    t = fig.text(0, 0, text, fontsize=fontsize)
    try:
        return t.get_window_extent(renderer)
    finally:
        t.remove()


def _wrap(fig, renderer, text: str, fontsize: float, max_px: float) -> str:
    """``text`` broken at spaces into lines no wider than ``max_px`` when drawn (a word longer than
    a line is broken inside)."""
    lines: list[str] = []
    for para in str(text).splitlines() or [""]:
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if not line or _extent(fig, renderer, cand, fontsize).width <= max_px:
                line = cand
                continue
            lines.append(line)
            line = word
        while _extent(fig, renderer, line, fontsize).width > max_px and len(line) > 1:  # one over-long word
            cut = len(line) - 1
            while cut > 1 and _extent(fig, renderer, line[:cut], fontsize).width > max_px:
                cut = max(1, int(cut * 0.9))
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    return "\n".join(lines)


def _columns_fit(widths: list[float], ncol: int, max_px: float) -> bool:
    rows = [widths[i:i + ncol] for i in range(0, len(widths), ncol)]
    cols = [max(r[c] for r in rows if c < len(r)) for c in range(ncol)]
    return sum(cols) <= max_px


def _draw_marks(ax, marks, seconds_per_px: float, fs: float, line_w: float) -> None:
    """One row per (label, times): thinned ticks; the row's name and count written inside it, at the
    left (not as tick labels beside it: the plot keeps the full width)."""
    from matplotlib.transforms import blended_transform_factory

    n = len(marks)
    ax.set_facecolor("white")
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_yticks([])
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for row, (label, times) in enumerate(marks):
        y = n - 1 - row
        shown = _thin(times, seconds_per_px)
        ax.vlines(shown, y - 0.35, y + 0.35, color=_MARK_COLOURS[row % len(_MARK_COLOURS)],
                  linewidth=max(1.0, line_w * 0.8))
        ax.text(0.005, y, f"{label} ({len(times)})", transform=where, va="center", ha="left", fontsize=fs * 0.8,
                color="#333333", zorder=5, bbox=dict(facecolor="white", alpha=0.75, edgecolor="none", pad=0.5))
    ax.tick_params(axis="x", labelsize=fs * 0.85)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis="x", color="#eeeeee", linewidth=0.8)


def save_png(image: np.ndarray, path: str) -> str:
    """Write an RGB array as PNG atomically."""
    from PIL import Image

    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


__all__ = ["plot_curves", "figure", "save_png", "PREVIEW_WIDTH", "PREVIEW_HEIGHT"]
