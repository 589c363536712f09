"""``v2m-zero mux VIDEO AUDIO --out OUT.mp4``: replace the soundtrack, fitted to the video."""

from __future__ import annotations

import argparse

NAME = "mux"
HELP = "put an audio file into a video at exactly the video's duration (video stream copied)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video (never modified)")
    p.add_argument("audio", help="audio file (wav, flac, mp3, m4a, ... or a video with sound)")
    p.add_argument("--out", required=True, help="output video (.mp4, .mkv or .mov); written atomically")
    p.add_argument("--bitrate", type=int, default=192_000, help="AAC bitrate in bit/s")


def run(args) -> int:
    from ..timing import media

    wave, sr = media.decode_audio(args.audio)
    out = media.mux_audio(args.video, wave, sr, args.out, bitrate=args.bitrate)
    info = media.probe_video(out)
    print(f"muxed {args.audio} into {args.video} -> {out} ({info.duration:.3f} s, {info.frame_count} frames)")
    return 0
