"""Music encoders: audio → :class:`~core.curves.Features` with times (training curves, paper §3.2).

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

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .timing.curves import Features
from .errors import ModelError, V2MError
from .registry import Registry

__all__ = [
    "MUSICFM_HINT",
    "CodecMusicEncoder",
    "LogMelEncoder",
    "MusicEncoder",
    "MusicFM25Hz",
    "MusicFMEncoder",
    "get_music_encoder",
    "load_musicfm",
    "music_encoder_ids",
    "musicfm_conformer_config",
    "musicfm_state_dict",
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

    def close(self) -> None:
        """Release weights and device memory."""


_MUSIC_ENCODERS: Registry[MusicEncoder] = Registry("music encoder")
register_music_encoder = _MUSIC_ENCODERS.register
music_encoder_ids = _MUSIC_ENCODERS.ids
get_music_encoder = _MUSIC_ENCODERS.get


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
        self.n_mels, self.sample_rate, self.hop_length, self.n_fft = int(n_mels), int(sample_rate), int(hop_length), int(n_fft)
        self.amin = float(amin)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def describe(self) -> dict:
        return {"id": self.id, "n_mels": self.n_mels, "sample_rate": self.sample_rate,
                "hop_length": self.hop_length, "n_fft": self.n_fft, "amin": self.amin}

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        import librosa

        from .timing.media import resample_audio

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

    def features_from_latents(self, latents, duration: float) -> Features:
        """Features from already computed latents ``[D, L]`` (saves a second encode)."""
        lat = np.asarray(latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else latents, np.float32)
        if lat.ndim == 3:
            lat = lat[0]
        times = np.arange(lat.shape[1], dtype=np.float64) / float(self.codec.latent_rate)
        return Features(values=lat.T, times=times, duration=float(duration), encoder=self.id, meta=self.describe())

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        import torch

        from .timing.media import resample_audio

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

MUSICFM_HINT = (
    "Fix: download MusicFM's pretrained_msd.pt and msd_stats.json from "
    "https://huggingface.co/minzwon/MusicFM into models/v2m/music_encoders/musicfm/ (the .pt is read "
    "with torch.load(weights_only=True), tensors only; a .safetensors with the same keys also works)."
)

MUSICFM_SAMPLE_RATE = 24000
MUSICFM_HOP = 240  # 100 Hz mel frames
MUSICFM_FRAME = 960  # samples per 25 Hz output frame (two stride-2 convolutions)
# keys of the public checkpoint that only the pre-training heads use
_MUSICFM_TRAINING_PREFIXES = ("quantizer_", "linear.", "cls_token")
# buffers we can derive (torchaudio's window / mel bank, rotary inverse frequencies, BN counters)
_MUSICFM_DERIVED_SUFFIXES = ("spectrogram.window", "mel_scale.fb", "embed_positions.inv_freq", "num_batches_tracked")


def musicfm_conformer_config(**overrides):
    """The conformer config MusicFM uses: facebook/wav2vec2-conformer-rope-large-960h-ft with 12
    layers (MusicFM overrides ``num_hidden_layers``/``hidden_size`` only)."""
    from transformers import Wav2Vec2ConformerConfig

    fields = {
        "hidden_size": 1024,
        "num_hidden_layers": 12,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "hidden_act": "swish",
        "position_embeddings_type": "rotary",
        "rotary_embedding_base": 10000,
        "max_source_positions": 5000,
        "layer_norm_eps": 1e-5,
        "conv_depthwise_kernel_size": 31,
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
        "feat_extract_activation": "gelu",
        "hidden_dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.1,
        "conformer_conv_dropout": 0.1,
        "layerdrop": 0.0,
    }
    fields.update(overrides)
    cfg = Wav2Vec2ConformerConfig(**fields)
    cfg._attn_implementation = "eager"
    return cfg


def _hz_to_mel_htk(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz_htk(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def _torchaudio_mel_fb(sample_rate: int, n_fft: int, n_mels: int):
    """torchaudio ``melscale_fbanks(n_freqs, 0, sr/2, n_mels, sr, norm=None, mel_scale="htk")``."""
    import torch

    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel_htk(0.0), _hz_to_mel_htk(sample_rate / 2.0), n_mels + 2)
    f_pts = _mel_to_hz_htk(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    return torch.tensor(fb, dtype=torch.float32)  # [n_freqs, n_mels]


def _build_musicfm_modules():
    import torch
    from torch import nn

    class _Spectrogram(nn.Module):
        def __init__(self, n_fft: int):
            super().__init__()
            self.register_buffer("window", torch.hann_window(n_fft))

    class _MelScale(nn.Module):
        def __init__(self, fb):
            super().__init__()
            self.register_buffer("fb", fb)

    class _MelSpectrogram(nn.Module):
        def __init__(self, sample_rate, n_fft, hop, n_mels):
            super().__init__()
            self.n_fft, self.hop = n_fft, hop
            self.spectrogram = _Spectrogram(n_fft)
            self.mel_scale = _MelScale(_torchaudio_mel_fb(sample_rate, n_fft, n_mels))

        def forward(self, x):
            spec = torch.stft(x, self.n_fft, self.hop, self.n_fft, self.spectrogram.window, center=True,
                              pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
            power = spec.abs().pow(2.0)
            return torch.matmul(power.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)

    class MelSTFT(nn.Module):
        """torchaudio ``MelSpectrogram`` + ``AmplitudeToDB`` (power, no top_db), same buffer names."""

        def __init__(self, sample_rate=MUSICFM_SAMPLE_RATE, n_fft=2048, hop_length=MUSICFM_HOP, n_mels=128):
            super().__init__()
            self.mel_stft = _MelSpectrogram(sample_rate, n_fft, hop_length, n_mels)

        def forward(self, x):
            return 10.0 * torch.log10(torch.clamp(self.mel_stft(x), min=1e-10))

    class Res2dModule(nn.Module):
        def __init__(self, idim, odim, stride=(2, 2)):
            super().__init__()
            self.conv1 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
            self.bn1 = nn.BatchNorm2d(odim)
            self.conv2 = nn.Conv2d(odim, odim, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(odim)
            self.relu = nn.ReLU()
            self.diff = (idim != odim) or (stride[0] > 1)
            if self.diff:
                self.conv3 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
                self.bn3 = nn.BatchNorm2d(odim)

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            if self.diff:
                x = self.bn3(self.conv3(x))
            return self.relu(x + out)

    class Conv2dSubsampling(nn.Module):
        def __init__(self, idim, hdim, odim, n_bands):
            super().__init__()
            self.conv = nn.Sequential(Res2dModule(idim, hdim, (2, 2)), Res2dModule(hdim, hdim, (2, 2)))
            self.linear = nn.Linear(hdim * n_bands // 2 // 2, odim)

        def forward(self, x):
            x = self.conv(x.unsqueeze(1))  # [b, c, f, t]
            b, c, f, t = x.shape
            x = x.permute(0, 3, 1, 2).reshape(b, t, c * f)  # "b c f t -> b t (c f)"
            return self.linear(x)

    return MelSTFT, Conv2dSubsampling


def _musicfm_class():
    import torch
    from torch import nn
    from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
        Wav2Vec2ConformerEncoder,
    )

    MelSTFT, Conv2dSubsampling = _build_musicfm_modules()

    class MusicFM25Hz(nn.Module):
        """Inference part of MusicFM's ``MusicFM25Hz`` with the same submodule names.

        mel (128 bands, n_fft 2048, hop 240 at 24 kHz, dB) → ``(mel − mean) / std`` (dataset
        stats) → two residual stride-2 conv blocks + linear (25 Hz) → 12-layer rotary conformer.
        ``hidden_states(x)[i]`` is the input of conformer layer i (i < depth) and the final
        layer-normed output for i = depth, as the original's ``get_latent(x, layer_ix=i)``.
        """

        def __init__(self, conformer_config=None, *, n_mels: int = 128, conv_dim: int = 512,
                     stat_mean: float = 0.0, stat_std: float = 1.0):
            super().__init__()
            cfg = conformer_config if conformer_config is not None else musicfm_conformer_config()
            self.config = cfg
            self.stat_mean, self.stat_std = float(stat_mean), float(stat_std)
            self.preprocessor_melspec_2048 = MelSTFT(n_mels=n_mels)
            self.conv = Conv2dSubsampling(1, conv_dim, cfg.hidden_size, n_mels)
            self.conformer = Wav2Vec2ConformerEncoder(cfg)

        @property
        def depth(self) -> int:
            return len(self.conformer.layers)

        def hidden_states(self, wave, upto: int | None = None) -> list:
            """``[B, T]`` 24 kHz audio (T a multiple of 960) → list of ``[B, T/960, D]``."""
            upto = self.depth if upto is None else int(upto)
            mel = self.preprocessor_melspec_2048(wave.float())[..., :-1]
            mel = (mel - self.stat_mean) / self.stat_std
            h = self.conv(mel.to(self.conv.linear.weight.dtype))
            rel = self.conformer.embed_positions(h) if self.conformer.embed_positions is not None else None
            out = [h]
            for i, layer in enumerate(self.conformer.layers):
                if i >= upto:
                    break
                h = layer(h, attention_mask=None, relative_position_embeddings=rel)
                out.append(h)
            if upto >= self.depth:
                out[-1] = self.conformer.layer_norm(out[-1])
            return out

        @torch.no_grad()
        def get_latent(self, wave, layer_ix: int = 7):
            return self.hidden_states(wave, upto=layer_ix)[layer_ix]

    return MusicFM25Hz


def MusicFM25Hz(*args, **kwargs):
    """Build the MusicFM module (transformers is imported only here)."""
    return _musicfm_class()(*args, **kwargs)


def musicfm_state_dict(raw: Mapping[str, Any], *, name: str = "checkpoint") -> dict:
    """The public checkpoint's tensors in our module's key layout.

    ``pretrained_*.pt`` is a Lightning-style ``{"state_dict": {"model.<key>": tensor}}``; the
    original loader strips the 6-character ``model.`` prefix. Pre-training heads (random
    quantizers, the codebook projection ``linear``, ``cls_token``) are dropped, and weight norm
    saved by older torch (``weight_g``/``weight_v``) is renamed to the parametrization names
    current torch uses.
    """
    import torch

    sd = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    if not isinstance(sd, Mapping):
        raise ModelError(f"{name}: not a MusicFM state dict (got {type(sd).__name__}). {MUSICFM_HINT}")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        key = k.removeprefix("model.")
        if key.startswith(_MUSICFM_TRAINING_PREFIXES):
            continue
        key = key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        key = key.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        out[key] = v
    return out


def _read_musicfm_file(path: Path) -> dict:
    import pickle

    import torch

    if path.suffix.lower() == ".safetensors":
        from ..model_io.weights import read_safetensors

        tensors, _ = read_safetensors(path)
        return tensors
    try:
        # tensors and plain containers only: a pickle that needs anything else is refused
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        raise ModelError(
            f"{path}: cannot be read safely as a tensor checkpoint ({type(exc).__name__}: {str(exc)[:300]}). "
            "It holds more than tensors (or is damaged). Convert it once to safetensors in a trusted session, "
            "e.g. `sd = torch.load(PATH, weights_only=False)['state_dict']; "
            "safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, 'musicfm.safetensors')`. "
            + MUSICFM_HINT
        ) from None


def _find_stats(ckpt: Path, stats: str | os.PathLike | None) -> Path:
    if stats is not None:
        p = Path(stats)
        if not p.is_file():
            raise ModelError(f"{p}: MusicFM stats file not found. {MUSICFM_HINT}")
        return p
    folder = ckpt.parent
    stem = ckpt.stem.replace("pretrained_", "")
    for cand in (folder / f"{stem}_stats.json", folder / "msd_stats.json", folder / "fma_stats.json"):
        if cand.is_file():
            return cand
    found = sorted(folder.glob("*stats*.json"))
    if len(found) == 1:
        return found[0]
    raise ModelError(f"{folder}: no MusicFM stats JSON (e.g. msd_stats.json) next to {ckpt.name}. {MUSICFM_HINT}")


def _read_stats(path: Path, key: str = "melspec_2048") -> tuple[float, float]:
    try:
        d = json.loads(path.read_text())
        return float(d[f"{key}_mean"]), float(d[f"{key}_std"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a MusicFM stats file (needs {key}_mean and {key}_std; {exc}). {MUSICFM_HINT}") from None


def load_musicfm(path: str | os.PathLike, *, stats: str | os.PathLike | None = None, conformer_config=None,
                 device: Any = "cpu", dtype=None):
    """Load MusicFM from a local ``pretrained_*.pt`` (``weights_only=True``) or ``.safetensors``.

    The architecture (depth, width, conv width, mel bands) is read off the tensor shapes unless
    ``conformer_config`` is given; the rest of the config is MusicFM's. ``stats`` is the dataset
    stats JSON (default: ``<name>_stats.json``/``msd_stats.json`` next to the checkpoint).
    Missing derived buffers (mel bank, window, rotary frequencies) are rebuilt; any other
    missing, unexpected or mis-shaped key raises ``ModelError``.
    """

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: MusicFM checkpoint not found. {MUSICFM_HINT}")
    sd = musicfm_state_dict(_read_musicfm_file(p), name=str(p))
    mean, std = _read_stats(_find_stats(p, stats))
    try:
        hidden = int(sd["conv.linear.weight"].shape[0])
        conv_dim = int(sd["conv.conv.0.conv1.weight"].shape[0])
        n_mels = int(sd["conv.linear.weight"].shape[1]) * 4 // conv_dim
        depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("conformer.layers."))
        ffn = int(sd["conformer.layers.0.ffn1.intermediate_dense.weight"].shape[0])
        kernel = int(sd["conformer.layers.0.conv_module.depthwise_conv.weight"].shape[-1])
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"{p}: not a MusicFM checkpoint (missing {exc}). {MUSICFM_HINT}") from None
    if conformer_config is None:
        inv = sd.get("conformer.embed_positions.inv_freq")  # head_dim / 2 rotary frequencies
        heads = hidden // (2 * int(inv.shape[0])) if inv is not None else (16 if hidden == 1024 else max(1, hidden // 64))
        pos_k = sd.get("conformer.pos_conv_embed.conv.parametrizations.weight.original1")
        extra = {}
        if pos_k is not None:
            extra = {"num_conv_pos_embeddings": int(pos_k.shape[-1]),
                     "num_conv_pos_embedding_groups": hidden // int(pos_k.shape[1])}
        conformer_config = musicfm_conformer_config(hidden_size=hidden, num_hidden_layers=depth, num_attention_heads=heads,
                                                    intermediate_size=ffn, conv_depthwise_kernel_size=kernel, **extra)
    model = MusicFM25Hz(conformer_config, n_mels=n_mels, conv_dim=conv_dim, stat_mean=mean, stat_std=std)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith(_MUSICFM_DERIVED_SUFFIXES)]
    unexpected = [k for k in sd if k not in own]
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        parts = [f"{len(x)} {what}: {', '.join(x[:4])}" for what, x in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", bad)) if x]
        raise ModelError(f"{p}: weights do not fit MusicFM — " + "; ".join(parts) + f". {MUSICFM_HINT}")
    full = {k: sd.get(k, v) for k, v in own.items()}
    model.load_state_dict(full, strict=True)
    model = model.to(device=device).eval().requires_grad_(False)
    if dtype is not None:
        model.conv.to(dtype)
        model.conformer.to(dtype)
    return model


@register_music_encoder("musicfm")
class MusicFMEncoder(MusicEncoder):
    """MusicFM features of one conformer layer at 25 Hz (mono, 24 kHz input).

    ``layer`` 7 follows MusicFM's README example (its mid layers carry the most musical
    information); audio is processed in windows of ``chunk_seconds`` (MusicFM was trained on
    30 s excerpts) with the tail zero-padded to whole 40 ms frames, and frames past the end of
    the audio are dropped. Frame k stands for ``[k, k+1) · 40 ms``.
    """

    id = "musicfm"

    def __init__(self, path: str | os.PathLike | None = None, *, layer: int = 7, stats: str | None = None,
                 chunk_seconds: float = 30.0, device: Any = None, model: Any = None):
        import torch

        if model is None:
            if path is None:
                raise ModelError(f"the musicfm music encoder needs its checkpoint path (path=...). {MUSICFM_HINT}")
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = load_musicfm(path, stats=stats, device=device)
        self.model = model
        self.path = None if path is None else str(path)
        self.layer = int(layer)
        if not 0 <= self.layer <= model.depth:
            raise V2MError(f"musicfm layer must be in 0..{model.depth}, got {layer}")
        self.chunk_frames = max(1, int(round(float(chunk_seconds) * MUSICFM_SAMPLE_RATE / MUSICFM_FRAME)))

    def describe(self) -> dict:
        d = {"id": self.id, "layer": self.layer, "chunk_frames": self.chunk_frames}
        if self.path:
            d["checkpoint"] = os.path.basename(self.path)
        return d

    def encode(self, wave: np.ndarray, sample_rate: int) -> Features:
        import torch

        from .timing.media import resample_audio

        mono = _mono(wave)
        duration = mono.shape[-1] / float(sample_rate)
        if duration <= 0:
            raise V2MError("musicfm: the audio is empty")
        y = resample_audio(mono, int(sample_rate), MUSICFM_SAMPLE_RATE)
        n_frames = -(-y.shape[-1] // MUSICFM_FRAME)
        y = np.pad(y, (0, n_frames * MUSICFM_FRAME - y.shape[-1]))
        dev = next(self.model.parameters()).device
        feats = []
        step = self.chunk_frames * MUSICFM_FRAME
        with torch.no_grad():
            for s in range(0, y.shape[-1], step):
                x = torch.from_numpy(np.ascontiguousarray(y[s:s + step]))[None].to(dev)
                h = self.model.hidden_states(x, upto=self.layer)[self.layer]
                feats.append(h[0].float().cpu().numpy())
        values = np.concatenate(feats, axis=0)[:n_frames]
        times = np.arange(values.shape[0], dtype=np.float64) * MUSICFM_FRAME / MUSICFM_SAMPLE_RATE
        keep = times < duration
        return Features(values=values[keep], times=times[keep], duration=duration, encoder=self.id, meta=self.describe())

    def close(self) -> None:
        self.model = None
