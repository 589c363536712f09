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
    def __init__(self, id, *args, optional=False, tooltip=None, default=None, min=None, max=None, step=None,
                 options=None, **kw):
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
    def __init__(self, node_id, display_name=None, category="", inputs=None, outputs=None, description="",
                 is_output_node=False, hidden=None, **kw):
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


ui = types.SimpleNamespace(SavedResult=SavedResult, PreviewImage=PreviewImage, PreviewAudio=PreviewAudio,
                           PreviewVideo=PreviewVideo, PreviewText=PreviewText)


# ---------------------------------------------------------------- video inputs
@dataclass
class VideoComponents:
    images: Any
    audio: Any = None
    frame_rate: Fraction = Fraction(24)
    metadata: Any = None
    alpha: Any = None  # ComfyUI 0.33: a MASK of the frames' alpha, or None


class VideoInput:
    """As comfy_api's VideoInput: a default get_stream_source encodes to a BytesIO via save_to."""

    def get_stream_source(self):
        import io as _io

        buf = _io.BytesIO()
        self.save_to(buf)
        buf.seek(0)
        return buf

    def get_dimensions(self):
        c = self.get_components()
        return c.images.shape[2], c.images.shape[1]

    def get_duration(self):
        c = self.get_components()
        return float(c.images.shape[0] / c.frame_rate)

    def get_active_trim_window(self):  # ComfyUI 0.33: no trim unless a subclass has one
        return 0.0, 0.0

    def get_bit_depth(self):
        return 8

    def get_color_space(self):
        return "auto"


class VideoFromFile(VideoInput):
    """As ComfyUI 0.33's: a path or BytesIO with an optional trim window (Trim Video's ``as_trimmed``):
    ``get_stream_source`` is still the whole file; frames with start <= t < start + duration are shown
    (duration 0: to the end; a negative start counts from the end); save_to copies the streams of an
    untrimmed file and re-encodes a trimmed one."""

    def __init__(self, file, *, start_time: float = 0, duration: float = 0, crop=None):
        self._file = file
        self._start, self._duration = start_time, duration
        self._crop = crop  # the newest comfy_api: (x, y, w, h) of the frames, kept private as there

    def get_stream_source(self):
        if hasattr(self._file, "seek"):
            self._file.seek(0)
        return self._file

    def _raw_duration(self):
        from v2m_zero.core.timing import media

        return media.probe_video(self.get_stream_source()).duration

    def get_active_trim_window(self):
        start = self._start
        if start < 0:
            start = max(self._raw_duration() + start, 0.0)
        return float(start), float(self._duration)

    def as_trimmed(self, start_time=0, duration=0, strict_duration=True):
        trimmed = VideoFromFile(self.get_stream_source(), start_time=start_time + self._start, duration=duration,
                                crop=self._crop)
        if trimmed.get_duration() < duration and strict_duration:
            return None
        return trimmed

    def get_dimensions(self):
        import av

        with av.open(self.get_stream_source()) as c:
            s = c.streams.video[0]
            if self._crop is not None:
                x, y, w, h = self._crop
                return min(w, s.width - x), min(h, s.height - y)
            return s.width, s.height

    def get_components(self):  # full decode, as the real host does (tests keep clips tiny)
        import torch

        from v2m_zero.core.timing import media

        info = media.probe_video(self.get_stream_source())
        start, duration = self.get_active_trim_window()
        end = start + duration if duration else np.inf
        kept, times = [], []
        for b in media.iter_frames(self.get_stream_source(), size=None):
            t = b.times + info.start_time
            sel = (t >= start) & (t < end)
            kept.append(b.frames[sel])
            times.append(t[sel])
        frames = np.concatenate(kept)
        if self._crop is not None:
            x, y, w, h = self._crop
            frames = frames[:, y:y + h, x:x + w]
        audio = None
        if info.has_audio:
            wave, sr = media.decode_audio(self.get_stream_source())
            wave = wave[:, int(round(start * sr)):]
            if duration:
                wave = wave[:, :int(duration * sr)]
            audio = {"waveform": torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None], "sample_rate": int(sr)}
        return VideoComponents(images=torch.from_numpy(frames).float() / 255, audio=audio,
                               frame_rate=Fraction(info.fps).limit_denominator(100000))

    def get_duration(self):
        raw = self._raw_duration()
        from_start = min(raw, -self._start) if self._start < 0 else raw - self._start
        return min(self._duration, from_start) if self._duration else from_start

    def save_to(self, path, format="auto", codec="auto", metadata=None, **kw):
        import av

        if self.get_active_trim_window() != (0.0, 0.0) or self._crop is not None:  # re-encoded, as the host does
            c = self.get_components()
            return VideoFromComponents(c).save_to(path, format=format, codec=codec, metadata=metadata)
        with (av.open(self.get_stream_source()) as src,
              av.open(path, mode="w", format=None if isinstance(path, str) else "mp4") as out):
            streams = {s: out.add_stream_from_template(template=s, opaque=True)
                       for s in src.streams if s.type in ("video", "audio")}
            for packet in src.demux():
                if packet.stream in streams and packet.dts is not None:
                    packet.stream = streams[packet.stream]
                    out.mux(packet)


class VideoFromComponents(VideoInput):
    """As ComfyUI's: frames [N, H, W, 3] float + optional AUDIO + Fraction rate; save_to encodes H.264 + AAC."""

    def __init__(self, components, bit_depth: int = 8):
        self._c = components
        self._bit_depth = bit_depth

    def get_bit_depth(self):
        return self._bit_depth

    def get_components(self):
        return VideoComponents(images=self._c.images, audio=self._c.audio, frame_rate=self._c.frame_rate)

    def save_to(self, path, format="auto", codec="auto", metadata=None, **kw):
        import math

        import av

        c = self._c
        with av.open(path, mode="w", format=None if isinstance(path, str) else "mp4") as out:
            rate = Fraction(round(c.frame_rate * 1000), 1000)
            vs = out.add_stream("h264", rate=rate)
            vs.width, vs.height, vs.pix_fmt = c.images.shape[2], c.images.shape[1], "yuv420p"
            aus = out.add_stream("aac", rate=int(c.audio["sample_rate"])) if c.audio else None
            for frame in c.images:
                img = (frame * 255).clamp(0, 255).byte().cpu().numpy()
                out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")))
            out.mux(vs.encode(None))
            if aus is not None:
                sr = int(c.audio["sample_rate"])
                wave = c.audio["waveform"][:, :, : math.ceil((sr / rate) * c.images.shape[0])]
                fr = av.AudioFrame.from_ndarray(wave.movedim(2, 1).reshape(1, -1).float().numpy(), format="flt",
                                                layout="mono" if wave.shape[1] == 1 else "stereo")
                fr.sample_rate, fr.pts = sr, 0
                out.mux(aus.encode(fr))
                out.mux(aus.encode(None))


class ComfyExtension:
    async def on_load(self):
        pass

    async def get_node_list(self):
        raise NotImplementedError


# ---------------------------------------------------------------- folder_paths
SUPPORTED_PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


def _folder_paths_module(root: str):
    fp = types.ModuleType("folder_paths")
    fp.models_dir = os.path.join(root, "models")
    fp.supported_pt_extensions = SUPPORTED_PT_EXTENSIONS
    # ComfyUI's own model folders, as folder_paths defines them (the ones our nodes read)
    fp.folder_names_and_paths = {
        "checkpoints": ([os.path.join(fp.models_dir, "checkpoints")], SUPPORTED_PT_EXTENSIONS),
        "text_encoders": ([os.path.join(fp.models_dir, "text_encoders"), os.path.join(fp.models_dir, "clip")],
                          SUPPORTED_PT_EXTENSIONS),
        "vae": ([os.path.join(fp.models_dir, "vae")], SUPPORTED_PT_EXTENSIONS),
    }
    legacy = {"clip": "text_encoders", "unet": "diffusion_models"}
    fp.map_legacy = lambda name: legacy.get(name, name)
    dirs = {"input": os.path.join(root, "input"), "output": os.path.join(root, "output"),
            "temp": os.path.join(root, "temp")}
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

    def within(base, path):
        base, path = os.path.realpath(base), os.path.realpath(path)
        return os.path.commonpath((base, path)) == base

    def get_annotated_filepath(name, default_dir=None):
        """As ComfyUI 0.33's: a path that leaves its folder raises ValueError("Invalid file path: ...")."""
        name, base = annotated(name)
        base = base or default_dir or dirs["input"]
        path = os.path.abspath(os.path.join(base, name))
        if not within(base, path):
            raise ValueError(f"Invalid file path: {name!r}")
        return path

    def exists_annotated_filepath(name):
        name, base = annotated(name)
        base = base or dirs["input"]
        path = os.path.abspath(os.path.join(base, name))
        return within(base, path) and os.path.exists(path)

    fp.get_annotated_filepath = get_annotated_filepath
    fp.exists_annotated_filepath = exists_annotated_filepath

    def filter_files_content_types(files, kinds):
        ext = {"video": (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"),
               "audio": (".wav", ".mp3", ".flac", ".m4a", ".ogg"), "image": (".png", ".jpg", ".jpeg", ".webp")}
        ok = tuple(e for k in kinds for e in ext.get(k, ()))
        return [f for f in files if f.lower().endswith(ok)]

    fp.filter_files_content_types = filter_files_content_types

    def add_model_folder_path(name, path, is_default=False):
        paths, _ = fp.folder_names_and_paths.setdefault(fp.map_legacy(name), ([], set()))
        if path not in paths:
            paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[fp.map_legacy(name)][0])

    def get_filename_list(name):
        # as ComfyUI's: files under every folder of that kind, recursively, relative, filtered by extension
        paths, exts = fp.folder_names_and_paths[fp.map_legacy(name)]
        out = set()
        for base in paths:
            for dirpath, subdirs, files in os.walk(base, followlinks=True):
                subdirs[:] = [d for d in subdirs if d != ".git"]
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), base)
                    if not exts or os.path.splitext(rel)[-1].lower() in exts:
                        out.add(rel)
        return sorted(out)

    def get_full_path(name, filename):
        name = fp.map_legacy(name)
        if name not in fp.folder_names_and_paths:
            return None
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for base in fp.folder_names_and_paths[name][0]:
            full = os.path.join(base, filename)
            if os.path.isfile(full):
                return full
        return None

    def get_full_path_or_raise(name, filename):
        full = get_full_path(name, filename)
        if full is None:
            raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")
        return full

    fp.get_filename_list, fp.get_full_path, fp.get_full_path_or_raise = (get_filename_list, get_full_path,
                                                                          get_full_path_or_raise)

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
class InterruptProcessingException(BaseException):
    """As ComfyUI's (0.33: a BaseException, so ``except Exception`` does not swallow a cancel)."""


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
    # a package folder, as the real one: comfy/text_encoders/t5_tokenizer is where ComfyUI ships T5's tokenizer
    comfy.__path__ = [os.path.join(root, "comfy_pkg", "comfy")]
    os.makedirs(comfy.__path__[0], exist_ok=True)
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


def ship_t5_tokenizer(root: str, tokenizer) -> str:
    """Put a tokenizer where ComfyUI ships T5's (comfy/text_encoders/t5_tokenizer); returns the folder."""
    import comfy

    folder = os.path.join(comfy.__path__[0], "text_encoders", "t5_tokenizer")
    tokenizer.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------- core nodes (as ComfyUI's, for interop tests)
def _save_audio(audio, filename_prefix, folder, kind):
    """comfy_extras.nodes_audio.save_audio for flac: one file per batch item, written with PyAV."""
    import io as _io

    import av
    import folder_paths

    full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, folder)
    results = []
    for waveform in audio["waveform"].cpu():
        file = f"{filename}_{counter:05}_.flac"
        buf = _io.BytesIO()
        out = av.open(buf, mode="w", format="flac")
        layout = "mono" if waveform.shape[0] == 1 else "stereo"
        stream = out.add_stream("flac", rate=audio["sample_rate"], layout=layout)
        frame = av.AudioFrame.from_ndarray(waveform.movedim(0, 1).reshape(1, -1).float().numpy(), format="flt",
                                           layout=layout)
        frame.sample_rate, frame.pts = audio["sample_rate"], 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        out.close()
        with open(os.path.join(full, file), "wb") as f:
            f.write(buf.getbuffer())
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    STATE["previews"].append(("audio", results))
    return ()


def _load_audio(audio):
    """comfy_extras.nodes_audio.LoadAudio: PyAV decode → float32 [1, C, T] at the file's rate."""
    import av
    import folder_paths
    import torch

    with av.open(folder_paths.get_annotated_filepath(audio)) as af:
        stream = af.streams.audio[0]
        sr, n = stream.codec_context.sample_rate, stream.channels
        frames = []
        for frame in af.decode(streams=stream.index):
            buf = torch.from_numpy(frame.to_ndarray())
            if buf.shape[0] != n:
                buf = buf.view(-1, n).t()
            frames.append(buf)
    wav = torch.cat(frames, dim=1)
    if not wav.dtype.is_floating_point:
        wav = wav.float() / (2 ** 15 if wav.dtype == torch.int16 else 2 ** 31)
    return ({"waveform": wav.unsqueeze(0), "sample_rate": sr},)


def _save_video(video, filename_prefix, format="auto", codec=None):
    """SaveVideo: 0.3.64 sends format and codec as two strings; 0.33 nests the codec in the format
    (a DynamicCombo: ``{"format": "mp4", "codec": {"codec": "auto"}}``)."""
    import folder_paths

    if isinstance(format, dict):
        codec = format.get("codec") or codec
        format = format["format"]
    if isinstance(codec, dict):
        codec = codec["codec"]
    codec = codec or "auto"

    w, h = video.get_dimensions()
    full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix,
                                                                             folder_paths.get_output_directory(), w, h)
    file = f"{filename}_{counter:05}_.mp4"
    video.save_to(os.path.join(full, file), format=format, codec=codec)
    STATE["previews"].append(("video", [{"filename": file, "subfolder": subfolder, "type": "output"}]))
    return ()


def _create_video(images, fps, audio=None, bit_depth=8):
    return (VideoFromComponents(VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps)),
                                bit_depth=bit_depth),)


def _get_components(video):
    """0.33: images, audio, fps, bit_depth, color_space (0.3.64 had the first three)."""
    c = video.get_components()
    return (c.images, c.audio, float(c.frame_rate), video.get_bit_depth(), video.get_color_space())


def _trim_video(video, start_time=0.0, duration=0.0, strict_duration=False):
    """Trim Video (node id "Video Slice", ComfyUI 0.33)."""
    trimmed = video.as_trimmed(start_time, duration, strict_duration=strict_duration)
    if trimmed is None:
        raise ValueError(f"Failed to slice video: start {start_time}, duration {duration}")
    return (trimmed,)


def _core_nodes():
    import folder_paths

    return {
        "SaveAudio": lambda audio, filename_prefix="audio/ComfyUI": _save_audio(audio, filename_prefix,
                                                                                folder_paths.get_output_directory(),
                                                                                "output"),
        "PreviewAudio": lambda audio: _save_audio(audio, "ComfyUI_temp_", folder_paths.get_temp_directory(), "temp"),
        "LoadAudio": _load_audio,
        "LoadVideo": lambda file: (VideoFromFile(folder_paths.get_annotated_filepath(file)),),
        "CreateVideo": _create_video,
        "GetVideoComponents": _get_components,
        "Video Slice": _trim_video,
        "SaveVideo": _save_video,
        "PreviewImage": lambda images: STATE["previews"].append(("image", images)) or (),
    }


def _check_widgets(nid, ct, cls, inputs: dict, named) -> None:
    """As ComfyUI (0.3.64 and 0.33) at queue time: a widget value out of its range or not in its dropdown
    is refused, except for inputs the node's validate_inputs names (it checks those itself)."""
    for inp in cls.define_schema().inputs:
        if inp.id not in inputs or inp.id in named or isinstance(inputs[inp.id], list):
            continue
        val = inputs[inp.id]
        if inp.options is not None and val not in inp.options:
            raise RuntimeError(f"{nid} {ct}: Value not in list: {inp.id}: {val!r}")
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            if inp.min is not None and val < inp.min:
                raise RuntimeError(f"{nid} {ct}: Value {val} smaller than min of {inp.min}: {inp.id}")
            if inp.max is not None and val > inp.max:
                raise RuntimeError(f"{nid} {ct}: Value {val} bigger than max of {inp.max}: {inp.id}")


def run_graph(graph: dict, nodes: list) -> dict:
    """Execute an API-format prompt as ComfyUI does: validate, then run each node once its inputs
    are ready, links resolved to upstream outputs; optional inputs left out are not passed.
    Returns {node id: outputs tuple}."""
    ours = {n.define_schema().node_id: n for n in nodes}
    core = _core_nodes()
    done: dict[str, tuple] = {}
    pending = dict(graph)
    while pending:
        ready = [nid for nid, n in pending.items()
                 if all(not isinstance(v, list) or v[0] in done for v in n["inputs"].values())]
        if not ready:
            raise RuntimeError(f"graph has a cycle or a missing node: {sorted(pending)}")
        for nid in sorted(ready, key=lambda x: int(x) if x.isdigit() else x):
            node = pending.pop(nid)
            kw = {k: (done[v[0]][v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
            ct = node["class_type"]
            if ct in ours:
                cls = ours[ct]
                check = getattr(cls, "validate_inputs", None)
                import inspect

                names = inspect.signature(check).parameters if check is not None else {}
                _check_widgets(nid, ct, cls, node["inputs"], names)
                if check is not None:
                    ok = check(**{k: v for k, v in kw.items() if k in names})
                    if ok is not True:
                        raise RuntimeError(f"{nid} {ct}: validation failed: {ok}")
                out = cls.execute(**kw)
                done[nid] = tuple(out.args) if out.args else ()
            elif ct in core:
                done[nid] = tuple(core[ct](**kw))
            else:
                raise KeyError(f"{nid}: no such node {ct!r}")
    return done
