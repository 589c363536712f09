"""Beat This! inference without torchaudio: its log-mel input, the network on 30 s chunks, its minimal peak picking.

What the package's ``Audio2Beats(dbn=False)`` does, rebuilt on torch + librosa + soxr (``beat_this.preprocessing``
imports torchaudio, which would pull another torch):

* input: the mono mix (channel mean) resampled to 22.05 kHz with soxr (its default quality, float64 as the package
  loads audio), then ``torchaudio.transforms.MelSpectrogram(sample_rate=22050, n_fft=1024, hop_length=441,
  f_min=30, f_max=11000, n_mels=128, mel_scale="slaney", normalized="frame_length", power=1)`` and
  ``log1p(1000 · mel)``: a centred, reflect-padded STFT with a periodic Hann window scaled by 1/sqrt(n_fft)
  (``torch.stft(normalized=True)``), its magnitude, and librosa's Slaney mel bank without area normalisation
  (``norm=None``, torchaudio's default): 50 frames a second. ``tests/test_beat_this.py`` compares it with the
  package's own ``LogMelSpect`` output (a fixture).
* the network on chunks of 1500 frames (30 s) overlapping by 6-frame borders that are thrown away, the first chunk
  winning where two overlap, the last chunk moved back to end at the piece's end (``split_predict_aggregate``).
* ``beat_this.model.postprocessor.Postprocessor("minimal")``: the package's own peak picking (logit > 0, local
  maximum within ±70 ms, adjacent peaks merged), not the DBN.

Weights come from :mod:`...model_io.beat_this` (local files only).
"""

from __future__ import annotations

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 441
F_MIN, F_MAX = 30.0, 11000.0
N_MELS = 128
LOG_MULTIPLIER = 1000.0
FPS = 50
CHUNK_FRAMES = 1500
BORDER_FRAMES = 6


def log_mel(mono_22k):
    """``[frames, 128]`` float32 tensor: Beat This!'s ``LogMelSpect`` of a 22.05 kHz mono signal (at least
    ``N_FFT // 2 + 1`` samples: the reflect padding needs them)."""
    import librosa
    import numpy as np
    import torch

    x = torch.as_tensor(np.asarray(mono_22k, dtype=np.float32).reshape(-1))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, pad_mode="reflect",
                      normalized=True, onesided=True, return_complex=True).abs()
    bank = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, htk=False,
                               norm=None)
    mel = torch.from_numpy(np.asarray(bank, dtype=np.float32)) @ spec
    return torch.log1p(LOG_MULTIPLIER * mel).T.contiguous()


def chunk_starts(n_frames: int) -> list[int]:
    """Where each chunk starts (negative: zero-padded before the piece); the last ends at the piece's end."""
    step = CHUNK_FRAMES - 2 * BORDER_FRAMES
    starts = list(range(-BORDER_FRAMES, n_frames - BORDER_FRAMES, step))
    if n_frames > step:
        starts[-1] = n_frames - (CHUNK_FRAMES - BORDER_FRAMES)
    return starts


def frame_logits(model, spect, check_interrupt=None):
    """(beat, downbeat) logits ``[frames]`` of the whole piece from its ``[frames, 128]`` log-mel, chunk by chunk."""
    import torch
    import torch.nn.functional as F

    n = spect.shape[0]
    beat = torch.full((n,), -1000.0)
    down = torch.full((n,), -1000.0)
    b = BORDER_FRAMES
    with torch.inference_mode():
        for s in reversed(chunk_starts(n)):  # reversed: an earlier chunk overwrites a later one where they overlap
            if check_interrupt is not None:
                check_interrupt()
            piece = spect[max(s, 0):min(s + CHUNK_FRAMES, n)]
            piece = F.pad(piece, (0, 0, max(0, -s), max(0, min(b, s + CHUNK_FRAMES - n))))
            pred = model(piece.unsqueeze(0).float())
            beat[s + b:s + CHUNK_FRAMES - b] = pred["beat"][0, b:-b].float()
            down[s + b:s + CHUNK_FRAMES - b] = pred["downbeat"][0, b:-b].float()
    return beat, down


def beats_and_downbeats(model, mono, sr: int, check_interrupt=None):
    """(beat times, downbeat times) in seconds (float64 numpy) of a mono signal at ``sr``; empty for a signal too short
    or silent to hold one."""
    import numpy as np

    y = np.asarray(mono, dtype=np.float64).reshape(-1)
    empty = np.zeros(0, dtype=np.float64)
    if int(sr) != SAMPLE_RATE and y.size:
        import soxr

        y = soxr.resample(y, int(sr), SAMPLE_RATE)
    if y.size <= N_FFT or not np.any(y):
        return empty, empty
    from beat_this.model.postprocessor import Postprocessor

    beat, down = frame_logits(model, log_mel(y), check_interrupt)
    beats, downs = Postprocessor(type="minimal", fps=FPS)(beat, down)
    return np.asarray(beats, dtype=np.float64), np.asarray(downs, dtype=np.float64)
