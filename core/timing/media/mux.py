"""Muxing music into a video at its exact length: the video stream copied where the container holds it.

:func:`plan_mux` decides before any work how the video stream is written (stream copy; else an H.264
re-encode, said in one note; else refused before decoding); :func:`mux_audio` writes the file
atomically. Length contract: see :mod:`.probe` and :func:`mux_audio`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ...errors import MediaError
from .audio import fit_length
from .levels import fit_for_aac
from .probe import copy_timing, probe_video
from .source import open_input, rewind, source_name, video_stream
from .stream import AudioSpool, PacketSpool, master_stream, mux_rate
from .write import _AacTrack, _container_format, _mov_options, _prepare_audio, _same_file, atomic_output, check_bitrate


#: Write the overshoot check's AAC packets instead of encoding the soundtrack again (a spool's
#: soundtrack; the same packets, see :class:`.stream.PacketSpool`). Off: encode twice, as before.
REUSE_CHECK_PACKETS = True


def _mastered(video, audio, sample_rate, out_path: str, bitrate: int, packets: PacketSpool | None = None):
    """The soundtrack fitted to the video and mastered for AAC: (samples or chunks, rate, n, channels, info);
    for a spool, ``packets`` receives the overshoot check's encode (see :func:`.stream.master_stream`)."""
    if isinstance(audio, AudioSpool):
        info = probe_video(video)
        sr = mux_rate(audio.sample_rate)
        n_total = int(round(info.duration * sr))
        chunks, sr, channels = master_stream(audio, n_total, rate=sr, bitrate=bitrate, where=out_path,
                                             packets=packets)
        return chunks(), sr, n_total, channels, info
    wave, sr = _prepare_audio(audio, sample_rate, out_path)
    info = probe_video(video)
    n_total = int(round(info.duration * sr))
    return fit_for_aac(fit_length(wave, n_total), sr, bitrate=bitrate, where=out_path), sr, n_total, None, info


# --------------------------------------------------------------------------------------------
# planning a mux: copy the video stream where the container can hold it, else re-encode, else refuse


#: what a video that cannot be copied into the asked-for container is re-encoded with
REENCODE_CODEC, REENCODE_CRF = "libx264", 18
_FORMAT_EXTS = {"mp4": ".mp4", "mov": ".mov", "matroska": ".mkv"}


@dataclass(frozen=True)
class MuxPlan:
    """How ``mux_audio`` will write ``out_path``: the video stream copied (``copy``) or re-encoded.

    ``note`` says, in one sentence, why a copy is impossible and what is done instead (empty for a copy).
    """

    out_path: str
    container: str
    codec: str
    copy: bool
    note: str = ""


#: names people know codecs by (FFmpeg's decoder names otherwise)
_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1", "libdav1d": "AV1", "libaom-av1": "AV1",
                "prores": "ProRes", "gif": "GIF", "vp8": "VP8", "vp9": "VP9", "libvpx-vp9": "VP9", "mjpeg": "MJPEG",
                "mpeg4": "MPEG-4 Part 2", "mpeg2video": "MPEG-2", "dnxhd": "DNxHD", "png": "PNG", "apng": "APNG"}


def _codec_label(stream) -> str:
    name = stream.codec_context.name or "?"
    return _CODEC_NAMES.get(name, name.upper())


def _template_stream(out, ivs):
    """An output stream with the input's codec parameters (for copying packets)."""
    if not hasattr(out, "add_stream_from_template"):  # PyAV < 14
        return out.add_stream(template=ivs)
    try:
        return out.add_stream_from_template(ivs)
    except av.codec.codec.UnknownCodecError:
        # read by a decoder that has no encoder of its name (libdav1d reads AV1): copy its context as is
        return out.add_stream_from_template(ivs, opaque=True)


def _copy_problem(inp, ivs, fmt: str) -> str | None:
    """Why ``ivs``'s packets cannot be copied into a ``fmt`` container (None: they can).

    A dry run into memory: the stream, an AAC track, the header and the first packets (demuxed, never decoded).
    """
    import io

    try:
        with av.open(io.BytesIO(), mode="w", format=fmt, options=_mov_options(fmt, ivs.time_base)) as out:
            ovs = _template_stream(out, ivs)
            out.add_stream("aac", rate=48000, layout="stereo")
            n = 0
            for packet in inp.demux(ivs):
                if packet.size == 0:
                    continue
                packet.stream = ovs
                out.mux(packet)
                n += 1
                if n >= 3:
                    break
    except (av.FFmpegError, ValueError, TypeError) as exc:
        return str(exc).split("\n")[0] or type(exc).__name__
    finally:
        try:
            inp.seek(0)
        except (av.FFmpegError, OSError, ValueError):
            pass
    return None


def plan_mux(video, out_path) -> MuxPlan:
    """Decide, before any work, how ``mux_audio(video, …, out_path)`` writes its video stream.

    Reads only the input's headers and first packets (no decoding): the stream is copied when the
    output container accepts it; otherwise it is re-encoded with H.264 (every frame and timestamp
    kept) and :attr:`MuxPlan.note` says so, naming the containers that would take a copy; a video
    that can neither be copied nor decoded is refused (MediaError) before anything is decoded.
    """
    out_path = os.path.abspath(os.fspath(out_path))
    name = source_name(video)
    if _same_file(video, out_path):
        raise MediaError(f"Output path {out_path!r} is the input video {name!r}; choose a different output file.")
    fmt = _container_format(out_path)
    ext = os.path.splitext(out_path)[1].lower() or ".mp4"
    inp = open_input(video, name, need="video")
    try:
        ivs = video_stream(inp)
        label = _codec_label(ivs)
        problem = _copy_problem(inp, ivs, fmt)
        if problem is None:
            return MuxPlan(out_path, fmt, label, True)
        others = [e for f, e in _FORMAT_EXTS.items() if f != fmt and _copy_problem(inp, ivs, f) is None]
        try:
            decodable = av.codec.Codec(ivs.codec_context.name, "r") is not None
        except Exception:  # noqa: BLE001 - no decoder for this stream
            decodable = False
    finally:
        inp.close()
        rewind(video)
    where = f"use {' or '.join(others)} for a copy" if others else "no container here can hold a copy"
    if not decodable:
        raise MediaError(f"{name!r}: its {label} video cannot be copied into {ext} ({problem}) and cannot be decoded "
                         f"to re-encode it; {where}.")
    return MuxPlan(out_path, fmt, label, False,
                   f"{os.path.basename(name)}: {label} video cannot be copied into {ext}, so it is re-encoded as "
                   f"H.264 (crf {REENCODE_CRF}; every frame and timestamp kept; {where})")


def mux_audio(video, audio, sample_rate: int, out_path, *, bitrate: int = 192_000,
              plan: MuxPlan | None = None) -> str:
    """Write `video`'s video stream (packets copied, no re-encode) with `audio` as AAC to out_path.

    The video keeps every frame with the same timestamps; any audio the input had is dropped.
    The audio (mono or stereo; more channels are downmixed; rates other than 44100/48000 are
    resampled to 48000) is fitted to exactly the video's duration per `probe_video`:
    n = round(duration * sr) samples are encoded, padding with silence or trimming, starting at
    the first video frame. "Exactly" means: the encoded sample count and the audio stream's
    duration in the container are n samples; decoding the file back gives n samples up to AAC
    framing (priming/padding), i.e. within +-1024 samples of n; for MP4/MOV output, whose
    timestamps are sample-exact, `decode_audio` trims the padding and returns exactly n. (MKV
    stores milliseconds, so there the video duration itself is exact only to 1 ms.) The output
    timeline starts at the first frame: a video whose first pts is t0 != 0 is shifted by -t0,
    every interval unchanged (otherwise the AAC priming would delay the music). Written atomically (temp file
    + os.replace); the input is never modified and out_path may not be the input. Returns the
    absolute output path. ``audio`` may be an :class:`~.stream.AudioSpool` (a long soundtrack on
    disk): it is then mastered and muxed chunk by chunk, in flat memory (``sample_rate`` is the
    spool's).

    A video stream the container cannot hold (ProRes or GIF in .mp4, AV1 or VP9 in .mov) is
    re-encoded as H.264 with every frame's timestamp kept: see :func:`plan_mux`, which callers run
    before their work (``plan``: its result, else it is planned here).
    """
    out_path = os.path.abspath(os.fspath(out_path))
    name = source_name(video)
    if plan is None or plan.out_path != out_path:
        plan = plan_mux(video, out_path)
    bitrate = check_bitrate(bitrate)
    if not (REUSE_CHECK_PACKETS and isinstance(audio, AudioSpool)):
        _write_mux(video, audio, sample_rate, out_path, bitrate, plan, name, None)
        return out_path
    with PacketSpool(folder=os.path.dirname(audio.path)) as packets:  # beside the spool: on disk, flat memory
        _write_mux(video, audio, sample_rate, out_path, bitrate, plan, name, packets)
    return out_path


def _write_mux(video, audio, sample_rate: int, out_path: str, bitrate: int, plan: MuxPlan, name: str,
               packets: PacketSpool | None) -> None:
    fmt = plan.container
    wave, sr, n_total, channels, info = _mastered(video, audio, sample_rate, out_path, bitrate, packets)
    timing = copy_timing(video, info)
    with atomic_output(out_path) as tmp:
        inp = open_input(video, name, need="video")
        try:
            ivs = video_stream(inp)
            with av.open(tmp, mode="w", format=fmt, options=_mov_options(fmt, ivs.time_base)) as out:
                itb = ivs.time_base
                # The output timeline starts at the first frame: a video starting at t0 != 0 is
                # shifted by -t0 (all intervals unchanged). With a non-zero start the MP4 muxer
                # would not mark the AAC priming samples for removal and the music would play
                # ~21 ms late.
                shift = int(round(Fraction(info.start_time) / Fraction(itb))) if itb else 0
                if plan.copy:
                    ovs = _template_stream(out, ivs)
                    for key in [k for k in ovs.metadata if k.upper() == "DURATION"]:
                        del ovs.metadata[key]  # a copied header duration can be stale; the muxer writes the true one
                    track = _AacTrack(out, wave, sr, n_total, 0.0, bitrate, channels=channels, packets=packets)
                    _copy_packets(inp, ivs, out, ovs, track, timing, shift, fmt in ("mp4", "mov"), name)
                else:
                    track = None
                    _reencode(inp, ivs, out, lambda: _AacTrack(out, wave, sr, n_total, 0.0, bitrate,
                                                               channels=channels, packets=packets),
                              timing, shift, name)
        finally:
            inp.close()
            rewind(video)


def _copy_packets(inp, ivs, out, ovs, track, timing, shift: int, mov: bool, name: str) -> None:
    itb = ivs.time_base
    index = 0
    try:
        for packet in inp.demux(ivs):
            if packet.size == 0:
                continue
            # every frame lasts until the next one is shown (the last: as probed) and
            # decode-order gaps equal those durations, so the container and the stream
            # report the input's duration, and muxing the output again changes nothing
            if packet.pts is not None and index < len(timing.dts):
                packet.dts = timing.dts[index]
                last = index == len(timing.dts) - 1
                packet.duration = timing.last_duration if (mov and last) else timing.durations[packet.pts]
            index += 1
            if shift:
                if packet.pts is not None:
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None:
                track.push_until(float(stamp * itb))
            packet.stream = ovs
            out.mux(packet)
    except av.FFmpegError as exc:
        raise MediaError(f"{name!r} is truncated or corrupt: copying its video failed ({exc}).") from exc
    track.finish()


def _reencode(inp, ivs, out, make_track, timing, shift: int, name: str) -> None:
    """Decode the video and encode it as H.264 with each frame's own timestamp and duration."""
    itb = ivs.time_base or Fraction(1, 90000)
    ctx = ivs.codec_context
    w, h = int(ctx.width or ivs.width), int(ctx.height or ivs.height)
    vs = out.add_stream(REENCODE_CODEC, rate=ivs.average_rate or ivs.guessed_rate or 25)
    vs.width, vs.height = w, h
    vs.pix_fmt = "yuv420p" if (w % 2 == 0 and h % 2 == 0) else "yuv444p"
    vs.codec_context.time_base = itb
    vs.time_base = itb
    # no reordering: each frame keeps its own duration in an MP4 sample table (see write_video)
    vs.options = {"crf": str(REENCODE_CRF), "preset": "veryfast", "bf": "0"}
    track = make_track()
    try:
        for frame in inp.decode(ivs):
            pts = frame.pts
            if pts is None:
                continue
            rgb = frame.reformat(format=vs.pix_fmt)
            rgb.pts, rgb.time_base = pts - shift, itb
            rgb.duration = timing.durations.get(pts, timing.last_duration)
            track.push_until(float((pts - shift) * itb))
            for packet in vs.encode(rgb):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    except av.FFmpegError as exc:
        raise MediaError(f"{name!r} is truncated or corrupt: re-encoding its video failed ({exc}).") from exc
    track.finish()


def delivered_audio(audio, sample_rate: int, n_total: int, *, bitrate: int = 192_000,
                    time_base=None) -> tuple[np.ndarray, int]:
    """The soundtrack exactly as :func:`mux_audio` delivers it, decoded back: ``(float32 [C, n_total], rate)``.

    The same path as the mux, minus the video: converted and mastered for AAC as :func:`mux_audio` does
    (``_prepare_audio``, fitted to ``n_total`` samples at the mux rate, ``fit_for_aac`` at ``bitrate``),
    encoded by the same AAC track writer into an MP4 (``time_base``: the video's, for the same movie
    timescale) and decoded by :func:`~.audio.decode_audio` (priming and padding trimmed as for the
    file). AAC encoding is deterministic, so this is the file's audio sample for sample
    (``tests/test_align.py`` checks it against a muxed file): what a listening check should hear.
    """
    import tempfile

    from .audio import decode_audio

    wave, sr = _prepare_audio(audio, sample_rate, "the delivered audio")
    wave = fit_for_aac(fit_length(wave, int(n_total)), sr, bitrate=bitrate, where="the delivered audio")
    with tempfile.TemporaryDirectory(prefix="v2m-delivered-") as tmp:
        path = os.path.join(tmp, "delivered.mp4")
        with av.open(path, mode="w", format="mp4", options=_mov_options("mp4", time_base)) as out:
            track = _AacTrack(out, wave, sr, int(n_total), 0.0, check_bitrate(bitrate))
            track.finish()
        y, rate = decode_audio(path)
    return fit_length(y, int(n_total)), int(rate)
