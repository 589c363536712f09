"""Type conversions between ComfyUI's IMAGE / AUDIO / VIDEO and the library's arrays and files."""

from __future__ import annotations

import os

import numpy as np

from ...core.errors import V2MError
from .files import remove_files, temp_video_path


def video_view(video) -> tuple[float, float, bool]:
    """What of its file a core VIDEO shows: (trim start s, trim duration s (0 = to the end), cropped).

    ComfyUI 0.33+'s Trim Video gives a ``VideoFromFile`` that still points at the whole file, with a
    trim window (``get_active_trim_window``); the newest also crops (its ``get_dimensions`` is then the
    crop's). 0.3.64 has neither: (0, 0, False).
    """
    window = getattr(video, "get_active_trim_window", None)
    start, duration = window() if callable(window) else (0.0, 0.0)
    return float(start), float(duration), _cropped(video)


def _cropped(video) -> bool:
    """Whether a VideoFromFile of a host that can crop shows less than its file's frames."""
    import inspect

    try:
        if "crop" not in inspect.signature(type(video).__init__).parameters:
            return False  # this host cannot crop (0.3.64, 0.33.0)
    except (TypeError, ValueError):
        return False
    import av

    src = video.get_stream_source()
    with av.open(src, mode="r") as container:
        vs = container.streams.video[0]
        raw = (vs.width, vs.height)
    if hasattr(src, "seek"):
        src.seek(0)
    return tuple(video.get_dimensions()) != raw


def _whole(view: tuple[float, float, bool]) -> bool:
    start, duration, cropped = view
    return not cropped and start == 0 and duration == 0


def video_source(video):
    """A path or file object for a core VIDEO that shows its whole file, else None (trimmed or cropped
    ones: :func:`video_to_file`; ``VideoFromComponents``: its frames).

    ComfyUI's ``VideoFromComponents`` (CreateVideo) would give a stream only by encoding all its
    frames to H.264 in memory (lossy, slow): its frames are used directly instead.
    """
    from comfy_api.latest import InputImpl

    get = getattr(video, "get_stream_source", None)
    if get is None or isinstance(video, InputImpl.VideoFromComponents) or not _whole(video_view(video)):
        return None
    src = get()
    if hasattr(src, "seek"):
        src.seek(0)
    return src


def video_to_file(video, check_interrupt=None, audio: bool = True) -> tuple[str, bool]:
    """A file holding the VIDEO as the user sees it: its own file when it shows it whole, else a
    temporary H.264 encode (the trim window cut by our reader; a crop by the host's own ``save_to``).

    ``audio=False``: a trim window is cut without its sound (for readers of the frames only).
    Returns (path, is_temporary).
    """
    from ...core.timing import media
    from ...core.timing.media.window import write_window

    src = video_source(video)
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src), False
    tmp = temp_video_path()
    try:
        get = getattr(video, "get_stream_source", None)
        view = video_view(video) if get is not None else (0.0, 0.0, False)
        if view[2]:  # cropped: only the host knows its rectangle; it applies the trim window too
            video.save_to(tmp)
        elif not _whole(view):
            write_window(get(), tmp, view[0], view[1], audio=audio, check_interrupt=check_interrupt)
        elif src is not None:  # in-memory file (BytesIO)
            with open(tmp, "wb") as f:
                f.write(src.read())
        else:
            comps = video.get_components()
            wave, sr = audio_to_numpy(comps.audio) if comps.audio is not None else (None, None)
            media.write_video(images_to_uint8(comps.images), comps.frame_rate, tmp, audio=wave, sample_rate=sr)
        return tmp, True
    except BaseException:
        remove_files([tmp])
        raise


def video_or_images_file(video, images, fps: float, temps: list[str], *, node: str) -> str:
    """A file for a VIDEO input, or for IMAGE frames at ``fps``; temporary files go in ``temps``."""
    if video is not None:
        path, is_temp = video_to_file(video)
        if is_temp:
            temps.append(path)
        return path
    if images is None:
        raise V2MError(f"connect a video, or images with their fps, to {node}")
    from ...core.timing import media

    path = temp_video_path()
    temps.append(path)
    media.write_video(images_to_uint8(images), fps, path)
    return path


def images_to_uint8(images, size: int | None = None) -> np.ndarray:
    """IMAGE [B, H, W, C] float 0–1 → uint8 [B, h, w, 3], optionally shrunk (area) to short side."""
    import torch
    import torch.nn.functional as F

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise V2MError("expected an IMAGE batch [frames, height, width, "
                       f"channels], got {getattr(images, 'shape', type(images))}")
    x = images[..., :3]
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, -1, 3)
    if size:
        h, w = x.shape[1:3]
        scale = size / min(h, w)
        if scale < 1:
            out_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x.movedim(-1, 1).float(), size=out_hw, mode="area").movedim(1, -1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def audio_to_numpy(audio) -> tuple[np.ndarray, int]:
    """ComfyUI AUDIO → (float32 [C, T], sample_rate) of the first item in the batch."""
    try:
        wave, sr = audio["waveform"], int(audio["sample_rate"])
    except (TypeError, KeyError):
        raise V2MError("expected an AUDIO input (a dict with 'waveform' and 'sample_rate')") from None
    arr = wave.detach().float().cpu().numpy() if hasattr(wave, "detach") else np.asarray(wave, np.float32)
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim == 1:
        arr = arr[None]
    return np.ascontiguousarray(arr, dtype=np.float32), sr


def numpy_to_audio(wave: np.ndarray, sample_rate: int) -> dict:
    import torch

    w = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if w.ndim == 1:
        w = w[None]
    return {"waveform": w[None], "sample_rate": int(sample_rate)}


def image_tensor(rgb: np.ndarray):
    """uint8 [H, W, 3] → IMAGE [1, H, W, 3] float."""
    import torch

    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).float().div(255.0)[None]
