"""Input and output files: upload-widget choices confined to the input folder, temp and output paths."""

from __future__ import annotations

import os
from typing import Callable

from ...core.errors import MediaError, V2MError


def input_choices(content_type: str, example: str) -> list[str]:
    """Files of one content type (``video``, ``audio``) in the input folder, and always the pack's
    example file of that type (made on first use)."""
    import folder_paths

    root = folder_paths.get_input_directory()
    files = [f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))] if os.path.isdir(root) else []
    return sorted(set(folder_paths.filter_files_content_types(files, [content_type])) | {example})


def input_video_choices() -> list[str]:
    from ...core.examples import DEMO_CLIP_NAME

    return input_choices("video", DEMO_CLIP_NAME)


def input_audio_choices() -> list[str]:
    from ...core.examples import DEMO_SONG_NAME

    return input_choices("audio", DEMO_SONG_NAME)


def _examples() -> dict[str, Callable[[str], object]]:
    from ...core import examples

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


def confined_input_path(name: str, what: str = "video") -> str:
    """Resolve an upload-widget value to a file inside ComfyUI's input folder, or refuse."""
    import folder_paths

    if not isinstance(name, str) or not name.strip():
        raise MediaError(f"no {what} selected: upload a {what} file or pick one from the input folder")
    base = os.path.realpath(folder_paths.get_input_directory())
    try:
        path = folder_paths.get_annotated_filepath(name)
    except ValueError:  # ComfyUI 0.33+ refuses a path that leaves its folder ("Invalid file path: ...")
        path = os.path.join(os.sep, "..")  # outside: our own line follows
    real = os.path.realpath(path)
    if os.path.commonpath([base, real]) != base:
        raise MediaError(f"{name!r} points outside ComfyUI's input folder "
                         f"({base}); only files in that folder can be used")
    if not os.path.isfile(real):
        raise MediaError(f"{what} {name!r} not found in ComfyUI's input folder ({base}): upload it first")
    return real


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


def _expand_variables(prefix: str, width: int, height: int) -> str:
    """ComfyUI's filename variables (``%year%``, ``%width%``...), expanded as its ``get_save_image_path`` does."""
    import time

    now = time.localtime()
    values = {"width": width, "height": height, "year": now.tm_year, "month": f"{now.tm_mon:02}",
              "day": f"{now.tm_mday:02}", "hour": f"{now.tm_hour:02}", "minute": f"{now.tm_min:02}",
              "second": f"{now.tm_sec:02}"}
    for key, value in values.items():
        prefix = prefix.replace(f"%{key}%", str(value))
    return prefix


def output_path(prefix: str, ext: str, width: int = 0, height: int = 0) -> tuple[str, str, str]:
    """A fresh file in the output folder via ComfyUI's own naming: (full path, file, subfolder).

    Only a plan: no folder is created (or removed) here. Write through an ``OutputPlan``
    (``create_parent=True``), which makes the folder when writing and removes it again if the write fails.

    The prefix may name sub-folders, but never one outside the output folder (``..``, absolute paths
    and links out of it are refused), whatever the host's own checks do.
    """
    import folder_paths

    out_dir = folder_paths.get_output_directory()
    if not isinstance(prefix, str) or not prefix.strip() or os.path.isabs(prefix) or "\0" in prefix:
        raise V2MError(f"filename_prefix {prefix!r}: give a relative name such as 'video/V2M'")
    expanded = _expand_variables(prefix, width, height) if "%" in prefix else prefix
    base = os.path.realpath(out_dir)
    wanted = os.path.realpath(os.path.join(out_dir, expanded))
    if os.path.commonpath([base, wanted]) != base or wanted == base:
        raise V2MError(f"filename_prefix {prefix!r} points outside ComfyUI's "
                       f"output folder ({base}): use a name inside it")
    subfolder, filename = os.path.split(os.path.normpath(expanded))
    full_folder = os.path.join(out_dir, subfolder)
    if os.path.isdir(full_folder):  # ComfyUI's own counter; it creates nothing for a folder that exists
        full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            expanded, out_dir, width, height)
    else:  # a new folder (ComfyUI would create it to count nothing in it): the first file, folder made on writing
        counter = 1
    if os.path.commonpath([base, os.path.realpath(full_folder)]) != base:
        raise V2MError(f"filename_prefix {prefix!r} points outside ComfyUI's "
                       f"output folder ({base}): use a name inside it")
    file = f"{filename}_{counter:05}_.{ext}"
    return os.path.join(full_folder, file), file, subfolder
