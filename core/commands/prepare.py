"""``v2m-zero prepare``: music files + captions → a training cache (codec latents + event curves)."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import OutputPlan, Progress, number

NAME = "prepare"
HELP = "encode music files (+ captions) into a training cache of codec latents and music event curves"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="folder of music files (wav/flac/mp3/ogg/m4a) with <name>.txt captions "
                                    "or a captions.csv / captions.jsonl (file,caption)")
    p.add_argument("--out", required=True, help="cache folder (created; re-runs resume it)")
    p.add_argument("--codec", default="patch",
                   help="'patch' (weightless, 32x at 44.1 kHz stereo), 'patch:P:C:SR', 'mel' (weightless log-mel, "
                        "128 bands at 16 kHz, 62.5 Hz, Griffin-Lim decoding), 'mel:N_MELS:SR:HOP', or a codec weights path "
                        "(e.g. Stable Audio Open's model.safetensors)")
    p.add_argument("--music-encoder", default="logmel", help="logmel | codec | musicfm (default logmel)")
    p.add_argument("--musicfm", default=None, help="MusicFM checkpoint (pretrained_msd.pt or .safetensors) for --music-encoder musicfm")
    p.add_argument("--musicfm-layer", type=number(int, 0, 64), default=7, help="MusicFM conformer layer whose output is the feature (default 7)")
    p.add_argument("--clip-seconds", type=number(float, 0.1, 600), default=32.0,
                   help="clip length in seconds, 0.1–600 (default 32, the paper's)")
    p.add_argument("--smoothing", type=number(float, 0, 60), default=None,
                   help="Hann smoothing of the curve in seconds (default: the paper's 31 frames at 12.3 Hz = 2.52 s)")
    p.add_argument("--last-clip", choices=["pad", "drop"], default="pad",
                   help="a file's last partial clip: pad with silence if >= half a clip (default) or drop it")
    p.add_argument("--shard-size", type=number(int, 1, 100_000), default=256, help="clips per shard file")
    p.add_argument("--batch-size", type=number(int, 1, 4096), default=8, help="clips encoded at once")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    from ..timing.curves import DEFAULT_SMOOTHING_SECONDS
    from ..errors import V2MError
    from ..train.prepare import prepare_dataset
    opts = {}
    if args.music_encoder == "musicfm":
        if not args.musicfm:
            raise V2MError("--music-encoder musicfm needs --musicfm PATH (MusicFM's pretrained_msd.pt)")
        opts = {"path": args.musicfm, "layer": args.musicfm_layer}
    if not os.path.isdir(args.data_dir):
        raise V2MError(f"{args.data_dir}: data folder not found. Fix: give the folder that holds the music files.")
    plan = OutputPlan()
    plan.input(args.data_dir, "data folder")
    plan.input(args.musicfm, "--musicfm")
    if os.path.exists(args.codec):
        plan.input(args.codec, "--codec")
    plan.folder(args.out, "--out")
    with plan, Progress("encoding music files", unit="files") as bar:
        res = prepare_dataset(
            args.data_dir, args.out, codec=args.codec, music_encoder=args.music_encoder, encoder_options=opts,
            clip_seconds=args.clip_seconds,
            smoothing_seconds=DEFAULT_SMOOTHING_SECONDS if args.smoothing is None else args.smoothing,
            last_clip=args.last_clip, shard_size=args.shard_size, batch_size=args.batch_size, device=args.device,
            progress=lambda done, total, name: bar(done, total), log=lambda m: print(m, file=sys.stderr),
        )
    print(f"cache {res.cache_dir}: {res.clips} clips ({res.new_clips} new), {res.files_done} files, "
          f"{res.files_skipped_done} already cached, {len(res.skipped)} skipped")
    return 0
