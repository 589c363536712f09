"""``v2m-zero eval``: Scene Cut Hit (and beat scores against reference music) for videos."""

from __future__ import annotations

import os
from ..atomic import write_json

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
    p.add_argument("--tolerance", type=float, default=0.1, help="SCH hit tolerance in seconds (paper: 0.1)")
    p.add_argument(
        "--shifts", type=int, default=200, help="circular beat shifts averaged for the SCH chance level (default 200)"
    )


def _write_json_atomic(path: str, payload: dict) -> None:
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        from ..errors import V2MError

        raise V2MError(f"--json: folder {folder!r} does not exist")
    write_json(path, payload, indent=2, allow_nan=False)


def run(args) -> int:
    from ..eval import report
    from ..errors import V2MError

    videos = list(args.videos)
    refs = args.reference_music
    if refs is not None and len(refs) == 0:
        refs = None
    if refs is not None and len(refs) != len(videos):
        raise V2MError(
            f"--reference-music needs one file per video: {len(videos)} video(s), {len(refs)} reference file(s)"
        )
    if not args.tolerance > 0:
        raise V2MError(f"--tolerance must be positive, got {args.tolerance}")
    if args.shifts < 1:
        raise V2MError(f"--shifts must be at least 1, got {args.shifts}")
    missing = [p for p in videos + list(refs or []) if not os.path.isfile(p)]
    if missing:
        raise V2MError(f"file not found: {', '.join(repr(p) for p in missing)}")

    results = []
    for i, video in enumerate(videos):
        results.append(
            report.evaluate_video(
                video,
                reference_music=refs[i] if refs else None,
                tolerance=args.tolerance,
                n_shifts=args.shifts,
            )
        )
    print(report.format_table(results))
    if args.json:
        _write_json_atomic(args.json, {"videos": results, "mean": report.summarise_results(results)})
        print(f"wrote {args.json}")
    return 0
