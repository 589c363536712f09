"""``v2m-zero generate VIDEO``: event curve → sample → decode → mux, the paper's inference."""

from __future__ import annotations

import argparse
import os

from ..model.flow import UNCOND_MODES
from .curve import add_encoder_arguments, build_encoder

NAME = "generate"
HELP = "generate music for a video with a V2M checkpoint and mux it in (curve -> sample -> decode -> mux)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video (never modified)")
    p.add_argument("--checkpoint", required=True, help="V2M checkpoint (.safetensors), e.g. from init-checkpoint or train")
    p.add_argument("--text-encoder", default=None, help="T5 folder (t5-base for Stable Audio Open)")
    p.add_argument("--codec", default=None, help="audio codec file, if the checkpoint does not carry or declare one")
    p.add_argument("--prompt", default="", help="what the music should sound like")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    p.add_argument("--steps", type=int, default=96, help="Euler steps (paper: 96)")
    p.add_argument("--cfg", type=float, default=7.0, help="classifier-free guidance scale")
    p.add_argument("--uncond", default="both", choices=list(UNCOND_MODES), help="what guidance's unconditional branch drops")
    p.add_argument("--seed", type=int, default=0)
    add_encoder_arguments(p, default=None)
    p.add_argument("--out", required=True, help="output video with the music (.mp4/.mkv/.mov)")
    p.add_argument("--audio-out", default=None, help="also write the music alone (.wav/.flac/.m4a)")


def run(args) -> int:
    from ..timing import encoders, media
    from .. import generate
    from ._common import TextProgress

    gen = generate.load_generator(args.checkpoint, text_encoder=args.text_encoder, codec=args.codec, device=args.device, precision=args.precision)
    # The curve must come from the encoder the checkpoint's curve spec names (training used it).
    args.encoder = args.encoder or gen.curve_spec.encoder
    enc = build_encoder(args)
    progress = TextProgress(f"encoding {args.video}")
    try:
        raw = encoders.encode_video_curve(args.video, enc, sample_fps=args.sample_fps or None, size=args.size or None, progress=progress)
    finally:
        progress.close()
        enc.close()
    steps = TextProgress("sampling")
    wave, _ = generate.music_for_curve(gen, raw, args.prompt, negative_prompt=args.negative_prompt, steps=args.steps,
                                       cfg_scale=args.cfg, seed=args.seed, uncond=args.uncond,
                                       callback=lambda s: steps(s["i"] + 1, args.steps))
    steps.close()
    out = media.mux_audio(args.video, wave, gen.sample_rate, args.out)
    print(f"music: {wave.shape[-1] / gen.sample_rate:.3f} s at {gen.sample_rate} Hz for a {raw.duration:.3f} s video -> {out}")
    if args.audio_out:
        media.write_audio(args.audio_out, wave, gen.sample_rate, layout="mono" if wave.shape[0] == 1 else "stereo")
        print(f"audio -> {os.path.abspath(args.audio_out)}")
    return 0
