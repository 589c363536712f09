"""Writing media atomically: encode frames, write audio files, and the AAC track the mux (:mod:`.mux`) shares.

Length contract: the audio is fitted to exactly the video's duration as `probe_video` measures it
(see `.mux.mux_audio`); outputs are written to a temporary file beside the target and renamed.
"""

from __future__ import annotations

import itertools
import math
import os
from fractions import Fraction
from typing import Iterable

import av
import numpy as np

from ...atomic import atomic_path
from ...errors import MediaError
from ...outputs import CONTAINERS, VIDEO_OUT, same_file
from .audio import downmix_stereo, fit_length, resample_audio
from .levels import fit_for_aac, limit_true_peak
from .stream import AudioSpool, master_stream


_CONTAINER_FORMATS = {ext: fmt for ext, fmt in CONTAINERS.items() if ext != ".aac"}  # (raw AAC holds no video)
_AAC_RATES = (44100, 48000)
#: AAC bitrates (bit/s) the mux accepts, inclusive.
AAC_BITRATES = (32_000, 512_000)
_VFR_TIME_BASE = Fraction(1, 90000)


def _prepare_audio(audio, sample_rate, where: str) -> tuple[np.ndarray, int]:
    """Validate and convert audio for AAC: float32 [C<=2, T], finite, rate 44100/48000."""
    if sample_rate is None or int(sample_rate) <= 0:
        raise MediaError(f"A positive sample_rate is required with the audio for {where!r}, got {sample_rate}.")
    wave = np.asarray(audio)
    if wave.ndim == 1:
        wave = wave[None, :]
    if wave.ndim != 2 or wave.shape[0] < 1:
        raise MediaError(f"Audio for {where!r} must have shape [channels, samples], got {wave.shape}.")
    wave = wave.astype(np.float32, copy=False)
    if wave.shape[1] == 0:
        raise MediaError(f"The audio for {where!r} has no samples (0 s): nothing to put in the soundtrack. "
                         "Connect or give audio that lasts longer than 0 s.")
    if not np.all(np.isfinite(wave)):
        raise MediaError(f"NaN/Inf in audio; refusing to write {where!r}. Check the generator/decoder output.")
    if wave.shape[0] > 2:
        wave = downmix_stereo(wave)
    sr = int(sample_rate)
    if sr not in _AAC_RATES:
        wave = resample_audio(wave, sr, 48000)
        sr = 48000
    return wave, sr


def check_bitrate(bitrate: int) -> int:
    """An AAC bitrate in bit/s, or a MediaError naming the allowed range."""
    if (isinstance(bitrate, bool) or not isinstance(bitrate, (int, np.integer))
            or not AAC_BITRATES[0] <= bitrate <= AAC_BITRATES[1]):
        raise MediaError(f"AAC bitrate {bitrate!r} bit/s is out of range: "
                         f"use {AAC_BITRATES[0]}…{AAC_BITRATES[1]} (e.g. 192000)")
    return int(bitrate)


class _AacTrack:
    """Feeds an in-memory waveform to an AAC stream in step with the video, for interleaving."""

    CHUNK = 1024 * 8

    def __init__(self, container, wave, sample_rate: int, n_total: int, start: float, bitrate: int,
                 channels: int | None = None, packets=None):
        """``wave``: float32 ``[C, T]``, or an iterator of ``[C, n]`` chunks (then give ``channels``).
        ``packets``: a ready :class:`~.stream.PacketSpool` holding exactly this audio encoded (at this
        rate, channel count and bitrate): its packets are written and nothing is encoded again."""
        self.replay = None
        if packets is not None and packets.ready:
            want = (int(sample_rate), int(channels or 0), int(bitrate))
            if (packets.rate, packets.channels, packets.bitrate) != want:
                raise MediaError(f"the kept AAC packets are {packets.channels} channels at {packets.rate} Hz, "
                                 f"{packets.bitrate} bit/s; this track is {channels} at {sample_rate}, {bitrate}")
            self.replay = packets.packets()
            self._held = None
        self.chunks = None if isinstance(wave, np.ndarray) else iter(wave)
        self._buf = np.zeros((int(channels or 1), 0), np.float32)
        self.layout = "mono" if (wave.shape[0] if self.chunks is None else channels) == 1 else "stereo"
        self.stream = container.add_stream("aac", rate=sample_rate, layout=self.layout)
        self.stream.bit_rate = int(bitrate)
        self.stream.codec_context.time_base = Fraction(1, sample_rate)
        self.wave = wave
        self.sr = sample_rate
        self.n_total = int(n_total)
        self.start_pts = int(round(start * sample_rate))
        self.pos = 0
        self.container = container

    def push_until(self, t_rel: float) -> None:
        """Encode and mux samples up to time t_rel (seconds from the video start)."""
        self._feed(min(self.n_total, max(0, int(t_rel * self.sr))))

    def _feed(self, upto: int) -> None:
        if self.replay is not None:
            self._replay(upto)
            return
        while self.pos < upto:
            n = min(self.CHUNK, upto - self.pos)
            chunk = self.wave[:, self.pos : self.pos + n] if self.chunks is None else self._next(n)
            if chunk.shape[1] < n:  # pad with silence past the end of the given audio
                chunk = np.pad(chunk, ((0, 0), (0, n - chunk.shape[1])))
            chunk = np.ascontiguousarray(chunk, dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
            frame.sample_rate = self.sr
            frame.pts = self.start_pts + self.pos
            frame.time_base = Fraction(1, self.sr)
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.pos += n

    def _next(self, n: int) -> np.ndarray:
        """The next ``n`` samples of a chunked source (fewer once it is exhausted)."""
        while self._buf.shape[1] < n:
            more = next(self.chunks, None)
            if more is None:
                break
            self._buf = np.concatenate([self._buf, np.asarray(more, np.float32)], axis=1)
        out, self._buf = self._buf[:, :n], self._buf[:, n:]
        return out

    def _replay(self, upto: int) -> None:
        """Mux the kept packets that start before sample ``upto`` (all of them for ``None``)."""
        tb = Fraction(1, self.sr)
        while True:
            if self._held is None:
                self._held = next(self.replay, None)
                if self._held is None:
                    return
            pts, dts, duration, data = self._held
            if upto is not None and pts >= upto:
                return
            self._held = None
            packet = av.Packet(data)
            packet.pts, packet.dts, packet.duration = pts + self.start_pts, dts + self.start_pts, duration
            packet.time_base = tb
            self._mux_trimmed(packet)
            self.pos = max(self.pos, min(self.n_total, pts + duration))

    def _mux_trimmed(self, packet) -> None:
        # the encoder pads its last frame: packets past the end hold only padding, and the
        # last one ends at the end, so no container reports the audio as longer than the video
        end = self.start_pts + self.n_total
        if packet.pts is not None and packet.pts >= end:
            return
        if packet.pts is not None and packet.duration and packet.pts + packet.duration > end:
            packet.duration = end - packet.pts
        packet.stream = self.stream
        self.container.mux(packet)

    def finish(self) -> None:
        if self.replay is not None:
            self._replay(None)
            return
        self._feed(self.n_total)
        for packet in self.stream.encode(None):
            self._mux_trimmed(packet)


# --------------------------------------------------------------------------------------------
# writing (atomic)


def _container_format(out_path: str) -> str:
    ext = os.path.splitext(out_path)[1].lower()
    if not ext:
        return "mp4"
    fmt = _CONTAINER_FORMATS.get(ext)
    if fmt is None:
        raise MediaError(
            f"Unsupported output extension {ext!r} for {out_path!r}; use one of "
            + ", ".join(sorted(VIDEO_OUT))
        )
    return fmt


def atomic_output(out_path):
    """atomic_path, after checking that the output folder exists (media writes no folders)."""
    folder = os.path.dirname(os.path.abspath(os.fspath(out_path)))
    if not os.path.isdir(folder):
        raise MediaError(f"Output folder {folder!r} does not exist; create it first.")
    return atomic_path(out_path, fsync=False)


def _mov_options(fmt: str, video_time_base) -> dict:
    """MP4/MOV write edit lists and header durations in the movie timescale (1/1000 s by
    default); using the video's own time base keeps the container duration exact too."""
    if fmt not in ("mp4", "mov") or not video_time_base:
        return {}
    return {"movie_timescale": str(int(Fraction(video_time_base).denominator))}


def _same_file(src, out_path: str) -> bool:
    return isinstance(src, (str, os.PathLike)) and same_file(src, out_path)


def as_rate(fps) -> Fraction:
    """fps as an exact fraction; NTSC rates such as 29.97 become 30000/1001."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        f = float(fps)
        if not (f > 0 and math.isfinite(f)):
            raise MediaError(f"fps must be a positive number, got {fps!r}")
        ntsc = round(f * 1.001)
        if ntsc > 0 and abs(f - ntsc / 1.001) < 1e-3 and abs(f - ntsc) > 1e-3:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(f).limit_denominator(1001)
            if abs(float(rate) - f) > 1e-9:
                rate = Fraction(f).limit_denominator(1_000_000)
    if rate <= 0:
        raise MediaError(f"fps must be positive, got {fps!r}")
    return rate


def _as_uint8_frame(frame, index: int, out_path: str) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise MediaError(f"Frame {index} for {out_path!r} must be [h, w, 3] RGB, got shape {arr.shape}.")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)):
                raise MediaError(f"NaN/Inf in frame {index}; refusing to write {out_path!r}.")
            arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _frame_clock(times, rate: Fraction, out_path: str, start_at_zero: bool) -> tuple[Fraction, np.ndarray | None, int]:
    """(time base, pts of every frame or None for constant rate, duration of the last frame in ticks).

    Constant rate: frame i has pts i at time base 1 / fps. Variable rate: ``times`` at 1/90000 s;
    the last frame lasts 1 / fps; ``start_at_zero`` shifts the first frame to 0 (needed with audio:
    see ``mux_audio`` on AAC priming).
    """
    if times is None:
        return 1 / rate, None, 1
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise MediaError(f"NaN/Inf in frame times; refusing to write {out_path!r}.")
    tb = _VFR_TIME_BASE
    pts_all = np.rint(times * tb.denominator).astype(np.int64)
    if len(pts_all) > 1 and np.any(np.diff(pts_all) <= 0):
        raise MediaError(f"Frame times for {out_path!r} must be strictly increasing (at 1/90000 s resolution).")
    if start_at_zero and len(pts_all):
        pts_all = pts_all - pts_all[0]
    return tb, pts_all, max(1, int(round(tb.denominator / float(rate))))


def _timed_frames(frames, pts_all: np.ndarray | None, last_dur: int, out_path: str):
    """Yield ``(uint8 frame, pts, duration)``: a frame's duration is known once the next one arrives."""
    it = iter(frames)
    try:
        first = _as_uint8_frame(next(it), 0, out_path)
    except StopIteration:
        raise MediaError(f"No frames to write to {out_path!r}.") from None
    pending, index = (first, 0), 0
    for nxt in it:
        index += 1
        nxt = _as_uint8_frame(nxt, index, out_path)
        if nxt.shape != first.shape:
            raise MediaError(f"Frame {index} for {out_path!r} has shape {nxt.shape}, "
                             f"expected {first.shape} like frame 0.")
        arr, i = pending
        if pts_all is None:
            yield arr, i, 1
        elif index >= len(pts_all):
            raise MediaError(f"More frames than times ({len(pts_all)}) for {out_path!r}.")
        else:
            yield arr, int(pts_all[i]), int(pts_all[index] - pts_all[i])
        pending = (nxt, index)
    arr, i = pending
    if pts_all is not None and i + 1 != len(pts_all):
        raise MediaError(f"Got {i + 1} frames but {len(pts_all)} times for {out_path!r}.")
    yield arr, (i if pts_all is None else int(pts_all[i])), (1 if pts_all is None else last_dur)


def write_video(
    frames: Iterable[np.ndarray] | np.ndarray,
    fps,
    out_path,
    *,
    times: np.ndarray | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
) -> str:
    """Encode uint8 RGB frames ``[h, w, 3]`` with libx264 and return the absolute output path.

    Constant rate: frame i has pts i / fps (29.97 is stored as 30000/1001). Variable rate: pass
    `times` (seconds, strictly increasing, one per frame); the time base is 1/90000 and the last
    frame lasts 1 / fps; with audio, times are shifted so the first frame is at 0. yuv420p when
    width and height are even, else yuv444p. Float frames in
    [0, 1] are accepted and converted. Optional AAC audio is fitted to the video's duration.
    Written atomically (temp file + os.replace).
    """
    out_path = os.path.abspath(os.fspath(out_path))
    fmt = _container_format(out_path)
    rate = as_rate(fps)
    wave = sr = None
    if audio is not None:
        wave, sr = _prepare_audio(audio, sample_rate, out_path)
        wave = fit_for_aac(wave, sr, where=out_path)
    tb, pts_all, last_dur = _frame_clock(times, rate, out_path, start_at_zero=wave is not None)
    timed = _timed_frames(frames, pts_all, last_dur, out_path)
    first = next(timed)
    h, w = first[0].shape[:2]
    with atomic_output(out_path) as tmp:
        with av.open(tmp, mode="w", format=fmt, options=_mov_options(fmt, tb)) as out:
            vs = out.add_stream("libx264", rate=rate)
            vs.width, vs.height = w, h
            vs.pix_fmt = "yuv420p" if (w % 2 == 0 and h % 2 == 0) else "yuv444p"
            vs.codec_context.time_base = tb
            vs.time_base = tb
            options = {"crf": str(int(crf)), "preset": str(preset)}
            if pts_all is not None:
                # MP4 stores sample durations as decode-order deltas; with B-frames and uneven
                # intervals the last displayed frame's duration would be lost. No reordering keeps
                # every frame's duration (and so the file's duration) exact.
                options["bf"] = "0"
            vs.options = options
            start_pts = first[1]
            # the audio's length is known only at the end for iterators: feed it progressively, fit at the end
            track = None if wave is None else _AacTrack(out, wave, sr, wave.shape[1], float(start_pts * tb), 192_000)
            end_pts = start_pts
            for arr, pts, dur in itertools.chain([first], timed):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts, frame.time_base, frame.duration = pts, tb, dur
                for packet in vs.encode(frame):
                    out.mux(packet)
                if track is not None:
                    track.push_until(float((pts - start_pts) * tb) - 0.5)
                end_pts = pts + dur
            for packet in vs.encode(None):
                out.mux(packet)
            if track is not None:
                n_total = int(round(float((end_pts - start_pts) * tb) * sr))
                track.wave = fit_length(track.wave, n_total)
                track.n_total = n_total
                track.finish()
    return out_path


_AUDIO_CODECS = {".m4a": ("aac", "mp4"), ".mp4": ("aac", "mp4"), ".aac": ("aac", "adts"),
                 ".wav": ("pcm_s16le", "wav"), ".flac": ("flac", "flac"), ".mka": ("aac", "matroska")}


#: ``write_audio(…, depth="float")``: the codec (and sample format) that keeps float music's resolution
_FLOAT_CODECS = {".wav": ("pcm_f32le", None), ".flac": ("flac", "s32")}


def audio_depth(path, depth: str = "s16") -> str:
    """How ``write_audio(path, …, depth=depth)`` stores samples, in words (for reports)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if depth == "float" and ext == ".wav":
        return "32-bit float WAV"
    if depth == "float" and ext == ".flac":
        return "24-bit FLAC (FLAC holds no float samples)"
    if ext in (".wav", ".flac"):
        return f"16-bit {ext[1:].upper()}"
    return "AAC"


def write_audio(path, wave, sample_rate: int, *, layout: str = "stereo", master: bool = False,
                depth: str = "s16") -> str:
    """Write an audio-only file (.m4a/.aac AAC, .wav PCM, .flac, .mka) from float [C, T]; returns its path.

    layout: an FFmpeg layout name ("mono", "stereo", "5.1", ...); wave's channel count must match.
    Samples are written as they are when within full scale; above it they are limited (true peak
    -1 dBTP), never clipped. ``master=True`` (finished mono/stereo music) always brings the true
    peak below -1 dBTP, measured after encoding for AAC. ``wave`` may be an
    :class:`~.stream.AudioSpool`: it is then written chunk by chunk, in flat memory.
    ``depth="float"`` keeps float music's resolution: 32-bit float WAV, 24-bit FLAC (default: 16-bit
    PCM); :func:`audio_depth` says which in words.
    """
    path = os.path.abspath(os.fspath(path))
    ext = os.path.splitext(path)[1].lower()
    if ext not in _AUDIO_CODECS:
        raise MediaError(f"Unsupported audio extension {ext!r} for {path!r}; use one of {sorted(_AUDIO_CODECS)}.")
    if depth not in ("s16", "float"):
        raise MediaError(f"audio depth must be 's16' or 'float', got {depth!r}")
    codec, fmt = _AUDIO_CODECS[ext]
    sample_fmt = None
    if depth == "float" and ext in _FLOAT_CODECS:
        codec, sample_fmt = _FLOAT_CODECS[ext]
    n_ch = av.AudioLayout(layout).nb_channels
    if isinstance(wave, AudioSpool):
        if wave.channels != n_ch:
            raise MediaError(f"Layout {layout!r} has {n_ch} channels but the audio has {wave.channels}.")
        if master or wave.peak > 1.0:
            chunks = master_stream(wave, None, where=path, aac=master and codec == "aac")[0]()
        else:
            chunks = wave.chunks()
        return _encode_audio_file(path, chunks, int(sample_rate), codec, fmt, layout, n_ch, sample_fmt)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        wave = wave[None]
    if wave.shape[0] != n_ch:
        raise MediaError(f"Layout {layout!r} has {n_ch} channels but the audio has {wave.shape[0]}.")
    if not np.all(np.isfinite(wave)):
        raise MediaError(f"NaN/Inf in audio; refusing to write {path!r}.")
    if master:  # finished music: its true peak below -1 dBTP, after encoding for AAC
        wave = (fit_for_aac(wave, int(sample_rate), where=path) if codec == "aac"
                else limit_true_peak(wave, int(sample_rate)))
    elif np.max(np.abs(wave), initial=0.0) > 1.0:  # never clip: limit what is above full scale
        wave = limit_true_peak(wave, int(sample_rate))
    chunks = (wave[:, i:i + 8192] for i in range(0, wave.shape[1], 8192))
    return _encode_audio_file(path, chunks, int(sample_rate), codec, fmt, layout, n_ch, sample_fmt)


def _encode_audio_file(path: str, chunks, sample_rate: int, codec: str, fmt: str, layout: str, n_ch: int,
                       sample_fmt: str | None = None) -> str:
    with atomic_output(path) as tmp:
        with av.open(tmp, mode="w", format=fmt) as out:
            stream = out.add_stream(codec, rate=sample_rate, layout=layout)
            if sample_fmt:
                stream.codec_context.format = sample_fmt
            if codec == "aac":
                stream.bit_rate = 64_000 * n_ch
            pos = 0
            for chunk in chunks:
                for i in range(0, chunk.shape[1], 8192):
                    part = np.ascontiguousarray(chunk[:, i:i + 8192], dtype=np.float32)
                    # packed float: PyAV's planar path breaks at 8 channels (7.1)
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part.T).reshape(1, -1), format="flt",
                                                       layout=layout)
                    frame.sample_rate = sample_rate
                    frame.pts = pos
                    frame.time_base = Fraction(1, sample_rate)
                    pos += part.shape[1]
                    for packet in stream.encode(frame):
                        out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path
