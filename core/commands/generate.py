"""``v2m-zero generate VIDEO``: event curve → sample → decode → mux, the paper's inference."""

from __future__ import annotations

import argparse
import os
import sys

from ..model.fast import FAST_MODES
from ..model.flow import UNCOND_MODES
from ._common import AUDIO_OUT, VIDEO_OUT, OutputPlan, Progress, number
from .curve import add_encoder_arguments, video_curve

NAME = "generate"
HELP = "generate music for a video with a V2M checkpoint and mux it in (curve -> sample -> decode -> mux)"


def add_sampling_arguments(p: argparse.ArgumentParser, *, steps: int | None, cfg: float | None) -> None:
    """Sampling options shared by generate and demo (None: the checkpoint's own default)."""
    p.add_argument("--steps", type=number(int, 1, 1000), default=steps,
                   help="Euler steps, 1–1000 (paper: 96)" + ("" if steps else "; default: the checkpoint's, else 96"))
    p.add_argument("--cfg", type=number(float, 0, 100), default=cfg,
                   help="classifier-free guidance scale, 0–100" + ("" if cfg else "; default: the checkpoint's, else 7"))
    p.add_argument("--seed", type=number(int, 0, 2**63 - 1), default=0, help="noise seed (the same seed gives the same music on any device)")
    p.add_argument("--fast-sampler", default="auto", choices=list(FAST_MODES),
                   help="auto (default): on a GPU, compile SAO-size DiTs (100 M+ parameters) and replay them as CUDA "
                        "graphs (the first run of a model and length compiles for about a minute; a failure falls back "
                        "to eager with a warning); small models and CPUs run eagerly; compile: compile on any device; "
                        "off: eager")
    p.add_argument("--window", type=number(float, 1, 512), default=None, metavar="SECONDS",
                   help="a video longer than this is generated in windows of this length (1–512 s; default: the "
                        "checkpoint's training clip length)")
    p.add_argument("--overlap", type=number(float, 0.05, 256), default=None, metavar="SECONDS",
                   help="how much of the previous window each window continues from (at most half a window; "
                        "default: a quarter of the window, at most 5 s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video (never modified)")
    p.add_argument("--checkpoint", required=True, help="V2M checkpoint (.safetensors), e.g. from init-checkpoint or train")
    p.add_argument("--text-encoder", default=None,
                   help="text encoder: a T5 folder (t5-base) for Stable Audio Open, T5Gemma (a t5gemma-b-b-ul2 folder or "
                        "ComfyUI's t5gemma_b_b_ul2.safetensors) for Stable Audio 3")
    p.add_argument("--codec", default=None, help="audio codec file, if the checkpoint does not carry or declare one")
    p.add_argument("--lora", default=None, help="a LoRA adapter (.safetensors from `train` with [lora]) applied on top of --checkpoint")
    p.add_argument("--lora-strength", type=number(float, -2, 2), default=1.0,
                   help="how much of the adapter to apply, -2–2 (1 = as trained, 0 = the base alone)")
    p.add_argument("--prompt", default="", help="what the music should sound like")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    add_sampling_arguments(p, steps=None, cfg=None)
    p.add_argument("--uncond", default="both", choices=list(UNCOND_MODES), help="what guidance's unconditional branch drops")
    add_encoder_arguments(p, default=None)
    p.add_argument("--out", required=True, help=f"output video with the music ({', '.join(VIDEO_OUT)})")
    p.add_argument("--audio-out", default=None, help=f"also write the music alone ({', '.join(AUDIO_OUT)})")


def sample_music(gen, raw, args, *, prompt: str = "", negative_prompt: str = "", steps: int, cfg: float,
                 uncond: str = "both"):
    """The model's music for a raw curve, in windows when the video is longer than the checkpoint's
    training clips (progress over the whole job); returns (latents, conditioning curve, plan)."""
    from .. import generate

    cond, plan = generate.curve_and_plan(gen, raw, raw.duration, window_seconds=args.window, overlap_seconds=args.overlap)
    if len(plan) > 1:
        print(f"windows: {plan.describe()}", file=sys.stderr)
    label = "sampling" if len(plan) == 1 else f"sampling {len(plan)} windows"
    with Progress(label, steps * len(plan), unit="steps") as bar:
        lat = generate.sample_latents(gen, cond, prompt, negative_prompt=negative_prompt, duration=raw.duration,
                                      steps=steps, cfg_scale=cfg, seed=args.seed, uncond=uncond, plan=plan,
                                      fast=args.fast_sampler,
                                      callback=lambda s: bar(s["step"] + 1, s["total"]))
    return lat, cond, plan


def _agreement_notes(gen, encoder: str | None) -> list[str]:
    """Warnings: a frame encoder other than the checkpoint's, a SAO base without curve training."""
    from ..timing.spec import curve_mismatches

    notes = curve_mismatches({"encoder": encoder}, gen.curve_spec) if encoder else []
    return notes + ([str(gen.meta["note"])] if gen.meta.get("note") else [])


def run(args) -> int:
    from .. import generate
    from ..timing import media

    plan = OutputPlan()
    for path, label in ((args.video, "input video"), (args.checkpoint, "--checkpoint"), (args.codec, "--codec"),
                        (args.text_encoder, "--text-encoder"), (args.lora, "--lora")):
        plan.input(path, label)
    out = plan.file(args.out, "--out", extensions=VIDEO_OUT)
    audio_out = plan.file(args.audio_out, "--audio-out", extensions=AUDIO_OUT) if args.audio_out else None
    with plan:
        gen = generate.load_music_model(args.checkpoint, text_encoder=args.text_encoder, codec=args.codec, device=args.device,
                                      precision=args.precision, lora=args.lora, lora_strength=args.lora_strength)
        generate.window_frames(gen, args.window, args.overlap)  # a bad window/overlap fails before any work
        # The curve must come from the encoder the checkpoint's curve spec names (training used it).
        for note in _agreement_notes(gen, args.encoder):
            print(f"v2m-zero generate: warning: {note}", file=sys.stderr)
        args.encoder = args.encoder or gen.curve_spec.encoder
        sampling = gen.meta.get("sampling") or {}  # the checkpoint's own defaults (e.g. SA3: 50 steps, cfg 7)
        steps = args.steps or int(sampling.get("steps", 96))
        cfg = args.cfg if args.cfg is not None else float(sampling.get("cfg_scale", 7.0))
        raw = video_curve(args.video, args)
        lat, _, _ = sample_music(gen, raw, args, prompt=args.prompt, negative_prompt=args.negative_prompt,
                                 steps=steps, cfg=cfg, uncond=args.uncond)
        with Progress("decoding and muxing"), generate.decode_to_spool(gen, lat, raw.duration) as spool:
            out = media.mux_audio(args.video, spool, gen.sample_rate, out)
            if audio_out:
                media.write_audio(audio_out, spool, gen.sample_rate, layout="mono" if spool.channels == 1 else "stereo",
                                  master=True)
        print(f"music: {len(spool) / gen.sample_rate:.3f} s at {gen.sample_rate} Hz for a {raw.duration:.3f} s video -> {out}")
        if audio_out:
            print(f"audio -> {os.path.abspath(audio_out)}")
    return 0
