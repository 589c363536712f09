"""Test media with known truth (for tests and benchmarks): cut clips (:mod:`core.examples`), clips
with no change at all, a one-frame clip, click tracks, music with known beats and bars."""

from __future__ import annotations

from fractions import Fraction

from ..examples import SynthClip, click_track, make_cut_clip
from ..timing.media import as_rate

__all__ = ["SynthClip", "make_cut_clip", "make_static_clip", "make_one_frame_clip", "click_track", "music_track"]


def make_static_clip(
    path, *, duration: float = 2.0, fps: float | Fraction = 24, size=(160, 90), seed: int = 0
) -> SynthClip:
    """A clip whose frames are all identical (no cuts, no motion)."""
    return make_cut_clip(path, cut_times=[], duration=duration, fps=fps, size=size, seed=seed, motion=False)


def make_one_frame_clip(path, *, size=(160, 90), fps: float | Fraction = 24, seed: int = 0) -> SynthClip:
    """A valid video of exactly one frame."""
    rate = as_rate(fps)
    return make_cut_clip(path, cut_times=[], duration=float(1 / rate), fps=rate, size=size, seed=seed, motion=False)


def music_track(
    duration: float,
    *,
    bpm: float = 120.0,
    sample_rate: int = 44100,
    channels: int = 2,
    meter: int = 4,
    first_beat: float = 0.0,
    seed: int = 0,
):
    """Music-like audio with known beats: ``(wave float32 [C, T], beat times, downbeat times)``.

    A steady ``bpm`` groove in ``meter``: a kick on every bar's first beat (loudest) and on the
    middle beat, a snare on the others, hi-hats on every eighth note, a bass note per beat and a
    chord pad that changes every bar (I–vi–IV–V), so both the beats and the bar lines can be
    found. Beat k is at ``first_beat + k·60/bpm``; the peak is at most 0.9.
    """
    import numpy as np

    sr = int(sample_rate)
    n = int(round(duration * sr))
    rng = np.random.default_rng(seed)
    period = 60.0 / float(bpm)
    beats = np.arange(first_beat, duration - 1e-9, period)
    out = np.zeros((2, n), dtype=np.float64)

    def add(sig, start: float, pan: float = 0.0):
        a = int(round(start * sr))
        if a >= n or a + len(sig) <= 0:
            return
        lo, hi = max(a, 0), min(a + len(sig), n)
        seg = sig[lo - a:hi - a]
        out[0, lo:hi] += seg * (1.0 - pan) / 2 * 2 ** 0.5
        out[1, lo:hi] += seg * (1.0 + pan) / 2 * 2 ** 0.5

    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 70 * 0.04 * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.12)
    noise = rng.standard_normal(len(t))
    snare = (0.6 * noise * np.exp(-t / 0.05) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.06))
    hat = np.diff(rng.standard_normal(int(0.05 * sr) + 1)) * np.exp(-np.arange(int(0.05 * sr)) / sr / 0.012)
    roots = (130.81, 110.0, 174.61, 196.0)  # C, A, F, G (I–vi–IV–V)
    bar_len = meter * period
    for i, b in enumerate(beats):
        pos = i % meter
        if pos == 0:
            add(1.0 * kick, b)
        elif meter % 2 == 0 and pos == meter // 2:
            add(0.7 * kick, b)
        else:
            add(0.55 * snare, b)
        for half in (0.0, 0.5):
            add(0.18 * hat, b + half * period, pan=-0.4 if half else 0.4)
        root = roots[(i // meter) % len(roots)]
        tb = np.arange(int(period * sr)) / sr
        add(0.22 * np.sin(2 * np.pi * root / 2 * tb) * np.exp(-tb / (period * 0.8)), b)
    for j, b in enumerate(beats[::meter]):
        root = roots[j % len(roots)]
        tp = np.arange(int(bar_len * sr)) / sr
        env = np.minimum(1.0, tp / 0.08) * np.exp(-tp / (bar_len * 1.5))
        chord = sum(np.sin(2 * np.pi * root * 2 * ratio * tp) for ratio in (1.0, 1.26, 1.5)) / 3
        add(0.2 * chord * env, b)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0.9:
        out *= 0.9 / peak
    wave = out.mean(axis=0, keepdims=True) if channels == 1 else out
    return wave.astype(np.float32), beats, beats[::meter]
