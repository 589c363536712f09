"""Curve speed: decode + weightless encoder + event curve vs a bare PyAV decode and PySceneDetect.

Generates 1080p H.264 clips (10 s and 60 s by default, cached in --workdir), then runs, each in
its own fresh process so that peak RSS is its own:

  bare      PyAV decodes every frame and does nothing else (the floor: no pipeline beats it)
  v2m       v2m_zero: stream-decode at the encoder's size + pixels encoder + streaming event
            curve (constant memory) + hit points + smoothed curve
  scenedet  PySceneDetect ``detect(path, AdaptiveDetector())`` (what the paper's SCH uses)

Prints seconds, ratios to the bare decode, and peak RSS. Goals (issue 2): v2m ≤ 1.15× bare,
≥ 1.4× faster than PySceneDetect, and peak RSS that does not grow with duration.

    python benchmarks/curve_speed.py [--durations 10 60] [--repeat 3] [--encoder pixels]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, sys, time
kind, path, encoder = sys.argv[1], sys.argv[2], sys.argv[3]
# Libraries are imported before the clock starts: we time the work, not interpreter start-up.
import av
if kind == "v2m":
    from v2m_zero.core import curves, encoders, media
elif kind == "scenedet":
    from scenedetect import AdaptiveDetector, detect
t0 = time.perf_counter()
extra = {}
if kind == "bare":
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = 0
        for _ in c.decode(s):
            n += 1
    extra["frames"] = n
elif kind == "v2m":
    raw = encoders.encode_video_curve(path, encoders.get_encoder(encoder))
    peaks = curves.find_peaks(raw)
    smooth = curves.smooth_curve(curves.resample_curve(raw, rate=curves.SAO_LATENT_RATE))
    extra.update(frames=len(raw) + 1, peaks=[round(float(p), 3) for p in peaks])
elif kind == "scenedet":
    scenes = detect(path, AdaptiveDetector())
    extra["cuts"] = [round(s[1].get_seconds(), 3) for s in scenes[:-1]]
dt = time.perf_counter() - t0
# VmHWM is this process's own peak RSS (ru_maxrss would inherit the parent's across fork+exec)
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": dt, "rss_mb": rss, **extra}))
"""


def make_clip(path: str, duration: float, fps: float, cuts_every: float) -> list[float]:
    from v2m_zero.core.eval import synth

    cuts = [round(c, 3) for c in list(_frange(cuts_every, duration, cuts_every))]
    if not os.path.exists(path):
        print(f"generating {path} ({duration:g} s 1080p H.264 at {fps:g} fps) ...", flush=True)
        tmp = path + ".part.mp4"
        synth.make_cut_clip(tmp, cut_times=cuts, duration=duration, fps=fps, size=(1920, 1080))
        os.replace(tmp, path)
    return cuts


def _frange(a, b, step):
    x = a
    while x < b - 1e-9:
        yield x
        x += step


def run_child(kind: str, path: str, encoder: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, path, encoder], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported")
    ap.add_argument("--encoder", default="pixels")
    ap.add_argument("--workdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache"))
    ap.add_argument("--skip-scenedetect", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)

    import av

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"PyAV {av.__version__}")
    kinds = ["bare", "v2m"] + ([] if args.skip_scenedetect else ["scenedet"])
    rows = []
    for dur in args.durations:
        path = os.path.join(args.workdir, f"clip_1080p_{int(dur)}s_{args.fps:g}fps.mp4")
        cuts = make_clip(path, dur, args.fps, 2.5)
        res = {}
        for kind in kinds:
            runs = []
            for _ in range(args.repeat):  # interleaving would be fairer; separate processes keep RSS honest
                runs.append(run_child(kind, path, args.encoder))
            runs.sort(key=lambda r: r["seconds"])
            res[kind] = dict(runs[len(runs) // 2], rss_mb=max(r["rss_mb"] for r in runs))
        v2m_peaks = res["v2m"].get("peaks", [])
        hit = sum(any(abs(p - c) <= 1 / args.fps + 1e-6 for p in v2m_peaks) for c in cuts)
        rows.append((dur, res, hit, len(cuts)))

    print()
    print(f"{'clip':>6} {'method':>9} {'seconds':>8} {'x bare':>7} {'peak RSS MB':>11}  notes")
    for dur, res, hit, ncuts in rows:
        bare = res["bare"]["seconds"]
        for kind in kinds:
            r = res[kind]
            note = ""
            if kind == "bare":
                note = f"{r['frames']} frames, {r['frames'] / r['seconds']:.0f} fps"
            elif kind == "v2m":
                note = f"cuts within 1 frame: {hit}/{ncuts}"
            elif kind == "scenedet":
                note = f"{len(r['cuts'])} cuts"
            print(f"{dur:>5g}s {kind:>9} {r['seconds']:>8.2f} {r['seconds'] / bare:>7.2f} {r['rss_mb']:>11.0f}  {note}")
        if "scenedet" in res:
            print(f"{'':>6} {'':>9} scenedetect / v2m = {res['scenedet']['seconds'] / res['v2m']['seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
