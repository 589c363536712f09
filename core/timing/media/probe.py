"""Exact probing: frame count and duration from the demuxed packets, never from header metadata.

Time is measured from the first video frame's presentation timestamp. A video lasts
``pts(last frame) + duration(last frame) - pts(first frame)``; for N constant-rate frames at fps
that is exactly N / fps (the length contract `mux_audio` and `write_video` keep).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

from ...errors import MediaError
from .source import open_input, rewind, source_name, video_stream


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` measured: sizes, exact frame count and duration (seconds)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    start_time: float
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None


def stream_fps(stream) -> Fraction | None:
    for rate in (stream.average_rate, getattr(stream, "guessed_rate", None), stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    return None


def decode_order_durations(container) -> bool:
    """Whether the container stores a frame's duration as the gap to the next frame in *decode*
    order (MP4/MOV sample tables) rather than its display duration (Matroska and most others)."""
    name = container.format.name or ""
    return "mp4" in name or "mov" in name


class PacketClock:
    """Exact frame count and duration from demuxed packets (shared by probe and decode).

    The video ends where its last *displayed* frame ends. With frame reordering (B-frames) in a
    container that stores decode-order durations (MP4/MOV), the last sample in decode order carries
    the duration that ends the track, so that one is used; elsewhere the last frame's own duration.
    """

    def __init__(self, decode_order: bool = False):
        self.count = 0
        self.first_pts = None
        self.last_pts = None
        self.last_dur = 0
        self.no_pts = False
        self.decode_order = decode_order
        self.reordered = False
        self.decode_last_dur = 0

    def observe(self, packet) -> None:
        if packet.size == 0 or packet.is_discard:
            return
        self.count += 1
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            self.no_pts = True
            return
        if self.first_pts is None or pts < self.first_pts:
            self.first_pts = pts
        self.decode_last_dur = packet.duration or 0
        if self.last_pts is None or pts >= self.last_pts:
            self.last_pts = pts
            self.last_dur = packet.duration or 0
        else:
            self.reordered = True

    def duration(self, tb: Fraction, rate: Fraction | None, name: str) -> tuple[Fraction, Fraction]:
        """(duration, start) in seconds: last pts + its duration − first pts."""
        if rate is None and self.no_pts:
            raise MediaError(f"{name!r} has neither timestamps nor a frame rate; remux it (e.g. to .mp4) first.")
        if self.no_pts or self.first_pts is None:
            return Fraction(self.count) / rate, Fraction(0)
        last_dur = self.decode_last_dur if (self.reordered and self.decode_order) else self.last_dur
        end_ticks = Fraction(self.last_pts - self.first_pts + last_dur) * tb
        if last_dur <= 0:
            end_ticks += 1 / rate if rate else 0
        return end_ticks, self.first_pts * tb


def probe_video(src) -> VideoInfo:
    """Measure a video exactly by demuxing its packets (no decode beyond the first frame).

    frame_count counts the video packets; duration = (pts of the last frame + its duration) -
    pts of the first frame, where the last frame's duration is the packet duration or, when the
    container does not store one, 1 / average fps. Header metadata is not trusted.
    Raises MediaError (naming the file and the fix) for missing, empty, non-media, audio-only,
    truncated or undecodable files.
    """
    name = source_name(src)
    container = open_input(src, name, need="video")
    try:
        vs = video_stream(container)
        tb = vs.time_base or Fraction(1, 90000)
        tb = Fraction(tb.numerator, tb.denominator)
        rate = stream_fps(vs)
        clock = PacketClock(decode_order_durations(container))
        total = 0
        decoded = False
        decode_errors: list[str] = []
        ctx = vs.codec_context
        try:
            for packet in container.demux(vs):
                if packet.size:
                    total += 1
                if packet.size == 0 or packet.is_discard:
                    if packet.size == 0 and not decoded:
                        try:
                            decoded = bool(ctx.decode(None))
                        except av.FFmpegError as exc:
                            decode_errors.append(str(exc))
                    continue
                clock.observe(packet)
                if not decoded:
                    try:
                        decoded = bool(ctx.decode(packet))
                    except av.FFmpegError as exc:
                        decode_errors.append(str(exc))
            if not decoded and clock.count:
                try:
                    decoded = bool(ctx.decode(None))
                except av.FFmpegError as exc:
                    decode_errors.append(str(exc))
        except av.FFmpegError as exc:
            raise MediaError(
                f"{name!r} is truncated or corrupt: reading its video packets failed ({exc}). "
                "Re-export or re-download the file."
            ) from exc
        check_complete(container, vs, total, name)
        count = clock.count
        if count == 0 or not decoded:
            why = f" (decoder said: {decode_errors[-1]})" if decode_errors else ""
            raise MediaError(
                f"{name!r} is truncated or corrupt: no video frame could be decoded{why}. "
                "Re-export or re-download the file."
            )
        duration, start = clock.duration(tb, rate, name)
        if rate is None:
            rate = Fraction(count) / duration if duration > 0 else Fraction(0)
        audio = container.streams.audio[0] if container.streams.audio else None
        a_rate = a_ch = None
        if audio is not None:
            a_rate = int(audio.codec_context.sample_rate or audio.rate or 0) or None
            a_ch = int(audio.codec_context.channels or 0) or None
        return VideoInfo(
            path=name,
            width=int(ctx.width or vs.width),
            height=int(ctx.height or vs.height),
            fps=float(rate),
            frame_count=count,
            duration=float(duration),
            start_time=float(start),
            has_audio=audio is not None,
            audio_sample_rate=a_rate,
            audio_channels=a_ch,
        )
    finally:
        container.close()
        rewind(src)


def check_complete(container, stream, n_packets: int, name: str) -> None:
    """MP4/MOV index every sample up front: fewer packets than indexed means a truncated file."""
    fmt = container.format.name or ""
    indexed = stream.frames or 0
    if indexed and ("mp4" in fmt or "mov" in fmt) and n_packets < indexed:
        raise MediaError(
            f"{name!r} is truncated: its index lists {indexed} video frames but only {n_packets} are in the file "
            "(incomplete download or copy?). Re-export or re-download the file."
        )


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyTiming:
    """Timestamps for copying a video stream's packets so every container reports its true duration.

    ``durations[pts]``: each frame lasts until the next frame is shown (the last one until the end
    ``probe_video`` measured). ``dts[i]``: the decode timestamp of the i-th packet in decode order,
    ``sorted_pts[i] - delay``, so decode-order gaps equal display durations (an MP4 sample table then
    sums to the video's duration even with B-frames) and every frame is decoded before it is shown.
    ``last_duration``: the last displayed frame's duration.
    """

    durations: dict
    dts: list
    last_duration: int


def copy_timing(src, info: VideoInfo) -> CopyTiming:
    """Read the video packets' timestamps once and plan their timing in a copy (see :class:`CopyTiming`)."""
    name = source_name(src)
    container = open_input(src, name, need="video")
    try:
        vs = video_stream(container)
        tb = Fraction(vs.time_base.numerator, vs.time_base.denominator) if vs.time_base else Fraction(1, 90000)
        decode_pts = [int(p.pts) for p in container.demux(vs) if p.size and p.pts is not None]
    except av.FFmpegError as exc:
        raise MediaError(f"{name!r} is truncated or corrupt: reading its video packets failed ({exc}).") from exc
    finally:
        container.close()
        rewind(src)
    if not decode_pts:
        return CopyTiming({}, [], 0)
    shown = sorted(decode_pts)
    end = int(round((Fraction(info.start_time) + Fraction(info.duration)) / tb))
    durations = {a: b - a for a, b in zip(shown[:-1], shown[1:])}
    durations[shown[-1]] = max(1, end - shown[-1])
    delay = max(s - p for s, p in zip(shown, decode_pts))
    return CopyTiming(durations, [s - delay for s in shown], durations[shown[-1]])
