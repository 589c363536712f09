"""Audio codecs: waveform ``[B, C, T]`` <-> latents ``[B, D, L]``.

``OobleckVAE`` is the Stable Audio Open 1.0 autoencoder, laid out module for module like
stable-audio-tools (``encoder.layers.*`` / ``decoder.layers.*``, weight norm stored as
``weight_g``/``weight_v``) so its ``pretransform.model.*`` weights load as they are.
``PatchCodec`` is a weightless, exactly invertible codec for tests and toy experiments.
``load_codec`` reads the public layouts (SAO single file, standalone VAE, diffusers folder).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelError, V2MError

__all__ = [
    "AudioCodec",
    "OobleckVAE",
    "PatchCodec",
    "SAO_VAE_CONFIG",
    "load_codec",
    "infer_oobleck_config",
    "diffusers_to_oobleck",
]

# Stable Audio Open 1.0 pretransform (model_config.json -> model.pretransform.config), flattened.
SAO_VAE_CONFIG: dict[str, Any] = {
    "channels": 128,
    "c_mults": [1, 2, 4, 8, 16],
    "strides": [2, 4, 4, 8, 8],
    "latent_dim": 64,
    "encoder_latent_dim": 128,  # mean and scale of the VAE bottleneck
    "audio_channels": 2,
    "sample_rate": 44100,
    "use_snake": True,
    "final_tanh": False,
    "bottleneck": "vae",
    "scale": 1.0,
}


class AudioCodec:
    """Interface: ``encode(wave [B,C,T]) -> latents [B,D,L]`` and ``decode`` back.

    Attributes: ``sample_rate`` (Hz), ``latent_channels`` (D), ``downsampling_ratio`` (samples
    per latent frame), ``audio_channels`` (C).
    """

    sample_rate: int
    latent_channels: int
    downsampling_ratio: int
    audio_channels: int

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.downsampling_ratio

    def latent_length(self, num_samples: int) -> int:
        """Latent frames needed to cover ``num_samples`` audio samples."""
        return -(-int(num_samples) // self.downsampling_ratio)

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_wave(self, wave: torch.Tensor) -> None:
        if wave.ndim != 3 or wave.shape[1] != self.audio_channels:
            raise V2MError(
                f"{type(self).__name__}.encode expects audio [batch, {self.audio_channels}, samples], got "
                f"{tuple(wave.shape)}. Fix: convert the audio to {self.audio_channels} channel(s) first."
            )

    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.ndim != 3 or latents.shape[1] != self.latent_channels:
            raise V2MError(
                f"{type(self).__name__}.decode expects latents [batch, {self.latent_channels}, frames], got "
                f"{tuple(latents.shape)}. Fix: pass latents made by this codec."
            )


# --------------------------------------------------------------------------------------------
# Oobleck building blocks (stable-audio-tools layout)
# --------------------------------------------------------------------------------------------


class WNConv1d(nn.Module):
    """Weight-normalised (transposed) 1-D convolution with plain ``weight_g``/``weight_v`` parameters.

    Implemented here rather than with ``torch.nn.utils.weight_norm`` so the parameter names are the
    checkpoint's on every torch version (newer torch renames them to ``parametrizations.*``).
    ``weight = weight_g * weight_v / ||weight_v||`` with the norm over all dims but 0, as torch's
    ``weight_norm(dim=0)`` (for a transposed conv, dim 0 is the input channel, as in torch).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True, transposed: bool = False):
        super().__init__()
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed
        shape = (in_channels, out_channels, kernel_size) if transposed else (out_channels, in_channels, kernel_size)
        v = torch.empty(shape)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True).clone())
        if bias:
            fan_in = shape[1] * kernel_size
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)))
        else:
            self.register_parameter("bias", None)

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding, 0, 1, self.dilation)
        return F.conv1d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation)


class SnakeBeta(nn.Module):
    """``x + 1/beta * sin(alpha x)^2`` with log-scale per-channel ``alpha``/``beta`` of shape [C]."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp()[None, :, None]
        beta = self.beta.exp()[None, :, None]
        return x + 1.0 / (beta + 1e-9) * torch.sin(x * alpha).pow(2)


def _activation(use_snake: bool, channels: int) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _activation(use_snake, channels),
            WNConv1d(channels, channels, 7, dilation=dilation, padding=(dilation * 6) // 2),
            _activation(use_snake, channels),
            WNConv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, 1, use_snake),
            ResidualUnit(in_channels, 3, use_snake),
            ResidualUnit(in_channels, 9, use_snake),
            _activation(use_snake, in_channels),
            WNConv1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _activation(use_snake, in_channels),
            WNConv1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                     transposed=True),
            ResidualUnit(out_channels, 1, use_snake),
            ResidualUnit(out_channels, 3, use_snake),
            ResidualUnit(out_channels, 9, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: int, latent_dim: int, c_mults: list[int],
                 strides: list[int], use_snake: bool):
        super().__init__()
        mults = [1] + list(c_mults)
        layers: list[nn.Module] = [WNConv1d(in_channels, mults[0] * channels, 7, padding=3)]
        for i in range(len(mults) - 1):
            layers.append(EncoderBlock(mults[i] * channels, mults[i + 1] * channels, strides[i], use_snake))
        layers += [
            _activation(use_snake, mults[-1] * channels),
            WNConv1d(mults[-1] * channels, latent_dim, 3, padding=1),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    def __init__(self, out_channels: int, channels: int, latent_dim: int, c_mults: list[int],
                 strides: list[int], use_snake: bool, final_tanh: bool):
        super().__init__()
        mults = [1] + list(c_mults)
        layers: list[nn.Module] = [WNConv1d(latent_dim, mults[-1] * channels, 7, padding=3)]
        for i in range(len(mults) - 1, 0, -1):
            layers.append(DecoderBlock(mults[i] * channels, mults[i - 1] * channels, strides[i - 1], use_snake))
        layers += [
            _activation(use_snake, mults[0] * channels),
            WNConv1d(mults[0] * channels, out_channels, 7, padding=3, bias=False),
            nn.Tanh() if final_tanh else nn.Identity(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# --------------------------------------------------------------------------------------------
# The VAE
# --------------------------------------------------------------------------------------------


def _normalize_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Flat config from ours, a stable-audio-tools pretransform config, or a full model_config."""
    cfg = dict(cfg)
    sample_rate = cfg.get("sample_rate")
    if "model" in cfg and isinstance(cfg["model"], Mapping) and "pretransform" in cfg["model"]:
        cfg = dict(cfg["model"]["pretransform"])
    if "config" in cfg and cfg.get("type") == "autoencoder":  # the pretransform entry itself
        scale = cfg.get("scale", 1.0)
        cfg = dict(cfg["config"], scale=scale)
    if "encoder" in cfg and isinstance(cfg["encoder"], Mapping):
        enc = dict(cfg["encoder"].get("config", cfg["encoder"]))
        dec = dict(cfg["decoder"].get("config", cfg["decoder"]))
        for part, c in (("encoder", cfg["encoder"]), ("decoder", cfg["decoder"])):
            if c.get("type", "oobleck") != "oobleck":
                raise ModelError(f"codec config: {part} type {c.get('type')!r} is not supported; only 'oobleck'.")
        bottleneck = cfg.get("bottleneck")
        flat = {
            "channels": enc.get("channels", 128),
            "decoder_channels": dec.get("channels", enc.get("channels", 128)),
            "c_mults": enc.get("c_mults", [1, 2, 4, 8]),
            "strides": enc.get("strides", [2, 4, 8, 8]),
            "latent_dim": dec.get("latent_dim", cfg.get("latent_dim")),
            "encoder_latent_dim": enc.get("latent_dim"),
            "audio_channels": cfg.get("io_channels", enc.get("in_channels", 2)),
            "use_snake": enc.get("use_snake", False),
            "final_tanh": dec.get("final_tanh", True),
            "bottleneck": bottleneck.get("type") if isinstance(bottleneck, Mapping) else bottleneck,
            "scale": cfg.get("scale", 1.0),
        }
        if enc.get("antialias_activation") or dec.get("antialias_activation") or dec.get("use_nearest_upsample"):
            raise ModelError("codec config: antialiased activations / nearest upsampling are not supported.")
        if sample_rate is not None:
            flat["sample_rate"] = sample_rate
        cfg = flat
    out = dict(SAO_VAE_CONFIG)
    out["encoder_latent_dim"] = None
    out.update({k: v for k, v in cfg.items() if v is not None or k == "bottleneck"})
    if out.get("decoder_channels") is None:
        out["decoder_channels"] = out["channels"]
    if out["encoder_latent_dim"] is None:
        out["encoder_latent_dim"] = out["latent_dim"] * (2 if out["bottleneck"] == "vae" else 1)
    if out["bottleneck"] not in ("vae", None):
        raise ModelError(f"codec config: bottleneck {out['bottleneck']!r} is not supported; use 'vae' or none.")
    if len(out["c_mults"]) != len(out["strides"]):
        raise ModelError(f"codec config: c_mults {out['c_mults']} and strides {out['strides']} differ in length.")
    want = out["latent_dim"] * (2 if out["bottleneck"] == "vae" else 1)
    if out["encoder_latent_dim"] != want:
        raise ModelError(
            f"codec config: encoder output {out['encoder_latent_dim']} must be {want} for latent_dim "
            f"{out['latent_dim']} with bottleneck {out['bottleneck']!r}."
        )
    out["c_mults"], out["strides"] = [int(c) for c in out["c_mults"]], [int(s) for s in out["strides"]]
    return out


class OobleckVAE(nn.Module, AudioCodec):
    """Oobleck autoencoder with a VAE bottleneck (Stable Audio Open 1.0 by default).

    ``encode`` returns the posterior mean, or a sample when given a ``generator``; ``decode`` is
    the decoder alone (the VAE bottleneck's decode is the identity). ``scale`` divides latents
    after encoding and multiplies them before decoding, as ``AutoencoderPretransform`` does.
    """

    def __init__(self, config: Mapping[str, Any] | None = None):
        nn.Module.__init__(self)
        cfg = _normalize_config(config or SAO_VAE_CONFIG)
        self.config = cfg
        self.sample_rate = int(cfg["sample_rate"])
        self.audio_channels = int(cfg["audio_channels"])
        self.latent_channels = int(cfg["latent_dim"])
        self.downsampling_ratio = int(math.prod(cfg["strides"]))
        self.scale = float(cfg["scale"])
        self.is_vae = cfg["bottleneck"] == "vae"
        self.encoder = OobleckEncoder(self.audio_channels, cfg["channels"], cfg["encoder_latent_dim"],
                                      cfg["c_mults"], cfg["strides"], cfg["use_snake"])
        self.decoder = OobleckDecoder(self.audio_channels, cfg["decoder_channels"], cfg["latent_dim"],
                                      cfg["c_mults"], cfg["strides"], cfg["use_snake"], cfg["final_tanh"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "OobleckVAE":
        """Build with random weights from a flat config (keys of ``SAO_VAE_CONFIG``, missing ones
        default to SAO 1.0) or a stable-audio-tools pretransform/model config."""
        return cls(config)

    def encode_distribution(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, std)``, each ``[B, latent_dim, L]`` (std = softplus(scale) + 1e-4)."""
        self._check_wave(wave)
        h = self.encoder(wave)
        if not self.is_vae:
            return h, torch.zeros_like(h)
        mean, scale = h.chunk(2, dim=1)
        return mean, F.softplus(scale) + 1e-4

    def encode(self, wave: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents ``[B, 64, T/2048]``: the mean, or ``mean + std * noise`` drawn from ``generator``.

        ``T`` should be a multiple of ``downsampling_ratio`` (pad with silence first).
        """
        mean, std = self.encode_distribution(wave)
        if generator is None:
            z = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype)
            z = mean + std * noise.to(mean.device)
        return z / self.scale if self.scale != 1.0 else z

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, C, L * downsampling_ratio]``."""
        self._check_latents(latents)
        if self.scale != 1.0:
            latents = latents * self.scale
        return self.decoder(latents)

    def decode_chunked(self, latents: torch.Tensor, chunk_size: int = 128, overlap: int = 32) -> torch.Tensor:
        """Decode long latents in windows of ``chunk_size`` frames overlapping by ``overlap``.

        Same scheme as stable-audio-tools' ``decode_audio(chunked=True)``: windows hop by
        ``chunk_size - overlap``; the last window is aligned to the end; half the overlap is cut
        from each inner edge. The result equals a full decode (to float error) wherever the
        decoder's receptive field fits in ``overlap / 2`` latent frames (about 10 for SAO 1.0).
        """
        self._check_latents(latents)
        if not 0 <= overlap < chunk_size:
            raise V2MError(f"decode_chunked: need 0 <= overlap ({overlap}) < chunk_size ({chunk_size}).")
        total = latents.shape[-1]
        if total <= chunk_size:
            return self.decode(latents)
        hop = chunk_size - overlap
        starts = list(range(0, total - chunk_size + 1, hop))
        if starts[-1] + chunk_size != total:
            starts.append(total - chunk_size)
        r = self.downsampling_ratio
        half = (overlap // 2) * r
        out = latents.new_zeros((latents.shape[0], self.audio_channels, total * r))
        for i, s in enumerate(starts):
            y = self.decode(latents[..., s:s + chunk_size])
            t0, t1 = s * r, s * r + y.shape[-1]
            c0, c1 = 0, y.shape[-1]
            if i > 0:
                t0, c0 = t0 + half, c0 + half
            if i < len(starts) - 1:
                t1, c1 = t1 - half, c1 - half
            out[..., t0:t1] = y[..., c0:c1]
        return out


# --------------------------------------------------------------------------------------------
# Weightless codec
# --------------------------------------------------------------------------------------------


def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``[n, n]`` (row k = frequency k), float64."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi / n * (i[None, :] + 0.5) * i[:, None]) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


class PatchCodec(AudioCodec):
    """Weightless codec: cut ``[C, T]`` into patches of ``patch_size`` samples and mix each
    ``C x patch_size`` patch with the orthonormal 2-D DCT (``DCT_C kron DCT_P``), giving
    ``[C * patch_size, T / patch_size]``. Decorrelates neighbouring samples (and mid/side for
    stereo); ``decode`` is the exact inverse (transpose). Audio whose length is not a multiple of
    ``patch_size`` is padded with silence on the right.
    """

    def __init__(self, patch_size: int = 32, audio_channels: int = 2, sample_rate: int = 44100,
                 scale: float = 1.0):
        if patch_size < 1 or audio_channels < 1:
            raise V2MError(f"PatchCodec: patch_size ({patch_size}) and audio_channels ({audio_channels}) must be >= 1.")
        self.patch_size = int(patch_size)
        self.audio_channels = int(audio_channels)
        self.sample_rate = int(sample_rate)
        self.downsampling_ratio = self.patch_size
        self.latent_channels = self.audio_channels * self.patch_size
        self.scale = float(scale)
        self._mix = torch.kron(_dct_matrix(self.audio_channels), _dct_matrix(self.patch_size))

    def _matrix(self, like: torch.Tensor) -> torch.Tensor:
        return self._mix.to(device=like.device, dtype=like.dtype)

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        self._check_wave(wave)
        b, c, t = wave.shape
        p = self.patch_size
        pad = (-t) % p
        if pad:
            wave = F.pad(wave, (0, pad))
        patches = wave.reshape(b, c, -1, p).permute(0, 2, 1, 3).reshape(b, -1, c * p)  # [B, L, C*P]
        z = patches @ self._matrix(wave).T
        return z.transpose(1, 2) / self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_latents(latents)
        b, _, n = latents.shape
        c, p = self.audio_channels, self.patch_size
        patches = (latents.transpose(1, 2) * self.scale) @ self._matrix(latents)  # [B, L, C*P]
        return patches.reshape(b, n, c, p).permute(0, 2, 1, 3).reshape(b, c, n * p)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_SAT_ANCHORS = ("decoder.layers.0.weight_v", "decoder.layers.0.parametrizations.weight.original1")
_DIFFUSERS_ANCHORS = ("decoder.conv1.weight_v", "decoder.conv1.parametrizations.weight.original1")


def infer_oobleck_config(sd: Mapping[str, torch.Tensor], *, name: str = "state dict") -> dict[str, Any]:
    """Read an Oobleck config off the tensor shapes of a stable-audio-tools-layout state dict.

    ``final_tanh``, ``sample_rate`` and ``scale`` leave no trace in the weights: they default to
    SAO 1.0's (no tanh, 44.1 kHz, 1.0).
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ModelError(f"{name}: not an Oobleck VAE in the stable-audio-tools layout (no {key!r}). "
                             "Fix: give the Stable Audio VAE weights (SAO single file, standalone VAE "
                             "or a diffusers AutoencoderOobleck folder).")
        return tuple(sd[key].shape)

    channels, audio_channels, _ = shape("encoder.layers.0.weight_v")
    blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"encoder\.layers\.(\d+)\.layers\.4\.weight_v$", k)] if m})
    if not blocks or blocks != list(range(1, len(blocks) + 1)):
        raise ModelError(f"{name}: cannot find the encoder blocks (encoder.layers.N.layers.4.*). "
                         "Fix: give Oobleck VAE weights in the stable-audio-tools layout.")
    c_mults, strides = [], []
    for i in blocks:
        out_c, _, k = shape(f"encoder.layers.{i}.layers.4.weight_v")
        c_mults.append(out_c // channels)
        strides.append(k // 2)
    n = len(blocks)
    enc_latent = shape(f"encoder.layers.{n + 2}.weight_v")[0]
    _, latent_dim, _ = shape("decoder.layers.0.weight_v")
    dec_out, dec_channels, _ = shape(f"decoder.layers.{n + 2}.weight_v")
    use_snake = "encoder.layers.1.layers.0.layers.0.alpha" in sd
    bottleneck = "vae" if enc_latent == 2 * latent_dim else None
    if dec_out != audio_channels:
        raise ModelError(f"{name}: encoder takes {audio_channels} audio channels but decoder makes {dec_out}.")
    return {
        "channels": int(channels), "decoder_channels": int(dec_channels), "c_mults": c_mults, "strides": strides,
        "latent_dim": int(latent_dim), "encoder_latent_dim": int(enc_latent), "audio_channels": int(audio_channels),
        "sample_rate": SAO_VAE_CONFIG["sample_rate"], "use_snake": use_snake, "final_tanh": False,
        "bottleneck": bottleneck, "scale": 1.0,
    }


def _plain_weight_norm_names(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight norm saved by newer torch (``parametrizations.weight.original0/1``) -> ``weight_g/v``."""
    return {k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}


def diffusers_to_oobleck(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``AutoencoderOobleck`` state dict to the stable-audio-tools layout."""
    sd = _plain_weight_norm_names(sd)
    n_enc = len({m.group(1) for k in sd for m in [re.match(r"encoder\.block\.(\d+)\.", k)] if m})
    n_dec = len({m.group(1) for k in sd for m in [re.match(r"decoder\.block\.(\d+)\.", k)] if m})
    unit = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}
    enc_block = {"snake1": "layers.3", "conv1": "layers.4"}
    dec_block = {"snake1": "layers.0", "conv_t1": "layers.1"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        part, _, rest = key.partition(".")
        n = n_enc if part == "encoder" else n_dec
        m = re.match(r"block\.(\d+)\.(.+)$", rest)
        if part not in ("encoder", "decoder"):
            new = key
        elif m:
            idx, tail = int(m.group(1)), m.group(2)
            ru = re.match(r"res_unit(\d)\.(\w+)\.(.+)$", tail)
            if ru:
                slot = int(ru.group(1)) - 1 if part == "encoder" else int(ru.group(1)) + 1
                new = f"{part}.layers.{idx + 1}.layers.{slot}.layers.{unit[ru.group(2)]}.{ru.group(3)}"
            else:
                head, _, leaf = tail.partition(".")
                table = enc_block if part == "encoder" else dec_block
                new = f"{part}.layers.{idx + 1}.{table.get(head, head)}.{leaf}"
        else:
            head, _, leaf = rest.partition(".")
            slot = {"conv1": 0, "snake1": n + 1, "conv2": n + 2}.get(head)
            new = f"{part}.layers.{slot}.{leaf}" if slot is not None else key
        if new.endswith((".alpha", ".beta")) and value.ndim == 3:
            value = value.reshape(-1)  # diffusers keeps Snake parameters as [1, C, 1]
        out[new] = value
    return out


def _find_prefix(keys: list[str], anchors: tuple[str, ...]) -> str | None:
    for k in keys:
        for a in anchors:
            if k.endswith(a) and (len(k) == len(a) or k[-len(a) - 1] == "."):
                return k[: len(k) - len(a)]
    return None


def _resolve_source(path: Path) -> tuple[Path, dict[str, Any]]:
    """The weights file to read and any config that travels with it (diffusers config.json)."""
    if not path.is_dir():
        return path, {}
    folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
    cfg: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except ValueError as exc:
            raise ModelError(f"{folder / 'config.json'}: not valid JSON ({exc}). Fix: fetch the file again.") from None
    files = sorted(folder.glob("*.safetensors"))
    preferred = [f for f in files if f.name == "diffusion_pytorch_model.safetensors"]
    if preferred:
        return preferred[0], cfg
    if len(files) == 1:
        return files[0], cfg
    pickles = sorted(f.name for f in folder.iterdir() if f.suffix in (".bin", ".ckpt", ".pt", ".pth"))
    what = f"{len(files)} .safetensors files ({', '.join(f.name for f in files[:5])})" if files else "no .safetensors file"
    hint = f" (found pickles {', '.join(pickles[:3])}: convert them to .safetensors)" if pickles else ""
    raise ModelError(f"{folder}: {what}{hint}. Fix: put exactly one codec .safetensors file in the folder "
                     "(e.g. models/v2m/codecs/), or a diffusers AutoencoderOobleck folder "
                     "(config.json + diffusion_pytorch_model.safetensors), or pass the file path.")


def load_codec(path: str | os.PathLike, *, config: Mapping[str, Any] | None = None,
               sample_rate: int | None = None, device: Any = "cpu",
               dtype: torch.dtype = torch.float32) -> OobleckVAE:
    """Load an Oobleck VAE from any public layout, in eval mode without gradients.

    ``path`` is a Stable Audio single file (``pretransform.model.*`` taken, the DiT not loaded),
    a standalone VAE ``.safetensors`` (stable-audio-tools/ComfyUI keys or diffusers keys), or a
    diffusers ``AutoencoderOobleck`` folder (or a pipeline folder with ``vae/``). The architecture
    is read off the tensor shapes unless ``config`` is given; ``sample_rate`` comes from, in order,
    the argument, ``config``, diffusers' config.json / the file metadata, else 44100.
    """
    from ..model_io.weights import check_state_dict, read_safetensors, read_safetensors_header

    src = Path(path)
    if not src.exists():
        raise ModelError(f"{src}: codec weights not found. Fix: put the Stable Audio VAE (or the full SAO "
                         "model.safetensors) in models/v2m/codecs/ or pass its path.")
    file, side_cfg = _resolve_source(src)
    header, _ = read_safetensors_header(file)
    keys = list(header)
    prefix = _find_prefix(keys, _SAT_ANCHORS)
    diffusers_layout = False
    if prefix is None:
        prefix = _find_prefix(keys, _DIFFUSERS_ANCHORS)
        diffusers_layout = prefix is not None
    if prefix is None:
        raise ModelError(f"{file}: no Oobleck VAE weights found (expected keys like 'pretransform.model.{_SAT_ANCHORS[0]}' "
                         f"or '{_DIFFUSERS_ANCHORS[0]}'; first keys: {', '.join(keys[:5])}). Fix: give the Stable "
                         "Audio VAE, the full SAO model.safetensors, or a diffusers AutoencoderOobleck folder.")
    sd, metadata = read_safetensors(file, prefix=prefix or None)
    sd = diffusers_to_oobleck(sd) if diffusers_layout else _plain_weight_norm_names(sd)
    if config is not None:
        cfg = _normalize_config(config)
    else:
        cfg = infer_oobleck_config(sd, name=str(file))
        meta_cfg = metadata.get("config") or metadata.get("model_config")
        if meta_cfg:
            try:
                meta = json.loads(meta_cfg)
                sr = meta.get("sample_rate") or meta.get("model", {}).get("sample_rate")
                if sr:
                    cfg["sample_rate"] = int(sr)
            except (ValueError, AttributeError):
                pass
        if side_cfg.get("sampling_rate"):
            cfg["sample_rate"] = int(side_cfg["sampling_rate"])
    if sample_rate is not None:
        cfg["sample_rate"] = int(sample_rate)
    with torch.device("meta"):
        model = OobleckVAE(cfg)
    check_state_dict(model, sd, name=str(file))
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
