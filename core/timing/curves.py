"""Event curves (paper §3.2, eq. 2–4) and hit points.

``event_curve``   features [N, D] + times → a_k = 1 − cos(f_k, f_{k+1}), standardised.
``resample_curve``  by time onto a uniform grid (a latent rate or a latent length).
``smooth_curve``  Hann smoothing with the kernel given in seconds.
``find_peaks``    hit points on the unsmoothed curve, accurate to a frame.

Training (music features) and inference (video features) share these functions: only the
encoder differs. Everything is numpy; a curve always carries its times.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import CurveError

# The paper's smoothing: a Hann kernel of 31 latent frames at 12.3 Hz (§5.3, Fig. 4).
PAPER_KERNEL_FRAMES = 31
PAPER_LATENT_RATE = 12.3
DEFAULT_SMOOTHING_SECONDS = PAPER_KERNEL_FRAMES / PAPER_LATENT_RATE  # ≈ 2.52 s
# Stable Audio latents: 44.1 kHz audio, 2048× down-sampling (the default grid of curves).
SAO_LATENT_RATE = 44100 / 2048  # ≈ 21.53 latent frames per second

# Raw dissimilarities whose standard deviation is below this are treated as a constant curve
# (no events): standardising codec noise of a still shot would otherwise blow it up to unit
# variance. Cosine distances of real content changes are orders of magnitude larger.
DEFAULT_MIN_STD = 1e-4


@dataclass(frozen=True)
class Features:
    """Per-frame (or per-segment) feature vectors with their times in seconds.

    ``times[k]`` is the start time of frame k relative to the start of the media;
    ``duration`` is the length of the media they describe (the end of the last frame).
    """

    values: np.ndarray  # float32 [N, D]
    times: np.ndarray  # float64 [N]
    duration: float
    encoder: str = "unknown"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        v = np.asarray(self.values)
        t = np.asarray(self.times, dtype=np.float64)
        if v.ndim != 2:
            raise CurveError(f"features must be [frames, dims], got shape {tuple(v.shape)}")
        if t.shape != (v.shape[0],):
            raise CurveError(f"{v.shape[0]} feature vectors but {t.shape[0] if t.ndim else 0} timestamps")
        if v.shape[0] > 1 and np.any(np.diff(t) <= 0):
            raise CurveError("feature timestamps must be strictly increasing")
        object.__setattr__(self, "times", t)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:  # short: a host prints its inputs when a node fails
        v = np.asarray(self.values)
        return f"Features({self.encoder}, {v.shape[0]} x {v.shape[1] if v.ndim == 2 else '?'}, {self.duration:.3f} s)"


@dataclass(frozen=True)
class Curve:
    """A 1-D curve with a time for every sample.

    ``times[j]`` is the start of the interval sample j stands for. On a uniform grid
    (``rate`` set) sample j covers ``[j / rate, (j + 1) / rate)``, which is also how latent
    frame j covers audio samples ``[j·hop, (j + 1)·hop)``.
    """

    values: np.ndarray  # float32 [L]
    times: np.ndarray  # float64 [L]
    duration: float
    rate: float | None = None
    spec: dict = field(default_factory=dict)
    #: the raw event curve a smoothed curve was made from (:meth:`CurveSpec.smooth`), so that what is
    #: planned from the raw curve (hit points, per-window standardisation) is the same on every road;
    #: None for a raw curve or one whose raw samples are unknown (e.g. read from JSON). Not serialised.
    source: "Curve | None" = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float32)
        t = np.asarray(self.times, dtype=np.float64)
        if v.ndim != 1 or t.shape != v.shape:
            raise CurveError(f"curve values {v.shape} and times {t.shape} must be 1-D and equal")
        if not np.all(np.isfinite(v)):
            raise CurveError("curve contains NaN or Inf values")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "times", t)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:  # short: a host prints its inputs when a node fails
        rate = f"{self.rate:g} Hz" if self.rate else "unevenly timed"
        kind = self.spec.get("kind") or self.spec.get("encoder") or "curve"
        return f"Curve({str(kind)[:40]}, {len(self)} samples, {rate}, {self.duration:.3f} s)"

    def replace(self, **kw) -> "Curve":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return {
            "times": [round(float(x), 6) for x in self.times],
            "values": [round(float(x), 6) for x in self.values],
            "duration": float(self.duration),
            "rate": self.rate,
            "spec": self.spec,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Curve":
        try:
            return cls(
                values=np.asarray(d["values"], dtype=np.float32),
                times=np.asarray(d["times"], dtype=np.float64),
                duration=float(d["duration"]),
                rate=d.get("rate"),
                spec=dict(d.get("spec") or {}),
            )
        except KeyError as exc:
            raise CurveError(f"curve JSON lacks the key {exc}; expected times, values, duration") from None


def cosine_dissimilarity(values: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """a_k = 1 − cos(f_k, f_{k+1}) for k = 0 … N−2 (paper eq. 2 and the line after it)."""
    f = np.asarray(values, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1)
    dots = np.einsum("kd,kd->k", f[:-1], f[1:])
    s = dots / np.maximum(norms[:-1] * norms[1:], eps)
    return (1.0 - np.clip(s, -1.0, 1.0)).astype(np.float64)


def standardise(a: np.ndarray, min_std: float = DEFAULT_MIN_STD) -> np.ndarray:
    """Zero mean, unit variance (eq. 3); a (near-)constant curve becomes zeros, never NaN."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return a
    sd = float(a.std())
    if not math.isfinite(sd) or sd < min_std:
        return np.zeros_like(a)
    return (a - a.mean()) / sd


def event_curve(features: Features, *, standardize: bool = True, min_std: float = DEFAULT_MIN_STD) -> Curve:
    """The unsmoothed event curve at the features' own times (eq. 2–3).

    Sample k holds the change between frame k and frame k+1 and is placed at the time of
    frame k+1: the moment the new picture appears. So a hard cut peaks exactly at the first
    frame of the new shot, and the curve works unchanged for variable frame rates.
    """
    n = len(features)
    if n < 2:
        raise CurveError(
            f"an event curve needs at least 2 frames, got {n}: use a longer clip or a higher sampling fps"
        )
    return curve_from_dissimilarity(
        cosine_dissimilarity(features.values), features.times[1:], features.duration,
        encoder=features.encoder, standardize=standardize, min_std=min_std,
    )


def curve_from_dissimilarity(
    a: np.ndarray,
    times: np.ndarray,
    duration: float,
    *,
    encoder: str = "unknown",
    standardize: bool = True,
    min_std: float = DEFAULT_MIN_STD,
) -> Curve:
    """Eq. 3 on raw dissimilarities ``a`` (a_k at ``times[k]``, the frame after the change)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size < 1:
        raise CurveError("an event curve needs at least 2 frames, got 1: use a longer clip or a higher sampling fps")
    values = standardise(a, min_std) if standardize else a
    spec = {
        "encoder": encoder,
        "standardise": bool(standardize),
        "min_std": float(min_std),
        "raw_std": float(a.std()),
        "raw_mean": float(a.mean()),
    }
    return Curve(values=values, times=np.asarray(times, dtype=np.float64), duration=float(duration), spec=spec)


def latent_length(duration: float, rate: float) -> int:
    """Number of latent frames covering ``duration`` seconds at ``rate`` frames per second."""
    if duration <= 0 or rate <= 0:
        raise CurveError(f"duration ({duration}) and rate ({rate}) must be positive")
    return max(1, int(math.ceil(duration * rate - 1e-9)))


def resample_curve(curve: Curve, *, rate: float | None = None, length: int | None = None) -> Curve:
    """Resample by time onto a uniform grid covering ``[0, curve.duration)``.

    Give ``rate`` (samples per second, e.g. a latent rate of 44100/2048) or ``length`` (e.g. the
    latent length; then rate = length / duration). The curve is read as a step function (sample
    k holds from its time to the next sample's time; the first value also covers the time
    before it) and each output sample is the exact mean of that function over its interval, so
    no spike is lost between grid points whatever the two rates are, and resampling is linear
    (it commutes with standardisation's affine map).
    """
    if (rate is None) == (length is None):
        raise CurveError("give exactly one of rate= or length= to resample a curve")
    duration = float(curve.duration)
    if duration <= 0:
        raise CurveError(f"curve duration must be positive, got {duration}")
    if length is None:
        length = latent_length(duration, float(rate))
        step = 1.0 / float(rate)
    else:
        if int(length) < 1:
            raise CurveError(f"resample length must be ≥ 1, got {length}")
        length = int(length)
        step = duration / length
    t = np.asarray(curve.times, dtype=np.float64)
    v = np.asarray(curve.values, dtype=np.float64)
    # Step-function knots: value v[k] on [t[k], t[k+1]), v[0] also on [0, t[0]), and the last
    # value held to the end of the grid.
    grid_end = max(duration, length * step)
    knots = np.concatenate([[min(0.0, t[0])], t[1:], [max(grid_end, t[-1])]])
    widths = np.diff(knots)
    cum = np.concatenate([[0.0], np.cumsum(v * widths)])
    edges = np.arange(length + 1, dtype=np.float64) * step
    area = np.interp(edges, knots, cum)
    out = np.diff(area) / step
    spec = dict(curve.spec, resampled_rate=1.0 / step, resampled_length=length)
    return Curve(values=out, times=edges[:-1], duration=duration, rate=1.0 / step, spec=spec)


def hann_kernel(seconds: float, rate: float) -> np.ndarray:
    """A normalised symmetric Hann kernel spanning ``seconds`` at ``rate`` (odd length ≥ 1).

    At the paper's 12.3 Hz the default 2.52 s gives its 31-frame kernel.
    """
    if seconds < 0 or rate <= 0:
        raise CurveError(f"smoothing seconds ({seconds}) must be ≥ 0 and rate ({rate}) > 0")
    n = int(round(seconds * rate))
    if n % 2 == 0:
        n += 1
    if n <= 1:
        return np.ones(1)
    # np.hanning(n) has zero end points; add two so all n taps carry weight.
    w = np.hanning(n + 2)[1:-1]
    return w / w.sum()


def smooth_curve(curve: Curve, seconds: float = DEFAULT_SMOOTHING_SECONDS) -> Curve:
    """Hann smoothing (eq. 4) of a uniformly sampled curve, edges extended by replication."""
    if curve.rate is None:
        raise CurveError("smooth_curve needs a uniformly sampled curve: call resample_curve first")
    k = hann_kernel(seconds, curve.rate)
    v = np.asarray(curve.values, dtype=np.float64)
    half = len(k) // 2
    if half:
        v = np.convolve(np.pad(v, half, mode="edge"), k, mode="valid")
    spec = dict(curve.spec, smoothing_seconds=float(seconds), kernel_frames=int(len(k)))
    return curve.replace(values=v.astype(np.float32), spec=spec)


def conditioning_curve(
    features: Features,
    *,
    rate: float | None = None,
    length: int | None = None,
    smoothing_seconds: float = DEFAULT_SMOOTHING_SECONDS,
    min_std: float = DEFAULT_MIN_STD,
) -> Curve:
    """e = Smooth(Resample(standardise(A), l)) — the full eq. 4 pipeline."""
    raw = event_curve(features, min_std=min_std)
    return smooth_curve(resample_curve(raw, rate=rate, length=length), smoothing_seconds).replace(source=raw)


def find_peaks(
    curve: Curve,
    *,
    threshold: float | None = None,
    min_gap: float = 0.25,
) -> np.ndarray:
    """Hit points: times of salient events (cuts, sharp changes) on an unsmoothed curve.

    A sample is a peak when it is the largest within ±``min_gap`` seconds and exceeds
    ``threshold`` (in the curve's own units; standardised curves are z-scores). By default the
    threshold is robust to how busy the video is: the median plus 6 robust standard deviations
    (1.4826·MAD), and never below 1.0. Returns the peak times in seconds; on an event curve from
    :func:`event_curve` these are the times of the first frame after each change.
    """
    v = np.asarray(curve.values, dtype=np.float64)
    t = np.asarray(curve.times, dtype=np.float64)
    if v.size == 0 or not np.any(v != 0):
        return np.zeros(0)
    if threshold is None:
        med = float(np.median(v))
        mad = float(np.median(np.abs(v - med))) * 1.4826
        threshold = max(med + 6.0 * mad, 1.0)
    import bisect

    cand = np.flatnonzero(v > threshold)
    chosen: list[float] = []  # sorted times of the peaks kept so far
    for i in cand[np.argsort(-v[cand], kind="stable")]:
        ti = float(t[i])
        k = bisect.bisect_left(chosen, ti)
        if (k == len(chosen) or chosen[k] - ti > min_gap) and (k == 0 or ti - chosen[k - 1] > min_gap):
            chosen.insert(k, ti)
    return np.asarray(chosen, dtype=np.float64)


def curve_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two curves sampled on the same grid; None when either is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if den <= 1e-12:
        return None
    return float(np.dot(a, b) / den)
