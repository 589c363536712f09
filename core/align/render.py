"""Rendering a time map: each piece time-stretched on its own, joined by short crossfades.

Stretcher: Rubber Band through ``pedalboard.time_stretch`` (high quality, crisp transients); when
pedalboard is missing, librosa's phase vocoder (``librosa.effects.time_stretch``), which smears
transients more but needs nothing beyond librosa. Each piece is stretched at its one rate with
:data:`PAD` seconds of music on either side, so both neighbours of a join hold the audio around it
(:func:`stretch_pieces`, the costly half; :func:`join_pieces` joins them).

Joins: a join at output time ``t`` (a beat, or an edit or loop seam at a beat) is moved into
``[t - 0.15, t - 0.03]`` s (the end of the previous beat's decay, before the next attack); the
incoming rendering is moved by up to :data:`MAX_LAG` to where it best matches the outgoing one
(:func:`_best_lag`) and the two are crossfaded: 10 ms where both sides are the same music at two
rates, 25 ms where the music jumps (edits, loops), with gains that keep the level whatever the two
sides' correlation. "smooth" joins (the default) go where the joined audio's 10 ms loudness steps
least (:func:`_level_point`: two renderings of a pad beat in their own phases, and a join can land
one's swell on the other's dip), and around each join (the crossfade and the decay before the beat,
:func:`join_spans`) the output's 10 ms loudness is brought back to the music's own through the time
map (:func:`restore_envelope`, ``at="joins"``); every other sample is the stretch's own, so the beats
between joins are heard as before. "plain" joins go where the two renderings are most alike
(:func:`_similar_point`) and nothing is restored. The output starts with a 5 ms fade-in and ends
with the time map's fade. Channels are kept as they are.
"""

from __future__ import annotations

import logging

import numpy as np

from .timemap import Piece, TimeMap

log = logging.getLogger("v2m_zero.align")

PAD = 0.2  # seconds of context rendered around every piece
_SEARCH = (0.15, 0.03)  # a join moves into [t - 0.15, t - 0.03] s
STRETCHERS = ("auto", "rubberband", "phase-vocoder")
#: "matched" (level kept through every join: :func:`_matched_crossfade`) or "fixed" (linear / equal power)
CROSSFADE = "matched"
#: Crossfade lengths (s): between two rates of the same music, and where the music jumps (edits, loops).
XFADE = (0.010, 0.025)
#: The incoming rendering may be moved by up to this many seconds to line up with the outgoing one
#: over the crossfade (:func:`_best_lag`), so they add in phase instead of partly cancelling.
MAX_LAG = 0.004
#: How pieces are joined: "smooth" (the default) or "plain" (:func:`join_pieces`).
SEAMS = ("smooth", "plain")
#: The output's short-term loudness can be brought back to the music's own (:func:`restore_envelope`): the
#: RMS of the channels' mean over ENV_WINDOW s frames every ENV_HOP s, the gain bounded to ±ENV_MAX_DB,
#: smoothed over ENV_SMOOTH frames, interpolated and eased by ENV_EASE moving averages over one hop (its slope
#: changes smoothly: no clicks). "smooth" joins do it around each join only (``at="joins"``:
#: [t - ENV_SPAN[0], t + ENV_SPAN[1]] s around a join at t, the crossfade and the decay before the beat
#: it leads into, eased in and out over ENV_RAMP s outside that span; every other sample is left as it
#: is). Everywhere (``at="everywhere"``, not the default) it lowers the seams as much but the beat tracker
#: hears the whole rendering differently (benchmarks/RESULTS.md, "Aligned music pair by pair").
ENV_WINDOW, ENV_HOP, ENV_MAX_DB, ENV_SMOOTH = 0.010, 0.005, 6.0, 1
ENV_EASE = 1
ENV_SPAN, ENV_RAMP = (0.17, 0.0), 0.01


def have_rubberband() -> bool:
    try:
        import pedalboard  # noqa: F401
    except ImportError:
        return False
    return hasattr(pedalboard, "time_stretch")


def choose_stretcher(name: str = "auto") -> str:
    """``rubberband`` when pedalboard is there (for ``auto``), else ``phase-vocoder`` (with a warning)."""
    if name not in STRETCHERS:
        raise ValueError(f"stretcher must be one of {', '.join(STRETCHERS)}, got {name!r}")
    if name == "phase-vocoder":
        return name
    if have_rubberband():
        return "rubberband"
    if name == "rubberband":
        from .analysis import AlignError

        raise AlignError("the Rubber Band stretcher needs pedalboard (pip install pedalboard); "
                         "or choose the phase-vocoder stretcher")
    log.warning("pedalboard is not installed: music is stretched with librosa's phase vocoder (softer transients)")
    return "phase-vocoder"


def stretch(x: np.ndarray, sr: int, rate: float, stretcher: str) -> np.ndarray:
    """``x`` [C, T] played ``rate`` times faster, pitch kept: [C, round(T / rate)]."""
    n_out = int(round(x.shape[1] / rate))
    if abs(rate - 1.0) < 1e-6:
        y = x
    elif stretcher == "rubberband":
        import pedalboard

        y = pedalboard.time_stretch(np.ascontiguousarray(x, dtype=np.float32), float(sr), stretch_factor=float(rate),
                                    high_quality=True, transient_mode="crisp")
    else:
        import librosa

        y = librosa.effects.time_stretch(np.ascontiguousarray(x, dtype=np.float32), rate=float(rate))
    y = np.asarray(y, dtype=np.float32)
    if y.shape[1] < n_out:
        y = np.pad(y, ((0, 0), (0, n_out - y.shape[1])))
    return y[:, :n_out]


def _source_slice(wave: np.ndarray, a: int, b: int) -> np.ndarray:
    """``wave[:, a:b]`` with zeros outside the music."""
    out = np.zeros((wave.shape[0], b - a), dtype=np.float32)
    lo, hi = max(a, 0), min(b, wave.shape[1])
    if hi > lo:
        out[:, lo - a:hi - a] = wave[:, lo:hi]
    return out


def _render_piece(wave: np.ndarray, sr: int, p: Piece, stretcher: str) -> tuple[int, np.ndarray]:
    """(first output sample, audio) of piece ``p`` with PAD seconds of context on both sides."""
    r = p.rate
    src0 = int(round((p.src_a - PAD * r) * sr))
    src1 = int(round((p.src_b + PAD * r) * sr))
    y = stretch(_source_slice(wave, src0, src1), sr, r, stretcher)
    first = int(round(p.out_a * sr - (p.src_a * sr - src0) / r))
    return first, y


def _window(track: tuple[int, np.ndarray], a: int, b: int) -> np.ndarray:
    first, y = track
    return _source_slice(y, a - first, b - first)


def _lag_scores(prev, nxt, a: int, b: int, max_lag: int) -> np.ndarray:
    """Normalised cross-correlation of ``prev`` over ``[a, b)`` with ``nxt`` moved by each lag
    ``max_lag - k`` (k = 0 … 2 max_lag), on the channel means."""
    out = _window(prev, a, b).mean(axis=0).astype(np.float64)
    inc = _window(nxt, a - max_lag, b + max_lag).mean(axis=0).astype(np.float64)
    corr = np.correlate(inc, out, "valid")
    energy = np.convolve(inc ** 2, np.ones(b - a), "valid")
    return corr / np.sqrt(np.maximum(energy * float(np.sum(out ** 2)), 1e-20))


def _best_lag(prev, nxt, a: int, b: int, max_lag: int) -> int:
    """Samples to delay ``nxt`` by (negative: advance) so that it best matches ``prev`` over ``[a, b)``.

    The lag of the largest normalised cross-correlation of the two channel means within ``±max_lag``
    samples (0 when nothing correlates): two renderings of the same music at two rates drift apart
    in phase, and two pieces of the music joined at an edit are unrelated; lined up, a crossfade
    adds them in phase (the waveform-similarity idea of WSOLA, applied once per join)."""
    if max_lag <= 0 or b - a < 8:
        return 0
    score = _lag_scores(prev, nxt, a, b, max_lag)
    k = int(np.argmax(score))
    return max_lag - k if score[k] > 0 else 0


def _similar_point(prev, nxt, t: float, sr: int, lo_limit: int, xf: int, jump: bool = False) -> int:
    """The centre in the join's search span where the two renderings, lined up, are most alike."""
    a = max(int(round((t - _SEARCH[0]) * sr)), lo_limit)
    b = max(int(round((t - _SEARCH[1]) * sr)), a + 1)
    hop, lag = max(1, int(0.0025 * sr)), int(MAX_LAG * sr)
    best, where = -np.inf, (a + b) // 2
    for c in range(a, b + 1, hop):
        s = float(np.max(_lag_scores(prev, nxt, c - xf // 2, c + xf - xf // 2, lag))) if lag > 0 else 0.0
        if s > best:
            best, where = s, c
    return where


def _steps_db(x: np.ndarray, sr: int) -> float:
    """Largest loudness step in ``x`` [C, T]: |dB| between adjacent 10 ms frames of the channels' mean,
    frames at every 2.5 ms (whatever grid a listener's ear or a meter puts on it)."""
    y = x.astype(np.float64).mean(axis=0)
    n, hop = int(0.01 * sr), max(1, int(0.0025 * sr))
    if y.size < 2 * n:
        return 0.0
    e = np.concatenate([[0.0], np.cumsum(y ** 2)])
    starts = np.arange(0, y.size - n + 1, hop)
    db = 10.0 * np.log10((e[starts + n] - e[starts]) / n + 1e-12)
    k = n // hop
    return float(np.max(np.abs(db[k:] - db[:-k]))) if db.size > k else 0.0


def _join(prev, nxt, a: int, b: int, jump: bool, max_lag: int):
    """(``nxt`` moved by the best lag, crossfaded audio over ``[a, b)``) of ``prev`` into ``nxt``."""
    lag = _best_lag(prev, nxt, a, b, max_lag)
    track = (nxt[0] + lag, nxt[1])
    outgoing, incoming = _window(prev, a, b), _window(track, a, b)
    g_in, g_out = _crossfade(b - a, jump) if CROSSFADE == "fixed" else _matched_crossfade(outgoing, incoming)
    return track, outgoing * g_out + incoming * g_in


def _level_point(prev, nxt, t: float, sr: int, lo_limit: int, xf: int, jump: bool) -> int:
    """The centre in the join's search span whose joined audio (``prev``, the crossfade, ``nxt``, from
    the span's start to the beat at ``t``) has the smallest loudness step (:func:`_steps_db`); the
    earliest of equals. The two renderings of a pad drift in level and phase against each other, and
    where they are joined decides the step a listener hears there."""
    a0 = max(int(round((t - _SEARCH[0]) * sr)), lo_limit)
    b0 = max(int(round((t - _SEARCH[1]) * sr)), a0 + 1)
    lo, hi = max(a0 - xf, 0), max(int(round(t * sr)), b0 + xf)
    hop, lag = max(1, int(0.0025 * sr)), int(MAX_LAG * sr)
    best, where = np.inf, (a0 + b0) // 2
    for c in range(a0, b0 + 1, hop):
        a, b = c - xf // 2, c + xf - xf // 2
        track, mixed = _join(prev, nxt, a, b, jump, lag)
        s = _steps_db(np.concatenate([_window(prev, lo, a), mixed, _window(track, b, hi)], axis=1), sr)
        if s < best - 1e-9:
            best, where = s, c
    return where


def _fade_in(n: int) -> np.ndarray:
    return ((np.arange(n, dtype=np.float64) + 0.5) / n).astype(np.float32)


def _crossfade(n: int, equal_power: bool) -> tuple[np.ndarray, np.ndarray]:
    """(gain in, gain out) over ``n`` samples: linear for correlated audio, equal-power otherwise."""
    x = _fade_in(n)
    if equal_power:
        return np.sin(0.5 * np.pi * x).astype(np.float32), np.cos(0.5 * np.pi * x).astype(np.float32)
    return x, 1.0 - x


def _matched_crossfade(out_part: np.ndarray, in_part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain in, gain out) that keep the level through the crossfade, whatever the two sides' correlation.

    Two renderings of the same music at two rates drift apart in phase, so they are neither fully
    correlated (where a linear fade keeps the level) nor independent (equal power): the gains are
    linear fades divided by the level their sum would have, ``sqrt(a² + b² + 2ρab)``, with ``ρ`` the
    correlation of the two sides over the fade; and the incoming side is brought to the outgoing
    side's level (at most ±3 dB), its gain returning to 1 by the fade's end, so the level moves smoothly.
    """
    n = out_part.shape[1]
    a, b = 1.0 - _fade_in(n).astype(np.float64), _fade_in(n).astype(np.float64)
    po, pi = float(np.sum(out_part.astype(np.float64) ** 2)), float(np.sum(in_part.astype(np.float64) ** 2))
    rho = float(np.sum(out_part.astype(np.float64) * in_part)) / max(np.sqrt(po * pi), 1e-20)
    rho = min(max(rho, 0.0), 1.0)
    match = min(max(np.sqrt(po / pi), 10 ** (-3 / 20)), 10 ** (3 / 20)) if pi > 1e-20 and po > 1e-20 else 1.0
    g_in = b * (match + (1.0 - match) * b)  # the incoming side at the outgoing level, then its own
    norm = np.sqrt(a ** 2 + b ** 2 + 2.0 * rho * a * b)
    return (g_in / norm).astype(np.float32), (a / norm).astype(np.float32)


def stretch_pieces(wave: np.ndarray, sample_rate: int, tmap: TimeMap, *, stretcher: str = "auto",
                   progress=None, check_interrupt=None) -> list[tuple[int, np.ndarray]]:
    """Every piece of ``tmap`` stretched at its rate with :data:`PAD` s of context: (first output
    sample, audio) each, for :func:`join_pieces` (the costly half of :func:`render`)."""
    sr = int(sample_rate)
    wave = _as_2d(wave)
    how = choose_stretcher(stretcher)
    tracks = []
    for i, p in enumerate(tmap.pieces):
        if check_interrupt is not None:
            check_interrupt()
        tracks.append(_render_piece(wave, sr, p, how))
        if progress is not None:
            progress(i + 1, len(tmap.pieces))
    return tracks


def join_pieces(tracks: list[tuple[int, np.ndarray]], wave: np.ndarray, sample_rate: int, tmap: TimeMap,
                seams: str = "smooth") -> np.ndarray:
    """The output ``[C, round(duration · sr)]`` from :func:`stretch_pieces`' ``tracks``, joined by crossfades.

    ``seams="plain"``: each join where the two renderings, lined up, are most alike (:func:`_similar_point`).
    ``seams="smooth"`` (the default): each join where the joined audio's loudness steps least
    (:func:`_level_point`), and around each join (its crossfade and the decay before the beat) the
    output's 10 ms loudness brought back to the music's own (:func:`restore_envelope`, ``at="joins"``);
    every sample more than :data:`ENV_RAMP` s outside those spans is the plain rendering's."""
    if seams not in SEAMS:
        raise ValueError(f"seams must be one of {', '.join(SEAMS)}, got {seams!r}")
    sr = int(sample_rate)
    wave = _as_2d(wave)
    n = int(round(tmap.duration * sr))
    out = np.zeros((wave.shape[0], n), dtype=np.float32)
    jumps = np.asarray(tmap.seams, dtype=np.float64)
    prev, cursor = None, 0  # cursor: first output sample not yet written
    for p, track in zip(tmap.pieces, tracks):
        if prev is not None:
            jump = jumps.size > 0 and float(np.min(np.abs(jumps - p.out_a))) < 1e-4
            xf = int(XFADE[1 if jump else 0] * sr)
            at = _level_point if seams == "smooth" else _similar_point
            centre = at(prev, track, p.out_a, sr, cursor + xf // 2 + 1, xf, jump)
            a, b = max(centre - xf // 2, cursor), min(centre + xf - xf // 2, n)
            if b > a:
                track, mixed = _join(prev, track, a, b, jump, int(MAX_LAG * sr))
                out[:, cursor:a] = _window(prev, cursor, a)
                out[:, a:b] = mixed
                cursor = b
        prev = track
    if prev is not None and cursor < n:
        out[:, cursor:n] = _window(prev, cursor, n)
    if seams == "smooth" and ENV_MAX_DB > 0:
        out = restore_envelope(out, wave, sr, tmap, at="joins")
    return _fades(out, sr, tmap)


def render(wave: np.ndarray, sample_rate: int, tmap: TimeMap, *, stretcher: str = "auto", seams: str = "smooth",
           progress=None, check_interrupt=None) -> np.ndarray:
    """The output audio ``[C, round(duration · sr)]`` of ``tmap`` played from ``wave`` ``[C, T]``
    (:func:`stretch_pieces`, then :func:`join_pieces` with ``seams``)."""
    tracks = stretch_pieces(wave, sample_rate, tmap, stretcher=stretcher, progress=progress,
                            check_interrupt=check_interrupt)
    return join_pieces(tracks, wave, sample_rate, tmap, seams)


def _as_2d(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    return wave[None] if wave.ndim == 1 else wave


def _frame_energy(x: np.ndarray, centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Mean square of the channels' mean of ``x`` [C, T] in ``[c - h, c + h)`` for each centre (zeros outside)."""
    e = np.concatenate([[0.0], np.cumsum(x.astype(np.float64).mean(axis=0) ** 2)])
    lo = np.clip(centres - halves, 0, x.shape[1])
    hi = np.clip(centres + halves, 0, x.shape[1])
    return (e[hi] - e[lo]) / np.maximum(2 * halves, 1)


def source_times(tmap: TimeMap, t: np.ndarray) -> np.ndarray:
    """Music time (s) that plays at each output time ``t`` (s), piece by piece."""
    starts = np.array([p.out_a for p in tmap.pieces])
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(tmap.pieces) - 1)
    src_a = np.array([p.src_a for p in tmap.pieces])[k]
    rate = np.array([p.rate for p in tmap.pieces])[k]
    return src_a + (t - starts[k]) * rate, rate


def restore_envelope(out: np.ndarray, wave: np.ndarray, sr: int, tmap: TimeMap, at: str = "everywhere",
                     max_db: float | None = None) -> np.ndarray:
    """``out`` with its short-term loudness brought back to the music's own where the stretch changed it.

    A phase vocoder (Rubber Band included) spreads each frame's energy over its window and lets the
    partials of a sustained sound beat against each other at another rate than in the music, so the
    output's 10 ms loudness rises and falls where the music's does not (and smears its attacks).
    For each output frame the music that plays there (through the time map, the window scaled by the
    piece's rate) gives the loudness it should have; the gain, in dB, is the difference, bounded to
    ``±ENV_MAX_DB``, smoothed over ``ENV_SMOOTH`` frames, interpolated sample by sample and eased
    (``ENV_EASE`` moving averages over one hop). The same gain goes to every channel, so the stereo
    image is kept; the level measured is the channels' mean (what a mono fold-down plays)."""
    if not tmap.pieces or out.shape[1] < 4:
        return out
    n = out.shape[1]
    hop, half = max(1, int(round(ENV_HOP * sr))), max(1, int(round(ENV_WINDOW * sr / 2)))
    centres = np.arange(0, n, hop)
    src_t, rate = source_times(tmap, centres / sr)
    got = _frame_energy(out, centres, np.full(centres.shape, half))
    want = _frame_energy(wave, np.round(src_t * sr).astype(np.int64),
                         np.maximum(1, np.round(half * rate).astype(np.int64)))
    floor = 1e-7 * max(float(np.max(want)), 1e-12)  # -70 dB under the music's loudest frame: left alone
    gain = 10.0 * np.log10((want + floor) / (got + floor))
    bound = ENV_MAX_DB if max_db is None else float(max_db)
    gain = np.clip(gain, -bound, bound)
    if ENV_SMOOTH > 1:
        k = np.ones(ENV_SMOOTH) / ENV_SMOOTH
        gain = np.convolve(np.pad(gain, ENV_SMOOTH // 2, mode="edge"), k, "valid")[:centres.size]
    g = np.interp(np.arange(n), centres, gain)
    for _ in range(ENV_EASE):  # moving averages over one hop: the gain's slope changes smoothly (no clicks)
        g = _moving_average(g, hop)
    if at == "joins":
        return _at_joins(out, g, sr, tmap)
    return (out * (10.0 ** (g / 20.0)).astype(np.float32)[None]).astype(np.float32)


def join_spans(tmap: TimeMap, sr: int, n: int) -> list[tuple[int, int, int]]:
    """(first, last, ramp) samples of the spans where :func:`restore_envelope` acts with ``at="joins"``:
    ``[t - ENV_SPAN[0], t + ENV_SPAN[1]]`` around each join ``t``, widened by the ramp on both sides,
    overlapping spans merged."""
    ramp = max(1, int(round(ENV_RAMP * sr)))
    spans: list[list[int]] = []
    for p in tmap.pieces[1:]:
        a = max(0, int(round((p.out_a - ENV_SPAN[0]) * sr)) - ramp)
        b = min(n, int(round((p.out_a + ENV_SPAN[1]) * sr)) + ramp)
        if b <= a:
            continue
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b, ramp) for a, b in spans]


def _at_joins(out: np.ndarray, g: np.ndarray, sr: int, tmap: TimeMap) -> np.ndarray:
    """``out`` with the gain ``g`` (dB per sample) applied only in :func:`join_spans`, eased in and out
    (raised cosine over the ramp); the samples outside are returned unchanged."""
    out = out.copy()
    for a, b, ramp in join_spans(tmap, sr, out.shape[1]):
        w = np.ones(b - a)
        k = min(ramp, (b - a) // 2)
        if k:
            up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            w[:k], w[b - a - k:] = up, up[::-1]
        out[:, a:b] = out[:, a:b] * (10.0 ** (w * g[a:b] / 20.0)).astype(np.float32)[None]
    return out


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` averaged over ``k`` samples centred on each (the ends held)."""
    if k < 2:
        return x
    c = np.concatenate([[0.0], np.cumsum(np.pad(x, (k // 2, k - 1 - k // 2), mode="edge"))])
    return (c[k:] - c[:-k]) / k


def _fades(out: np.ndarray, sr: int, tmap: TimeMap) -> np.ndarray:
    n = out.shape[1]
    k = min(n, int(0.005 * sr))
    if k:
        out[:, :k] *= _fade_in(k)
    a = max(0, min(n, int(round(tmap.fade[0] * sr))))
    if n > a:
        x = (np.arange(n - a) + 0.5) / (n - a)
        out[:, a:] *= (0.5 * (1.0 + np.cos(np.pi * x))).astype(np.float32)  # raised-cosine fade to silence
    return out
