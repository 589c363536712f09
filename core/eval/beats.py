"""Beat scores against reference music (LORIS convention) and the tempo deviation (paper §4.2).

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
