"""MusicFM (Won et al. 2024), the paper's music encoder, rebuilt on transformers' conformer.

Only the inference part of ``MusicFM25Hz``, with the original's submodule names so the public
checkpoint loads (reading it: ``model_io.musicfm``): 24 kHz mono in, 25 Hz features out.
Transformers is imported only when the module is built.
"""

from __future__ import annotations

import numpy as np


MUSICFM_SAMPLE_RATE = 24000
MUSICFM_HOP = 240  # 100 Hz mel frames
MUSICFM_FRAME = 960  # samples per 25 Hz output frame (two stride-2 convolutions)


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
