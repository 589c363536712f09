"""A small fake of the ComfyUI modules our nodes import, for host-free ``execute()`` tests.

It mirrors only the V3 surface we use (``comfy_api.latest``: io, ui, InputImpl, Types,
ComfyExtension; ``folder_paths``; ``comfy.utils.ProgressBar``; ``comfy.model_management``) and
records what the nodes did (progress updates, previews) so tests can assert on it. The real
host is exercised separately with ``shared/tools/comfy_host.sh``.
"""

from __future__ import annotations

import enum
import os
import sys
import types
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

STATE: dict[str, Any] = {"progress": [], "previews": [], "interrupt": False}


# ---------------------------------------------------------------- io
class UploadType(str, enum.Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class FolderType(str, enum.Enum):
    input = "input"
    output = "output"
    temp = "temp"


class Hidden(str, enum.Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


class _Input:
    def __init__(self, id, *args, optional=False, tooltip=None, default=None, min=None, max=None, step=None, options=None, **kw):
        if args:  # Combo.Input("name", options=...) positional form
            options = args[0]
        self.id, self.optional, self.tooltip, self.default = id, optional, tooltip, default
        self.min, self.max, self.step, self.options, self.extra = min, max, step, options, kw


class _Output:
    def __init__(self, id=None, display_name=None, tooltip=None, **kw):
        self.id, self.display_name, self.tooltip = id, display_name, tooltip


def _make_type(name: str, widget: bool = False):
    t = type(name, (), {})
    t.io_type = name
    t.widget = widget
    t.Input = type(f"{name}Input", (_Input,), {"io_type": name, "widget": widget})
    t.Output = type(f"{name}Output", (_Output,), {"io_type": name})
    return t


class Schema:
    def __init__(self, node_id, display_name=None, category="", inputs=None, outputs=None, description="", is_output_node=False, hidden=None, **kw):
        self.node_id, self.display_name, self.category = node_id, display_name, category
        self.inputs, self.outputs = inputs or [], outputs or []
        self.description, self.is_output_node, self.hidden = description, is_output_node, hidden or []


class ComfyNode:
    hidden = types.SimpleNamespace(prompt=None, extra_pnginfo=None, unique_id="1")

    @classmethod
    def define_schema(cls):
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs):
        raise NotImplementedError


class NodeOutput:
    def __init__(self, *args, ui=None, expand=None, block_execution=None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if self.args else None

    def __getitem__(self, i):
        return self.args[i]


def Custom(io_type: str):
    return _make_type(io_type)


io = types.SimpleNamespace(
    UploadType=UploadType,
    FolderType=FolderType,
    Hidden=Hidden,
    Schema=Schema,
    ComfyNode=ComfyNode,
    NodeOutput=NodeOutput,
    Custom=Custom,
    Boolean=_make_type("BOOLEAN", True),
    Int=_make_type("INT", True),
    Float=_make_type("FLOAT", True),
    String=_make_type("STRING", True),
    Combo=_make_type("COMBO", True),
    Image=_make_type("IMAGE"),
    Audio=_make_type("AUDIO"),
    Video=_make_type("VIDEO"),
    Latent=_make_type("LATENT"),
    Mask=_make_type("MASK"),
)


# ---------------------------------------------------------------- ui
class SavedResult(dict):
    def __init__(self, filename, subfolder, type):
        super().__init__(filename=filename, subfolder=subfolder, type=getattr(type, "value", type))


class _Preview:
    kind = "preview"

    def __init__(self, value=None, cls=None, **kw):
        self.value = value
        STATE["previews"].append((self.kind, value))


class PreviewImage(_Preview):
    kind = "image"


class PreviewAudio(_Preview):
    kind = "audio"


class PreviewVideo(_Preview):
    kind = "video"


class PreviewText(_Preview):
    kind = "text"


ui = types.SimpleNamespace(SavedResult=SavedResult, PreviewImage=PreviewImage, PreviewAudio=PreviewAudio, PreviewVideo=PreviewVideo, PreviewText=PreviewText)


# ---------------------------------------------------------------- video inputs
@dataclass
class VideoComponents:
    images: Any
    audio: Any = None
    frame_rate: Fraction = Fraction(24)
    metadata: Any = None


class VideoFromFile:
    def __init__(self, file):
        self._file = file

    def get_stream_source(self):
        return self._file

    def get_components(self):  # full decode, as the real host does (tests keep clips tiny)
        import torch

        from v2m_zero.core.timing import media

        src = self._file
        info = media.probe_video(src)
        if hasattr(src, "seek"):
            src.seek(0)
        frames = np.concatenate([b.frames for b in media.iter_frames(src, size=None)])
        return VideoComponents(images=torch.from_numpy(frames).float() / 255, frame_rate=Fraction(info.fps).limit_denominator(100000))

    def get_duration(self):
        from v2m_zero.core.timing import media

        return media.probe_video(self._file).duration


class VideoFromComponents:
    def __init__(self, components):
        self._c = components

    def get_components(self):
        return self._c


class ComfyExtension:
    async def on_load(self):
        pass

    async def get_node_list(self):
        raise NotImplementedError


# ---------------------------------------------------------------- folder_paths
def _folder_paths_module(root: str):
    fp = types.ModuleType("folder_paths")
    fp.models_dir = os.path.join(root, "models")
    fp.folder_names_and_paths = {}
    dirs = {"input": os.path.join(root, "input"), "output": os.path.join(root, "output"), "temp": os.path.join(root, "temp")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    fp.get_input_directory = lambda: dirs["input"]
    fp.get_output_directory = lambda: dirs["output"]
    fp.get_temp_directory = lambda: dirs["temp"]

    def annotated(name):
        for tag, key in (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp")):
            if name.endswith(tag):
                return name[: -len(tag)].rstrip(), dirs[key]
        return name, None

    def get_annotated_filepath(name, default_dir=None):
        name, base = annotated(name)
        return os.path.join(base or default_dir or dirs["input"], name)

    fp.get_annotated_filepath = get_annotated_filepath
    fp.exists_annotated_filepath = lambda name: os.path.exists(get_annotated_filepath(name))

    def filter_files_content_types(files, kinds):
        ext = {"video": (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"), "audio": (".wav", ".mp3", ".flac", ".m4a", ".ogg"), "image": (".png", ".jpg", ".jpeg", ".webp")}
        ok = tuple(e for k in kinds for e in ext.get(k, ()))
        return [f for f in files if f.lower().endswith(ok)]

    fp.filter_files_content_types = filter_files_content_types

    def add_model_folder_path(name, path, is_default=False):
        paths, _ = fp.folder_names_and_paths.setdefault(name, ([], set()))
        if path not in paths:
            paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])

    def get_save_image_path(prefix, output_dir, w=0, h=0):
        # as ComfyUI's: the next counter in the folder, which it creates when missing
        subfolder, filename = os.path.split(os.path.normpath(prefix))
        full = os.path.join(output_dir, subfolder)
        os.makedirs(full, exist_ok=True)
        existing = [f for f in os.listdir(full) if f.startswith(filename + "_")]
        return full, filename, len(existing) + 1, subfolder, prefix

    fp.get_save_image_path = get_save_image_path
    return fp


# ---------------------------------------------------------------- comfy.utils / model_management
class InterruptProcessingException(Exception):
    pass


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        STATE["progress"].append((self.current, self.total))

    def update(self, value):
        self.update_absolute(self.current + value)


def throw_exception_if_processing_interrupted():
    if STATE["interrupt"]:
        STATE["interrupt"] = False
        raise InterruptProcessingException()


def install(root: str) -> None:
    """Put the fake modules in sys.modules (fresh folders under ``root``)."""
    import torch

    latest = types.ModuleType("comfy_api.latest")
    latest.io, latest.ui, latest.ComfyExtension = io, ui, ComfyExtension
    latest.InputImpl = types.SimpleNamespace(VideoFromFile=VideoFromFile, VideoFromComponents=VideoFromComponents)
    latest.Types = types.SimpleNamespace(VideoComponents=VideoComponents)
    api = types.ModuleType("comfy_api")
    api.latest = latest
    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.processing_interrupted = lambda: STATE["interrupt"]
    mm.InterruptProcessingException = InterruptProcessingException
    mm.soft_empty_cache = lambda *a, **k: None
    comfy.utils, comfy.model_management = utils, mm
    sys.modules.update(
        {
            "comfy_api": api,
            "comfy_api.latest": latest,
            "comfy": comfy,
            "comfy.utils": utils,
            "comfy.model_management": mm,
            "folder_paths": _folder_paths_module(root),
        }
    )
    STATE.update(progress=[], previews=[], interrupt=False)
