"""What the prompt models see and hear of a video: sampled frames (PIL images) and mono audio."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import MediaError, V2MError


def check_video(path: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path!r}; give the path of an existing video file")
    return path


def _open_video(path: str):
    import av

    try:
        return av.open(path)
    except Exception as exc:  # PyAV raises several error types for unreadable files
        raise MediaError(f"cannot open video {path!r} ({exc}); is it a complete video file?") from exc


def grab_frames(path: str, times: Sequence[float], *, start: float, max_side: int = 768) -> list:
    """The frames shown at ``times`` as RGB PIL images, one seek per time.

    Times count from the first frame (as in ``media``); ``start`` is that frame's time stamp.
    """
    from PIL import Image

    out = []
    with _open_video(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path!r} has no video stream")
        s = c.streams.video[0]
        for t in times:
            c.seek(max(0, int((t + start) / s.time_base)), stream=s, backward=True, any_frame=False)
            best = None
            for f in c.decode(s):
                if f.time is None:
                    continue
                if best is None or float(f.time) - start <= t + 1e-6:
                    best = f
                if float(f.time) - start > t + 1e-6:
                    break
            if best is None:
                raise MediaError(f"no frame could be decoded near {t:.2f} s in {path!r}")
            img = best.to_image().convert("RGB")
            scale = max_side / max(img.size)
            if scale < 1:
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
            out.append(img)
    return out


def decode_audio_mono(path: str, sample_rate: int) -> np.ndarray | None:
    """Mono float32 audio of the video at ``sample_rate``, or None when it has no audio stream."""
    from ..timing import media

    if not media.probe_video(path).has_audio:
        return None
    wave, _ = media.decode_audio(path, sample_rate=sample_rate, channels=1)
    return np.asarray(wave, dtype=np.float32).reshape(-1)


def sample_frames(
    video_path: str, *, n: int = 8, mode: str = "even", cut_times: Sequence[float] | None = None,
    max_side: int = 768,
) -> list[tuple[float, Any]]:
    """``[(time, PIL.Image)]``: ``n`` frames evenly spread (centres of ``n`` equal spans), or with
    ``mode="scenes"`` the middle frame of each scene between ``cut_times`` (detected with
    the ``histogram`` cut detector when None), keeping the ``n`` longest scenes when there are more."""
    from ..timing import media

    path = check_video(video_path)
    if n < 1:
        raise V2MError(f"number of frames must be at least 1, got {n}")
    if mode not in ("even", "scenes"):
        raise V2MError(f"frame sampling mode must be 'even' or 'scenes', got {mode!r}")
    info = media.probe_video(path)
    duration = info.duration
    if mode == "even":
        times = [(i + 0.5) * duration / n for i in range(n)]
    else:
        if cut_times is None:
            from ..timing.cuts import HistogramCuts

            cut_times = HistogramCuts().detect(path)
        edges = [0.0] + sorted(t for t in cut_times if 0 < t < duration) + [duration]
        scenes = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        if len(scenes) > n:
            keep = sorted(sorted(range(len(scenes)), key=lambda i: scenes[i][0] - scenes[i][1])[:n])
            scenes = [scenes[i] for i in keep]
        times = [(a + b) / 2 for a, b in scenes]
    return list(zip(times, grab_frames(path, times, start=info.start_time, max_side=max_side)))
