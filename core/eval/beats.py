"""Beat scores against reference music (LORIS convention), the tempo deviation (paper §4.2), and the beat trackers
(librosa, the paper's; Beat This! when installed) with how they agree.

numpy and librosa are imported inside the functions, so this module imports on a bare Python.
"""

from __future__ import annotations

import math

from ..errors import V2MError

#: LORIS evaluates onsets of music loaded with ``librosa.load`` (22.05 kHz mono).
LORIS_SAMPLE_RATE = 22050


def onset_times(wave_mono, sr: int):
    """Onset times (s) with LORIS's detector settings:
    ``onset_detect(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3)``."""
    import numpy as np

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    if y.size == 0 or not np.any(y):
        return np.zeros(0, dtype=np.float64)
    import librosa

    onsets = librosa.onset.onset_detect(
        y=y, sr=int(sr), wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3, units="time"
    )
    return np.asarray(onsets, dtype=np.float64).reshape(-1)


def _onset_bins(onsets, bin_size: float, n_bins: int):
    import numpy as np

    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    # The epsilon keeps 0.6 s in bin 3 (0.6 / 0.2 = 2.9999…); LORIS's trunc(t · 5) does too.
    idx = np.trunc(onsets / bin_size + 1e-9).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n_bins)]
    occupied = np.zeros(n_bins, dtype=bool)
    occupied[idx] = True
    return occupied


def beat_scores(gen_onsets, ref_onsets, bin_size: float = 0.2, duration: float | None = None) -> dict:
    """Beat Coverage Score and Beat Hit Score, LORIS convention (``beats_scores.py``).

    Time is cut into ``bin_size`` bins (LORIS's released script uses 1 s; the paper uses 0.2 s).
    Each onset marks the bin ``trunc(t / bin_size)``; a bin with several onsets counts once.
    The bins cover the generated music (``ceil(duration / bin_size)`` bins, where ``duration``
    is the generated length; LORIS truncates the reference to it); ``duration=None`` covers the
    latest onset of either list. A *hit* is a bin marked in both.

    - ``bhs = hits / reference-marked bins`` (LORIS ``hit_rate``: recall of the reference beats)
    - ``bcs = hits / generated-marked bins`` (LORIS ``cover_rate``)

    A zero denominator gives 0.0, as in LORIS. The dataset-level F1 is ``f1_of_means``.
    """
    import numpy as np

    if not bin_size > 0:
        raise V2MError(f"bin_size must be positive, got {bin_size}")
    gen = np.asarray(gen_onsets, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref_onsets, dtype=np.float64).reshape(-1)
    if duration is None:
        latest = max([0.0] + gen.tolist() + ref.tolist())
        n_bins = int(math.trunc(latest / bin_size + 1e-9)) + 1
    else:
        n_bins = int(math.ceil(float(duration) / bin_size - 1e-9))
    gen_bins = _onset_bins(gen, bin_size, n_bins)
    ref_bins = _onset_bins(ref, bin_size, n_bins)
    hits = int(np.sum(gen_bins & ref_bins))
    n_gen, n_ref = int(gen_bins.sum()), int(ref_bins.sum())
    return {
        "bcs": hits / n_gen if n_gen else 0.0,
        "bhs": hits / n_ref if n_ref else 0.0,
        "hits": hits,
        "gen_bins": n_gen,
        "ref_bins": n_ref,
    }


def f1_of_means(bcs_list, bhs_list) -> float | None:
    """F1 of the dataset means of BCS and BHS (as reported in the paper's Table 3a);
    None for empty lists, 0.0 when both means are 0."""
    bcs = [float(v) for v in bcs_list if v is not None]
    bhs = [float(v) for v in bhs_list if v is not None]
    if not bcs or not bhs:
        return None
    c, h = sum(bcs) / len(bcs), sum(bhs) / len(bhs)
    return 0.0 if c + h == 0 else 2.0 * c * h / (c + h)


def tempo_bpm(wave_mono, sr: int) -> float:
    """Global tempo (BPM) with ``librosa.feature.tempo`` (librosa ≥0.10; ``librosa.beat.tempo``
    before). The array it returns in ≥0.10 is reduced to a float."""
    import numpy as np
    import librosa

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    feature = getattr(librosa, "feature", None)
    tempo_fn = getattr(feature, "tempo", None) or librosa.beat.tempo
    return float(np.asarray(tempo_fn(y=y, sr=int(sr))).reshape(-1)[0])


def tempo_deviation(gen_wave, ref_wave, sr: int, ref_sr: int | None = None) -> float:
    """Temporal deviation (TD): ``|tempo(gen) − tempo(ref)|`` in BPM."""
    return abs(tempo_bpm(gen_wave, sr) - tempo_bpm(ref_wave, sr if ref_sr is None else ref_sr))


# --------------------------------------------------------------------------------------------
# beat trackers: librosa (what Scene Cut Hit uses, as the paper) and, when installed, Beat This!

#: the tolerance of the agreement F-measure (the beat-tracking convention, as mir_eval's ``f_measure``)
AGREEMENT_WINDOW = 0.07
#: the agreement is measured on at most this much audio (the second tracker holds its input in memory)
AGREEMENT_SECONDS = 300.0


class LibrosaTracker:
    """``librosa.beat.beat_track`` (:func:`.sch.beat_times`): the tracker of the paper's Algorithm 1."""

    name = "librosa"

    def beats(self, mono, sr: int):
        from .sch import beat_times

        return beat_times(mono, sr)


class BeatThisTracker:
    """Beat This! (minimal peak picking) from a local checkpoint: :mod:`.beat_this`, :mod:`...model_io.beat_this`.
    The network is loaded on first use and kept while the file is unchanged."""

    _cache: dict = {}

    def __init__(self, path):
        self.path = str(path)
        from pathlib import Path

        self.name = f"Beat This! {Path(self.path).stem.removeprefix('beat_this-')}"

    def model(self):
        import os

        st = os.stat(self.path)
        key = (self.path, st.st_mtime_ns, st.st_size)
        if key not in BeatThisTracker._cache:
            from ...model_io.beat_this import load_beat_this

            BeatThisTracker._cache.clear()
            BeatThisTracker._cache[key] = load_beat_this(self.path)[0]
        return BeatThisTracker._cache[key]

    def beats(self, mono, sr: int, check_interrupt=None):
        from .beat_this import beats_and_downbeats

        return beats_and_downbeats(self.model(), mono, sr, check_interrupt)[0]


TRACKERS = ("librosa", "beat-this")


def second_tracker() -> BeatThisTracker | None:
    """Beat This! when its packages are installed and a checkpoint is in the models folder; else None.
    Nothing is imported, loaded or downloaded here."""
    from ...model_io import beat_this

    if beat_this.package_missing():
        return None
    path = beat_this.find_checkpoint()
    return None if path is None else BeatThisTracker(path)


def get_tracker(name: str = "librosa"):
    """A tracker by name: ``librosa`` (the default, the paper's) or ``beat-this`` (one-line error when absent)."""
    if name == "librosa":
        return LibrosaTracker()
    if name == "beat-this":
        from ...model_io.beat_this import load_beat_this

        found = second_tracker()
        if found is None:
            load_beat_this()  # raises the one-line error that says what is missing
        return found
    raise V2MError(f"unknown beat tracker {name!r}; known: {', '.join(TRACKERS)}")


def beat_f_measure(reference, estimated, window: float = AGREEMENT_WINDOW) -> float:
    """F-measure of two beat lists: beats paired one to one within ±``window`` s (the most pairs; for sorted
    points on a line, pairing greedily in time order finds them), ``2PR / (P + R)``; 0.0 when either is empty."""
    import numpy as np

    a = np.sort(np.asarray(reference, dtype=np.float64).reshape(-1))
    b = np.sort(np.asarray(estimated, dtype=np.float64).reshape(-1))
    if a.size == 0 or b.size == 0:
        return 0.0
    i = j = pairs = 0
    while i < a.size and j < b.size:
        if abs(a[i] - b[j]) <= window + 1e-9:
            pairs, i, j = pairs + 1, i + 1, j + 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    p, r = pairs / b.size, pairs / a.size
    return 0.0 if pairs == 0 else 2.0 * p * r / (p + r)


def beats_tempo(beats) -> float | None:
    """The tempo (BPM) a beat list implies: 60 / the median inter-beat interval; None below two beats."""
    import numpy as np

    b = np.sort(np.asarray(beats, dtype=np.float64).reshape(-1))
    gaps = np.diff(b)
    gaps = gaps[gaps > 0]
    return float(60.0 / np.median(gaps)) if gaps.size else None


def tracker_agreement(mono, sr: int, librosa_beats=None, *, tracker=None, check_interrupt=None) -> dict | None:
    """How librosa and the second tracker agree on one mono signal, or None when there is no second tracker.

    Keys: ``tracker`` (its name), ``f_measure`` (±70 ms), ``tempo`` ``{librosa, second}`` (BPM or None), ``beats``
    ``{librosa, second}`` (counts), ``seconds`` (audio compared), ``truncated`` (only the first
    :data:`AGREEMENT_SECONDS` compared). ``librosa_beats``: librosa's beats of the same signal when already tracked."""
    import numpy as np

    tracker = second_tracker() if tracker is None else tracker
    if tracker is None:
        return None
    y = np.asarray(mono, dtype=np.float32).reshape(-1)
    limit = int(AGREEMENT_SECONDS * int(sr))
    truncated = y.size > limit
    y = y[:limit]
    if librosa_beats is None:
        ours = LibrosaTracker().beats(y, sr)
    else:
        ours = np.asarray(librosa_beats, dtype=np.float64).reshape(-1)
        ours = ours[ours < limit / int(sr)] if truncated else ours
    kw = {"check_interrupt": check_interrupt} if isinstance(tracker, BeatThisTracker) else {}
    theirs = np.asarray(tracker.beats(y, sr, **kw), dtype=np.float64).reshape(-1)
    return {"tracker": tracker.name, "f_measure": beat_f_measure(ours, theirs),
            "tempo": {"librosa": beats_tempo(ours), "second": beats_tempo(theirs)},
            "beats": {"librosa": int(ours.size), "second": int(theirs.size)},
            "seconds": round(y.size / int(sr), 3), "truncated": bool(truncated)}


def agreement_line(agreement: dict | None) -> str:
    """One line for a report ("" without a second tracker)."""
    if not agreement:
        return ""

    def bpm(x):
        return "no tempo" if x is None else f"{x:.1f} BPM"

    t, n = agreement["tempo"], agreement["beats"]
    part = f" (first {agreement['seconds']:.0f} s)" if agreement.get("truncated") else ""
    return (f"beat trackers agree{part}: F-measure {agreement['f_measure']:.2f} (±{AGREEMENT_WINDOW * 1000:.0f} ms) "
            f"between librosa ({n['librosa']} beats, {bpm(t['librosa'])}; Scene Cut Hit uses it) and "
            f"{agreement['tracker']} ({n['second']} beats, {bpm(t['second'])})")
