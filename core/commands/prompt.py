"""``v2m-zero prompt``: write a music prompt for a video (Whisper + VLM captions + LLM)."""

from __future__ import annotations

import argparse
import sys

from ._common import OutputPlan, number, write_json

NAME = "prompt"
HELP = (
    "write a music prompt for a video: speech transcript (Whisper), frame captions (VLM) and an "
    "LLM summary; with no models, from your --text and the video's cut rate"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument("--asr", metavar="DIR", help="Whisper model folder (transcript); omit to skip")
    p.add_argument("--vlm", metavar="DIR",
                   help="image-text-to-text model folder for frame captions, e.g. gemma-3-4b-it or "
                        "SmolVLM2-256M-Video-Instruct; also writes the summary and prompt when --llm is not given")
    p.add_argument("--llm", metavar="DIR", help="chat LLM folder for the summary and the prompt")
    p.add_argument("--text", default="", help="your own description or wishes; always part of the prompt's input")
    p.add_argument("--frames", metavar="N", type=number(int, 1, 64), default=8,
                   help="frames to caption (1–64, default 8)")
    p.add_argument("--frame-mode", choices=("even", "scenes"), default="even",
                   help="frames evenly spread, or one in the middle of each scene (default even)")
    p.add_argument("--language", default=None, help="spoken language (e.g. en); default: detected")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, mps; default cpu)")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                   help="model dtype (default float32 on CPU, bfloat16/float16 on CUDA)")
    p.add_argument("--cache", metavar="DIR", help="cache folder: a second run on the same "
                                                  "video and settings loads no model")
    p.add_argument("--json", metavar="OUT", help="also write the full result (prompt, transcript, captions, …) as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print transcript, captions and summary to stderr")


def run(args: argparse.Namespace) -> int:

    plan = OutputPlan()
    plan.input(args.video, "input video")
    for d, label in ((args.asr, "--asr"), (args.vlm, "--vlm"), (args.llm, "--llm")):
        plan.input(d, label)
    out = plan.file(args.json, "--json", extensions=(".json",), create_parent=True) if args.json else None
    if args.cache:
        plan.folder(args.cache, "--cache")
    with plan:
        return _run(args, out)


def _run(args, out) -> int:
    from ..prompt import MusicPromptPipeline

    pipe = MusicPromptPipeline(
        asr_dir=args.asr, vlm_dir=args.vlm, llm_dir=args.llm, device=args.device, dtype=args.dtype,
        cache_dir=args.cache, n_frames=args.frames, frame_mode=args.frame_mode, language=args.language,
    )

    def progress(step: int, total: int, message: str) -> None:
        if args.verbose:
            print(f"[{step}/{total}] {message}", file=sys.stderr)

    res = pipe.run(args.video, user_text=args.text, progress=progress)
    if args.verbose:
        err = sys.stderr
        if res.cached:
            print("(from the cache)", file=err)
        if res.transcript or "asr" in res.used_models:
            print(f"transcript ({res.language or '?'}): {res.transcript or '(no speech)'}", file=err)
        for t, c in zip(res.frame_times, res.captions):
            print(f"caption @ {t:.2f}s: {c}", file=err)
        if res.summary:
            print(f"summary: {res.summary}", file=err)
        if res.cuts_per_minute is not None:
            print(f"pacing: {res.cuts_per_minute:.1f} cuts/min → ~{res.bpm_hint} BPM", file=err)
    if res.fallback_reason:
        print(f"note: {res.fallback_reason}", file=sys.stderr)
    print(res.prompt)
    if out:
        write_json(out, res.to_dict(), ensure_ascii=False)
    return 0
