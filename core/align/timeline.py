"""The music as a chain of units between beats, long enough for the video: looped at a bar if needed.

A :class:`Timeline` lists boundaries in *virtual* time (seconds of music played in order, before
any stretching): the start offset, every beat, the end of the music. Unit ``k`` runs from boundary
``k`` to ``k + 1`` and plays the source from ``src_a[k]`` for ``vt[k+1] - vt[k]`` seconds.

Music shorter than it must be is extended by looping a stretch of whole bars: from a bar line
``L`` back from a later bar line ``E``, chosen where the music before (and after) the two bar lines
sounds most alike (beat-synchronous chroma) and the loop is long. The chain is then
``[start, E)`` + ``[L, E)`` × repeats + ``[E, end)``, so the music's own ending still follows the
last repeat. With ``extend="silence"`` the music is followed by silence instead (asked for only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .analysis import AlignError, MusicAnalysis


@dataclass(frozen=True)
class Timeline:
    vt: np.ndarray  # [N+1] virtual time of each boundary (vt[0] = 0)
    src_a: np.ndarray  # [N] source time where unit k starts
    beat: np.ndarray  # [N+1] source beat index at boundary k, -1 where none (start offset, music end)
    bar: np.ndarray  # [N+1] bool: boundary k is a bar line
    strength: np.ndarray  # [N+1] onset strength of the beat at boundary k (0-1)
    end_k: int  # boundary where the music's own end is reached (after the last loop), -1 if never
    loop: tuple[float, float, int] | None  # (source start, source end, repeats) when looped

    @property
    def units(self) -> int:
        return len(self.src_a)

    def length(self, k: int) -> float:
        return float(self.vt[k + 1] - self.vt[k])

    def src_at(self, k: int) -> float:
        """Source time where boundary k's music starts."""
        return float(self.src_a[k]) if k < self.units else float(self.src_a[-1] + self.length(self.units - 1))


def _base(analysis: MusicAnalysis, start: float):
    """Source boundaries [start, beats..., end] with their beat index (-1 for start and end)."""
    if not 0.0 <= start < analysis.duration - 1.0:
        raise AlignError(f"start offset {start:.2f} s is outside the music "
                         f"(0 to {max(0.0, analysis.duration - 1.0):.2f} s)")
    keep = np.flatnonzero((analysis.beats > start + 0.01) & (analysis.beats < analysis.duration - 0.01))
    if keep.size < 4:
        raise AlignError(f"fewer than 4 beats after the start offset {start:.2f} s: choose an earlier start")
    times = np.concatenate([[start], analysis.beats[keep], [analysis.duration]])
    index = np.concatenate([[-1], keep, [-1]])
    return times, index


def _loop_points(analysis: MusicAnalysis, index: np.ndarray) -> tuple[int, int]:
    """Positions (into the base boundaries) of the loop's bar lines L < E."""
    bars = analysis.bar_starts()
    beat_pos = np.flatnonzero(index >= 0)
    cands = [p for p in beat_pos if bars[index[p]]]
    per_bar = analysis.meter or 4
    unit = analysis.beat_chroma / np.maximum(np.linalg.norm(analysis.beat_chroma, axis=0, keepdims=True), 1e-9)

    def sim(i: int, j: int) -> float:
        return float(unit[:, i] @ unit[:, j]) if 0 <= i < unit.shape[1] and 0 <= j < unit.shape[1] else 0.0

    best, choice = -math.inf, None
    total = len(beat_pos)
    for a in cands:
        for b in cands:
            span = index[b] - index[a]
            if span < 2 * per_bar:
                continue
            ia, ib = index[a], index[b]
            score = sim(ia - 1, ib - 1) + (sim(ia, ib) if ib + 1 < len(analysis.beats) else sim(ia - 2, ib - 2))
            score += 0.5 * span / total
            if score > best:
                best, choice = score, (a, b)
    if choice is None:  # under two bars of beats: loop from the first to the last beat
        if len(beat_pos) < 3:
            raise AlignError("the music is too short to loop: it needs at least 3 beats")
        choice = (beat_pos[0], beat_pos[-1])
    return choice


def build_timeline(analysis: MusicAnalysis, *, start: float, needed: float, extend: str = "loop") -> Timeline:
    """The units to play from ``start``, at least ``needed`` seconds of music long (see the module doc)."""
    if extend not in ("loop", "silence"):
        raise AlignError(f"extend must be 'loop' or 'silence', got {extend!r}")
    times, index = _base(analysis, start)
    order = list(range(len(times)))  # positions into times/index, in playing order
    loop, end_pos = None, len(order) - 1
    have = times[-1] - times[0]
    if have < needed and extend == "loop":
        a, b = _loop_points(analysis, index)
        span = times[b] - times[a]
        repeats = max(1, math.ceil((needed - have) / span))
        order = list(range(b)) + list(range(a, b)) * repeats + list(range(b, len(times)))
        end_pos = len(order) - 1
        loop = (float(times[a]), float(times[b]), repeats)
    src_a, lengths = [], []
    for p, _q in zip(order[:-1], order[1:]):
        src_a.append(times[p])
        # a unit ends where its music ends, even when the next unit jumps (loop seam)
        lengths.append(times[p + 1] - times[p] if p + 1 < len(times) else 0.0)
    if have < needed and extend == "silence":
        src_a.append(times[-1])
        lengths.append(needed - have + 1.0)
        order.append(-1)
    vt = np.concatenate([[0.0], np.cumsum(lengths)])
    beat = np.array([index[p] if p >= 0 else -1 for p in order])
    bars = analysis.bar_starts()
    bar = np.array([b >= 0 and bool(bars[b]) for b in beat])
    strength = np.array([analysis.beat_strength[b] if b >= 0 else 0.0 for b in beat])
    return Timeline(vt=vt, src_a=np.asarray(src_a, dtype=np.float64), beat=beat, bar=bar, strength=strength,
                    end_k=end_pos, loop=loop)
