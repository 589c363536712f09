"""Model folders: ``models/v2m/<kind>/`` dropdown choices and paths, ComfyUI's own model files, downloads."""

from __future__ import annotations

import os

from ...core.errors import V2MError
from .runtime import Progress

MODEL_KINDS = ("encoders", "checkpoints", "text_encoders", "codecs", "prompt", "loras", "music_encoders",
               "beat_trackers")


def register_model_folders() -> None:
    """``models/v2m/<kind>/`` for every kind, registered once with ComfyUI's folder_paths."""
    import folder_paths

    from ...model_io.folders import register_models_root

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

_FORMAT_CACHE: dict[tuple[str, float, int], str | None] = {}


def _comfy_files(folder: str) -> list[tuple[str, str]]:
    """``(name, full path)`` of the .safetensors files ComfyUI lists in one of its model folders
    (e.g. ``checkpoints``; names may contain subfolders, as ComfyUI's own loaders show them)."""
    return [(n, host_model_path(folder, n)) for n in host_model_files(folder) if n.lower().endswith(".safetensors")]


def _format_id(path: str) -> str | None:
    """The weights format of ``path`` (``model_io.formats``: header only, cached per file version); None if unknown."""
    from ...model_io import formats

    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime, st.st_size)
    if key not in _FORMAT_CACHE:
        try:
            fmt = formats.detect(path)
        except Exception:  # an unreadable or truncated file is simply not offered
            fmt = None
        _FORMAT_CACHE[key] = fmt.id if fmt else None
    return _FORMAT_CACHE[key]


def format_choices(folder: str, *format_ids: str) -> list[str]:
    """Files of ComfyUI's ``models/<folder>/`` whose weights format (``model_io.formats``) is one of
    ``format_ids``, as ``"<folder>/<file>"`` choices (e.g. ``("checkpoints", "sao1", "sa3")``)."""
    return sorted({f"{folder}/{name}" for name, full in _comfy_files(folder) if _format_id(full) in format_ids})


def comfy_model_path(choice: str) -> str | None:
    """The file behind a :func:`format_choices` choice (only a file ComfyUI lists in that folder),
    or None if ``choice`` is not one (then it is a ``models/v2m/...`` name)."""
    folder, _, name = str(choice).partition("/")
    if folder not in ("checkpoints", "text_encoders") or not name:
        return None
    if name in host_model_files(folder):
        return host_model_path(folder, name)
    raise V2MError(f"{name!r} is not in ComfyUI's models/{folder}/ any more: put it back and refresh")


def download_folders() -> dict[str, str]:
    """Where downloads go inside ComfyUI: ``models/v2m/<kind>/`` (SAO 1.0: ComfyUI's ``models/checkpoints/``)."""
    import folder_paths

    register_model_folders()
    out = {kind: folder_paths.get_folder_paths(f"v2m_{kind}")[0] for kind in MODEL_KINDS}
    base = (folder_paths.get_folder_paths("checkpoints")
            if "checkpoints" in getattr(folder_paths, "folder_names_and_paths", {}) else [])
    out["base"] = base[0] if base else os.path.join(folder_paths.models_dir, "checkpoints")
    return out


def download_model(name: str) -> str:
    """Download a known model (``v2m-zero models list``) into ComfyUI's folders, with a progress bar."""
    from ...model_io.download import download

    bar = Progress(100)

    def progress(done: int, total: int) -> None:
        bar(int(100 * done / total) if total else 0, 100)

    return str(download(name, folders=download_folders(), progress=progress))


def model_path_or_download(kind: str, name: str, download: bool) -> str:
    """``model_path``, or (``download``: the node's "download if missing" switch) fetch a known model first."""
    from ...model_io.download import MODELS

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
