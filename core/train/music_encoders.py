"""Music encoders: audio → :class:`~core.timing.curves.Features` with times (training curves, paper §3.2).

The music event curve is made exactly as the video one: ``curves.conditioning_curve(features,
length=latent_length, smoothing_seconds=...)``; only the encoder differs. Encoders are
registered by id:

``logmel``   weightless: log-power mel frames (64 mels, 22.05 kHz, hop 512 ≈ 43 Hz).
``codec``    the audio codec's latent frames (one feature vector per latent frame).
``musicfm``  MusicFM (Won et al. 2024) rebuilt on transformers' ``Wav2Vec2ConformerEncoder``:
             24 kHz mono in, 25 Hz features out (the paper's default music encoder).

Every encoder takes float32 audio ``[C, T]`` at any sample rate (resampled as it needs) and
returns features whose ``times[k]`` is the time of frame k in seconds from the start of the
audio and whose ``duration`` is the audio's length. ``describe()`` is the encoder's part of a
cache spec: two encoders with equal descriptions give equal features.

Heavy imports (librosa, transformers) happen only when an encoder is built.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..errors import V2MError, WeightsMissing
from ..timing.curves import Curve, Features
from ..timing.spec import CurveSpec
from ..model.musicfm import MUSICFM_FRAME, MUSICFM_SAMPLE_RATE
from ..registry import Registry

__all__ = [
    "CodecMusicEncoder",
    "LogMelEncoder",
    "MusicEncoder",
    "MusicFMEncoder",
    "get_music_encoder",
    "make_music_encoder",
    "music_encoder_ids",
    "register_music_encoder",
]


def _mono(wave: np.ndarray) -> np.ndarray:
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim == 1:
        return w
    if w.ndim != 2:
        raise V2MError(f"audio must be [channels, samples] or [samples], got shape {w.shape}")
    return w.mean(axis=0)


class MusicEncoder(ABC):
    """Turns a music waveform into per-frame features with times."""

    id: str = ""

    @abstractmethod
    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        """float32 ``[C, T]`` (or ``[T]``) at ``sample_rate`` → Features (duration = T / sample_rate)."""

    def describe(self) -> dict:
        """The settings that determine the features (recorded in cache specs and checkpoints)."""
        return {"id": self.id}

    def clip_features(self, audio, sample_rate: int, *, latents=None, duration: float | None = None) -> Features:
        """Features of one training clip.

        ``audio`` is the waveform ``[C, T]`` or a function that returns it (called only by encoders
        that need the audio); ``latents`` are the codec's latents of the clip when already computed
        (encoders that work on latents use them and never decode).
        """
        return self.encode(audio() if callable(audio) else audio, sample_rate)

    def conditioning_curve(self, audio, sample_rate: int, *, spec: CurveSpec, length: int,
                           latents=None, duration: float | None = None) -> Curve:
        """The clip's music event curve on its latent grid (eq. 2–4, as ``spec`` says), as training uses it."""
        return spec.conditioning_curve(self.clip_features(audio, sample_rate, latents=latents, duration=duration),
                                       length=length)

    def close(self) -> None:  # noqa: B027  (an optional hook, a no-op by default: not every encoder holds weights)
        """Release weights and device memory."""


_MUSIC_ENCODERS: Registry[MusicEncoder] = Registry("music encoder")
register_music_encoder = _MUSIC_ENCODERS.register
music_encoder_ids = _MUSIC_ENCODERS.ids
get_music_encoder = _MUSIC_ENCODERS.get


def make_music_encoder(source: Any, *, codec: Any = None, **options) -> "MusicEncoder":
    """A music encoder from an instance, an id (``"codec"`` wraps ``codec``), or a ``describe()`` dict.

    A description from a cache spec rebuilds the same encoder; MusicFM needs its checkpoint
    ``path`` in ``options`` (descriptions keep only its file name).
    """
    if isinstance(source, MusicEncoder):
        return source
    if isinstance(source, dict):
        options = {**{k: v for k, v in source.items() if k not in ("id", "checkpoint")}, **options}
        source = source["id"]
    if source == "codec":
        return CodecMusicEncoder(codec)
    if source == "musicfm":  # descriptions record windows in 25 Hz frames
        from ..model.musicfm import MUSICFM_FRAME, MUSICFM_SAMPLE_RATE

        per_s = MUSICFM_SAMPLE_RATE / MUSICFM_FRAME
        if "chunk_frames" in options:
            options.setdefault("chunk_seconds", options.pop("chunk_frames") / per_s)
        if "overlap_frames" in options:
            options.setdefault("overlap_seconds", options.pop("overlap_frames") / per_s)
    return get_music_encoder(str(source), **options)


# --------------------------------------------------------------------------------------------
# weightless: log-mel


@register_music_encoder("logmel")
class LogMelEncoder(MusicEncoder):
    """Log-power mel spectrogram frames (librosa), one vector per hop.

    Frames are centred (``center=True``): frame k is centred on ``k · hop / sr``, which is its
    time. Power is taken in dB against a fixed reference with a floor ``amin`` (not relative to
    the clip's maximum): silence is then one constant vector (no change between silent frames),
    and the curve of a clip does not depend on its loudest moment. The 1024-sample window
    (46 ms) keeps onsets within about half a window of their true time.
    """

    id = "logmel"

    def __init__(self, n_mels: int = 64, sample_rate: int = 22050, hop_length: int = 512, n_fft: int = 1024,
                 amin: float = 1e-10):
        if n_mels < 1 or hop_length < 1 or n_fft < 2 or sample_rate < 1:
            raise V2MError("logmel: n_mels, hop_length, sample_rate must be >= 1 and n_fft >= 2")
        self.n_mels, self.sample_rate, self.hop_length, self.n_fft = (int(n_mels), int(sample_rate), int(hop_length),
                                                                      int(n_fft))
        self.amin = float(amin)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def describe(self) -> dict:
        return {"id": self.id, "n_mels": self.n_mels, "sample_rate": self.sample_rate,
                "hop_length": self.hop_length, "n_fft": self.n_fft, "amin": self.amin}

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        import librosa

        from ..timing.media import resample_audio

        mono = _mono(wave)
        duration = mono.shape[-1] / float(sample_rate)
        if duration <= 0:
            raise V2MError("logmel: the audio is empty")
        y = resample_audio(mono, int(sample_rate), self.sample_rate)
        mel = librosa.feature.melspectrogram(y=y, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                                             n_mels=self.n_mels, power=2.0, center=True)
        db = librosa.power_to_db(mel, ref=1.0, amin=self.amin, top_db=None).T.astype(np.float32)  # [N, n_mels]
        times = np.arange(db.shape[0], dtype=np.float64) * self.hop_length / self.sample_rate
        keep = times < duration  # a centred frame past the end holds only padding
        return Features(values=db[keep], times=times[keep], duration=duration, encoder=self.id, meta=self.describe())


# --------------------------------------------------------------------------------------------
# codec latents


@register_music_encoder("codec")
class CodecMusicEncoder(MusicEncoder):
    """The codec's latent frames as features: frame k covers ``[k, k+1) / latent_rate``."""

    id = "codec"

    def __init__(self, codec: Any = None):
        if codec is None:
            raise V2MError("the 'codec' music encoder needs the audio codec (codec=...)")
        self.codec = codec

    def describe(self) -> dict:
        return {"id": self.id}  # the codec itself is part of the cache spec already

    def clip_features(self, audio, sample_rate: int, *, latents=None, duration: float | None = None) -> Features:
        if latents is None:
            return super().clip_features(audio, sample_rate)
        if duration is None:
            wave = audio() if callable(audio) else audio
            duration = np.asarray(wave).shape[-1] / float(sample_rate)
        return self.features_from_latents(latents, duration)

    def features_from_latents(self, latents, duration: float) -> Features:
        """Features from already computed latents ``[D, L]`` (saves a second encode)."""
        lat = np.asarray(latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else latents, np.float32)
        if lat.ndim == 3:
            lat = lat[0]
        times = np.arange(lat.shape[1], dtype=np.float64) / float(self.codec.latent_rate)
        return Features(values=lat.T, times=times, duration=float(duration), encoder=self.id, meta=self.describe())

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        import torch

        from ..timing.media import resample_audio

        w = np.asarray(wave, np.float32)
        if w.ndim == 1:
            w = w[None]
        duration = w.shape[-1] / float(sample_rate)
        w = resample_audio(w, int(sample_rate), self.codec.sample_rate)
        c = self.codec.audio_channels
        if w.shape[0] != c:
            w = np.repeat(w.mean(axis=0, keepdims=True), c, axis=0)
        r = self.codec.downsampling_ratio
        w = np.pad(w, ((0, 0), (0, (-w.shape[1]) % r)))
        dev = getattr(self.codec, "device", None)
        x = torch.from_numpy(w)[None]
        if isinstance(self.codec, torch.nn.Module):
            p = next(self.codec.parameters(), None)
            if p is not None:
                x = x.to(p.device, p.dtype)
        del dev
        with torch.no_grad():
            lat = self.codec.encode(x)
        return self.features_from_latents(lat, duration)


# --------------------------------------------------------------------------------------------
# MusicFM


@register_music_encoder("musicfm")
class MusicFMEncoder(MusicEncoder):
    """MusicFM features of one conformer layer at 25 Hz (mono, 24 kHz input).

    ``layer`` 7 follows MusicFM's README example (``get_latent(wav, layer_ix=7)`` @ b83ebed; its mid
    layers carry the most musical information); the V2M-Zero paper names no layer. The layer is part of
    :meth:`describe`, so the cache spec and the checkpoint's curve metadata record it. Audio up to
    ``chunk_seconds`` (MusicFM was trained on 30 s excerpts) is encoded
    in one pass; longer audio in windows of that length that overlap by at least
    ``overlap_seconds`` (the last one ends at the audio's end, so every window is whole), blended
    by overlap-add: each window's features are weighted by a ramp that rises over its first and
    falls over its last ``overlap_seconds`` (except at the audio's own start and end) and the sum
    is normalised. A window's edge frames, which see a cut-off context, thus get almost no weight,
    and the features move from one window's to the next over seconds: no seam (a spurious event)
    where windows meet. The tail is zero-padded to whole 40 ms frames and frames past the end of
    the audio are dropped. Frame k stands for ``[k, k+1) · 40 ms``.
    """

    id = "musicfm"

    def __init__(self, path: str | os.PathLike | None = None, *, layer: int = 7, stats: str | None = None,
                 chunk_seconds: float = 30.0, overlap_seconds: float = 10.0, device: Any = None, model: Any = None):
        import torch

        from ...model_io.musicfm import MUSICFM_HINT, load_musicfm

        if model is None:
            if path is None:  # none found: the one case a configured fallback may stand in for
                raise WeightsMissing(f"no MusicFM checkpoint found in the models folders "
                                     f"(music_encoders/musicfm/). {MUSICFM_HINT}")
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = load_musicfm(path, stats=stats, device=device)
        self.model = model
        self.path = None if path is None else str(path)
        self.layer = int(layer)
        if not 0 <= self.layer <= model.depth:
            raise V2MError(f"musicfm layer must be in 0..{model.depth}, got {layer}")
        self.chunk_frames = max(1, int(round(float(chunk_seconds) * MUSICFM_SAMPLE_RATE / MUSICFM_FRAME)))
        self.overlap_frames = min(self.chunk_frames // 2,
                                  max(0, int(round(float(overlap_seconds) * MUSICFM_SAMPLE_RATE / MUSICFM_FRAME))))

    def describe(self) -> dict:
        d = {"id": self.id, "layer": self.layer, "chunk_frames": self.chunk_frames,
             "overlap_frames": self.overlap_frames}
        if self.path:
            d["checkpoint"] = os.path.basename(self.path)
        return d

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:

        from ..timing.media import resample_audio

        mono = _mono(wave)
        duration = mono.shape[-1] / float(sample_rate)
        if duration <= 0:
            raise V2MError("musicfm: the audio is empty")
        y = resample_audio(mono, int(sample_rate), MUSICFM_SAMPLE_RATE)
        n_frames = -(-y.shape[-1] // MUSICFM_FRAME)
        y = np.pad(y, (0, n_frames * MUSICFM_FRAME - y.shape[-1]))
        values = self._overlap_add(y, n_frames)
        times = np.arange(values.shape[0], dtype=np.float64) * MUSICFM_FRAME / MUSICFM_SAMPLE_RATE
        keep = times < duration
        return Features(values=values[keep], times=times[keep], duration=duration, encoder=self.id,
                        meta=self.describe())

    def windows(self, n_frames: int) -> list[int]:
        """Start frames of the windows covering ``n_frames`` (see the class doc)."""
        size = self.chunk_frames
        if n_frames <= size:
            return [0]
        hop = max(1, size - self.overlap_frames)
        starts = list(range(0, n_frames - size, hop))
        return starts + [n_frames - size]

    def _overlap_add(self, y: np.ndarray, n_frames: int) -> np.ndarray:
        import torch

        dev = next(self.model.parameters()).device
        size, ramp = min(self.chunk_frames, n_frames), self.overlap_frames
        starts = self.windows(n_frames)
        total, weight = None, np.zeros(n_frames, np.float64)
        with torch.no_grad():
            for s in starts:
                x = torch.from_numpy(
                    np.ascontiguousarray(y[s * MUSICFM_FRAME:(s + size) * MUSICFM_FRAME]))[None].to(dev)
                h = self.model.hidden_states(x, upto=self.layer)[self.layer][0].double().cpu().numpy()
                w = np.ones(size)
                if ramp > 0 and len(starts) > 1:
                    up = (np.arange(ramp) + 0.5) / ramp
                    if s > 0:
                        w[:ramp] = up
                    if s + size < n_frames:
                        w[-ramp:] = np.minimum(w[-ramp:], up[::-1])
                total = np.zeros((n_frames, h.shape[1])) if total is None else total
                total[s:s + size] += w[:, None] * h
                weight[s:s + size] += w
        return (total / weight[:, None]).astype(np.float32)

    def close(self) -> None:
        self.model = None
