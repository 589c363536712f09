"""Audio codecs: waveform ``[B, C, T]`` <-> latents ``[B, D, L]``.

``AudioCodec`` is the interface every codec keeps; ``PatchCodec`` is a weightless, exactly
invertible codec for tests and toy experiments. The Stable Audio Open autoencoder is
:class:`~core.model.oobleck.OobleckVAE`; ``model_io.codec`` reads codec weights and builds a codec
from a codec spec.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import V2MError


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
