"""Type conversions between ComfyUI's IMAGE / AUDIO / VIDEO and the library's arrays and files."""

from __future__ import annotations

import os

import numpy as np

from ...core.errors import V2MError
from .files import remove_files, temp_video_path


def video_source(video):
    """A path or file object for a core VIDEO, or None when it only exists as components.

    ComfyUI's ``VideoFromComponents`` (CreateVideo) would give a stream only by encoding all its
    frames to H.264 in memory (lossy, slow): its frames are used directly instead.
    """
    from comfy_api.latest import InputImpl

    get = getattr(video, "get_stream_source", None)
    if get is None or isinstance(video, InputImpl.VideoFromComponents):
        return None
    src = get()
    if hasattr(src, "seek"):
        src.seek(0)
    return src


def video_to_file(video) -> tuple[str, bool]:
    """A file holding the VIDEO: its own file when it has one, else a temporary H.264 encode.

    Returns (path, is_temporary).
    """
    from ...core.timing import media

    src = video_source(video)
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src), False
    tmp = temp_video_path()
    try:
        if src is not None:  # in-memory file (BytesIO)
            with open(tmp, "wb") as f:
                f.write(src.read())
            return tmp, True
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
