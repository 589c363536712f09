"""Audio decode (any layout, any rate), resampling and length fitting."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np

from ...errors import MediaError
from .source import open_input, rewind, source_name


def _layout_name(channels: int) -> str:
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}.get(channels, "")


def _packed_to_planar(chunk: np.ndarray, channels: int) -> np.ndarray:
    """A packed (interleaved) ``flt`` frame ``[1, T·C]`` as ``[C, T]``."""
    return chunk.reshape(-1, channels).T


def audio_track_count(src) -> int:
    """How many audio streams (tracks) the file holds (0 for none)."""
    name = source_name(src)
    container = open_input(src, name, need="any")
    try:
        return len(container.streams.audio)
    finally:
        container.close()
        rewind(src)


def decode_audio(src, *, sample_rate: int | None = None, channels: int | None = None,
                 track: int = 0) -> tuple[np.ndarray, int]:
    """Decode one audio stream (``track``: its index among the audio streams; default the first) to float32
    ``[C, T]`` in [-1, 1]; returns (wave, sample_rate).

    channels: 1 = mono, 2 = stereo (downmixed by libswresample, e.g. from 5.1), None = keep the
    file's channels. sample_rate: None keeps the file's rate. Raises MediaError if the file has
    no audio stream. Any channel layout decodes (7.1 and beyond): frames are converted to packed
    float, which PyAV handles for every channel count (its planar path breaks at 8 planes).
    Samples are not clipped: a float file may peak above 1.0, and the caller decides; a downmix
    that overflows (libswresample sums channels) is scaled back to full scale instead.
    """
    if channels is not None and channels < 1:
        raise ValueError(f"channels must be >= 1 or None, got {channels}")
    if sample_rate is not None and sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1 or None, got {sample_rate}")
    name = source_name(src)
    container = open_input(src, name, need="audio")
    try:
        stream = _audio_track(container, name, track)
        in_rate, in_channels, own_layout = _stream_format(stream)
        if channels is None:
            layout = own_layout
        else:
            layout = _layout_name(channels)
            if not layout:
                raise ValueError(f"channels={channels} is not supported (use 1, 2 or None)")
        rate = int(sample_rate or in_rate)
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        n_ch = av.AudioLayout(layout).nb_channels if isinstance(layout, str) else layout.nb_channels
        seen: dict[str, int] = {}
        chunks = list(_decoded_chunks(container, stream, name, in_rate, resampler, n_ch, seen))
        n_in, tail_trim = seen["n_in"], seen["tail_trim"]
        if chunks:
            wave = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
        else:
            wave = np.zeros((n_ch, 0), dtype=np.float32)
        # The input's length at the output rate; libswresample may hold back a sample or two of
        # filter delay, so pad/trim to it (that also drops the encoder padding found above).
        n_out = int(round((n_in - tail_trim) * rate / in_rate)) if in_rate else wave.shape[1]
        wave = fit_length(wave, n_out)
        peak = float(np.max(np.abs(wave))) if wave.size else 0.0
        if channels is not None and channels < in_channels and peak > 1.0:
            wave = wave / np.float32(peak)
        return np.ascontiguousarray(wave), rate
    finally:
        container.close()
        rewind(src)


def _audio_track(container, name: str, track: int):
    """Audio stream number ``track`` (0-based among the audio streams) of an open container, or one clear line."""
    n = len(container.streams.audio)
    if not 0 <= int(track) < n:
        raise MediaError(f"{name!r} has {n} audio track(s): there is no track {int(track) + 1}")
    return container.streams.audio[int(track)]


def _stream_format(stream):
    """(sample rate, channels, layout) of an audio stream as decoded: its own layout, else one named for its
    channel count."""
    ctx = stream.codec_context
    in_rate = int(ctx.sample_rate or stream.rate or 0)
    in_channels = int(ctx.channels or 0)
    layout = ctx.layout if ctx.layout is not None and ctx.layout.nb_channels else _layout_name(in_channels)
    return in_rate, in_channels, layout


def _decoded_chunks(container, stream, name: str, in_rate: int, resampler, n_ch: int, seen: dict):
    """float32 ``[C, n]`` chunks of one audio stream through ``resampler`` (flushed at the end), one clear
    line for a corrupt file. ``seen`` receives ``n_in`` (input samples) and ``tail_trim``: AAC and similar
    codecs decode whole frames (1024 samples) even where the container says the last packet is shorter
    (encoder padding); where timestamps are sample-exact, that padding is what the caller trims."""
    sample_exact = stream.time_base is not None and in_rate and stream.time_base == Fraction(1, in_rate)
    seen["n_in"] = seen["tail_trim"] = 0
    try:
        for frame in container.decode(stream):
            seen["n_in"] += frame.samples
            dur = frame.duration or 0
            seen["tail_trim"] = frame.samples - dur if (sample_exact and 0 < dur < frame.samples) else 0
            for out in resampler.resample(frame):
                yield np.ascontiguousarray(_packed_to_planar(out.to_ndarray(), n_ch), np.float32)
        for out in resampler.resample(None):
            yield np.ascontiguousarray(_packed_to_planar(out.to_ndarray(), n_ch), np.float32)
    except av.FFmpegError as exc:
        raise MediaError(
            f"Audio of {name!r} is truncated or corrupt: decoding failed ({exc}). Re-export the file."
        ) from exc


def iter_audio(src, *, track: int = 0, hold: int = 8192):
    """One audio stream (``track``: its index among the audio streams) at its own rate and channels,
    streamed: ``(sample_rate, channels, chunks)`` where ``chunks()`` yields float32 ``[C, n]``
    pieces (a fresh pass over the file per call) that add up to exactly what :func:`decode_audio`
    returns, without holding the whole track: the encoder padding of the last packet is trimmed
    by holding back ``hold`` samples."""
    name = source_name(src)
    container = open_input(src, name, need="audio")
    try:
        stream = _audio_track(container, name, track)
        in_rate, _, layout = _stream_format(stream)
        n_ch = av.AudioLayout(layout).nb_channels if isinstance(layout, str) else layout.nb_channels
    finally:
        container.close()
        rewind(src)

    def chunks():
        container = open_input(src, name, need="audio")
        try:
            stream = container.streams.audio[int(track)]
            resampler = av.AudioResampler(format="flt", layout=layout, rate=in_rate)
            pending: list[np.ndarray] = []
            held = sent = 0
            seen: dict[str, int] = {}

            def release(keep: int):
                nonlocal held, sent
                while pending and held - pending[0].shape[1] >= keep:
                    c = pending.pop(0)
                    held -= c.shape[1]
                    sent += c.shape[1]
                    yield c

            for chunk in _decoded_chunks(container, stream, name, in_rate, resampler, n_ch, seen):
                pending.append(chunk)
                held += chunk.shape[1]
                yield from release(hold)
            n_out = seen["n_in"] - seen["tail_trim"]
            rest = np.concatenate(pending, axis=1) if pending else np.zeros((n_ch, 0), np.float32)
            rest = fit_length(rest, max(0, n_out - sent))
            if rest.shape[1]:
                yield np.ascontiguousarray(rest, np.float32)
        finally:
            container.close()
            rewind(src)

    return in_rate, n_ch, chunks


def resample_audio(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``[C, T]`` (or ``[T]``) audio from sr_in to sr_out with soxr_hq; identity if equal."""
    wave = np.asarray(wave, dtype=np.float32)
    if int(sr_in) == int(sr_out):
        return wave
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    import librosa  # heavy import, only when resampling is needed

    out = librosa.resample(wave, orig_sr=int(sr_in), target_sr=int(sr_out), res_type="soxr_hq", axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def downmix_stereo(wave: np.ndarray) -> np.ndarray:
    """float32 ``[2, T]`` of a ``[C, T]`` wave with more than two channels (what AAC tracks and the
    streaming writer both need): 5.1 as ITU-R BS.775 (LFE dropped), anything else via the mono mean."""
    c = wave.shape[0]
    if c == 6:  # FL FR FC LFE BL BR
        k = 1 / math.sqrt(2)
        left = wave[0] + k * wave[2] + k * wave[4]
        right = wave[1] + k * wave[2] + k * wave[5]
        out = np.stack([left, right]) / (1 + 2 * k)
    else:
        mono = wave.mean(axis=0)
        out = np.stack([mono, mono])
    return out.astype(np.float32)


def fit_length(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``[C, T]`` audio to exactly ``n_samples`` along time."""
    wave = np.asarray(wave)
    n_samples = int(n_samples)
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    t = wave.shape[-1]
    if t == n_samples:
        return wave
    if t > n_samples:
        return wave[..., :n_samples]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, n_samples - t)]
    return np.pad(wave, pad)
