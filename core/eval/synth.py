"""Test media with known truth (for tests and benchmarks): cut clips (:mod:`core.examples`), clips
with no change at all, a one-frame clip, click tracks, music with known beats and bars."""

from __future__ import annotations

from fractions import Fraction

from ..examples import SynthClip, click_track, make_cut_clip, music_track
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
