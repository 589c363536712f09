"""Generate music: load the V2M model, sample latents on the event curve, decode to AUDIO."""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io, ui

from ..core.timing import plot
from ..core import generate
from ..core.model.flow import UNCOND_MODES
from ..core.errors import V2MError
from ..core.precision import PRECISIONS
from . import _host
from .types import CurveType, ModelType

CATEGORY = "V2M-Zero/generate"
FROM_CHECKPOINT = "from checkpoint"
NONE = "none"


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_LoadModel",
            display_name="Load V2M Model",
            category=CATEGORY,
            description="Load a V2M checkpoint (a DiT with an event-curve input channel), its audio codec and T5 text encoder. Make one from Stable Audio Open 1.0 with `v2m-zero init-checkpoint`, or train one.",
            inputs=[
                io.Combo.Input("checkpoint", options=_host.model_choices("checkpoints", folders=False), tooltip="V2M checkpoint in models/v2m/checkpoints/."),
                io.Combo.Input("text_encoder", options=[NONE] + _host.model_choices("text_encoders", folders=True), default=NONE, tooltip="T5 folder in models/v2m/text_encoders/ (t5-base for Stable Audio Open); none for models trained without text."),
                io.Combo.Input("codec", options=[FROM_CHECKPOINT] + _host.model_choices("codecs", folders=False), default=FROM_CHECKPOINT, tooltip="Audio autoencoder: the one stored in or declared by the checkpoint, or a file in models/v2m/codecs/."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32", tooltip="DiT weights and activations; bf16 halves memory on recent GPUs."),
                io.Boolean.Input("offload", default=True, tooltip="Keep the model in CPU memory between runs and move it to the GPU only while sampling/decoding."),
            ],
            outputs=[ModelType.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, checkpoint, text_encoder, codec, precision, offload) -> io.NodeOutput:
        import comfy.model_management as mm

        ckpt = _host.model_path("checkpoints", checkpoint)
        text = None if text_encoder == NONE else _host.model_path("text_encoders", text_encoder)
        cod = None if codec == FROM_CHECKPOINT else _host.model_path("codecs", codec)
        device = "cpu" if offload else mm.get_torch_device()
        gen = generate.load_generator(ckpt, text_encoder=text, codec=cod, device=device, precision=precision)
        gen.meta["_offload"] = bool(offload)
        return io.NodeOutput(gen)


def _on_device(gen: generate.Generator, device) -> None:
    import torch

    device = torch.device(device)
    for part in (gen.dit, gen.codec, gen.text):
        if isinstance(part, torch.nn.Module) or (part is not None and hasattr(part, "to")):
            part.to(device)
    gen.device = device


class _Placed:
    """Move an offloaded model to the compute device for the duration of a block."""

    def __init__(self, gen):
        self.gen = gen

    def __enter__(self):
        import comfy.model_management as mm

        if self.gen.meta.get("_offload"):
            _on_device(self.gen, mm.get_torch_device())
        return self.gen

    def __exit__(self, *exc):
        if self.gen.meta.get("_offload"):
            _on_device(self.gen, "cpu")
            _host.release_memory()
        return False


class Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V2M_Sampler",
            display_name="Rectified Flow Sampler (V2M)",
            category=CATEGORY,
            description="Euler sampling of the rectified flow with classifier-free guidance, the event curve concatenated as an input channel (paper §3.3–3.4). The music lasts exactly the curve's (video's) duration; a video longer than the checkpoint's training clips is generated in windows of that length, each continuing the previous one (inpainted overlap, crossfade where the video is calm), drawn on the curve plot.",
            inputs=[
                ModelType.Input("model", tooltip="From Load V2M Model."),
                CurveType.Input("curve", tooltip="An event curve: a raw one is smoothed as the model was trained; a smoothed one is used as it is (regridded to the latents)."),
                io.String.Input("prompt", default="", multiline=True, tooltip="What the music should sound like (mood, genre, instruments); e.g. from Music Prompt."),
                io.String.Input("negative_prompt", default="", multiline=True, tooltip="What to steer away from (used in the unconditional branch of guidance)."),
                io.Int.Input("steps", default=96, min=1, max=1000, tooltip="Euler steps (paper: 96)."),
                io.Float.Input("cfg", default=7.0, min=1.0, max=30.0, step=0.1, tooltip="Classifier-free guidance scale (1 = off)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip="Noise seed; the same seed gives the same music on any device."),
                io.Combo.Input("uncond", options=list(UNCOND_MODES), default="both", tooltip="Guidance's unconditional branch drops: both text and curve (default), only text (curve as plain conditioning), or only the curve (stronger timing)."),
                io.Float.Input("window_seconds", default=0.0, min=0.0, max=512.0, step=0.5, tooltip="A video longer than this is generated in windows of this length, joined where the video is calm. 0 = the checkpoint's training clip length (the right choice unless you know better)."),
                io.Float.Input("overlap_seconds", default=0.0, min=0.0, max=256.0, step=0.25, tooltip="How much of the previous window each window continues from (at most half a window). 0 = automatic: a quarter of the window, at most 5 s."),
            ],
            outputs=[io.Latent.Output(display_name="latent"), io.Image.Output(display_name="curve_plot")],
        )

    @classmethod
    def execute(cls, model, curve, prompt, negative_prompt, steps, cfg, seed, uncond, window_seconds=0.0,
                overlap_seconds=0.0) -> io.NodeOutput:
        cond = generate.conditioning_curve_for(model, curve)
        plan = generate.plan_for(model, cond, curve.duration, hits=generate.hit_points(curve),
                                 window_seconds=window_seconds or None, overlap_seconds=overlap_seconds or None)
        total = steps * len(plan)
        bar = _host.Progress(total)

        def callback(state):
            bar.check_interrupt()
            bar(state["step"] + 1, total)

        with _Placed(model) as gen:
            latents = generate.sample_latents(
                gen, cond, prompt, negative_prompt=negative_prompt, duration=curve.duration,
                steps=steps, cfg_scale=cfg, seed=seed, uncond=uncond, callback=callback, plan=plan,
            )
        marks = [("windows", plan.starts), ("joins", plan.joins)] if len(plan) > 1 else []
        title = f"{len(cond)} latent frames, {curve.duration:.2f} s; {plan.describe()}"
        image = _host.image_tensor(plot.plot_curves([("conditioning curve", cond)], marks=marks, title=title[:160]))
        latent = {"samples": latents, "type": "audio", "duration": float(curve.duration), "sample_rate": model.sample_rate}
        return io.NodeOutput(latent, image, ui=ui.PreviewImage(image, cls=cls))


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

    @classmethod
    def execute(cls, model, latent) -> io.NodeOutput:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if samples is None or samples.ndim != 3:
            raise V2MError("expected audio latents [batch, channels, frames] from the V2M sampler")
        duration = float(latent.get("duration") or samples.shape[-1] / model.latent_rate)
        bar = _host.Progress(1)
        with _Placed(model) as gen:
            wave = generate.decode_latents(gen, samples[:1], duration)
        bar(1, 1)
        audio = _host.numpy_to_audio(np.ascontiguousarray(wave), model.sample_rate)
        return io.NodeOutput(audio, ui=ui.PreviewAudio(audio, cls=cls))


NODES = [LoadModel, Sampler, DecodeLatents]
