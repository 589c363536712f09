"""SAME, Stable Audio 3's autoencoder, laid out module for module like the ``stable_audio_3`` reference.

``encoder.layers.*`` / ``decoder.layers.*`` / ``bottleneck.*``, so an SA3 file's
``pretransform.model.*`` (or a standalone SAME-S/SAME-L file) loads as it is (reading: ``model_io.same``).

Audio → patches of ``patch_size`` samples (channels × patch → channels, no weights) → Transformer
Resampling Blocks (TRB: each group of ``stride`` frames gets one learned output token; a
transformer runs over the flattened groups with a sliding-window band mask; the output tokens are
the downsampled sequence) → a linear map to ``latent_dim`` → soft-norm bottleneck
(``x · scaling_factor + bias``, divided by a running std). Decoding mirrors it: one input frame
plus ``stride`` learned tokens per group. SAME-S (SA3 small): 256 channels at 44100/4096 ≈ 10.77 Hz.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .codec import AudioCodec
from .oobleck import WNConv1d
from .sa3_blocks import TransformerBlock


@dataclass
class SAMEConfig:
    """A SAME autoencoder, flattened from the reference ``pretransform`` config (defaults: SAME-S)."""

    audio_channels: int = 2
    patch_size: int = 256
    channels: int = 128
    c_mults: list = field(default_factory=lambda: [6])
    strides: list = field(default_factory=lambda: [16])
    transformer_depths: list = field(default_factory=lambda: [6])
    latent_dim: int = 256
    dim_heads: int = 64
    differential: bool = True
    ff_mult: float = 3.0
    sliding_window: int = 1          # latent frames each side (the reference's [w, w])
    encoder_sinusoidal_blocks: list = field(default_factory=lambda: [0])
    decoder_sinusoidal_blocks: list = field(default_factory=lambda: [0])
    variable_stride: bool = True     # one shared learned token per TRB (else ``stride`` of them)
    mapping_bias: bool = True
    conv_mapping: bool = False       # kernel-3 channel mappings instead of 1
    soft_clip: bool = False          # tanh on the decoded audio
    auto_scale: bool = True          # the bottleneck keeps a running std
    noise_augment_dim: int = 0
    sample_rate: int = 44100

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SAMEConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"unknown SAME config field(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def downsampling_ratio(self) -> int:
        return self.patch_size * math.prod(self.strides)

    def validate(self) -> None:
        n = len(self.strides)
        problems = []
        if not (len(self.c_mults) == len(self.transformer_depths) == n) or n < 1:
            problems.append("c_mults, strides and transformer_depths need one entry per level")
        for name in ("encoder_sinusoidal_blocks", "decoder_sinusoidal_blocks"):
            v = getattr(self, name)
            if len(v) == 1 and n > 1:
                setattr(self, name, v * n)
            elif len(v) != n:
                problems.append(f"{name} needs 1 or {n} entries")
        if self.noise_augment_dim:
            problems.append("noise_augment_dim > 0 (decoder noise channels) is not supported")
        if min([self.patch_size, self.audio_channels, self.channels, self.latent_dim, self.sliding_window,
                *self.strides]) < 1:
            problems.append("sizes must be >= 1")
        if problems:
            raise ModelError("bad SAME config: " + "; ".join(problems))


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(-1, -2)


class TransformerResamplingBlock(nn.Module):
    """Down- (``encoder``) or up-sampling (``decoder``) by ``stride`` with learned output tokens."""

    def __init__(self, c_in: int, c_out: int, stride: int, mode: str, depth: int, cfg: SAMEConfig, sinusoidal: int = 0):
        super().__init__()
        self.stride, self.mode, self.window = int(stride), mode, int(cfg.sliding_window)
        dim = c_out if mode == "encoder" else c_in
        self.mapping = WNConv1d(c_in, c_out, 3 if cfg.conv_mapping else 1, padding=1 if cfg.conv_mapping else 0,
                                bias=cfg.mapping_bias) if c_in != c_out else nn.Identity()
        self.transformers = nn.ModuleList(
            TransformerBlock(dim, cfg.dim_heads, norm_type="dyt", differential=cfg.differential, qk_norm="dyt",
                             ff_mult=cfg.ff_mult, sinusoidal=(depth - i) < sinusoidal, add_rope=True)
            for i in range(depth))
        n_tokens = 1 if (cfg.variable_stride or mode == "encoder") else self.stride
        self.new_tokens = nn.Parameter(1e-5 * torch.randn(1, n_tokens, dim))

    def _run(self, x, seg: int):
        band = self.window * seg
        for layer in self.transformers:
            x = layer(x, band=band)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], self.stride
        if self.mode == "encoder":
            x = F.pad(x, (0, (-x.shape[-1]) % s))
            x = self.mapping(x).transpose(1, 2)  # [B, T, C]
            if not len(self.transformers):
                return x[:, ::s].transpose(1, 2)  # pragma: no cover - SAME always has layers
            n, c = x.shape[1] // s, x.shape[2]
            x = torch.cat([x.reshape(b * n, s, c), self.new_tokens.to(x.dtype).expand(b * n, 1, c)], dim=1)
            x = self._run(x.reshape(b, n * (s + 1), c), s + 1)
            return x.reshape(b * n, s + 1, c)[:, -1:].reshape(b, n, c).transpose(1, 2)
        t, c = x.shape[-1], x.shape[1]
        x = x.transpose(1, 2).reshape(b * t, 1, c)
        x = torch.cat([x, self.new_tokens.to(x.dtype).expand(b * t, s, c)], dim=1)
        x = self._run(x.reshape(b, t * (s + 1), c), s + 1)
        x = x.reshape(b * t, s + 1, c)[:, -s:].reshape(b, t * s, c).transpose(1, 2)
        return self.mapping(x)


class SAMEEncoder(nn.Module):
    def __init__(self, cfg: SAMEConfig):
        super().__init__()
        ch = [cfg.audio_channels * cfg.patch_size] + [m * cfg.channels for m in cfg.c_mults]
        layers: list[nn.Module] = [
            TransformerResamplingBlock(ch[i], ch[i + 1], cfg.strides[i], "encoder", cfg.transformer_depths[i], cfg,
                                       cfg.encoder_sinusoidal_blocks[i]) for i in range(len(cfg.strides))]
        self.layers = nn.ModuleList(layers + [Transpose(), nn.Linear(ch[-1], cfg.latent_dim), Transpose()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class SAMEDecoder(nn.Module):
    def __init__(self, cfg: SAMEConfig):
        super().__init__()
        ch = [cfg.audio_channels * cfg.patch_size] + [m * cfg.channels for m in cfg.c_mults]
        layers: list[nn.Module] = [Transpose(), nn.Linear(cfg.latent_dim, ch[-1]), Transpose()]
        layers += [TransformerResamplingBlock(ch[i], ch[i - 1], cfg.strides[i - 1], "decoder",
                                              cfg.transformer_depths[i - 1], cfg, cfg.decoder_sinusoidal_blocks[i - 1])
                   for i in range(len(cfg.strides), 0, -1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class SoftNormBottleneck(nn.Module):
    def __init__(self, dim: int, auto_scale: bool = True, noise_augment_dim: int = 0):
        super().__init__()
        self.scaling_factor = nn.Parameter(torch.ones(1, dim, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1))
        self.noise_scaling_factor = nn.Parameter(torch.ones(1, noise_augment_dim, 1))
        if auto_scale:
            self.running_std = nn.Parameter(torch.ones(1), requires_grad=False)

    def encode(self, x):
        x = x * self.scaling_factor + self.bias
        return x / self.running_std if hasattr(self, "running_std") else x

    def decode(self, x):
        # the reference adds 1e-3·std noise here when trained with noise_regularize; decoding stays deterministic
        return x * self.running_std if hasattr(self, "running_std") else x


class SAMECodec(nn.Module, AudioCodec):
    """SAME as an :class:`~.codec.AudioCodec`: waveform [B, C, T] ↔ latents [B, latent_dim, L]."""

    def __init__(self, config: Mapping[str, Any] | SAMEConfig | None = None):
        super().__init__()
        cfg = config if isinstance(config, SAMEConfig) else SAMEConfig.from_dict(dict(config or {}))
        self.cfg = cfg
        self.config = cfg.to_dict()
        self.sample_rate = int(cfg.sample_rate)
        self.latent_channels = int(cfg.latent_dim)
        self.downsampling_ratio = int(cfg.downsampling_ratio)
        self.audio_channels = int(cfg.audio_channels)
        self.encoder = SAMEEncoder(cfg)
        self.decoder = SAMEDecoder(cfg)
        self.bottleneck = SoftNormBottleneck(cfg.latent_dim, cfg.auto_scale, cfg.noise_augment_dim)

    def _dtype(self):
        return self.bottleneck.scaling_factor.dtype

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        self._check_wave(wave)
        p = self.cfg.patch_size
        x = F.pad(wave.to(self._dtype()), (0, (-wave.shape[-1]) % p))
        b, c, t = x.shape
        x = x.reshape(b, c, t // p, p).permute(0, 1, 3, 2).reshape(b, c * p, t // p)
        return self.bottleneck.encode(self.encoder(x))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_latents(latents)
        x = self.decoder(self.bottleneck.decode(latents.to(self._dtype())))
        b, cp, t = x.shape
        p = self.cfg.patch_size
        x = x.reshape(b, cp // p, p, t).permute(0, 1, 3, 2).reshape(b, cp // p, t * p)
        return torch.tanh(x) if self.cfg.soft_clip else x

    def decode_chunked(self, latents: torch.Tensor, chunk_size: int = 128, overlap: int = 32) -> torch.Tensor:
        """Decode in windows of ``chunk_size`` latent frames overlapping by ``overlap`` (the reference's
        scheme: half the overlap is cut from each inner edge; the last window is anchored at the end)."""
        self._check_latents(latents)
        total = latents.shape[-1]
        if total <= chunk_size:
            return self.decode(latents)
        if not 0 <= overlap < chunk_size:
            raise ModelError(f"decode_chunked: overlap {overlap} must be in [0, chunk_size {chunk_size})")
        r = self.downsampling_ratio
        starts = list(range(0, total - chunk_size + 1, chunk_size - overlap))
        if starts[-1] != total - chunk_size:
            starts.append(total - chunk_size)
        half = (overlap // 2) * r
        out = None
        for i, s in enumerate(starts):
            chunk = self.decode(latents[..., s:s + chunk_size])
            if out is None:
                out = chunk.new_zeros(*chunk.shape[:-1], total * r)
            first, last = i == 0, i == len(starts) - 1
            at = (total - chunk_size) * r if last else s * r
            lo, hi = (0 if first else half), (chunk_size * r if last else chunk_size * r - half)
            out[..., at + lo:at + hi] = chunk[..., lo:hi]
        return out
