"""A tempo that fits a video's cuts: what to ask a music model for before the music is aligned.

Aligned music is stretched (±8 % by default) so that whole beats fill the gaps between hit points.
The less it must be stretched the better it sounds and the more cuts it reaches, so the tempo to
ask for is one at which most gaps already hold a whole number of beats: :func:`fitting_tempo`
scores every BPM in a range by the share of gaps (strength-weighted) that whole beats fill within
the tempo bound, prefers the cut-pacing hint (``core.prompt.pacing``) among equals, and
:func:`tempo_prompt` writes it into the music prompt.
"""

from __future__ import annotations

import numpy as np

#: Tempi a prompt may ask for (BPM): the range music models follow best.
TEMPO_RANGE = (70, 150)


def gap_fit(gaps, bpm: float, max_stretch: float = 0.08) -> np.ndarray:
    """Per gap, 1 when a whole number of beats at ``bpm`` fills it exactly, falling to 0 at the tempo bound."""
    g = np.asarray(gaps, dtype=np.float64).reshape(-1)
    period = 60.0 / float(bpm)
    beats = np.maximum(np.round(g / period), 1.0)
    change = np.abs(g / (beats * period) - 1.0)
    return np.clip(1.0 - change / max(max_stretch, 1e-6), 0.0, 1.0)


def fitting_tempo(hits, duration: float, *, hint: float | None = None, strengths=None, max_stretch: float = 0.08,
                  bpm_range: tuple[int, int] = TEMPO_RANGE) -> int:
    """The whole BPM in ``bpm_range`` at which the gaps between ``hits`` (s) best hold whole beats.

    Gaps shorter than 0.3 s are left out (no beat fits them at any tempo in range). Ties (within
    2 %) go to the BPM nearest ``hint`` (the cut-pacing tempo), else to the middle of the range.
    Without two hits there are no gaps: the hint (bounded to the range) or the range's middle.
    """
    lo, hi = int(bpm_range[0]), int(bpm_range[1])
    target = float(np.clip(hint, lo, hi)) if hint else 0.5 * (lo + hi)
    t = np.sort(np.asarray(hits, dtype=np.float64).reshape(-1))
    t = t[(t > 0) & (t < duration)] if duration > 0 else t
    gaps = np.diff(t)
    w = np.ones(max(len(t) - 1, 0)) if strengths is None else np.minimum(
        np.asarray(strengths, dtype=np.float64).reshape(-1)[:-1], np.asarray(strengths, dtype=np.float64)[1:])
    keep = gaps >= 0.3
    gaps, w = gaps[keep], w[:len(gaps)][keep]
    if gaps.size == 0 or w.sum() <= 0:
        return int(round(target))
    bpms = np.arange(lo, hi + 1)
    scores = np.array([float(np.sum(w * gap_fit(gaps, b, max_stretch)) / w.sum()) for b in bpms])
    good = bpms[scores >= scores.max() - 0.02]
    return int(good[np.argmin(np.abs(np.log(good / target)))])


def tempo_prompt(prompt: str, bpm: int) -> str:
    """``prompt`` with the tempo to generate at (replacing any 'around N BPM' hint it has)."""
    import re

    text = " ".join((prompt or "").split()).rstrip(".")
    text = re.sub(r"\b(?:around|at|about)?\s*\d{2,3}\s*BPM\b", f"at {bpm} BPM", text, flags=re.IGNORECASE)
    if f"{bpm} BPM" not in text:
        text = (text + ". " if text else "") + f"Steady beat at {bpm} BPM"
    return text + "."
