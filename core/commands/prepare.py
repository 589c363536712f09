"""``v2m-zero prepare``: music files + captions → a training cache (codec latents + event curves)."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import add_smoothing_argument, PRESETS, OutputPlan, Progress, number

NAME = "prepare"
HELP = "encode music files (+ captions) into a training cache of codec latents and music event curves"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..timing.spec import CLIP_SECONDS_BOUNDS

    p.add_argument("data_dir", help="folder of music files (wav/flac/mp3/ogg/m4a) with <name>.txt captions "
                                    "or a captions.csv / captions.jsonl (file,caption)")
    p.add_argument("--out", required=True, help="cache folder (created; re-runs resume it)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="the base model's settings: sao1 = Stable Audio Open 1.0 (its own VAE from --checkpoint, "
                        "MusicFM curves or log-mel with a warning when MusicFM is missing, 32 s clips); sa3 = Stable "
                        "Audio 3 the same way (its SAME codec); toy = the defaults")
    p.add_argument("--checkpoint", default=None,
                   help="the base checkpoint whose codec encodes the latents (--preset sao1 / sa3): "
                        "the V2M checkpoint from init-checkpoint, or the base's own model.safetensors")
    p.add_argument("--codec", default=None,
                   help="'patch' (weightless, 32x at 44.1 kHz stereo; the default), 'patch:P:C:SR', 'mel' (weightless "
                        "log-mel, 128 bands at 16 kHz, 62.5 Hz, Griffin-Lim decoding), 'mel:N_MELS:SR:HOP', or a codec "
                        "weights path (e.g. Stable Audio Open's model.safetensors)")
    p.add_argument("--music-encoder", default=None, help="logmel | codec | musicfm (default logmel; "
                                                         "musicfm with --preset sao1 / sa3)")
    p.add_argument("--musicfm", default=None, help="MusicFM checkpoint (pretrained_msd.pt or "
                                                   ".safetensors) for --music-encoder musicfm")
    p.add_argument("--musicfm-layer", type=number(int, 0, 64), default=7,
                   help="MusicFM conformer layer whose output is the feature (default 7: MusicFM's README example; "
                        "the paper names none). Recorded in the cache and the checkpoint's curve metadata")
    p.add_argument("--no-fallback", action="store_true",
                   help="with --preset sao1 / sa3: stop when no MusicFM weights are found instead of using log-mel "
                        "curves (the presets' fallback; a MusicFM file that is there but unreadable always stops)")
    p.add_argument("--clip-seconds", type=number(float, *CLIP_SECONDS_BOUNDS), default=None,
                   help=f"clip length in seconds, {CLIP_SECONDS_BOUNDS[0]:g}–{CLIP_SECONDS_BOUNDS[1]:g} "
                        "(default 32, the paper's)")
    p.add_argument("--no-generated-captions", action="store_true",
                   help="files without a caption get '' instead of one generated from their tags and measured "
                        "tempo, key, loudness and brightness")
    add_smoothing_argument(p, default=None)
    p.add_argument("--last-clip", choices=["pad", "drop"], default="pad",
                   help="a file's last partial clip: pad with silence if >= half a clip (default) or drop it")
    p.add_argument("--shard-size", type=number(int, 1, 100_000), default=256, help="clips per shard file")
    p.add_argument("--batch-size", type=number(int, 1, 4096), default=8, help="clips encoded at once")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")


def _settings(args) -> dict:
    """Codec, music encoder (+ options, fallback) and clip length from the arguments and the preset."""
    from ..errors import V2MError
    from ..train.presets import prepare_preset

    preset = prepare_preset(args.preset or "toy")
    codec = args.codec or preset.codec or args.checkpoint
    if codec is None:
        raise V2MError(f"--preset {args.preset} encodes with the base checkpoint's own codec: give --checkpoint "
                       "(the V2M checkpoint from init-checkpoint, or the base's model.safetensors)")
    encoder = args.music_encoder or preset.music_encoder
    fallback = None if args.music_encoder or args.no_fallback else preset.fallback_encoder
    opts = {}
    if encoder == "musicfm":
        path = args.musicfm
        if path is None:
            from ...model_io.musicfm import find_musicfm

            path = find_musicfm()
        if path is None and fallback is None:
            raise V2MError("--music-encoder musicfm needs --musicfm PATH (MusicFM's pretrained_msd.pt; "
                           "`v2m-zero models download musicfm`)")
        opts = {"path": path, "layer": args.musicfm_layer}
    return {"codec": codec, "music_encoder": encoder, "encoder_options": opts, "music_encoder_fallback": fallback,
            "clip_seconds": args.clip_seconds or preset.clip_seconds}


def run(args: argparse.Namespace) -> int:
    from ..timing.curves import DEFAULT_SMOOTHING_SECONDS
    from ..errors import V2MError
    from ..train.prepare import prepare_dataset

    settings = _settings(args)
    if not os.path.isdir(args.data_dir):
        raise V2MError(f"{args.data_dir}: data folder not found. Fix: give the folder that holds the music files.")
    plan = OutputPlan()
    plan.input(args.data_dir, "data folder")
    plan.input(args.musicfm, "--musicfm")
    plan.input(args.checkpoint, "--checkpoint")
    if os.path.exists(settings["codec"]):
        plan.input(settings["codec"], "--codec")
    plan.folder(args.out, "--out")
    with plan, Progress("encoding music files", unit="files") as bar:
        res = prepare_dataset(
            args.data_dir, args.out, **settings, generate_captions=not args.no_generated_captions,
            smoothing_seconds=DEFAULT_SMOOTHING_SECONDS if args.smoothing_seconds is None else args.smoothing_seconds,
            last_clip=args.last_clip, shard_size=args.shard_size, batch_size=args.batch_size, device=args.device,
            progress=lambda done, total, name: bar(done, total), log=lambda m: print(m, file=sys.stderr),
        )
    print(f"cache {res.cache_dir}: {res.clips} clips ({res.new_clips} new), {res.files_done} files, "
          f"{res.files_skipped_done} already cached, {len(res.skipped)} skipped")
    return 0
