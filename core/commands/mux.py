"""``v2m-zero mux VIDEO AUDIO --out OUT.mp4``: replace the soundtrack, fitted to the video."""

from __future__ import annotations

import argparse

from ._common import VIDEO_OUT, OutputPlan, number, plan_video_output

NAME = "mux"
HELP = "put an audio file into a video at exactly the video's duration (video stream copied)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..timing.media.write import AAC_BITRATES

    p.add_argument("video", help="input video (never modified)")
    p.add_argument("audio", help="audio file (wav, flac, mp3, m4a, ... or a video with sound)")
    p.add_argument("--out", required=True, help=f"output video ({', '.join(VIDEO_OUT)}); written atomically")
    p.add_argument("--bitrate", type=number(int, *AAC_BITRATES), default=192_000,
                   help=f"AAC bitrate in bit/s ({AAC_BITRATES[0]}–{AAC_BITRATES[1]}, default 192000)")


def run(args) -> int:
    from ..timing import media

    plan = OutputPlan()
    plan.input(args.video, "input video")
    plan.input(args.audio, "input audio")
    out = plan.file(args.out, "--out", extensions=VIDEO_OUT)
    with plan:
        mux_plan = plan_video_output(args.video, out)  # copy or re-encode, decided before decoding anything
        wave, sr = media.decode_audio(args.audio)
        out = media.mux_audio(args.video, wave, sr, out, bitrate=args.bitrate, plan=mux_plan)
        info = media.probe_video(out)
    print(f"muxed {args.audio} into {args.video} -> {out} ({info.duration:.3f} s, {info.frame_count} frames)")
    return 0
