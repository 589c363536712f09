"""Generate music: load the V2M model, sample latents on the event curve, decode to AUDIO."""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io, ui

from ..core import generate
from ..core.errors import V2MError
from ..core.sampling import FAST_MODES, FIELDS, FROM_CHECKPOINT, UNCOND_MODES, SamplingSettings
from ..core.timing import plot
from ..core.timing.spec import curve_mismatches
from ..core.precision import PRECISIONS
from . import host as _host
from .host import requirements
from .types import CurveType, ModelType

CATEGORY = "V2M-Zero/generate"
NONE = "none"
#: The bundled demo checkpoint (the default, so a fresh install generates).
DEMO_CHECKPOINT = "demo/v2m-zero-demo-music.safetensors"
def checkpoint_choices() -> list[str]:
    """The demo, V2M checkpoints in models/v2m/checkpoints/, then SAO 1.0 and SA3 base files in models/checkpoints/."""
    return ([DEMO_CHECKPOINT] + _host.model_choices("checkpoints", folders=False)
            + _host.format_choices("checkpoints", "sao1", "sa3"))


def text_encoder_choices() -> list[str]:
    return ([NONE] + sorted(set(_host.model_choices("text_encoders", folders=True)) | {"t5-base"})
            + _host.format_choices("text_encoders", "t5", "t5gemma"))


def checkpoint_path(name: str) -> str:
    """The file behind a checkpoint choice: the bundled demo, a base file in models/checkpoints/,
    or models/v2m/checkpoints/."""
    from ..model_io.folders import DEMO_CHECKPOINT as demo_path

    if name == DEMO_CHECKPOINT:
        return demo_path
    return _host.comfy_model_path(name) or _host.model_path("checkpoints", name)


def text_encoder_path(name: str, download: bool) -> tuple[str | None, str | None]:
    """(text encoder folder or file, tokenizer folder for a single-file T5)."""
    from ..model_io.formats import is_format

    if name == NONE:
        return None, None
    host_file = _host.comfy_model_path(name)
    if host_file is None:
        return _host.model_path_or_download("text_encoders", name, download), None
    if not is_format(host_file, "t5"):
        return host_file, None  # T5Gemma: its tokenizer is inside the file
    tok = _host.host_t5_tokenizer()
    if tok is None:
        raise V2MError(f"{name}: a single-file T5 needs ComfyUI's T5 tokenizer (comfy/text_encoders/t5_tokenizer), "
                       "which this ComfyUI lacks: update ComfyUI or use a T5 folder in models/v2m/text_encoders/")
    return host_file, tok


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_LoadModel",
            display_name="Load V2M Model",
            category=CATEGORY,
            description="Load a V2M checkpoint (a DiT with an event-curve input channel), its audio codec "
                        "and text encoder: the bundled demo model, a checkpoint in models/v2m/checkpoints/, "
                        "or a Stable Audio Open 1.0 / Stable Audio 3 base file from models/checkpoints/ "
                        "(curve channel added on load; its timing ignores the video until fine-tuned).",
            inputs=[
                io.Combo.Input("checkpoint", options=checkpoint_choices(), default=DEMO_CHECKPOINT,
                               tooltip=f"{DEMO_CHECKPOINT}: the bundled DEMO (4.6 M parameters, trained on a CPU "
                                       "on rendered General MIDI music: 16 kHz mono, no text control; shows "
                                       "timing transfer, not a real music model). Others: V2M checkpoints in "
                                       "models/v2m/checkpoints/, and 'checkpoints/…' = Stable Audio Open 1.0 or "
                                       "Stable Audio 3 base files in ComfyUI's models/checkpoints/ with a "
                                       "zero-weight curve channel (timing ignores the video until fine-tuned)."),
                io.Combo.Input("text_encoder", options=text_encoder_choices(), default=NONE,
                               tooltip="T5 for Stable Audio Open (ComfyUI's text_encoders/t5_base.safetensors, "
                                       "tokenizer from ComfyUI, or a t5-base folder in models/v2m/text_encoders/); "
                                       "T5Gemma for Stable Audio 3 (text_encoders/t5gemma_b_b_ul2.safetensors or a "
                                       "t5gemma-b-b-ul2 folder); none for models trained without text (the demo)."),
                io.Combo.Input("codec", options=[FROM_CHECKPOINT] + _host.model_choices("codecs", folders=False),
                               default=FROM_CHECKPOINT,
                               tooltip="Audio autoencoder: the one stored in or declared by "
                                       "the checkpoint, or a file in models/v2m/codecs/."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32",
                               tooltip="DiT weights and activations; bf16 halves memory on recent GPUs."),
                io.Boolean.Input("offload", default=True,
                                 tooltip="Keep the model in CPU memory between runs and "
                                         "move it to the GPU only while sampling/decoding."),
                io.Combo.Input("lora", options=[NONE] + _host.model_choices("loras", folders=False), default=NONE,
                               optional=True,
                               tooltip="A LoRA adapter in models/v2m/loras/ (from Train V2M with the sao1 "
                                       "preset), applied on top of the checkpoint it was trained on."),
                io.Float.Input("lora_strength", default=1.0, min=-2.0, max=2.0, step=0.05, optional=True,
                               tooltip="How much of the adapter: 1 = as trained, 0 = the checkpoint alone."),
                io.Boolean.Input("download_if_missing", default=False, optional=True,
                                 tooltip="Download the text encoder (t5-base) from the Hugging Face Hub into "
                                         "models/v2m/text_encoders/ if it is not there. Off: nothing is downloaded."),
            ],
            outputs=[ModelType.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, checkpoint, text_encoder, codec, precision, offload, lora=NONE, lora_strength=1.0,
                download_if_missing=False) -> io.NodeOutput:
        ckpt = checkpoint_path(checkpoint)
        text, tokenizer = text_encoder_path(text_encoder, download_if_missing)
        cod = None if codec == FROM_CHECKPOINT else _host.model_path("codecs", codec)
        adapter = None if lora in (None, NONE) else _host.model_path("loras", lora)
        device = _host.load_device(offload)
        gen = generate.load_music_model(ckpt, text_encoder=text, codec=cod, device=device, precision=precision,
                                      lora=adapter, lora_strength=float(lora_strength), tokenizer=tokenizer)
        _host.set_offload(gen, bool(offload))
        notes = generate.model_notes(gen)
        return io.NodeOutput(gen, ui=ui.PreviewText("\n".join(notes)) if notes else None)


def _tip(name: str, example: str = "") -> str:
    """A widget's tooltip from the sampling contract's help and what its "checkpoint's own" value means
    (0 for numbers, :data:`FROM_CHECKPOINT` for choices; the CLI shows the same text)."""
    f = FIELDS[name]
    auto = f" {f'{FROM_CHECKPOINT!r}' if f.choices else '0'} = {f.auto}{example}." if f.auto else ""
    return f.help[0].upper() + f.help[1:] + "." + auto


class Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_Sampler",
            display_name="Rectified Flow Sampler (V2M)",
            category=CATEGORY,
            description="Euler sampling of the rectified flow with classifier-free guidance, the event "
                        "curve concatenated as an input channel (paper §3.3–3.4). The music lasts exactly "
                        "the curve's (video's) duration; a video longer than the checkpoint's training "
                        "clips is generated in windows of that length, each continuing the previous one "
                        "(inpainted overlap, crossfade where the video is calm), drawn on the curve plot.",
            inputs=[
                ModelType.Input("model", tooltip="From Load V2M Model."),
                CurveType.Input("curve",
                                tooltip="An event curve: a raw one is smoothed as the model was trained; "
                                        "a smoothed one is used as it is (regridded to the latents)."),
                io.String.Input("prompt", default="", multiline=True,
                                tooltip="What the music should sound like (mood, "
                                        "genre, instruments); e.g. from Music Prompt."),
                io.String.Input("negative_prompt", default="", multiline=True,
                                tooltip="What to steer away from (used in the unconditional branch of guidance)."),
                io.Int.Input("steps", default=0, min=0, max=int(FIELDS["steps"].hi),
                             tooltip=_tip("steps", " (demo: 32, Stable Audio 3: 50)")),
                io.Float.Input("cfg", default=0.0, min=0.0, max=FIELDS["cfg"].hi, step=0.1,
                               tooltip=_tip("cfg", " (demo: 3, Stable Audio 3: 7)")),
                io.Int.Input("seed", default=0, min=0, max=int(FIELDS["seed"].hi), control_after_generate=True,
                             tooltip=_tip("seed")),
                io.Combo.Input("uncond", options=[FROM_CHECKPOINT, *UNCOND_MODES], default=FROM_CHECKPOINT,
                               tooltip=_tip("uncond")),
                io.Combo.Input("fast_sampler", options=list(FAST_MODES), default="auto", optional=True,
                               tooltip=_tip("fast")),
                io.Float.Input("window_seconds", default=0.0, min=0.0, max=FIELDS["window_seconds"].hi, step=0.5,
                               optional=True,
                               tooltip=_tip("window_seconds", " (the right choice unless you know better)")),
                io.Float.Input("overlap_seconds", default=0.0, min=0.0, max=FIELDS["overlap_seconds"].hi, step=0.25,
                               optional=True, tooltip=_tip("overlap_seconds")),
                io.Int.Input("only_window", default=-1, min=-1, max=1_000_000, optional=True,
                             tooltip="-1: generate every window. K >= 0: redo window K only (from 0) of the run "
                                     "connected to 'previous', with this seed, against its neighbours; the other "
                                     "windows stay bit-identical."),
                io.Latent.Input("previous", optional=True,
                                tooltip="For only_window: the latent of an earlier run of a V2M Sampler on the same "
                                        "curve (it carries the window plan)."),
            ],
            outputs=[io.Latent.Output(display_name="latent"), io.Image.Output(display_name="curve_plot")],
        )

    REQUIRES = ("matplotlib",)  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, model=None, curve=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, model, curve, prompt, negative_prompt, steps, cfg, seed, uncond, fast_sampler="auto",
                window_seconds=0.0, overlap_seconds=0.0, only_window=-1, previous=None) -> io.NodeOutput:
        settings = SamplingSettings.from_widgets(steps=steps, cfg=cfg, seed=seed, uncond=uncond, fast=fast_sampler,
                                                 window_seconds=window_seconds, overlap_seconds=overlap_seconds)
        notes = (curve_mismatches(curve.spec, model.curve_spec, smoothed_here=curve.rate is None)
                 + generate.model_notes(model))
        bar = _host.Progress(None)  # the pipeline gives it the whole job's steps (all windows)
        redo = None if only_window is None or int(only_window) < 0 else _previous_run(previous, curve, int(only_window))
        with _host.placed(model) as gen:
            if redo is None:
                out = generate.sample_music(gen, curve, prompt, settings, negative_prompt=negative_prompt,
                                            progress=bar, interrupt=bar.check_interrupt)
            else:
                out = generate.redo_window(gen, redo, int(only_window), seed, prompt, negative_prompt=negative_prompt,
                                           progress=bar, interrupt=bar.check_interrupt)
        job, latents, plan = out.job, out.latents, out.job.plan
        marks = [("windows", plan.starts), ("joins", plan.joins)] if len(plan) > 1 else []
        title = f"{len(job.latent_curve)} latent frames, {curve.duration:.2f} s; {plan.describe()}"
        # the notes are in the report on the node, right above this plot (web/v2m_zero.js): not drawn twice
        image = _host.image_tensor(plot.plot_curves([("conditioning curve", job.latent_curve)], marks=marks,
                                                    title=title))
        latent = {"samples": latents, "type": "audio", "duration": float(curve.duration),
                  "sample_rate": model.sample_rate, "v2m_job": job}  # the job: what only_window needs
        text = "\n".join(["curve and checkpoint agree" if not notes else "notes:"] + [f"- {n}" for n in notes]
                         + [f"sampling: {job.sampling.describe()}"])
        return io.NodeOutput(latent, image, ui={"text": (text,), **_image_ui(image, cls)})


def _previous_run(previous, curve, window: int) -> "generate.Sampled":
    """The earlier run a redo of ``window`` continues: the ``previous`` latent of a V2M Sampler."""
    job = previous.get("v2m_job") if isinstance(previous, dict) else None
    if not isinstance(job, generate.Job) or previous.get("samples") is None:
        raise V2MError(f"only_window {window}: connect 'previous' to the latent of an earlier V2M Sampler run (it "
                       "carries the window plan), or set only_window to -1")
    if abs(job.duration - float(curve.duration)) > 1e-3:
        raise V2MError(f"only_window {window}: the previous run was for {job.duration:.3f} s but this curve lasts "
                       f"{curve.duration:.3f} s: redo with the curve of that run")
    return generate.Sampled(previous["samples"], job)


def _image_ui(image, cls) -> dict:
    preview = ui.PreviewImage(image, cls=cls)
    as_dict = getattr(preview, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


class DecodeLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_DecodeLatents",
            display_name="Decode Latents (V2M)",
            category=CATEGORY,
            description="Decode music latents with the model's audio codec into AUDIO of exactly the video's duration.",
            inputs=[
                ModelType.Input("model", tooltip="The model whose codec made the latents."),
                io.Latent.Input("latent", tooltip="Audio latents from the V2M sampler."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    REQUIRES = ("librosa",)  # checked by validate_inputs

    @classmethod
    def validate_inputs(cls, model=None, latent=None):
        return requirements.check(cls.REQUIRES)

    @classmethod
    def execute(cls, model, latent) -> io.NodeOutput:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if samples is None or samples.ndim != 3:
            raise V2MError("expected audio latents [batch, channels, frames] from the V2M sampler")
        duration = float(latent.get("duration") or samples.shape[-1] / model.latent_rate)
        bar = _host.Progress(1)
        with _host.placed(model) as gen:
            wave = generate.decode_latents(gen, samples[:1], duration)
        bar(1, 1)
        audio = _host.numpy_to_audio(np.ascontiguousarray(wave), model.sample_rate)
        return io.NodeOutput(audio, ui=ui.PreviewAudio(audio, cls=cls))


NODES = [LoadModel, Sampler, DecodeLatents]
