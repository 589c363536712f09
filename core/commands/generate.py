"""``v2m-zero generate VIDEO``: event curve → sample → decode → mux, the paper's inference."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import (AUDIO_OUT, REDO_SUFFIX, VIDEO_OUT, OutputPlan, Progress, add_sampling_arguments, number,
                      plan_video_output, resolve_sampling)
from ._pipeline import add_encoder_arguments, agreement_notes, redo_with_progress, sample_with_progress, video_curve

NAME = "generate"
HELP = "generate music for a video with a V2M checkpoint and mux it in (curve -> sample -> decode -> mux)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video (never modified)")
    p.add_argument("--checkpoint", required=True, help="V2M checkpoint (.safetensors), "
                                                       "e.g. from init-checkpoint or train")
    p.add_argument("--text-encoder", default=None,
                   help="text encoder: a T5 folder (t5-base) for Stable Audio Open, T5Gemma (a "
                        "t5gemma-b-b-ul2 folder or ComfyUI's t5gemma_b_b_ul2.safetensors) for Stable Audio 3")
    p.add_argument("--codec", default=None, help="audio codec file, if the checkpoint does not carry or declare one")
    p.add_argument("--lora", default=None, help="a LoRA adapter (.safetensors from `train` "
                                                "with [lora]) applied on top of --checkpoint")
    p.add_argument("--lora-strength", type=number(float, -2, 2), default=1.0,
                   help="how much of the adapter to apply, -2–2 (1 = as trained, 0 = the base alone)")
    p.add_argument("--prompt", default="", help="what the music should sound like")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    add_sampling_arguments(p)
    add_encoder_arguments(p, default=None)
    p.add_argument("--out", required=True, help=f"output video with the music ({', '.join(VIDEO_OUT)})")
    p.add_argument("--audio-out", default=None, help=f"also write the music alone ({', '.join(AUDIO_OUT)})")
    p.add_argument("--only-window", type=number(int, 0, 1_000_000), default=None, metavar="K",
                   help="redo window K only (from 0; --seed gives its new noise): read the latents of the last run "
                        "from OUT" + REDO_SUFFIX + ", sample window K again against its neighbours and write the "
                        "whole soundtrack again; every other window stays bit-identical")


def run(args) -> int:
    from .. import generate
    from ..timing import media
    from ..timing.media.write import audio_depth

    plan = OutputPlan()
    for path, label in ((args.video, "input video"), (args.checkpoint, "--checkpoint"), (args.codec, "--codec"),
                        (args.text_encoder, "--text-encoder"), (args.lora, "--lora")):
        plan.input(path, label)
    out = plan.file(args.out, "--out", extensions=VIDEO_OUT)
    audio_out = plan.file(args.audio_out, "--audio-out", extensions=AUDIO_OUT) if args.audio_out else None
    sidecar = plan.file(out + REDO_SUFFIX, "the redo file (latents and windows of this run)")
    with plan:
        mux_plan = plan_video_output(args.video, out)  # copy or re-encode, decided before any work
        gen = generate.load_music_model(args.checkpoint, text_encoder=args.text_encoder, codec=args.codec,
                                        device=args.device, precision=args.precision, lora=args.lora,
                                        lora_strength=args.lora_strength)
        settings = resolve_sampling(gen, args)  # bad settings fail before any work, naming the file
        # The curve must come from the encoder the checkpoint's curve spec names (training used it).
        for note in agreement_notes(gen, args.encoder):
            print(f"v2m-zero generate: warning: {note}", file=sys.stderr)
        args.encoder = args.encoder or gen.curve_spec.encoder
        if args.only_window is None:
            sampled = sample_with_progress(gen, video_curve(args.video, args), settings, prompt=args.prompt,
                                           negative_prompt=args.negative_prompt)
        else:
            sampled = redo_with_progress(gen, sidecar, args.video, args.only_window, settings.seed, prompt=args.prompt,
                                         negative_prompt=args.negative_prompt)
        lat, duration = sampled.latents, sampled.job.duration
        with Progress("decoding and muxing"), generate.decode_to_spool(gen, lat, duration) as spool:
            out = media.mux_audio(args.video, spool, gen.sample_rate, out, plan=mux_plan)
            if audio_out:
                media.write_audio(audio_out, spool, gen.sample_rate, layout="mono" if spool.channels == 1 else "stereo",
                                  master=True, depth="float")  # the music is float: keep its resolution
        generate.save_redo(sidecar, gen, sampled)
        print(f"music: {len(spool) / gen.sample_rate:.3f} s at "
              f"{gen.sample_rate} Hz for a {duration:.3f} s video -> {out}")
        if audio_out:
            print(f"audio -> {os.path.abspath(audio_out)} ({audio_depth(audio_out, 'float')})")
    return 0
