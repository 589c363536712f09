"""VGGish (Hershey et al., ICASSP 2017) from local weights only, for the Fréchet Audio Distance.

Three parts, each following the public reference (Google's ``research/audioset/vggish`` and its
PyTorch port ``harritaylor/torchvggish``, which ``frechet_audio_distance`` loads):

* the log-mel frontend (``waveform_to_examples``), numpy only: 16 kHz mono, 25 ms periodic-Hann
  windows every 10 ms, |rfft| over 512 points, 64 HTK-mel triangles between 125 and 7500 Hz
  (DC bin zeroed), ``log(mel + 0.01)``, then non-overlapping examples of 96 frames (0.96 s).
  Incomplete frames and examples at the end are dropped, as ``mel_features.frame`` does; a
  file shorter than 0.975 s gives no example at all.
* the network (``VGGish``): the VGG conv stack ``features.*`` (64, M, 128, M, 256, 256, M, 512,
  512, M; 3×3 convs, padding 1) and the fully connected ``embeddings.*`` 12288→4096→4096→128,
  with the torchvggish state-dict layout (``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``),
  so the public ``vggish-10086976.pth`` loads as is.
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

Weights are never downloaded: ``load_vggish`` reads a ``.safetensors`` file (preferred) or the
public torchvggish ``vggish-10086976.pth`` through ``torch.load(..., weights_only=True)``, which
refuses any pickle holding more than tensors and plain containers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch  # metrics imports this module lazily, so ``import core.metrics`` stays torch-free
from torch import nn

from .errors import MediaError, ModelError

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
EMBEDDING_SIZE = 128
QUANTIZE_MIN_VAL = -2.0
QUANTIZE_MAX_VAL = 2.0
PCA_EIGEN_VECTORS_NAME = "pca_eigen_vectors"
PCA_MEANS_NAME = "pca_means"

#: File names looked for in a weights folder, best first.
WEIGHT_FILES = ("vggish.safetensors", "vggish-10086976.safetensors", "vggish-10086976.pth", "vggish.pth")
PCA_FILES = ("vggish_pca_params.safetensors", "vggish_pca_params-970ea276.safetensors",
             "vggish_pca_params-970ea276.pth", "vggish_pca_params.pth")
_FIX = ("put the VGGish weights there: vggish.safetensors (torchvggish's state dict converted with "
        "safetensors.torch.save_file) or the public torchvggish file vggish-10086976.pth "
        "(https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth); "
        "nothing is downloaded")


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
        from .timing import media

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
# network

_CONV_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class Postprocessor(nn.Module):
    """AudioSet release post-processing: PCA (with whitening) then clip to [-2, 2] and quantise
    to 0..255 (returned as float). Buffers: ``pca_eigen_vectors [128, 128]``, ``pca_means [128, 1]``."""

    def __init__(self):
        super().__init__()
        self.register_buffer(PCA_EIGEN_VECTORS_NAME, torch.zeros(EMBEDDING_SIZE, EMBEDDING_SIZE))
        self.register_buffer(PCA_MEANS_NAME, torch.zeros(EMBEDDING_SIZE, 1))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        pca = (self.pca_eigen_vectors @ (emb.T - self.pca_means)).T
        clipped = pca.clamp(QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
        return torch.round((clipped - QUANTIZE_MIN_VAL) * (255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)))


class VGGish(nn.Module):
    """VGGish on examples ``[N, 96, 64]`` or ``[N, 1, 96, 64]`` → ``[N, 128]``.

    ``final_relu``: apply torchvggish's last ReLU (off: the pre-activation embedding that
    ``frechet_audio_distance`` uses). ``postprocess``: apply the PCA/quantisation (off for FAD);
    its parameters live in ``self.pproc`` and are not part of the network's state dict.
    """

    def __init__(self, *, final_relu: bool = False, postprocess: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for v in _CONV_PLAN:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        # indices 0/2/4 hold the weights, as torchvggish; its trailing ReLU (index 5) has none.
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE),
        )
        self.final_relu = bool(final_relu)
        self.postprocess = bool(postprocess)
        self.pproc = Postprocessor() if postprocess else None

    def network_state_dict(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("pproc.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        x = self.features(x)  # [N, 512, 6, 4]
        # TF flattens NHWC: channel-last order, which the fc weights expect.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        x = self.embeddings(x)
        if self.final_relu:
            x = torch.relu(x)
        if self.postprocess:
            x = self.pproc(x)
        return x


# ----------------------------------------------------------------------------------------
# weights


def find_weights(weights_dir_or_file) -> Path | None:
    """The VGGish weights file: the path itself if it is a file, else the best match in the
    folder (``WEIGHT_FILES`` first, then a single other ``*vggish*`` ``.safetensors``/``.pth``)."""
    p = Path(os.fspath(weights_dir_or_file))
    if p.is_file():
        return p
    if not p.is_dir():
        return None
    for name in WEIGHT_FILES:
        if (p / name).is_file():
            return p / name
    for ext in (".safetensors", ".pth"):
        hits = sorted(f for f in p.iterdir() if f.is_file() and f.suffix == ext
                      and "vggish" in f.name.lower() and "pca" not in f.name.lower())
        if hits:
            return hits[0]
    return None


def _find_pca(folder: Path) -> Path | None:
    for name in PCA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _numpy_safe_globals() -> list:
    """numpy array/dtype reconstruction under both the numpy 1 and numpy 2 module names."""
    core = getattr(np, "_core", None) or np.core
    rebuild = core.multiarray._reconstruct
    out: list = [np.ndarray, np.dtype, rebuild]
    for name in ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"):
        out.append((rebuild, name))
    for t in (np.float16, np.float32, np.float64, np.int32, np.int64):
        out.append(type(np.dtype(t)))
    return out


def _load_error(exc: Exception) -> str:
    """The useful part of torch.load's message (not its advice to turn weights_only off)."""
    import re

    text = str(exc)
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s+Please use|\n\n|$)", text, re.S)
    detail = " ".join((m.group(1) if m else text.strip().splitlines()[0] if text.strip() else "").split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _read_tensors(path: Path) -> dict:
    """All tensors of a ``.safetensors`` file, or of a ``torch.save``d dict via weights_only."""
    if path.suffix == ".safetensors":
        from ..model_io.weights import read_safetensors

        return read_safetensors(path)[0]
    if path.suffix not in (".pth", ".pt"):
        raise ModelError(f"{path}: unknown weights format {path.suffix!r}. Fix: {_FIX}.")
    # The public PCA file stores numpy arrays: allow numpy's array reconstruction (not arbitrary
    # code) next to torch's own safe types.
    safe = _numpy_safe_globals()
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe content, RuntimeError/EOFError for junk
        raise ModelError(
            f"{path}: refused by torch.load(weights_only=True) ({_load_error(exc)}): not a plain "
            f"tensor state dict (or a damaged file); we never unpickle anything else. Fix: {_FIX}."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors. Fix: {_FIX}.")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "fiub":
                raise ModelError(f"{path}: entry {k!r} is a numpy array of dtype {v.dtype}, not numbers.")
            v = torch.from_numpy(np.array(v))
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor. Fix: {_FIX}.")
        out[str(k)] = v
    return out


def _pca_tensors(sd: dict, name: str) -> dict:
    vec = sd.get(PCA_EIGEN_VECTORS_NAME)
    means = sd.get(PCA_MEANS_NAME)
    if vec is None or means is None:
        raise ModelError(f"{name}: needs {PCA_EIGEN_VECTORS_NAME!r} and {PCA_MEANS_NAME!r}, found "
                         f"{sorted(sd)[:6]}. Fix: use torchvggish's vggish_pca_params-970ea276.pth.")
    vec = vec.float()
    means = means.float().reshape(-1, 1)
    if tuple(vec.shape) != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape[0] != EMBEDDING_SIZE:
        raise ModelError(f"{name}: PCA shapes {tuple(vec.shape)}, {tuple(means.shape)}; expected "
                         f"({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE}, 1).")
    return {PCA_EIGEN_VECTORS_NAME: vec, PCA_MEANS_NAME: means}


def load_vggish(weights_dir_or_file, device="cpu", *, postprocess: bool = False,
                final_relu: bool = False, pca_file=None) -> VGGish:
    """VGGish in eval mode from local weights (a folder or the file itself); never downloads.

    Raises ``ModelError`` naming the folder and the file to put there when no weights are found,
    listing missing/unexpected keys and shape mismatches when the file does not fit, and refusing
    pickles that hold anything but tensors. With ``postprocess=True`` the PCA parameters come from
    ``pproc.*`` keys of the weights file, ``pca_file``, or a ``vggish_pca_params*`` file next to it.
    Defaults (no PCA, no final ReLU) give the embeddings ``frechet_audio_distance`` uses.
    """
    src = Path(os.fspath(weights_dir_or_file))
    path = find_weights(src)
    if path is None:
        where = f"weights folder {str(src)!r}" if src.is_dir() else f"{str(src)!r} (not found)"
        raise ModelError(f"no VGGish weights in {where}. Fix: {_FIX}.")
    sd = _read_tensors(path)
    pproc = {k[len("pproc."):]: v for k, v in sd.items() if k.startswith("pproc.")}
    sd = {k: v for k, v in sd.items() if not k.startswith("pproc.")}
    from ..model_io.weights import check_state_dict

    model = VGGish(final_relu=final_relu, postprocess=False)
    check_state_dict(model, sd, name=f"{path} (VGGish)")
    model.load_state_dict(sd)
    if postprocess:
        model.postprocess, model.pproc = True, Postprocessor()
        if not pproc:
            pfile = Path(os.fspath(pca_file)) if pca_file is not None else _find_pca(path.parent)
            if pfile is None or not pfile.is_file():
                raise ModelError(
                    f"postprocess=True needs the PCA parameters: none in {str(path)!r} and no "
                    f"{PCA_FILES[0]} / {PCA_FILES[2]} in {str(path.parent)!r}. Fix: put torchvggish's "
                    "vggish_pca_params-970ea276.pth (or its .safetensors) there, or use postprocess=False "
                    "(what FAD uses)."
                )
            pproc = _read_tensors(pfile)
            name = str(pfile)
        else:
            name = str(path)
        model.pproc.load_state_dict(_pca_tensors(pproc, name))
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------
# embedding


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
            raise ModelError("embed_file needs a model or a weights folder/file. Fix: " + _FIX + ".")
        model = load_vggish(weights, device)
    from .timing import media

    if not os.path.isfile(os.fspath(path)):
        raise MediaError(f"audio file not found: {os.fspath(path)!r}")
    wave, sr = media.decode_audio(path, sample_rate=SAMPLE_RATE)
    return embed_waveform(model, wave, sr)
