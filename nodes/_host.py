"""Thin bridges to the ComfyUI host: folders, progress, interrupts, type conversion.

Everything here imports ComfyUI modules lazily, inside functions, so that importing a node
module needs only ``comfy_api`` (which ComfyUI, or the tests' fake, provides).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from ..core.errors import MediaError, V2MError

MODEL_KINDS = ("encoders", "checkpoints", "text_encoders", "codecs", "prompt", "loras", "music_encoders")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")


def register_model_folders() -> None:
    """``models/v2m/<kind>/`` for every kind, registered once with ComfyUI's folder_paths."""
    import folder_paths

    from ..model_io.folders import register_models_root

    for kind in MODEL_KINDS:
        # Idempotent in ComfyUI: a path already registered is not added twice.
        folder_paths.add_model_folder_path(f"v2m_{kind}", os.path.join(folder_paths.models_dir, "v2m", kind))
    # the library finds model folders by name (e.g. DINOv2 "dinov2-large") under this root too
    register_models_root(os.path.join(folder_paths.models_dir, "v2m"))


def model_choices(kind: str, *, folders: bool, extensions: tuple[str, ...] = (".safetensors",)) -> list[str]:
    """Names under ``models/v2m/<kind>/``: sub-folders (Hugging Face model folders) or files."""
    import folder_paths

    register_model_folders()
    names: set[str] = set()
    for root in folder_paths.get_folder_paths(f"v2m_{kind}"):
        if not os.path.isdir(root):
            continue
        for entry in os.listdir(root):
            full = os.path.join(root, entry)
            if folders and os.path.isdir(full):
                names.add(entry)
            elif not folders and os.path.isfile(full) and entry.lower().endswith(extensions):
                names.add(entry)
    return sorted(names)


def model_path(kind: str, name: str) -> str:
    """Full path of a dropdown choice under ``models/v2m/<kind>/``; never outside those roots."""
    import folder_paths

    register_model_folders()
    if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise V2MError(f"invalid model name {name!r}: choose an entry of models/v2m/{kind}/")
    roots = folder_paths.get_folder_paths(f"v2m_{kind}")
    for root in roots:
        full = os.path.join(root, name)
        if os.path.exists(full):
            return full
    raise V2MError(f"{name!r} is not in models/v2m/{kind}/ (looked in {', '.join(roots)}): put it there and refresh")


# --------------------------------------------------------------------------------------------
# Stable Audio 3 files in ComfyUI's own model folders (its native SA3 nodes read them from there)

_HEADER_CACHE: dict[tuple[str, float, int], bool] = {}


def _comfy_files(folder: str) -> list[tuple[str, str]]:
    """``(name, full path)`` of the .safetensors files ComfyUI lists in one of its model folders
    (e.g. ``checkpoints``; names may contain subfolders, as ComfyUI's own loaders show them)."""
    return [(n, host_model_path(folder, n)) for n in host_model_files(folder) if n.lower().endswith(".safetensors")]


def _cached_check(path: str, check: Callable[[str], bool]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (path + ":" + check.__name__, st.st_mtime, st.st_size)
    if key not in _HEADER_CACHE:
        _HEADER_CACHE[key] = bool(check(path))  # reads the header only
    return _HEADER_CACHE[key]


def comfy_model_choices(folder: str, check: Callable[[str], bool]) -> list[str]:
    """Files of ComfyUI's ``models/<folder>/`` that ``check`` accepts, as ``"<folder>/<file>"`` choices."""
    return sorted({f"{folder}/{name}" for name, full in _comfy_files(folder) if _cached_check(full, check)})


def comfy_model_path(choice: str) -> str | None:
    """The file behind a :func:`comfy_model_choices` choice (only a file ComfyUI lists in that folder),
    or None if ``choice`` is not one (then it is a ``models/v2m/...`` name)."""
    folder, _, name = str(choice).partition("/")
    if folder not in ("checkpoints", "text_encoders") or not name:
        return None
    if name in host_model_files(folder):
        return host_model_path(folder, name)
    raise V2MError(f"{name!r} is not in ComfyUI's models/{folder}/ any more: put it back and refresh")


def sao_base_choices() -> list[str]:
    """Stable Audio Open 1.0 single files in ComfyUI's ``models/checkpoints/`` (used as bases: curve channel added on load)."""
    from ..model_io.formats import is_sao_file

    return comfy_model_choices("checkpoints", is_sao_file)


def sa3_base_choices() -> list[str]:
    """Stable Audio 3 single files in ComfyUI's ``models/checkpoints/`` (e.g. stable_audio_3_small_music_base)."""
    from ..model_io.formats import is_sa3_file

    return comfy_model_choices("checkpoints", is_sa3_file)


def t5_file_choices() -> list[str]:
    """ComfyUI's single-file T5 text encoders (``models/text_encoders/t5_base.safetensors``)."""
    from ..model_io.formats import is_t5_file

    return comfy_model_choices("text_encoders", is_t5_file)


def t5gemma_file_choices() -> list[str]:
    """ComfyUI's T5Gemma text-encoder files (``models/text_encoders/t5gemma_b_b_ul2.safetensors``)."""
    from ..model_io.formats import is_t5gemma_file

    return comfy_model_choices("text_encoders", is_t5gemma_file)


def download_folders() -> dict[str, str]:
    """Where downloads go inside ComfyUI: ``models/v2m/<kind>/`` (SAO 1.0: ComfyUI's ``models/checkpoints/``)."""
    import folder_paths

    register_model_folders()
    out = {kind: folder_paths.get_folder_paths(f"v2m_{kind}")[0] for kind in MODEL_KINDS}
    base = folder_paths.get_folder_paths("checkpoints") if "checkpoints" in getattr(folder_paths, "folder_names_and_paths", {}) else []
    out["base"] = base[0] if base else os.path.join(folder_paths.models_dir, "checkpoints")
    return out


def download_model(name: str) -> str:
    """Download a known model (``v2m-zero models list``) into ComfyUI's folders, with a progress bar."""
    from ..model_io.download import download

    bar = Progress(100)

    def progress(done: int, total: int) -> None:
        bar(int(100 * done / total) if total else 0, 100)

    return str(download(name, folders=download_folders(), progress=progress))


def model_path_or_download(kind: str, name: str, download: bool) -> str:
    """``model_path``, or (``download``: the node's "download if missing" switch) fetch a known model first."""
    from ..model_io.download import MODELS

    try:
        return model_path(kind, name)
    except V2MError:
        known = MODELS.get(name)
        if known is None or known.kind != kind:
            raise
        if not download:
            raise V2MError(f"{name!r} is not in models/v2m/{kind}/: switch on 'download_if_missing', or run "
                           f"`v2m-zero models download {name} --comfyui <ComfyUI folder>`") from None
    download_model(name)
    return model_path(kind, name)


def input_choices(content_type: str, example: str) -> list[str]:
    """Files of one content type (``video``, ``audio``) in the input folder, and always the pack's
    example file of that type (made on first use)."""
    import folder_paths

    root = folder_paths.get_input_directory()
    files = [f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))] if os.path.isdir(root) else []
    return sorted(set(folder_paths.filter_files_content_types(files, [content_type])) | {example})


def input_video_choices() -> list[str]:
    from ..core.examples import DEMO_CLIP_NAME

    return input_choices("video", DEMO_CLIP_NAME)


def input_audio_choices() -> list[str]:
    from ..core.examples import DEMO_SONG_NAME

    return input_choices("audio", DEMO_SONG_NAME)


def _examples() -> dict[str, Callable[[str], object]]:
    from ..core import examples

    return {examples.DEMO_CLIP_NAME: examples.make_demo_clip, examples.DEMO_SONG_NAME: examples.make_demo_song}


def input_file_path(name: str, what: str = "video") -> str:
    """Like :func:`confined_input_path`, but the pack's example files are made in the input folder when missing."""
    import folder_paths

    make = _examples().get(name)
    if make is not None:
        path = os.path.join(folder_paths.get_input_directory(), name)
        if not os.path.lexists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            make(path)  # written atomically
    return confined_input_path(name, what)


def input_fingerprint(name: str, what: str = "video") -> str:
    """What decides whether a loader must run again: the file's size and time (an example: its name,
    as it is remade identically when missing)."""
    if name in _examples():
        return name
    try:
        path = confined_input_path(name, what)
        return f"{path}:{os.path.getmtime(path)}:{os.path.getsize(path)}"
    except V2MError as exc:
        return str(exc)


def validate_input_file(name: str, what: str = "video") -> bool | str:
    """True, or the reason the loader would refuse ``name`` (ComfyUI shows it before the run)."""
    if name in _examples():
        return True  # made on first use
    try:
        confined_input_path(name, what)
    except V2MError as exc:
        return str(exc)
    return True


def host_model_files(folder_name: str) -> list[str]:
    """Files ComfyUI lists for one of its own model folders (``checkpoints``, ``text_encoders``...)."""
    import folder_paths

    try:
        return list(folder_paths.get_filename_list(folder_name))
    except (KeyError, OSError):
        return []


def host_model_path(folder_name: str, name: str) -> str:
    """Full path of a file in one of ComfyUI's model folders, or a V2MError naming the folder."""
    import folder_paths

    path = folder_paths.get_full_path(folder_name, name)
    if not path:
        raise V2MError(f"{name!r} is not in models/{folder_name}/: put it there and refresh")
    return path


def host_t5_tokenizer() -> str | None:
    """The T5 tokenizer folder ComfyUI ships for its own Stable Audio nodes (comfy/text_encoders/t5_tokenizer)."""
    import comfy

    for root in list(getattr(comfy, "__path__", []) or []):
        folder = os.path.join(root, "text_encoders", "t5_tokenizer")
        if os.path.isfile(os.path.join(folder, "tokenizer.json")):
            return folder
    return None


def confined_input_path(name: str, what: str = "video") -> str:
    """Resolve an upload-widget value to a file inside ComfyUI's input folder, or refuse."""
    import folder_paths

    if not isinstance(name, str) or not name.strip():
        raise MediaError(f"no {what} selected: upload a {what} file or pick one from the input folder")
    path = folder_paths.get_annotated_filepath(name)
    base = os.path.realpath(folder_paths.get_input_directory())
    real = os.path.realpath(path)
    if os.path.commonpath([base, real]) != base:
        raise MediaError(f"{name!r} points outside ComfyUI's input folder ({base}); only files in that folder can be used")
    if not os.path.isfile(real):
        raise MediaError(f"{what} {name!r} not found in ComfyUI's input folder ({base}): upload it first")
    return real


class Progress:
    """ComfyUI ProgressBar + interrupt check, usable as the core's progress callback."""

    def __init__(self, total: int | None):
        import comfy.utils

        self.total = max(int(total or 1), 1)
        self.bar = comfy.utils.ProgressBar(self.total)

    def __call__(self, done: int, total: int | None = None) -> None:
        if total:
            self.total = max(int(total), 1)
        self.bar.update_absolute(min(int(done), self.total), self.total)

    @staticmethod
    def check_interrupt() -> None:
        import comfy.model_management

        comfy.model_management.throw_exception_if_processing_interrupted()


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
    from ..core.timing import media

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
    from ..core.timing import media

    path = temp_video_path()
    temps.append(path)
    media.write_video(images_to_uint8(images), fps, path)
    return path


def remove_files(paths: list[str]) -> None:
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def temp_video_path(prefix: str = "v2m-") -> str:
    """A fresh .mp4 path in ComfyUI's temp folder (not created: our writers create it atomically)."""
    import uuid

    import folder_paths

    d = folder_paths.get_temp_directory()
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{prefix}{uuid.uuid4().hex[:16]}.mp4")


def images_to_uint8(images, size: int | None = None) -> np.ndarray:
    """IMAGE [B, H, W, C] float 0–1 → uint8 [B, h, w, 3], optionally shrunk (area) to short side."""
    import torch
    import torch.nn.functional as F

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise V2MError(f"expected an IMAGE batch [frames, height, width, channels], got {getattr(images, 'shape', type(images))}")
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


def _missing_folders(folder: str) -> list[str]:
    """``folder`` and its missing parents, deepest first."""
    out = []
    while folder and not os.path.exists(folder):
        out.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return out


def output_path(prefix: str, ext: str, width: int = 0, height: int = 0) -> tuple[str, str, str]:
    """A fresh file in the output folder via ComfyUI's own naming: (full path, file, subfolder).

    The folder is not created here: write through an ``OutputPlan`` (``create_parent=True``), which
    makes it and removes it again if the write fails.

    The prefix may name sub-folders, but never one outside the output folder (``..``, absolute paths
    and links out of it are refused), whatever the host's own checks do.
    """
    import folder_paths

    out_dir = folder_paths.get_output_directory()
    if not isinstance(prefix, str) or not prefix.strip() or os.path.isabs(prefix) or "\0" in prefix:
        raise V2MError(f"filename_prefix {prefix!r}: give a relative name such as 'video/V2M'")
    base = os.path.realpath(out_dir)
    wanted = os.path.realpath(os.path.join(out_dir, prefix))
    if os.path.commonpath([base, wanted]) != base or wanted == base:
        raise V2MError(f"filename_prefix {prefix!r} points outside ComfyUI's output folder ({base}): use a name inside it")
    missing = [p for p in _missing_folders(os.path.dirname(wanted)) if p.startswith(base)]
    full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, out_dir, width, height)
    for folder in missing:  # ComfyUI makes the folder; leave that to the write, which undoes it on failure
        try:
            os.rmdir(folder)
        except OSError:
            pass
    if os.path.commonpath([base, os.path.realpath(full_folder)]) != base:
        raise V2MError(f"filename_prefix {prefix!r} points outside ComfyUI's output folder ({base}): use a name inside it")
    file = f"{filename}_{counter:05}_.{ext}"
    return os.path.join(full_folder, file), file, subfolder


def release_memory(*objs: Callable | object) -> None:
    import gc

    for o in objs:
        close = getattr(o, "close", None)
        if callable(close):
            close()
    gc.collect()
    try:
        import comfy.model_management

        comfy.model_management.soft_empty_cache()
    except Exception:  # host without a cache to empty
        pass
