"""The curve spec: how an event curve becomes a conditioning curve, from training data to inference.

One :class:`CurveSpec` travels from ``prepare`` (music curves of the training clips) through the
cache and the trainer into the checkpoint's metadata (``"curve"``), and back out at inference, so
the video's curve is built exactly as the model's training curves were: same standardisation,
same Hann smoothing in seconds, on the model's latent grid. Its defaults are the paper's (DINOv2-L
video features, MusicFM music features, a 31-frame Hann kernel at 12.3 Hz ≈ 2.52 s) and exist
only here and in :mod:`.curves`' constants.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import CurveError
from . import curves

#: The paper's frame encoder for videos (§3.5) and music encoder for training curves (§3.3).
DEFAULT_VIDEO_ENCODER = "dinov2-large"
DEFAULT_MUSIC_ENCODER = "musicfm"
#: The only smoothing window: Hann (paper eq. 4).
WINDOW = "hann"

# keys the metadata form writes; anything else a checkpoint carries is kept in ``extra``
_KNOWN = {"encoder", "encoder_options", "music_encoder", "music_encoder_spec", "smoothing_seconds", "standardise",
          "min_std", "window", "channels", "clip_seconds", "rate", "length"}


#: Bounds of a Hann smoothing kernel in seconds, everywhere one is given (CLI, nodes, configs):
#: 0 = no smoothing; a kernel over a minute smooths every cut away.
MAX_SMOOTHING_SECONDS = 60.0
#: Training clip lengths in seconds (``prepare --clip-seconds``; a checkpoint's ``curve.clip_seconds``).
CLIP_SECONDS_BOUNDS = (0.1, 600.0)
#: Curve points at most (``curve --length``; a checkpoint's ``curve.length``).
MAX_CURVE_LENGTH = 10_000_000
#: Two kernels closer than this (seconds) are the same smoothing (a checkpoint's vs a curve's or a cache's).
SMOOTHING_TOLERANCE = 1e-3


def same_smoothing(a: float, b: float) -> bool:
    """Whether two Hann kernels (seconds) are the same smoothing, within :data:`SMOOTHING_TOLERANCE`."""
    return abs(float(a) - float(b)) <= SMOOTHING_TOLERANCE

@dataclass(frozen=True)
class CurveSpec:
    """Encoder ids and options, standardisation, Hann smoothing (seconds) and the grid of a curve.

    ``encoder`` is the frame encoder a video's curve must come from at inference; ``music_encoder``
    (+ options) made the training curves. ``rate`` or ``length`` set the grid when the curve is
    not fitted to a model (a model's latent grid wins). ``clip_seconds`` is the training clip
    length, when known.
    """

    encoder: str = DEFAULT_VIDEO_ENCODER
    encoder_options: Mapping[str, Any] = field(default_factory=dict)
    music_encoder: str | None = None
    music_encoder_options: Mapping[str, Any] = field(default_factory=dict)
    smoothing_seconds: float = curves.DEFAULT_SMOOTHING_SECONDS
    standardise: bool = True
    min_std: float = curves.DEFAULT_MIN_STD
    rate: float | None = None
    length: int | None = None
    channels: int = 1
    clip_seconds: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        s = self.smoothing_seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise CurveError(f"curve smoothing must be a finite number of seconds >= 0, got {s!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise CurveError(f"curve rate must be a positive number of samples per second, got {self.rate!r}")
        if self.length is not None and int(self.length) < 1:
            raise CurveError(f"curve length must be >= 1 sample, got {self.length!r}")

    def replace(self, **changes) -> "CurveSpec":
        return dataclasses.replace(self, **changes)

    # ---- the maths (paper eq. 2–4)

    def conditioning_curve(self, features: curves.Features, *, rate: float | None = None,
                           length: int | None = None) -> curves.Curve:
        """e = Smooth(Resample(standardise(A))) of per-frame features."""
        raw = curves.event_curve(features, standardize=self.standardise, min_std=self.min_std)
        return self.smooth(raw, rate=rate, length=length)

    def smooth(self, raw: curves.Curve, *, rate: float | None = None, length: int | None = None) -> curves.Curve:
        """A raw event curve resampled by time onto the grid (``rate``/``length``, else the spec's)
        and Hann-smoothed with the spec's kernel; it carries ``raw`` as its ``source``."""
        if rate is None and length is None:
            rate, length = self.rate, self.length
            if rate is not None and length is not None:
                rate = None
        if rate is None and length is None:
            raise CurveError("a conditioning curve needs a grid: give rate= (e.g. a latent rate) or length=")
        smooth = curves.smooth_curve(curves.resample_curve(raw, rate=rate, length=length), self.smoothing_seconds)
        return smooth.replace(source=raw if raw.rate is None else raw.source)

    # ---- metadata (checkpoints) and cache specs

    def to_dict(self) -> dict:
        """The checkpoint-metadata form (``meta["curve"]``)."""
        d: dict[str, Any] = dict(self.extra)
        d.update(encoder=self.encoder, standardise=bool(self.standardise),
                 smoothing_seconds=float(self.smoothing_seconds), window=WINDOW, channels=int(self.channels))
        if self.encoder_options:
            d["encoder_options"] = dict(self.encoder_options)
        if self.music_encoder:
            d["music_encoder"] = self.music_encoder
            d["music_encoder_spec"] = {"id": self.music_encoder, **dict(self.music_encoder_options)}
        if self.min_std != curves.DEFAULT_MIN_STD:
            d["min_std"] = float(self.min_std)
        for key in ("rate", "length", "clip_seconds"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "CurveSpec":
        """Read ``meta["curve"]`` of any V2M checkpoint (missing fields take the defaults)."""
        d = dict(d or {})
        window = d.get("window", WINDOW)
        if window != WINDOW:
            raise CurveError(f"curve window {window!r} is not supported (only {WINDOW!r})")
        music = dict(d.get("music_encoder_spec") or {})
        music_id = d.get("music_encoder") or music.get("id")
        music.pop("id", None)
        kw: dict[str, Any] = {
            "encoder": d.get("encoder") or DEFAULT_VIDEO_ENCODER,
            "encoder_options": dict(d.get("encoder_options") or {}),
            "music_encoder": music_id,
            "music_encoder_options": music,
            "smoothing_seconds": float(d.get("smoothing_seconds", curves.DEFAULT_SMOOTHING_SECONDS)),
            "standardise": bool(d.get("standardise", True)),
            "min_std": float(d.get("min_std", curves.DEFAULT_MIN_STD)),
            "channels": int(d.get("channels", 1)),
            "extra": {k: v for k, v in d.items() if k not in _KNOWN},
        }
        for key, conv in (("rate", float), ("length", int), ("clip_seconds", float)):
            if d.get(key) is not None:
                kw[key] = conv(d[key])
        return cls(**kw)

    @classmethod
    def from_cache(cls, spec: Mapping[str, Any], *, encoder: str | None = None) -> "CurveSpec":
        """The curve spec of a prepared cache (its ``spec``: music encoder, smoothing, clip length)."""
        music = dict(spec.get("encoder") or {})
        return cls(encoder=encoder or DEFAULT_VIDEO_ENCODER,
                   music_encoder=music.pop("id", None), music_encoder_options=music,
                   smoothing_seconds=float(spec["smoothing_seconds"]), standardise=bool(spec.get("standardise", True)),
                   clip_seconds=float(spec["clip_duration"]) if spec.get("clip_duration") else None)


# ---- agreement between a curve and the spec a checkpoint was trained with

_DINOV2_NAMES = {"dinov2-s": "dinov2-small", "dinov2-b": "dinov2-base", "dinov2-l": "dinov2-large",
                 "dinov2-g": "dinov2-giant", "dinov2": DEFAULT_VIDEO_ENCODER}


def encoder_name(encoder: str | None, options: Mapping[str, Any] | None = None) -> str:
    """One name per frame encoder: ``dinov2`` with its model folder (``dinov2-large``), aliases resolved."""
    enc = str(encoder or "unknown")
    if enc == "dinov2" and (options or {}).get("model"):
        enc = os.path.basename(str(options["model"]).rstrip("/\\")) or enc
    return _DINOV2_NAMES.get(enc, enc)


def curve_mismatches(curve_spec: Mapping[str, Any], model: CurveSpec, *, smoothed_here: bool = False) -> list[str]:
    """How a curve (its ``Curve.spec``) differs from what the checkpoint was trained with, in words.

    Checks the frame encoder, standardisation and — unless the curve is raw and will be smoothed
    with the model's own spec (``smoothed_here``) — the Hann smoothing. Empty when they agree.
    """
    out = []
    enc = curve_spec.get("encoder")
    if enc:
        got, want = encoder_name(enc, curve_spec.get("encoder_options")), encoder_name(model.encoder)
        if got != want:
            out.append(f"the curve comes from the '{got}' frame encoder but the checkpoint was trained with '{want}' "
                       f"curves (choose encoder 'auto' in Encode Frames, or '{want}')")
    if "standardise" in curve_spec and bool(curve_spec["standardise"]) != bool(model.standardise):
        out.append(f"the curve is {'' if curve_spec['standardise'] else 'not '}standardised but the checkpoint's "
                   f"curves were{'' if model.standardise else ' not'}")
    s = curve_spec.get("smoothing_seconds")
    if not smoothed_here and s is not None and not same_smoothing(s, model.smoothing_seconds):
        out.append(f"the curve is smoothed with a {float(s):.3g} s Hann kernel but the checkpoint was trained with "
                   f"{float(model.smoothing_seconds):.3g} s (connect the model to Smooth Curve, or set kernel_seconds)")
    return out
