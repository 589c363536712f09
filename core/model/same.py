"""SAME, Stable Audio 3's autoencoder, laid out module for module like the ``stable_audio_3`` reference.

``encoder.layers.*`` / ``decoder.layers.*`` / ``bottleneck.*``, so an SA3 file's
``pretransform.model.*`` (or a standalone SAME-S/SAME-L file) loads as it is (reading: ``model_io.same``).

Audio → patches of ``patch_size`` samples (channels × patch → channels, no weights) → Transformer
Resampling Blocks (TRB: each group of ``stride`` frames gets one learned output token; a
transformer runs over the flattened groups; the output tokens are the downsampled sequence) → a
linear map to ``latent_dim`` → soft-norm bottleneck (``x · scaling_factor + bias``, divided by a
running std). Decoding mirrors it: one input frame plus ``stride`` learned tokens per group.

The transformer sees its neighbours in one of the two ways the published SAMEs use
(``stable_audio_3.models.autoencoders.TransformerResamplingBlock``):

* **sliding window** (SAME-L, diffusers' ``AutoencoderSAME``): a band of ``sliding_window`` groups
  each side over the whole sequence;
* **chunked** (SAME-S, the codec of the small SA3 models: ``sliding_window`` 0): fixed chunks of
  ``chunk_size`` input frames (``chunk_size / stride`` groups of ``stride + 1`` tokens) with full
  attention inside; with ``chunk_midpoint_shift`` the second half of the layers runs on chunks
  shifted by half a chunk (the sequence extended by copies of its first and last half chunk). The
  encoder pads its input to whole chunks, the decoder its latents; :class:`SAMECodec` cuts the
  padding's frames off again, so ``encode``/``decode`` keep the :class:`~.codec.AudioCodec` lengths.

The encoder's and the decoder's channel mappings are set separately (SAME-S: a 1×1 map in, a
kernel-3 map out). SAME-S (SA3 small): 256 channels at 44100/4096 ≈ 10.77 Hz.
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

# Bounds on every size a config may state (configs are untrusted): generous multiples of the published ones.
LIMITS = {"audio_channels": 8, "patch_size": 4096, "channels": 4096, "c_mult": 64, "stride": 256, "levels": 8,
          "depth": 64, "latent_dim": 4096, "dim_heads": 1024, "ff_mult": 16.0, "sliding_window": 1024,
          "chunk_size": 8192, "sample_rate": 384000, "width": 16384}


@dataclass
class SAMEConfig:
    """A SAME autoencoder, flattened from the reference ``pretransform`` config (defaults: SAME-S as
    stable-audio-3-small-music(-base) ships it)."""

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
    sliding_window: int = 0          # latent groups each side (the reference's [w, w]); 0: chunked attention
    chunk_size: int = 32             # chunked attention: input frames per chunk (a multiple of every stride)
    chunk_midpoint_shift: bool = True  # chunked attention: the second half of the layers on half-shifted chunks
    encoder_sinusoidal_blocks: list = field(default_factory=lambda: [0])
    decoder_sinusoidal_blocks: list = field(default_factory=lambda: [0])
    variable_stride: bool = True     # one shared learned token per TRB (else ``stride`` of them)
    mapping_bias: bool = True
    encoder_conv_mapping: bool = False  # kernel-3 channel mapping into the encoder's TRBs (else 1×1)
    decoder_conv_mapping: bool = True   # kernel-3 channel mapping out of the decoder's TRBs (SAME-S: yes)
    soft_clip: bool = False          # tanh on the decoded audio
    auto_scale: bool = True          # the bottleneck keeps a running std
    noise_augment_dim: int = 0
    sample_rate: int = 44100

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SAMEConfig":
        d = dict(d)
        if "conv_mapping" in d:  # configs written before the two sides were separate: one flag for both
            both = d.pop("conv_mapping")
            d.setdefault("encoder_conv_mapping", both)
            d.setdefault("decoder_conv_mapping", both)
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

    @property
    def chunked(self) -> bool:
        return not self.sliding_window

    @property
    def latent_period(self) -> int:
        """Latent frames per attention chunk of the decoder's first block (1 with a sliding window):
        windows that start on a multiple of it see the chunks a whole decode sees."""
        return max(1, self.chunk_size // self.strides[-1]) if self.chunked else 1

    def validate(self) -> None:
        n = len(self.strides) if isinstance(self.strides, list) else 0
        problems = []

        def whole(name, v, lo, hi):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                problems.append(f"{name} = {v!r} (an integer in [{lo}, {hi}])")
                return False
            return True

        def flag(name):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} = {getattr(self, name)!r} (true or false)")

        if not 1 <= n <= LIMITS["levels"]:
            problems.append(f"strides needs 1 to {LIMITS['levels']} levels, got {self.strides!r}")
            n = 0
        for name in ("c_mults", "transformer_depths"):
            if not isinstance(getattr(self, name), list) or len(getattr(self, name)) != n:
                problems.append(f"{name} needs one entry per level ({n})")
        for name in ("encoder_sinusoidal_blocks", "decoder_sinusoidal_blocks"):
            v = getattr(self, name)
            if isinstance(v, list) and len(v) == 1 and n > 1:
                setattr(self, name, v * n)
            elif not isinstance(v, list) or len(v) != n:
                problems.append(f"{name} needs 1 or {n} entries")
        for name, lo in (("audio_channels", 1), ("patch_size", 1), ("channels", 1), ("latent_dim", 1),
                         ("dim_heads", 1), ("sliding_window", 0), ("chunk_size", 1), ("sample_rate", 1),
                         ("noise_augment_dim", 0)):
            whole(name, getattr(self, name), lo, LIMITS.get(name, 4096))
        for name in ("differential", "chunk_midpoint_shift", "variable_stride", "mapping_bias", "encoder_conv_mapping",
                     "decoder_conv_mapping", "soft_clip", "auto_scale"):
            flag(name)
        if isinstance(self.ff_mult, bool) or not isinstance(self.ff_mult, (int, float)) \
                or not 0 < self.ff_mult <= LIMITS["ff_mult"]:
            problems.append(f"ff_mult = {self.ff_mult!r} (a number in (0, {LIMITS['ff_mult']}])")
        if not problems:
            for i in range(n):
                ok = (whole(f"strides[{i}]", self.strides[i], 1, LIMITS["stride"])
                      & whole(f"c_mults[{i}]", self.c_mults[i], 1, LIMITS["c_mult"])
                      & whole(f"transformer_depths[{i}]", self.transformer_depths[i], 1, LIMITS["depth"]))
                for name in ("encoder_sinusoidal_blocks", "decoder_sinusoidal_blocks"):
                    whole(f"{name}[{i}]", getattr(self, name)[i], 0, LIMITS["depth"] + 1)
                width = self.c_mults[i] * self.channels if ok else 0
                if width > LIMITS["width"]:
                    problems.append(f"level {i} is {width} channels wide (at most {LIMITS['width']})")
                elif ok and isinstance(self.dim_heads, int) and width > self.dim_heads and width % self.dim_heads:
                    problems.append(f"level {i}'s {width} channels are not whole heads of dim_heads {self.dim_heads}")
                if ok and self.chunked and self.chunk_size % self.strides[i]:
                    problems.append(f"chunk_size {self.chunk_size} is not a multiple of stride {self.strides[i]} "
                                    "(the reference requires it)")
                if ok and self.chunked and self.chunk_midpoint_shift \
                        and (self.chunk_size + self.chunk_size // self.strides[i]) % 2:
                    problems.append(f"chunk_size {self.chunk_size} with stride {self.strides[i]} gives an odd chunk "
                                    "of tokens, which a half-chunk shift cannot split")
        if self.noise_augment_dim:
            problems.append("noise_augment_dim > 0 (decoder noise channels) is not supported")
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
        self.chunk, self.shift = int(cfg.chunk_size), bool(cfg.chunk_midpoint_shift)
        dim = c_out if mode == "encoder" else c_in
        conv = cfg.encoder_conv_mapping if mode == "encoder" else cfg.decoder_conv_mapping
        self.mapping = WNConv1d(c_in, c_out, 3 if conv else 1, padding=1 if conv else 0,
                                bias=cfg.mapping_bias) if c_in != c_out else nn.Identity()
        self.transformers = nn.ModuleList(
            TransformerBlock(dim, cfg.dim_heads, norm_type="dyt", differential=cfg.differential, qk_norm="dyt",
                             ff_mult=cfg.ff_mult, sinusoidal=(depth - i) < sinusoidal, add_rope=True)
            for i in range(depth))
        n_tokens = 1 if (cfg.variable_stride or mode == "encoder") else self.stride
        self.new_tokens = nn.Parameter(1e-5 * torch.randn(1, n_tokens, dim))

    @staticmethod
    def _layers(x, layers, band=None):
        for layer in layers:
            x = layer(x, band=band)
        return x

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer over the flattened groups ``[B, n·(stride+1), C]``."""
        seg = self.stride + 1
        if self.window:
            return self._layers(x, self.transformers, band=self.window * seg)
        b, n, c = x.shape
        eff = self.chunk + self.chunk // self.stride  # tokens per chunk: chunk/stride groups of stride+1
        if not self.shift:
            return self._layers(x.reshape(-1, eff, c), self.transformers).reshape(b, n, c)
        split, half = len(self.transformers) // 2, eff // 2
        x = self._layers(x.reshape(-1, eff, c), self.transformers[:split]).reshape(b, n, c)
        x = torch.cat([x[:, :half], x, x[:, -half:]], dim=1)
        x = self._layers(x.reshape(-1, eff, c), self.transformers[split:]).reshape(b, n + 2 * half, c)
        return x[:, half:half + n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], self.stride
        if self.mode == "encoder":
            x = F.pad(x, (0, (-x.shape[-1]) % (s if self.window else self.chunk)))
            x = self.mapping(x).transpose(1, 2)  # [B, T, C]
            n, c = x.shape[1] // s, x.shape[2]
            x = torch.cat([x.reshape(b * n, s, c), self.new_tokens.to(x.dtype).expand(b * n, 1, c)], dim=1)
            x = self._run(x.reshape(b, n * (s + 1), c))
            return x.reshape(b * n, s + 1, c)[:, -1:].reshape(b, n, c).transpose(1, 2)
        if not self.window:
            x = F.pad(x, (0, (-x.shape[-1]) % max(1, self.chunk // s)))
        t, c = x.shape[-1], x.shape[1]
        x = x.transpose(1, 2).reshape(b * t, 1, c)
        x = torch.cat([x, self.new_tokens.to(x.dtype).expand(b * t, s, c)], dim=1)
        x = self._run(x.reshape(b, t * (s + 1), c))
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
        # chunked attention pads to whole chunks: the frames of that padding are cut off
        return self.bottleneck.encode(self.encoder(x))[..., :self.latent_length(wave.shape[-1])]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_latents(latents)
        x = self.decoder(self.bottleneck.decode(latents.to(self._dtype())))
        x = x[..., :latents.shape[-1] * (self.downsampling_ratio // self.cfg.patch_size)]  # chunk padding's frames
        b, cp, t = x.shape
        p = self.cfg.patch_size
        x = x.reshape(b, cp // p, p, t).permute(0, 1, 3, 2).reshape(b, cp // p, t * p)
        return torch.tanh(x) if self.cfg.soft_clip else x

    def decode_chunked(self, latents: torch.Tensor, chunk_size: int = 128, overlap: int = 32) -> torch.Tensor:
        """Decode in windows of ``chunk_size`` latent frames overlapping by ``overlap`` (the reference's
        scheme: half the overlap is cut from each inner edge; the last window is anchored at the end).

        With chunked attention every window starts on a multiple of :attr:`SAMEConfig.latent_period`,
        so it sees the attention chunks a whole decode sees (the last window may then be up to
        ``latent_period - 1`` frames longer); a step ``chunk_size - overlap`` that is not such a
        multiple is rounded down to one."""
        self._check_latents(latents)
        total = latents.shape[-1]
        if total <= chunk_size:
            return self.decode(latents)
        if not 0 <= overlap < chunk_size:
            raise ModelError(f"decode_chunked: overlap {overlap} must be in [0, chunk_size {chunk_size})")
        r, period = self.downsampling_ratio, self.cfg.latent_period
        hop = max(period, (chunk_size - overlap) // period * period)
        starts = list(range(0, total - chunk_size + 1, hop))
        last = (total - chunk_size) // period * period
        if starts[-1] != last:
            starts.append(last)
        half = (overlap // 2) * r
        out = None
        for i, s in enumerate(starts):
            final = i == len(starts) - 1
            chunk = self.decode(latents[..., s:] if final else latents[..., s:s + chunk_size])
            if out is None:
                out = chunk.new_zeros(*chunk.shape[:-1], total * r)
            lo, hi = (0 if i == 0 else half), (chunk.shape[-1] if final else chunk_size * r - half)
            out[..., s * r + lo:s * r + hi] = chunk[..., lo:hi]
        return out
