"""Video in: load a file from the input folder, and encode frames into features."""

from __future__ import annotations


from comfy_api.latest import InputImpl, io

from ..core import examples
from ..core.timing import encoders, media
from ..core.timing.spec import encoder_name
from ..core.errors import V2MError
from ..core.precision import PRECISIONS
from .host import convert, files, models, requirements, runtime
from .types import FeaturesType, ModelType

CATEGORY = "V2M-Zero/video"


class LoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_LoadVideo",
            display_name="Load Video (V2M)",
            category=CATEGORY,
            description="Load a video from ComfyUI's input folder without decoding "
                        "it, with its frame rate, exact duration and frame count.",
            inputs=[
                io.Combo.Input(
                    "file",
                    options=files.input_video_choices(),
                    upload=io.UploadType.video,
                    tooltip="A video in ComfyUI's input folder (upload one with the button). "
                            f"{examples.DEMO_CLIP_NAME}: the pack's example clip (12 s, seven cuts, "
                            "made by the pack's own code), written into the input folder on first use.",
                ),
            ],
            outputs=[
                io.Video.Output(display_name="video"),
                io.Float.Output(display_name="fps"),
                io.Float.Output(display_name="duration"),
                io.Int.Output(display_name="frame_count"),
            ],
        )

    @classmethod
    def execute(cls, file) -> io.NodeOutput:
        path = files.input_file_path(file)
        info = media.probe_video(path)
        return io.NodeOutput(InputImpl.VideoFromFile(path), float(info.fps), float(info.duration),
                             int(info.frame_count))

    @classmethod
    def fingerprint_inputs(cls, file):
        return files.input_fingerprint(file)

    @classmethod
    def validate_inputs(cls, file):
        ok = requirements.check(("av",))
        return files.validate_input_file(file) if ok is True else ok


AUTO = "auto"
ENCODER_CHOICES = ["pixels", "histogram", "dinov2", AUTO]


def _dinov2_choices() -> list[str]:
    known = {"dinov2-small", "dinov2-base", "dinov2-large", "dinov2-giant"}  # downloadable (v2m-zero models list)
    return sorted(set(models.model_choices("encoders", folders=True)) | known)


class EncodeFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_EncodeFrames",
            display_name="Encode Frames (V2M)",
            category=CATEGORY,
            description="Stream a video's frames through a frame encoder (DINOv2 as in the "
                        "paper, or a weightless one) into per-frame features with timestamps.",
            inputs=[
                io.Video.Input("video", optional=True,
                               tooltip="A VIDEO (decoded frame by frame, never whole). Connect this or images."),
                io.Image.Input("images", optional=True,
                               tooltip="Frames from a video-generation node; also connect their fps."),
                io.Combo.Input("encoder", options=ENCODER_CHOICES, default="pixels",
                               tooltip="dinov2: the paper's default (weights in models/v2m/encoders/). pixels "
                                       "/ histogram: weightless, fast. auto: the encoder the connected model "
                                       "was trained with (its curve spec; pixels when no model is connected)."),
                io.Float.Input("sample_fps", default=0.0, min=0.0, max=240.0, step=0.5,
                               tooltip="Frames per second to encode; 0 = every frame (cut times accurate to a frame)."),
                io.Int.Input("size", default=0, min=0, max=1024, step=8,
                             tooltip="Shorter side to decode frames at; 0 = the encoder's own size."),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Frame rate of the images input (ignored for a VIDEO, which carries its own)."),
                io.Combo.Input("dinov2_model", options=_dinov2_choices(), default="dinov2-large",
                               tooltip="DINOv2 folder in models/v2m/encoders/ (a Hugging Face model folder)."),
                io.Combo.Input("pooling", options=["mean_patch", "cls"], default="mean_patch",
                               tooltip="mean_patch: mean of patch tokens (paper); cls: the class token."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32",
                               tooltip="DINOv2 weights and activations; fp16/bf16 halve memory on GPU."),
                io.Int.Input("batch_size", default=16, min=1, max=512, tooltip="Frames per encoder forward pass."),
                io.Boolean.Input("download_if_missing", default=False, optional=True,
                                 tooltip="Download the chosen DINOv2 from the Hugging Face Hub into "
                                         "models/v2m/encoders/ if it is not there. Off: nothing is downloaded."),
                ModelType.Input("model", optional=True,
                                tooltip="With encoder 'auto': the V2M model whose curve spec "
                                        "picks the encoder (and DINOv2 folder and pooling)."),
            ],
            outputs=[FeaturesType.Output(display_name="features")],
        )

    REQUIRES = ("av",)  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, video=None, images=None, model=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, encoder, sample_fps, size, fps, dinov2_model, pooling, precision, batch_size, video=None,
                images=None, download_if_missing=False, model=None) -> io.NodeOutput:
        if video is None and images is None:
            raise V2MError("connect a video or images (with their fps) to Encode Frames")
        chosen = encoder
        if encoder == AUTO:
            encoder, dinov2_model, pooling = _auto_encoder(model, dinov2_model, pooling)
        kwargs = {}
        if encoder == "dinov2":
            import comfy.model_management

            kwargs = dict(
                model=models.model_path_or_download("encoders", dinov2_model, download_if_missing),
                pooling=pooling,
                precision=precision,
                batch_size=batch_size,
                device=str(comfy.model_management.get_torch_device()),
            )
        enc = encoders.get_encoder(encoder, **kwargs)
        try:
            feats = _encode(enc, video, images, fps, sample_fps or None, size or None, batch_size)
        finally:
            runtime.release_memory(enc)
        text = _used_text(chosen, encoder, dinov2_model, pooling, model, video, fps, feats)
        return io.NodeOutput(feats, ui={"text": (text,)})


DINOV2_ONLY = ("dinov2_model", "pooling", "precision", "download_if_missing")


def _used_text(chosen: str, encoder: str, dinov2_model: str, pooling: str, model, video, fps: float, feats) -> str:
    """What Encode Frames used, and which widgets it ignored (the widgets keep showing their own values)."""
    why = ""
    if chosen == AUTO:
        why = " (auto: the connected model's curve spec)" if model is not None else " (auto: no model connected)"
    name = f"dinov2 {dinov2_model}, {pooling}" if encoder == "dinov2" else encoder
    lines = [f"used: {name}{why}; {len(feats)} frames over {feats.duration:.2f} s"]
    if encoder != "dinov2":
        lines.append(f"ignored (DINOv2 only): {', '.join(DINOV2_ONLY)}")
    if video is not None:
        own = feats.meta.get("fps")
        lines.append(f"ignored: fps {fps:g} (the VIDEO's own {f'{own:.3f} fps' if own else 'frame rate'} is used)")
    if chosen != AUTO and model is not None:
        lines.append("ignored: model (it only picks the encoder with encoder 'auto')")
    return "\n".join(lines)


def _auto_encoder(model, dinov2_model: str, pooling: str) -> tuple[str, str, str]:
    """(encoder, DINOv2 folder, pooling) that the model's curve spec names; pixels without a model."""
    if model is None:
        return "pixels", dinov2_model, pooling
    spec = model.curve_spec
    name = encoder_name(spec.encoder, spec.encoder_options)
    if name.startswith("dinov2"):
        return "dinov2", name, str(spec.encoder_options.get("pooling", pooling))
    if name not in ENCODER_CHOICES:
        raise V2MError(f"the model's curves come from the frame encoder {name!r}, which Encode Frames does not offer")
    return name, dinov2_model, pooling


def _encode(enc, video, images, fps, sample_fps, size, batch):
    if video is not None:
        src = convert.video_source(video)
        if src is None and not isinstance(video, InputImpl.VideoFromComponents):
            # trimmed or cropped by the host: encode what the user sees, not the whole file
            path, temporary = convert.video_to_file(video, check_interrupt=runtime.Progress.check_interrupt,
                                                    audio=False)
            try:
                return _encode_file(enc, path, sample_fps, size, batch)
            finally:
                if temporary:
                    files.remove_files([path])
        if src is not None:
            return _encode_file(enc, src, sample_fps, size, batch)
        comps = video.get_components()
        images, fps = comps.images, float(comps.frame_rate)
    return _encode_images(enc, images, fps, sample_fps, size, batch)


def _encode_file(enc, src, sample_fps, size, batch):
    info = media.probe_video(src)  # (rewinds a file object)
    progress = runtime.Progress(info.frame_count)
    return encoders.encode_video(src, enc, sample_fps=sample_fps, size=size, batch=batch, progress=progress,
                                 check_interrupt=progress.check_interrupt, info=info)


def _encode_images(enc, images, fps, sample_fps, size, batch):
    """IMAGE frames at ``fps`` (converted to uint8 chunk by chunk, at the encoder's size)."""
    progress = runtime.Progress(int(images.shape[0]))
    return encoders.encode_frames(
        images, fps, enc, sample_fps=sample_fps, batch=batch,
        convert=lambda chunk: convert.images_to_uint8(chunk, size or enc.decode_size),
        progress=progress, check_interrupt=progress.check_interrupt,
    )


NODES = [LoadVideo, EncodeFrames]
