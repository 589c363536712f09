"""``v2m-zero eval``: Scene Cut Hit (and beat scores against reference music) for videos."""

from __future__ import annotations

import os

from ..atomic import write_json
from ._common import OutputPlan, Progress, number

NAME = "eval"
HELP = (
    "Score the music of videos: Scene Cut Hit (paper Alg. 1) with its chance level, and "
    "BCS/BHS/TD against reference music when given."
)


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", help="video files with the music to evaluate (muxed audio track)")
    p.add_argument(
        "--reference-music",
        nargs="*",
        default=None,
        metavar="FILE",
        help="ground-truth music (audio or video files), one per video in the same order: "
        "adds beat coverage/hit scores (BCS/BHS, LORIS, 0.2 s bins) and tempo deviation (TD)",
    )
    p.add_argument("--json", metavar="PATH", default=None, help="also write the per-video results and means as JSON")
    p.add_argument("--tolerance", type=number(float, 0, 2, lo_open=True), default=0.1,
                   help="SCH hit tolerance in seconds, at most 2 (paper: 0.1)")
    p.add_argument("--shifts", type=number(int, 1, 10_000), default=200,
                   help="circular beat shifts averaged for the SCH chance level (1–10000, default 200)")
    p.add_argument("--beat-tracker", choices=("librosa", "beat-this"), default="librosa",
                   help="whose beats SCH uses: librosa (default, the paper's Algorithm 1) or beat-this (Beat This!, "
                        "when installed with its weights: `v2m-zero models download beat-this`); with Beat This! "
                        "installed a line under the table says how the two agree either way")
    p.add_argument("--audio-track", default="all", metavar="all|N",
                   help="which audio track of each video is the music: all (default: each track scored on its own "
                        "row, labelled [audio N] when a file has several) or N (1 = the first)")


def _track_choice(text: str):
    from ..errors import V2MError

    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise V2MError(f"--audio-track must be 'all' or a track number 1–64, got {text!r}")
    return n


def run(args) -> int:
    from ..errors import V2MError
    from ..eval import report

    videos = list(args.videos)
    refs = args.reference_music
    if refs is not None and len(refs) == 0:
        refs = None
    if refs is not None and len(refs) != len(videos):
        raise V2MError(
            f"--reference-music needs one file per video: {len(videos)} video(s), {len(refs)} reference file(s)"
        )
    missing = [p for p in videos + list(refs or []) if not os.path.isfile(p)]
    if missing:
        raise V2MError(f"file not found: {', '.join(repr(p) for p in missing)}")
    plan = OutputPlan()
    for i, v in enumerate(videos):
        plan.input(v, f"video {i + 1}")
    for i, r in enumerate(refs or []):
        plan.input(r, f"reference music {i + 1}")
    out = plan.file(args.json, "--json", extensions=(".json",)) if args.json else None
    choice = _track_choice(args.audio_track)
    with plan:
        from ..eval.beats import get_tracker

        get_tracker(args.beat_tracker)  # one line, before any scoring, when it is not there
        from ..timing.media.audio import audio_track_count

        counts = [audio_track_count(v) for v in videos]  # the choice checked for every file before any scoring
        if choice != "all":
            short = [f"{v!r} has {n}" for v, n in zip(videos, counts) if 0 < n < choice]
            if short:
                raise V2MError(f"--audio-track {choice}: {', '.join(short)} audio track(s)")
        for v, n in zip(videos, counts):
            if n > 1:
                which = "each is scored on its own row" if choice == "all" else f"track {choice} is scored"
                print(f"note: {v} has {n} audio tracks: {which} (--audio-track chooses)")
        results = []
        with Progress("evaluating videos", len(videos), unit="videos") as bar:
            for i, (video, n) in enumerate(zip(videos, counts)):
                tracks = [choice - 1] if choice != "all" else list(range(max(1, n)))
                cuts = None
                for t in tracks:
                    r = report.evaluate_video(video, reference_music=refs[i] if refs else None,
                                              tolerance=args.tolerance, n_shifts=args.shifts,
                                              audio_track=t if n else 0, cuts=cuts, beat_tracker=args.beat_tracker)
                    cuts = r["cuts"]
                    if n > 1:
                        r["audio_track"] = t + 1
                    results.append(r)
                bar(i + 1)
        print(report.format_table(results))
        if out:
            write_json(out, {"videos": results, "mean": report.summarise_results(results)}, indent=2, allow_nan=False)
            print(f"wrote {out}")
    return 0
