"""VGGish (Hershey et al., ICASSP 2017) from local weights only, for the Fréchet Audio Distance.

Three parts, each following the public reference (Google's ``research/audioset/vggish`` and its
PyTorch port ``harritaylor/torchvggish``, which ``frechet_audio_distance`` loads):

* the log-mel frontend (``waveform_to_examples``), numpy only: 16 kHz mono, 25 ms periodic-Hann
  windows every 10 ms, |rfft| over 512 points, 64 HTK-mel triangles between 125 and 7500 Hz
  (DC bin zeroed), ``log(mel + 0.01)``, then non-overlapping examples of 96 frames (0.96 s).
  Incomplete frames and examples at the end are dropped, as ``mel_features.frame`` does; a
  file shorter than 0.975 s gives no example at all.
* the network (``VGGish``, in :mod:`core.model.vggish` with the other architectures): the VGG conv stack
  ``features.*`` (64, M, 128, M, 256, 256, M, 512, 512, M; 3×3 convs, padding 1) and the fully connected
  ``embeddings.*`` 12288→4096→4096→128, with the torchvggish state-dict layout
  (``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``), so the public ``vggish-10086976.pth`` loads as is.
* the optional PCA-whitening + 8-bit quantisation postprocessor (``pca_eigen_vectors`` /
  ``pca_means`` of ``vggish_pca_params-970ea276.pth``).

Which embedding FAD uses. ``frechet_audio_distance.FrechetAudioDistance(model_name="vggish")``
defaults to ``use_pca=False`` and ``use_activation=False``: it sets ``model.postprocess = False``
and strips the trailing ``ReLU`` of torchvggish's ``embeddings`` block, so its embeddings are the
*raw, pre-activation* 128-d outputs of the last linear layer. Our defaults are the same,
``postprocess=False`` and ``final_relu=False``, so that numbers are comparable with the FAD values
that package (used by most text-to-music papers) reports: the PCA step is a whitening affine map
(a different embedding space, hence a different distance), the 8-bit quantisation throws
information away, and the ReLU zeroes every negative coordinate. Turn them on only to
reproduce the AudioSet release features (``load_vggish(..., postprocess=True, final_relu=True)``
is torchvggish's default model).

Weights are never downloaded: ``model_io.vggish.load_vggish`` reads a ``.safetensors`` file (preferred) or the
public torchvggish ``vggish-10086976.pth`` through ``torch.load(..., weights_only=True)``, which
refuses any pickle holding more than tensors and plain containers.
"""


from __future__ import annotations

import os

import numpy as np
import torch  # the metrics import this module lazily, so ``import core.eval`` stays torch-free

from ..errors import MediaError, ModelError
# the network lives with the other architectures (model_io reads its weights, below this module)
from ..model.vggish import EMBEDDING_SIZE, PCA_EIGEN_VECTORS_NAME, PCA_MEANS_NAME, Postprocessor, VGGish  # noqa: F401


# ----------------------------------------------------------------------------------------
# parameters (vggish_params.py)

SAMPLE_RATE = 16000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_WINDOW_SECONDS = 0.96
EXAMPLE_HOP_SECONDS = 0.96
NUM_FRAMES = 96


# ----------------------------------------------------------------------------------------
# frontend (mel_features.py / vggish_input.py), numpy


def frame(data: np.ndarray, window_length: int, hop_length: int) -> np.ndarray:
    """Successive frames ``[n, window_length, ...]`` of ``data`` along axis 0, without padding:
    ``n = 1 + (len - window_length) // hop_length`` complete frames (0 when too short)."""
    data = np.asarray(data)
    n = 0 if data.shape[0] < window_length else 1 + (data.shape[0] - window_length) // hop_length
    if n == 0:
        return np.zeros((0, window_length) + data.shape[1:], dtype=data.dtype)
    shape = (n, window_length) + data.shape[1:]
    strides = (data.strides[0] * hop_length,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides, writeable=False)


def periodic_hann(window_length: int) -> np.ndarray:
    """Hann window of period ``window_length`` (not ``np.hanning``'s symmetric one)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / window_length * np.arange(window_length))


def hertz_to_mel(hz):
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(num_mel_bins: int = NUM_MEL_BINS, num_spectrogram_bins: int = 257,
               sample_rate: int = SAMPLE_RATE, lower_hz: float = MEL_MIN_HZ,
               upper_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """``[num_spectrogram_bins, num_mel_bins]`` matrix M with ``mel = |STFT| @ M``.

    Band i (0-based) is a triangle, linear in mel, rising from edge i to edge i+1 and falling to
    edge i+2, where the ``num_mel_bins + 2`` edges are equally spaced in HTK mel from
    ``lower_hz`` to ``upper_hz``. The spectrogram bins lie at ``linspace(0, sr/2, bins)``; the DC
    bin always gets weight 0. Triangles are not area-normalised.
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_hz < upper_hz <= nyquist:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= Nyquist ({nyquist}), got {lower_hz}, {upper_hz}")
    bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    lo, centre, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lo) / (centre - lo)
    falling = (hi - bins_mel[:, None]) / (hi - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel_spectrogram(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``[frames, 64]`` log-mel spectrogram of mono ``wave`` (float64 maths, as the reference)."""
    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    win = int(round(sample_rate * STFT_WINDOW_SECONDS))
    hop = int(round(sample_rate * STFT_HOP_SECONDS))
    n_fft = 2 ** int(np.ceil(np.log(win) / np.log(2.0)))
    frames = frame(wave, win, hop)
    spec = np.abs(np.fft.rfft(frames * periodic_hann(win), n_fft))
    mel = spec @ mel_matrix(num_spectrogram_bins=n_fft // 2 + 1, sample_rate=sample_rate)
    return np.log(mel + LOG_OFFSET)


def waveform_to_examples(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 ``[N, 96, 64]`` VGGish input examples of ``wave``.

    ``wave``: ``[T]`` or ``[C, T]`` (this package's channel-first layout; channels are averaged).
    Audio not at 16 kHz is resampled with ``media.resample_audio`` (soxr); the reference uses
    resampy, so for bit-comparable numbers give 16 kHz audio.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    elif wave.ndim != 1:
        raise ValueError(f"expected audio [T] or [C, T], got shape {wave.shape}")
    if int(sample_rate) != SAMPLE_RATE:
        from ..timing import media

        wave = media.resample_audio(wave, int(sample_rate), SAMPLE_RATE)
    log_mel = log_mel_spectrogram(wave, SAMPLE_RATE)
    rate = 1.0 / STFT_HOP_SECONDS
    examples = frame(log_mel, int(round(EXAMPLE_WINDOW_SECONDS * rate)), int(round(EXAMPLE_HOP_SECONDS * rate)))
    return np.ascontiguousarray(examples, dtype=np.float32)


def num_examples(n_samples: int) -> int:
    """How many examples ``waveform_to_examples`` gives for ``n_samples`` samples at 16 kHz."""
    win, hop = int(round(SAMPLE_RATE * STFT_WINDOW_SECONDS)), int(round(SAMPLE_RATE * STFT_HOP_SECONDS))
    n_frames = 0 if n_samples < win else 1 + (n_samples - win) // hop
    return 0 if n_frames < NUM_FRAMES else 1 + (n_frames - NUM_FRAMES) // NUM_FRAMES


# ----------------------------------------------------------------------------------------


@torch.no_grad()
def embed_examples(model: VGGish, examples: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """float32 ``[N, 128]`` embeddings of examples ``[N, 96, 64]`` (``[0, 128]`` for none)."""
    examples = np.asarray(examples, dtype=np.float32)
    if examples.shape[0] == 0:
        return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
    device = next(model.parameters()).device
    out = []
    for i in range(0, examples.shape[0], batch_size):
        x = torch.from_numpy(np.ascontiguousarray(examples[i:i + batch_size])).to(device)
        out.append(model(x).float().cpu().numpy())
    return np.concatenate(out, axis=0)


def embed_waveform(model: VGGish, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``[N, 128]``: one embedding per 0.96 s of ``wave`` (``[T]`` or ``[C, T]``)."""
    return embed_examples(model, waveform_to_examples(wave, sample_rate))


def embed_file(path, model: VGGish | None = None, *, weights=None, device="cpu") -> np.ndarray:
    """float32 ``[N, 128]`` VGGish frames of an audio (or video) file, one per 0.96 s.

    Decodes with ``media.decode_audio(path, sample_rate=16000)`` and averages the channels.
    ``model``: a loaded ``VGGish`` (load it once with ``load_vggish`` for many files); else
    ``weights`` (folder or file) is loaded for this call only — nothing stays cached.
    """
    if model is None:
        if weights is None:
            raise ModelError("embed_file needs a model or a weights folder/file (weights are never downloaded).")
        from ...model_io.vggish import load_vggish

        model = load_vggish(weights, device)
    from ..timing import media

    if not os.path.isfile(os.fspath(path)):
        raise MediaError(f"audio file not found: {os.fspath(path)!r}")
    wave, sr = media.decode_audio(path, sample_rate=SAMPLE_RATE)
    return embed_waveform(model, wave, sr)
