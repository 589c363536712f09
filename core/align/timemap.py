"""The time map: which stretch of music plays when, so that beats land on the video's hit points.

The map is monotonic and piecewise linear between *anchors*: the start (output 0), hit points that
receive a beat, and the ending. Between two anchors the music plays at one rate ``r`` (seconds of
music per second of video; ``|r - 1| <= max_stretch`` everywhere), optionally with one *edit*
(a beat or a bar dropped or repeated at its quietest place) when the bounds cannot be met by
stretching alone. A hit may receive its beat up to ``slack`` seconds early or late.

The anchors are chosen by dynamic programming over (hit, beat, offset) states, kept to a beam of
the best :data:`BEAM` per hit. A hit that receives a beat scores its strength (normalised to the
median hit), more on a bar line and on a strong beat; stretching, offsets and edits cost a
little. The ending is part of the search: a bar line ``end_fade`` seconds before the end followed
by a fade (preferred), the music's own ending landing exactly on the end, or else a plain fade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .analysis import AlignError, MusicAnalysis
from .timeline import Timeline

BEAM = 48
MAX_SKIP = 6  # hits that may be passed over between two anchors
MIN_SEGMENT = 0.3  # seconds of video between two anchors at least
MAX_START_SKIP = 4.0  # seconds of music the output may skip at its start to land its first beat
#: Share of a hit's gain lost when its beat lands a whole ``slack`` away: cheap against a hit not
#: taken (all its gain), two thirds of what the full tempo bound costs over two seconds, so a beat
#: a little off the cut is preferred to a large tempo change (the beat tracker, and a listener,
#: follow a steadier tempo better).
OFFSET_COST = 0.2
EDIT_KINDS = ("none", "beats", "bars")
_FADE_RANGE = (0.25, 2.0)  # seconds between the final bar line and the end


@dataclass(frozen=True)
class AlignOptions:
    """Bounds the user sets: tempo change, edits, where the music starts, the ending, extension."""

    max_stretch: float = 0.08
    edits: str = "beats"  # none | beats | bars (an edit is made only where stretching cannot reach a hit)
    start: float = 0.0  # seconds into the music where the output begins (it may begin up to 2 s later, on a beat)
    slack: float = 0.04  # a beat may land this many seconds from its hit point (Scene Cut Hit allows 0.1)
    end_fade: float = 1.0  # seconds of fade after the final bar line
    extend: str = "loop"  # music shorter than the video: "loop", or "silence" (only when asked)
    #: when the track's opening has no beat the beat tracker hears (its first heard beat more than
    #: MAX_START_SKIP after ``start``) and no plan from ``start`` lands on the cuts, the music may begin at
    #: its first heard beat instead (``pipeline.align_music``); False keeps the opening
    skip_intro: bool = True

    def __post_init__(self):
        if not 0.0 <= self.max_stretch <= 0.5:
            raise AlignError(f"max_stretch must be within 0–0.5 (a fraction of the tempo), got {self.max_stretch}")
        if self.edits not in EDIT_KINDS:
            raise AlignError(f"edits must be one of {', '.join(EDIT_KINDS)}, got {self.edits!r}")
        if not 0.0 <= self.slack <= 0.1:
            raise AlignError(f"slack must be within 0–0.1 s, got {self.slack}")
        if not _FADE_RANGE[0] <= self.end_fade <= _FADE_RANGE[1]:
            raise AlignError(f"end_fade must be within {_FADE_RANGE[0]}–{_FADE_RANGE[1]} s, got {self.end_fade}")
        if self.start < 0:
            raise AlignError(f"start must be >= 0 s, got {self.start}")
        if not isinstance(self.skip_intro, bool):
            raise AlignError(f"skip_intro must be True or False, got {self.skip_intro!r}")


@dataclass(frozen=True)
class Piece:
    """Output ``[out_a, out_b)`` plays source ``[src_a, src_b)`` at one rate."""

    out_a: float
    out_b: float
    src_a: float
    src_b: float

    @property
    def rate(self) -> float:
        return (self.src_b - self.src_a) / (self.out_b - self.out_a)


@dataclass
class TimeMap:
    pieces: list[Piece]
    duration: float
    anchors: list[dict] = field(default_factory=list)  # hits that received a beat: hit, out, src, bar
    edits: list[dict] = field(default_factory=list)  # kind (drop|repeat), unit (beat|bar), at (output s)
    seams: list[float] = field(default_factory=list)  # output times where the source jumps (edits, loops)
    beats_out: np.ndarray = field(default_factory=lambda: np.zeros(0))  # where the music's beats play
    ending: str = "fade"  # bar | natural | fade
    fade: tuple[float, float] = (0.0, 0.0)  # fade-out span (output s)
    score: float = 0.0  # the planner's score (higher is better)

    @property
    def max_tempo_change(self) -> float:
        return max((abs(p.rate - 1.0) for p in self.pieces), default=0.0)


@dataclass
class _Problem:
    tl: Timeline
    hits: np.ndarray
    weights: np.ndarray
    duration: float
    opts: AlignOptions
    bar_bonus: float
    edit_cost: np.ndarray  # [units] cost of a seam at unit k (drop/repeat of that beat)
    bar_units: list[tuple[int, int]]  # (first, end) boundaries of whole bars

    @property
    def lo(self) -> float:
        return 1.0 - self.opts.max_stretch - 1e-12

    @property
    def hi(self) -> float:
        return 1.0 + self.opts.max_stretch + 1e-12

    @cached_property
    def span_range(self) -> tuple[float, float]:
        """Shortest and longest stretch of music one edit can drop or repeat (a beat, or a bar)."""
        vt = self.tl.vt
        if self.opts.edits == "bars":
            lens = np.array([vt[b] - vt[a] for a, b in self.bar_units])
        else:
            lens = np.diff(vt)[(self.tl.beat[:-1] >= 0) & (self.tl.beat[1:] >= 0)]
        return (float(lens.min()), float(lens.max())) if lens.size else (math.inf, -math.inf)

    def stretch_cost(self, r: float, seconds: float) -> float:
        scale = math.log1p(max(self.opts.max_stretch, 1e-3))
        return 0.3 * (math.log(r) / scale) ** 2 * seconds / 2.0


def _edit_costs(tl: Timeline, analysis: MusicAnalysis) -> np.ndarray:
    """Cost of cutting at the start and the end of each unit: dearer where the music is loud."""
    before = analysis.rms_at(np.maximum(tl.src_a - 0.05, 0.0))
    ends = tl.src_a + np.diff(tl.vt)
    after = analysis.rms_at(np.maximum(ends - 0.05, 0.0))
    ref = float(np.median(analysis.rms)) or 1.0
    return 0.3 + 0.3 * np.minimum(2.0, (before + after) / (2 * ref))


def _bar_units(tl: Timeline) -> list[tuple[int, int]]:
    lines = np.flatnonzero(tl.bar)
    return [(int(a), int(b)) for a, b in zip(lines[:-1], lines[1:]) if not np.any(tl.beat[a:b + 1] < 0)]


def _edit_options(p: _Problem, k: int, k2: int, s0: float, g: float) -> list[tuple[float, float, tuple]]:
    """(extra music seconds, cost, edit) that bring ``s0`` seconds of music between boundaries k and k2
    within the rate bounds for ``g`` seconds of video: no edit, or one dropped/repeated beat or bar."""
    out = []
    lo_g, hi_g = p.lo * g, p.hi * g
    if lo_g <= s0 <= hi_g:
        out.append((0.0, 0.0, ()))
    if p.opts.edits == "none" or k2 - k < 2:
        return out
    # a drop needs a span of length in [s0 - hi_g, s0 - lo_g], a repeat one in [lo_g - s0, hi_g - s0]:
    # most transitions need neither, which the range of span lengths tells without listing them
    shortest, longest = p.span_range
    kinds = []
    if s0 - hi_g <= longest and s0 - lo_g >= shortest:
        kinds.append(("drop", -1.0))
    if lo_g - s0 <= longest and hi_g - s0 >= shortest:
        kinds.append(("repeat", 1.0))
    if not kinds:
        return out
    if p.opts.edits == "beats":
        spans = [(i, i + 1) for i in range(k + 1, k2 - 1) if p.tl.beat[i] >= 0 and p.tl.beat[i + 1] >= 0]
    else:
        spans = [(a, b) for a, b in p.bar_units if a > k and b < k2]
    for kind, sign in kinds:
        best = None
        for a, b in spans:
            ln = float(p.tl.vt[b] - p.tl.vt[a])
            if lo_g <= s0 + sign * ln <= hi_g:
                c = float(p.edit_cost[a]) + (0.2 if p.opts.edits == "bars" else 0.0)
                if best is None or c < best[1]:
                    best = (sign * ln, c, (kind, a, b))
        if best is not None:
            out.append(best)
    return out


def _land_gain(p: _Problem, j: int, k: int, offset: float) -> float:
    w = float(p.weights[j - 1])  # anchor j >= 1 is hit j - 1 (anchor 0 is the start)
    bonus = p.bar_bonus * float(p.tl.bar[k]) + 0.2 * float(p.tl.strength[k])
    slack = p.opts.slack or 1.0
    return w * (1.0 + bonus) - OFFSET_COST * w * abs(offset) / slack


def _start_states(p: _Problem) -> dict:
    """Anchor 0 (output time 0): the start offset, or a beat within the first 2 s after it."""
    states = {(0, 0): (0.0, None)}
    for k in range(1, p.tl.units):
        if p.tl.vt[k] > 2.0:
            break
        if p.tl.beat[k] >= 0:
            states[(k, 0)] = (-0.2 * float(p.tl.vt[k]) - 0.05, None)
    return states


def _start_skip(p: _Problem, s0: float, g: float) -> list[tuple[float, float, tuple]]:
    """Start ``skip`` seconds into the music (at most MAX_START_SKIP) so ``s0 - skip`` fits ``g`` seconds."""
    lo, hi = max(0.0, s0 - p.hi * g), min(MAX_START_SKIP, s0 - p.lo * g)
    if lo > hi:
        return []
    skip = min(max(s0 - g, lo), hi)
    return [(-skip, 0.15 * skip, ("skip", skip))]


def _expand(p: _Problem, states: list[dict], j: int, offsets: np.ndarray, times: np.ndarray) -> None:
    """Transitions from anchor ``j``'s states to the next hits (see the module doc)."""
    vt, beat = p.tl.vt, p.tl.beat
    unit = float(vt[-1]) / max(len(vt) - 1, 1)
    margin = 0.0 if p.opts.edits == "none" else 2.0 * unit * (8 if p.opts.edits == "bars" else 1)
    for (k, d), (score, _back) in states[j].items():
        ta = times[j] + (offsets[d] if j else 0.0)
        for j2 in range(j + 1, min(len(times), j + 1 + MAX_SKIP)):
            for d2, off in enumerate(offsets):
                g = times[j2] + off - ta
                if g < MIN_SEGMENT or times[j2] + off > p.duration - 0.05:
                    continue
                lo = np.searchsorted(vt, vt[k] + p.lo * g - margin, "left")
                hi = np.searchsorted(vt, vt[k] + p.hi * g + margin, "right")
                if j == 0 and k == 0:  # the music may start later, so that its first beat lands
                    hi = np.searchsorted(vt, p.hi * g + MAX_START_SKIP, "right")
                for k2 in range(max(lo, k + 1), min(hi, len(vt))):
                    if beat[k2] < 0:
                        continue
                    s0 = float(vt[k2] - vt[k])
                    gain = _land_gain(p, j2, k2, off)
                    options = _edit_options(p, k, k2, s0, g)
                    if j == 0 and k == 0 and not options:
                        options = _start_skip(p, s0, g)
                    for extra, cost, edit in options:
                        value = score + gain - cost - p.stretch_cost((s0 + extra) / g, g)
                        key = (k2, d2)
                        if key not in states[j2] or value > states[j2][key][0]:
                            states[j2][key] = (value, (j, k, d, edit))


def _end_option(p: _Problem, ta: float, k: int) -> tuple[float, dict]:
    """Best way to end after a state at output ``ta`` on boundary ``k``: (gain, description)."""
    vt, d = p.tl.vt, p.duration
    rest = d - ta
    music = float(vt[-1] - vt[k])  # what is left to play
    tail = 1.0 if music >= rest else music / rest
    best = (0.0, {"kind": "fade", "rate": tail}) if tail >= p.lo else (-math.inf, {"kind": "none"})
    lo_t, hi_t = max(d - _FADE_RANGE[1], ta + MIN_SEGMENT), d - _FADE_RANGE[0]
    if hi_t > lo_t:
        want = d - p.opts.end_fade
        for k2 in range(k + 1, len(vt)):
            s = float(vt[k2] - vt[k])
            if s / p.hi > hi_t - ta:
                break
            if not p.tl.bar[k2] or p.tl.beat[k2] < 0:
                continue
            a, b = max(lo_t, ta + s / p.hi), min(hi_t, ta + s / p.lo)
            if a > b:
                continue
            te = min(max(want, a), b)
            r = s / (te - ta)
            gain = 0.4 - p.stretch_cost(r, te - ta) - 0.1 * abs(te - want)
            if gain > best[0]:
                best = (gain, {"kind": "bar", "k": k2, "t": te, "rate": r})
    if p.tl.end_k > k and rest > MIN_SEGMENT:  # the music's own ending on the video's end, maybe after an edit
        s0 = float(vt[p.tl.end_k] - vt[k])
        for extra, cost, edit in _edit_options(p, k, p.tl.end_k, s0, rest):
            r = (s0 + extra) / rest
            gain = 0.8 - cost - p.stretch_cost(r, rest)
            if gain > best[0]:
                best = (gain, {"kind": "natural", "k": p.tl.end_k, "t": d, "rate": r, "edit": edit})
    return best


def _search(p: _Problem):
    """Forward DP with a beam; returns the best path of anchors and the ending."""
    offsets = np.array([0.0]) if p.opts.slack == 0 else p.opts.slack * np.array([0.0, -0.5, 0.5, -1.0, 1.0])
    times = np.concatenate([[0.0], p.hits])
    states: list[dict] = [dict() for _ in times]
    states[0] = _start_states(p)
    best = (-math.inf, None, None)
    for j in range(len(times)):
        if len(states[j]) > BEAM:
            keep = sorted(states[j].items(), key=lambda kv: -kv[1][0])[:BEAM]
            states[j] = dict(keep)
        for (k, d), (score, _b) in states[j].items():
            ta = times[j] + (offsets[d] if j else 0.0)
            gain, end = _end_option(p, ta, k)
            if score + gain > best[0]:
                best = (score + gain, (j, k, d), end)
        _expand(p, states, j, offsets, times)
    score, node, end = best
    path = []
    while node is not None:
        j, k, d = node
        back = states[j][(k, d)][1]
        path.append((j, k, d, back[3] if back else ()))
        node = back[:3] if back else None
    path.reverse()
    return path, end, offsets, times, score


def _unit_sequence(k: int, k2: int, edit: tuple) -> list[int]:
    if not edit or edit[0] == "skip":
        return list(range(k, k2))
    kind, a, b = edit
    if kind == "drop":
        return list(range(k, a)) + list(range(b, k2))
    return list(range(k, b)) + list(range(a, k2))


def _play(tl: Timeline, units: list[int], t0: float, rate: float, t_end: float | None, sink: dict,
          skip: float = 0.0) -> float:
    """Append the pieces of ``units`` played from output ``t0`` at ``rate`` (cut at ``t_end``), the
    first ``skip`` seconds of music left out."""
    t = t0
    for u in units:
        ln, src = tl.length(u), float(tl.src_a[u])
        if skip > 0:
            cut = min(skip, ln)
            ln, src, skip = ln - cut, src + cut, skip - cut
            if ln <= 1e-9:
                continue
        if ln <= 0:
            continue
        dur = ln / rate
        if t_end is not None and t + dur > t_end:
            dur = t_end - t
        prev = sink["pieces"][-1] if sink["pieces"] else None
        if prev is not None and abs(prev.src_b - src) > 1e-6:
            sink["seams"].append(t)
        if tl.beat[u] >= 0 and src == float(tl.src_a[u]):
            sink["beats"].append(t)
        sink["pieces"].append(Piece(t, t + dur, src, src + dur * rate))
        t += dur
        if t_end is not None and t >= t_end - 1e-12:
            break
    return t


def _merge(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if p.out_b - p.out_a <= 1e-9:
            continue
        if out and abs(out[-1].src_b - p.src_a) < 1e-6 and abs(out[-1].rate - p.rate) < 1e-9:
            out[-1] = Piece(out[-1].out_a, p.out_b, out[-1].src_a, p.src_b)
        else:
            out.append(p)
    return out


def plan(analysis: MusicAnalysis, tl: Timeline, hits, duration: float, *, strengths=None,
         options: AlignOptions = AlignOptions()) -> TimeMap:
    """The time map for a video of ``duration`` seconds with hit points ``hits`` (see the module doc)."""
    hits = np.asarray(hits, dtype=np.float64).reshape(-1)
    w = np.ones_like(hits) if strengths is None else np.asarray(strengths, dtype=np.float64).reshape(-1)
    if w.shape != hits.shape:
        raise AlignError(f"{hits.size} hit points but {w.size} strengths")
    order = np.argsort(hits)
    hits, w = hits[order], w[order]
    keep = (hits > MIN_SEGMENT) & (hits < duration - 0.05)
    hits, w = hits[keep], np.maximum(w[keep], 0.0)
    med = float(np.median(w)) if w.size and np.median(w) > 0 else 1.0
    p = _Problem(tl=tl, hits=hits, weights=np.clip(w / med, 0.3, 3.0), duration=float(duration), opts=options,
                 bar_bonus=0.8 if analysis.bars_detected else 0.1, edit_cost=_edit_costs(tl, analysis),
                 bar_units=_bar_units(tl))
    path, end, offsets, times, score = _search(p)
    tmap = _assemble(p, path, end, offsets, times)
    tmap.score = float(score)
    return tmap


def _assemble(p: _Problem, path, end: dict, offsets, times) -> TimeMap:
    tl, d = p.tl, p.duration
    sink: dict = {"pieces": [], "seams": [], "beats": []}
    anchors, edits = [], []
    for (j, k, dd, _e), (j2, k2, d2, edit) in zip(path[:-1], path[1:]):
        ta = times[j] + (offsets[dd] if j else 0.0)
        tb = times[j2] + offsets[d2]
        units = _unit_sequence(k, k2, edit)
        skip = edit[1] if edit and edit[0] == "skip" else 0.0
        rate = (sum(tl.length(u) for u in units) - skip) / (tb - ta)
        _play(tl, units, ta, rate, tb, sink, skip=skip)
        if edit and not skip:
            kind, a, b = edit
            seam_k = a if kind == "drop" else b
            edits.append({"kind": kind, "unit": "bar" if p.opts.edits == "bars" else "beat",
                          "at": round(ta + (tl.vt[seam_k] - tl.vt[k]) / rate, 4)})
        anchors.append({"hit": float(times[j2]), "out": float(tb), "src": tl.src_at(k2), "bar": bool(tl.bar[k2])})
    j, k, dd, _e = path[-1]
    ta = times[j] + (offsets[dd] if j else 0.0)
    if end["kind"] == "none":
        raise AlignError(f"{tl.vt[-1]:.2f} s of music cannot fill {d:.2f} s of video within the tempo bounds: "
                         "allow looping, or give a longer track")
    if end["kind"] == "fade":
        t = _play(tl, list(range(k, tl.units)), ta, end["rate"], d, sink)
        # the fade starts after the last landed beat has sounded (a fade over it would hide it)
        start = max(ta + 0.25, d - p.opts.end_fade) if path[-1][0] > 0 else d - p.opts.end_fade
        fade = (min(start, d - 0.1), d)
    else:
        edit = end.get("edit", ())
        t = _play(tl, _unit_sequence(k, end["k"], edit), ta, end["rate"], end["t"], sink)
        if edit:
            edits.append({"kind": edit[0], "unit": "bar" if p.opts.edits == "bars" else "beat",
                          "at": round(ta + (tl.vt[edit[1] if edit[0] == "drop" else edit[2]] - tl.vt[k])
                                      / end["rate"], 4)})
        t = _play(tl, list(range(end["k"], tl.units)), t, 1.0, d, sink) if t < d - 1e-9 else t
        fade = (end["t"], d) if end["kind"] == "bar" else (d - 0.01, d)
    if t < d - 1e-6:
        raise AlignError(f"the music runs out at {t:.2f} s of a {d:.2f} s video; this should not happen "
                         "with looping: please report it")
    seams = sorted(set(round(s, 6) for s in sink["seams"]))
    return TimeMap(pieces=_merge(sink["pieces"]), duration=d, anchors=anchors, edits=edits, seams=seams,
                   beats_out=np.asarray(sink["beats"]), ending=end["kind"], fade=fade)
