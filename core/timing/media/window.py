"""A time window of a video, written as its own file: what a host's trimmed video shows.

ComfyUI's Trim Video (0.33+) gives a ``VideoFromFile`` with ``start_time`` / ``duration`` that still points
at the whole file; the frames it shows are those whose presentation time t (stream time, seconds) has
``start <= t < start + duration`` (``duration == 0``: to the end). :func:`write_window` writes exactly those
frames (their own timestamps, shifted to start at 0) and the audio under them, streaming.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import av
import numpy as np

from ...errors import MediaError
from .audio import decode_audio
from .frames import iter_frames
from .probe import probe_video
from .source import open_input, rewind, source_name
from .write import write_video

_EPS = 1e-9


def frame_times(src) -> np.ndarray:
    """Presentation times (s, from the first frame) of every video frame, from packet timestamps (no decode)."""
    name = source_name(src)
    container = open_input(src, name, need="video")
    try:
        vs = container.streams.video[0]
        tb = vs.time_base
        pts = [p.pts for p in container.demux(vs) if p.size and p.pts is not None]
    except av.FFmpegError as exc:
        raise MediaError(f"{name!r} is truncated or corrupt: reading its video packets failed ({exc}). "
                         "Re-export or re-download the file.") from exc
    finally:
        container.close()
        rewind(src)
    if not pts or tb is None:
        return np.zeros(0)
    pts_arr = np.sort(np.asarray(pts, dtype=np.int64))
    return (pts_arr - pts_arr[0]).astype(np.float64) * float(tb)


def write_window(src, out_path, start: float, duration: float = 0.0, *, audio: bool = True,
                 check_interrupt: Callable[[], None] | None = None) -> str:
    """Write the frames of ``src`` shown in ``[start, start + duration)`` (stream time, s; duration 0 = to
    the end) and (``audio``) the audio under them to ``out_path`` (H.264 crf 18 + AAC, atomically).
    Returns the path.

    Frames keep their own timestamps (variable rate safe), shifted so the first kept frame is at 0.
    """
    name = source_name(src)
    if not (math.isfinite(start) and math.isfinite(duration)) or duration < 0:
        raise MediaError(f"the trim window of {name!r} must be finite with a duration >= 0, "
                         f"got start {start} s, duration {duration} s")
    info = probe_video(src)
    lo = float(start) - info.start_time  # window in time from the first frame
    hi = lo + float(duration) if duration > 0 else math.inf
    times = frame_times(src)
    keep = times[(times >= lo - _EPS) & (times < hi - _EPS)]
    if keep.size == 0:
        end = "the end" if duration <= 0 else f"{start + duration:.3f} s"
        raise MediaError(f"the trim window {start:.3f} s to {end} of {name!r} holds no frame: the video lasts "
                         f"{info.duration:.3f} s. Set the trim's start_time inside the video.")
    first, last = float(keep[0]), float(keep[-1])

    def frames() -> Iterator[np.ndarray]:
        n = 0
        for batch in iter_frames(src, size=None, batch=8):
            if check_interrupt is not None:
                check_interrupt()
            for frame, t in zip(batch.frames, batch.times):
                if t > last + _EPS:
                    return
                if t >= first - _EPS and n < keep.size:
                    n += 1
                    yield frame

    wave = sr = None
    if audio and info.has_audio:
        full, sr = decode_audio(src)
        rewind(src)
        a = int(round(max(first, 0.0) * sr))
        wave = full[:, a:]
        if wave.shape[1] == 0:
            wave = np.zeros((full.shape[0], 1), np.float32)
    return write_video(frames(), info.fps, out_path, times=keep - first, audio=wave, sample_rate=sr)
