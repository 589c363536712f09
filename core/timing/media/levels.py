"""Output levels: the true peak of audio, and audio that stays below full scale after AAC encoding.

An AAC encoder's output can overshoot its input by several dB where the music has sharp transients
or energy near the band edge, so a waveform peaking just under 1.0 decodes above it and clips.
:func:`fit_for_aac` limits the *true* (inter-sample) peak to -1 dBTP with pedalboard's look-ahead
brick-wall limiter (true-peak sidechain), then encodes the result once in memory, decodes it and,
where the decoded signal still overshoots, lowers the gain by the overshoot: the level is measured
after encoding, as the file will be heard.

True peak (ITU-R BS.1770-4, Annex 2): the largest magnitude of the signal oversampled 4x (soxr).
"""

from __future__ import annotations

import io
import logging
import math
from fractions import Fraction

import av
import numpy as np

from ...errors import MediaError

log = logging.getLogger("v2m_zero.media")

#: Encoded audio stays below this true peak (dBTP).
TRUE_PEAK_CEILING_DB = -1.0
_OVERSAMPLE = 4
_BLOCK = 1 << 17  # samples per oversampling block (memory stays flat on long audio)
_MARGIN = 512  # context each side of a block, so the resampler's edge transients are not counted


def db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else float("-inf")


def true_peak(wave: np.ndarray, sample_rate: int) -> float:
    """Largest magnitude of ``wave`` ``[C, T]`` oversampled 4x (linear, 1.0 = full scale)."""
    import soxr

    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 1:
        w = w[None]
    if w.size == 0:
        return 0.0
    peak = float(np.max(np.abs(w)))
    n = w.shape[1]
    for start in range(0, n, _BLOCK):
        a, b = max(0, start - _MARGIN), min(n, start + _BLOCK + _MARGIN)
        up = soxr.resample(np.ascontiguousarray(w[:, a:b].T), sample_rate, sample_rate * _OVERSAMPLE, quality="HQ")
        lo, hi = (start - a) * _OVERSAMPLE, (min(n, start + _BLOCK) - a) * _OVERSAMPLE
        peak = max(peak, float(np.max(np.abs(up[lo:hi]))) if hi > lo else 0.0)
    return peak


def _aac_round_trip(wave: np.ndarray, sample_rate: int, bitrate: int) -> np.ndarray:
    """``wave`` encoded as the mux encodes it (AAC in MP4, in memory), then decoded: ``[C, T]``."""
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sample_rate, layout=layout)
        stream.bit_rate = int(bitrate)
        for i in range(0, wave.shape[1], 8192):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i:i + 8192]), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, i, Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        parts = [f.to_ndarray() for f in inp.decode(audio=0)]
    return np.concatenate(parts, axis=1) if parts else np.zeros_like(wave)


def limit_true_peak(wave: np.ndarray, sample_rate: int, ceiling_db: float = TRUE_PEAK_CEILING_DB) -> np.ndarray:
    """``wave`` with its true peak at or below ``ceiling_db`` (pedalboard's look-ahead brick-wall limiter
    with a true-peak sidechain); returned unchanged when it is already below."""
    w = np.asarray(wave, dtype=np.float32)
    if w.size == 0 or true_peak(w, sample_rate) <= 10.0 ** (ceiling_db / 20.0):
        return w
    import pedalboard

    # the sidechain sees inter-sample peaks; a 0.5 dB margin covers what it misses (its doc)
    limiter = pedalboard.BrickwallLimiter(ceiling_db=ceiling_db - 0.5, true_peak=True)
    return np.asarray(limiter(np.ascontiguousarray(w), float(sample_rate)), dtype=np.float32)


def fit_for_aac(wave: np.ndarray, sample_rate: int, *, bitrate: int = 192_000, where: str = "the output",
                ceiling_db: float = TRUE_PEAK_CEILING_DB) -> np.ndarray:
    """``wave`` (float32 ``[C<=2, T]``) with its encoded true peak at or below ``ceiling_db``.

    Quiet audio passes unchanged. Audio hotter than full scale is reported (a warning naming
    ``where``) and limited, never hard-clipped; a silent track is reported too. Zero samples are an
    error: there is nothing to put into a soundtrack.
    """
    w = np.asarray(wave, dtype=np.float32)
    if w.shape[-1] == 0:
        raise MediaError(f"The audio for {where!r} has no samples: nothing to write. "
                         "Give audio that lasts longer than 0 s.")
    sample_peak = float(np.max(np.abs(w)))
    if sample_peak == 0.0:
        log.warning("the audio for %s is completely silent: the soundtrack will be silence", where)
        return w
    ceiling = 10.0 ** (ceiling_db / 20.0)
    if sample_peak > 1.0:
        log.warning("the audio for %s peaks at %+.1f dBFS, above full scale: it is limited to %.1f dBTP instead of "
                    "being clipped", where, db(sample_peak), ceiling_db)
    w = limit_true_peak(w, sample_rate, ceiling_db)
    for _ in range(3):  # the encoder's overshoot, measured on the decoded audio
        decoded = _aac_round_trip(w, sample_rate, bitrate)
        over = true_peak(decoded, sample_rate) / ceiling
        if over <= 1.0:
            break
        w = w * np.float32(0.995 / over)
    return w
