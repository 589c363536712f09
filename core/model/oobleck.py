"""The Oobleck VAE of Stable Audio Open 1.0, laid out module for module like stable-audio-tools.

``encoder.layers.*`` / ``decoder.layers.*``, weight norm stored as ``weight_g``/``weight_v``, so its
``pretransform.model.*`` weights load as they are (reading them: ``model_io.codec``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError, V2MError
from .codec import AudioCodec


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


def normalize_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
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
        cfg = normalize_config(config or SAO_VAE_CONFIG)
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
