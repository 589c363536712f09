"""Seam statistics: does a join in generated music stand out from the music around it?

Two scales, each a percentile rank of the statistic at a seam among the same statistic taken at
every other place of the same clip (a seamless join ranks like any other place: mean rank ≈ 50 %,
about 5 % of seams above the 95th percentile):

* **jumps** (instantaneous): analysis frames of 64 ms (Hann) every 16 ms; the frame-to-frame
  jump of short-time RMS in dB, ``|L[k+1] − L[k]|``, and of normalised spectral flux,
  ``‖M[k+1] − M[k]‖₂ / (½(‖M[k]‖₂ + ‖M[k+1]‖₂))`` (M the magnitude spectrum; 0 = identical,
  2 = disjoint). Statistic at τ: the largest jump whose time lies in ``[τ − 0.25, τ + 0.25]`` s.
  Reference: every 16 ms position whose window is ≥ 0.1 s from any cut and ≥ 0.5 s from any
  seam; seams whose window is within 0.1 s of a cut are not scored (the hit on a cut is the
  music's own jump).
* **steps** (the character on either side): the median frame level (dB) and the median log
  spectrum (dB per bin) over the second before ``[τ − 1.25, τ − 0.25]`` and the second after
  ``[τ + 0.25, τ + 1.25]``; level step = the difference of the two medians, timbre step = the
  RMS over bins of the difference of the two median spectra. Medians ignore the hits on cuts,
  so every seam is scored; reference: every 0.25 s position ≥ 1.5 s from any seam.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FRAME, HOP = 0.064, 0.016
RADIUS, CUT_GUARD = 0.25, 0.1
SIDE, GAP, STEP_GRID = 1.0, 0.25, 0.25


def frames(wave: np.ndarray, sr: int):
    """(level dB [K], magnitude [K, F], frame centre times [K]) of a [C, T] or [T] signal."""
    y = np.asarray(wave, np.float64)
    y = y.mean(axis=0) if y.ndim == 2 else y
    n, hop = int(round(FRAME * sr)), int(round(HOP * sr))
    f = sliding_window_view(y, n)[::hop]
    level = 10 * np.log10(np.mean(f ** 2, axis=1) + 1e-10)
    mag = np.abs(np.fft.rfft(f * np.hanning(n), axis=1))
    return level, mag, (np.arange(len(f)) * hop + n / 2) / sr


def _near(x, pts, r):
    x, pts = np.asarray(x, float), np.asarray(pts, float)
    if not len(pts):
        return np.zeros(len(x), bool)
    return (np.abs(x[:, None] - pts[None, :]) <= r).any(axis=1)


def _rank(values, reference):
    ref = np.sort(np.asarray(reference, float))
    v = np.asarray(values, float)
    if not len(v) or not len(ref):
        return {"mean_rank": None, "above_p95": None}
    ranks = 100.0 * np.searchsorted(ref, v, side="left") / len(ref)
    return {"mean_rank": float(ranks.mean()), "above_p95": float((v > np.percentile(ref, 95)).mean())}


def jump_ranks(level, mag, t, seams, cuts) -> dict:
    norms = np.linalg.norm(mag, axis=1)
    jr = np.abs(np.diff(level))
    jf = np.linalg.norm(np.diff(mag, axis=0), axis=1) / (0.5 * (norms[1:] + norms[:-1]) + 1e-9)
    tj = 0.5 * (t[1:] + t[:-1])
    w = int(round(RADIUS / HOP))
    ref = ~_near(tj, cuts, RADIUS + CUT_GUARD) & ~_near(tj, seams, 2 * RADIUS)
    scored = np.asarray(seams, float)[~_near(seams, cuts, RADIUS + CUT_GUARD)]
    idx = np.clip(np.searchsorted(tj, scored), 0, len(tj) - 1)
    out = {"scored": int(len(scored))}
    for name, j in (("rms_jump", jr), ("flux_jump", jf)):
        m = sliding_window_view(np.pad(j, w), 2 * w + 1).max(axis=1)
        out[name] = _rank(m[idx], m[ref])
    return out


def _sides(level, logmag, t, tau):
    before = (t >= tau - GAP - SIDE) & (t < tau - GAP)
    after = (t > tau + GAP) & (t <= tau + GAP + SIDE)
    if before.sum() < 8 or after.sum() < 8:
        return None
    lv = abs(np.median(level[before]) - np.median(level[after]))
    tb = np.sqrt(np.mean((np.median(logmag[before], axis=0) - np.median(logmag[after], axis=0)) ** 2))
    return lv, tb


def step_ranks(level, mag, t, seams) -> dict:
    logmag = 20 * np.log10(mag + 1e-6)
    grid = np.arange(GAP + SIDE, t[-1] - GAP - SIDE, STEP_GRID)
    grid = grid[~_near(grid, seams, 1.5)]
    ref = [s for s in (_sides(level, logmag, t, g) for g in grid) if s is not None]
    got = [s for s in (_sides(level, logmag, t, x) for x in seams) if s is not None]
    out = {"scored": len(got)}
    for i, name in enumerate(("level_step", "timbre_step")):
        out[name] = _rank([g[i] for g in got], [r[i] for r in ref])
        out[name]["median"] = float(np.median([g[i] for g in got])) if got else None
    return out


def seam_report(wave, sr, seams, cuts) -> dict:
    """Both scales for one clip; ``seams`` and ``cuts`` in seconds."""
    level, mag, t = frames(wave, sr)
    return {"seams": len(seams), **{"jumps": jump_ranks(level, mag, t, seams, cuts)},
            "steps": step_ranks(level, mag, t, seams)}
