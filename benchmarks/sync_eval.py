"""Sync evaluation harness (paper Table 1 / Table 6 columns) over a folder of videos.

For every video: event curve → generate music with the given V2M checkpoint → mux → Scene Cut
Hit with its chance level; once with the video's curve and once with a zero curve (text only),
as in the paper's Table 6. CLAP and FAD are added when local weights are given.

    python benchmarks/sync_eval.py VIDEO_DIR --checkpoint V2M.safetensors [--text-encoder T5_DIR]
        [--prompt "..."] [--steps 96] [--cfg 7] [--encoder pixels|dinov2 --model DIR]
        [--clap-weights DIR] [--reference-dir DIR] [--out RESULTS_DIR] [--json report.json]

With ``--demo N`` it first writes N synthetic cut videos into VIDEO_DIR (no data needed).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm", ".m4v")


def make_demo_videos(folder: str, n: int, seed: int = 0) -> None:
    import numpy as np

    from v2m_zero.core.eval import synth

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        duration = float(rng.uniform(6, 10))
        cuts = np.sort(rng.uniform(0.8, duration - 0.8, size=int(rng.integers(3, 7))))
        synth.make_cut_clip(os.path.join(folder, f"demo_{i:03d}.mp4"), cut_times=list(cuts), duration=duration, fps=24,
                            size=(160, 90), seed=i)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", help="folder of videos")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--text-encoder", default=None)
    ap.add_argument("--codec", default=None)
    ap.add_argument("--prompt", default="")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encoder", default="pixels")
    ap.add_argument("--model", default=None, help="DINOv2 folder for --encoder dinov2")
    ap.add_argument("--device", default=None)
    ap.add_argument("--clap-weights", default=None)
    ap.add_argument("--reference-dir", default=None, help="reference music for FAD (needs a VGGish embed function)")
    ap.add_argument("--out", default="sync_eval_out")
    ap.add_argument("--json", default=None)
    ap.add_argument("--demo", type=int, default=0, help="write this many synthetic videos into the folder first")
    args = ap.parse_args(argv)

    from v2m_zero.core.timing import encoders, media
    from v2m_zero.core import generate, eval as metrics

    if args.demo:
        make_demo_videos(args.videos, args.demo)
    videos = sorted(p for p in glob.glob(os.path.join(args.videos, "*")) if p.lower().endswith(VIDEO_EXT))
    if not videos:
        print(f"no videos in {args.videos}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    gen = generate.load_music_model(args.checkpoint, text_encoder=args.text_encoder, codec=args.codec,
                                    device=args.device)
    enc_kwargs = {"model": args.model} if args.model else {}
    enc = encoders.get_encoder(args.encoder, **enc_kwargs)
    rows = {"curve": [], "text-only": []}
    for path in videos:
        raw = encoders.encode_video_curve(path, enc)
        for label, c in (("curve", raw), ("text-only", None)):
            wave, _ = generate.music_for_curve(gen, c, args.prompt,
                                               generate.SamplingSettings(steps=args.steps, cfg=args.cfg,
                                                                         seed=args.seed),
                                               duration=raw.duration)
            out = os.path.join(args.out, f"{os.path.splitext(os.path.basename(path))[0]}.{label}.mp4")
            media.mux_audio(path, wave, gen.sample_rate, out)
            rows[label].append(metrics.evaluate_video(out))
        print(f"{os.path.basename(path)}: SCH curve {rows['curve'][-1]['sch']}, "
              f"text-only {rows['text-only'][-1]['sch']}, "
              f"chance {rows['curve'][-1]['sch_null']}", flush=True)

    table = {}
    for label, res in rows.items():
        summ = metrics.summarise_results(res)
        entry = {"sch": summ.get("sch"), "sch_null": summ.get("sch_null"), "sch_minus_null": summ.get("sch_minus_null")}
        if args.clap_weights:
            paths = [r["video"] for r in res]
            entry["clap"] = metrics.clap_score(paths, [args.prompt] * len(paths), weights_dir=args.clap_weights)
        if args.reference_dir:
            entry["fad"] = metrics.fad([r["video"] for r in res], args.reference_dir)
        table[label] = entry

    def f(x):
        return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    print()
    print(f"{'condition':<10} {'SCH':>6} {'SCH_null':>9} {'SCH-null':>9} {'CLAP':>8} {'FAD':>8}   "
          f"({len(videos)} videos, {args.steps} steps, cfg {args.cfg})")
    for label, e in table.items():
        clap = (e.get("clap") or {}).get("value") if isinstance(e.get("clap"), dict) else None
        fad = (e.get("fad") or {}).get("value") if isinstance(e.get("fad"), dict) else None
        print(f"{label:<10} {f(e['sch']):>6} {f(e['sch_null']):>9} {f(e['sch_minus_null']):>9} "
              f"{f(clap):>8} {f(fad):>8}")
    if args.json:
        from v2m_zero.core.commands._common import write_json

        write_json(args.json, {"table": table, "videos": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
