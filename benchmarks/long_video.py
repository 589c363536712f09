"""Videos of any length (issue 13): windowed generation vs a naive cut-and-concatenate baseline.

For generated clips with a cut every 1.5–3 s (default 10 s, 1, 3 and 5 minutes) and the bundled
demo checkpoint (8 s training clips) on the CPU:

* **windowed** — ``v2m-zero generate`` as shipped, run in a fresh process per clip: wall time
  of the job (curve → windows → decode → mux → audio file; imports excluded) and the process's
  peak RSS (VmHWM);
* **one pass** — the same command with ``--window 512`` (the whole video in one pass, as before
  windowing), for the clips up to ``--one-pass-max`` seconds;
* **naive** — the same joins, each piece generated alone at its own length (its own seed from the
  same stream, no overlap, no crossfade) and the pieces concatenated.

Scores on the whole video: exact length; Scene Cut Hit against the clip's known cuts (±0.1 s)
and its chance level (circular beat shifts); and the **seam statistic** (see ``seam_ranks``):
the percentile rank of the largest frame-to-frame jump around each join, in short-time RMS (dB)
and in normalised spectral flux, within the same statistic taken everywhere else in the clip
away from cuts. A seamless join ranks like any other place: mean rank ≈ 50 %, about 5 % of
joins above the 95th percentile.

    python benchmarks/long_video.py [--durations 10 60 180 300] [--short-clips 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(os.path.dirname(HERE), "demo", "v2m-zero-pair-toy.safetensors")
FRAME_SECONDS, HOP_SECONDS = 0.064, 0.016  # analysis frames of the seam statistic
SEAM_RADIUS, CUT_GUARD = 0.25, 0.1  # the jump is the largest within ±0.25 s; references keep 0.1 s more from cuts

CHILD = r"""
import json, sys, time
import av, librosa, numpy, torch  # imported before the clock, as every run pays them once
from v2m_zero.core import cli, generate, windows
from v2m_zero.core.timing import encoders, media
torch.set_num_threads(int(sys.argv[1]))
t0 = time.perf_counter()
rc = cli.main(sys.argv[2:])
wall = time.perf_counter() - t0
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"rc": rc, "wall": wall, "rss_mb": rss}))
"""


def cut_times(duration: float, rng) -> list[float]:
    """The first cut at 0.5–2 s, then one every 1.5–3 s (uniform), none in the last 0.3 s."""
    out = [round(float(rng.uniform(0.5, 2.0)), 3)]
    while out[-1] + 1.5 < duration - 0.3:
        t = out[-1] + float(rng.uniform(1.5, 3.0))
        if t > duration - 0.3:
            break
        out.append(round(t, 3))
    return out


def run_generate(video: str, out: str, args, *, window: float | None = None) -> dict:
    argv = ["generate", video, "--checkpoint", args.checkpoint, "--steps", str(args.steps), "--cfg", str(args.cfg),
            "--seed", str(args.seed), "--out", out + ".mp4", "--audio-out", out + ".wav"]
    if window:
        argv += ["--window", str(window)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    p = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), *argv], capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["log"] = [ln for ln in p.stderr.splitlines() if ln.startswith("windows:")]
    return res


def naive(gen, raw, plan, args) -> np.ndarray:
    """Cut and concatenate: each piece between joins generated alone, at its own length."""
    import torch

    from v2m_zero.core import generate, windows

    cond = generate.conditioning_curve_for(gen, raw)
    bounds = [0] + [w.join for w in plan.windows[1:]] + [plan.total]
    parts = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        piece = cond.replace(values=cond.values[a:b], times=cond.times[a:b], duration=(b - a) / gen.latent_rate)
        parts.append(generate.sample_latents(gen, piece, "", duration=(b - a) / gen.latent_rate, steps=args.steps,
                                             cfg_scale=args.cfg, seed=windows.window_seed(args.seed, k)))
    return generate.decode_latents(gen, torch.cat(parts, dim=-1), raw.duration)


def frame_jumps(wave: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-to-frame jumps of short-time RMS (dB) and of normalised spectral flux, and their times.

    Frames of 64 ms (Hann) every 16 ms. RMS jump: ``|L[k+1] − L[k]|`` with L the frame's RMS in dB
    (floor −100 dB). Flux: ``‖M[k+1] − M[k]‖₂ / (½(‖M[k]‖₂ + ‖M[k+1]‖₂) + 1e-9)`` with M the
    magnitude spectrum (0 = identical spectra, 2 = disjoint). A jump's time is the midpoint of
    the two frames' centres.
    """
    y = np.asarray(wave, np.float64).mean(axis=0)
    n, hop = int(round(FRAME_SECONDS * sr)), int(round(HOP_SECONDS * sr))
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    mag = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1))
    norms = np.linalg.norm(mag, axis=1)
    flux = np.linalg.norm(np.diff(mag, axis=0), axis=1) / (0.5 * (norms[1:] + norms[:-1]) + 1e-9)
    times = (np.arange(len(frames) - 1) * hop + hop / 2 + n / 2) / sr
    return np.abs(np.diff(level)), flux, times


def seam_ranks(wave, sr, seams, cuts) -> dict:
    """Percentile rank of each seam's jump among the same statistic at every other place.

    Statistic at time τ: the largest frame-to-frame jump with its time in ``[τ − 0.25, τ + 0.25]``
    s. Reference: that statistic on the 16 ms grid wherever the window is ≥ 0.1 s from any cut
    and from any seam's window. Seams whose window lies within 0.1 s of a cut are not scored
    (a cut's hit is the music's own jump). Returns for RMS and flux: the ranks (%), their mean,
    and the fraction of seams above the reference's 95th percentile.
    """
    jr, jf, t = frame_jumps(wave, sr)
    hop = HOP_SECONDS
    w = int(round(SEAM_RADIUS / hop))
    from numpy.lib.stride_tricks import sliding_window_view

    def windowed_max(j):
        return sliding_window_view(np.pad(j, w, constant_values=0), 2 * w + 1).max(axis=1)

    mr, mf = windowed_max(jr), windowed_max(jf)
    cuts, seams = np.asarray(cuts, float), np.asarray(seams, float)
    near = lambda x, pts, r: (np.abs(x[:, None] - pts[None, :]) <= r).any(axis=1) if len(pts) else np.zeros(len(x), bool)  # noqa: E731
    ref = ~near(t, cuts, SEAM_RADIUS + CUT_GUARD) & ~near(t, seams, 2 * SEAM_RADIUS)
    scored = seams[~near(seams, cuts, SEAM_RADIUS + CUT_GUARD)]
    out = {"seams": len(seams), "scored": len(scored), "reference_points": int(ref.sum())}
    for name, m in (("rms", mr), ("flux", mf)):
        refv = np.sort(m[ref])
        vals = m[np.clip(np.searchsorted(t, scored), 0, len(t) - 1)]
        ranks = 100.0 * np.searchsorted(refv, vals, side="left") / max(1, len(refv))
        p95 = float(np.percentile(refv, 95)) if len(refv) else float("nan")
        out[name] = {"mean_rank": float(ranks.mean()) if len(ranks) else None,
                     "above_p95": float((vals > p95).mean()) if len(vals) else None, "p95": p95,
                     "median_jump": float(np.median(vals)) if len(vals) else None}
    return out


def score(wave, sr, cuts, duration) -> dict:
    from v2m_zero.core.eval import sch

    beats = sch.beat_times(wave.mean(axis=0), sr)
    return {"sch": sch.scene_cut_hit(cuts, beats), "sch_null": sch.sch_null(cuts, beats, duration), "beats": len(beats)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=DEMO)
    ap.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0, 180.0, 300.0])
    ap.add_argument("--short-clips", type=int, default=5, help="extra 10 s clips for the short-clip SCH reference")
    ap.add_argument("--one-pass-max", type=float, default=60.0, help="also run one pass (no windows) up to this length")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared CPU is much faster so)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    from v2m_zero.core import examples, generate
    from v2m_zero.core.timing import encoders, media

    torch.set_num_threads(args.threads)
    gen = generate.load_generator(args.checkpoint)
    enc = encoders.get_encoder(gen.curve_spec.encoder)
    rng = np.random.default_rng(args.seed)
    jobs = [(d, "long") for d in args.durations] + [(10.0, "short")] * args.short_clips
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (d, kind) in enumerate(jobs):
            t0 = time.time()
            clip = examples.make_cut_clip(os.path.join(tmp, f"clip{i}.mp4"), cut_times=cut_times(d, rng), duration=d,
                                          fps=24, size=(160, 90), seed=i)
            out = os.path.join(tmp, f"w{i}")
            res = run_generate(clip.path, out, args)
            wave, sr = media.decode_audio(out + ".wav")
            raw = encoders.encode_video_curve(clip.path, enc)
            _, plan = generate.curve_and_plan(gen, raw, raw.duration)
            seams_w = [j - plan.fade / (2 * plan.rate) for j in plan.joins]  # centre of each crossfade
            row = {"duration": clip.duration, "kind": kind, "cuts": len(clip.cut_times), "windows": len(plan),
                   "samples": int(wave.shape[1]), "exact_length": wave.shape[1] == round(clip.duration * sr),
                   "wall_s": res["wall"], "rss_mb": res["rss_mb"], "windowed": score(wave, sr, clip.cut_times, clip.duration)}
            row["windowed"]["seams"] = seam_ranks(wave, sr, seams_w, clip.cut_times)
            if len(plan) > 1 and kind == "long":
                nv = naive(gen, raw, plan, args)
                row["naive"] = score(nv, gen.sample_rate, clip.cut_times, clip.duration)
                row["naive"]["seams"] = seam_ranks(nv, gen.sample_rate, plan.joins, clip.cut_times)
            if kind == "long" and d <= args.one_pass_max:
                one = run_generate(clip.path, os.path.join(tmp, f"o{i}"), args, window=512)
                row["one_pass"] = {"wall_s": one["wall"], "rss_mb": one["rss_mb"]}
            rows.append(row)
            print(_line(row), f"({time.time() - t0:.0f} s)", flush=True)
    _table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def _line(r) -> str:
    w = r["windowed"]
    s = f"{r['kind']:5s} {r['duration']:6.1f} s: {r['windows']} windows, exact {r['exact_length']}, {r['wall_s']:.1f} s, " \
        f"{r['rss_mb']:.0f} MB, SCH {w['sch']:.3f} (chance {w['sch_null']:.3f})"
    if "naive" in r:
        s += f"; naive SCH {r['naive']['sch']:.3f}"
    return s


def _table(rows) -> None:
    f = lambda x, p=3: "–" if x is None else f"{x:.{p}f}"  # noqa: E731
    print("\n| clip | windows | exact length | time (s) | s per min | peak RSS (MB) | SCH | chance | SCH − chance | one pass: time, RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] != "long":
            continue
        w, one = r["windowed"], r.get("one_pass")
        one = "–" if not one else f"{one['wall_s']:.1f} s, {one['rss_mb']:.0f} MB"
        print(f"| {r['duration']:.0f} s | {r['windows']} | {r['exact_length']} | {r['wall_s']:.1f} | {60 * r['wall_s'] / r['duration']:.1f} "
              f"| {r['rss_mb']:.0f} | {f(w['sch'])} | {f(w['sch_null'])} | {f(w['sch'] - w['sch_null'])} | "
              f"{one} |")
    short = [r for r in rows if r["kind"] == "short"] + [r for r in rows if r["kind"] == "long" and r["duration"] <= 10.5]
    if short:
        g = np.mean([r["windowed"]["sch"] - r["windowed"]["sch_null"] for r in short])
        print(f"\n10 s clips ({len(short)}): mean SCH − chance {g:.3f}")
    print("\n| clip | method | joins scored | RMS jump: mean rank | above p95 | flux jump: mean rank | above p95 | SCH | SCH − chance |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for m in ("windowed", "naive"):
            if m not in r or r["kind"] != "long" or r["windows"] < 2:
                continue
            s = r[m]["seams"]
            print(f"| {r['duration']:.0f} s | {m} | {s['scored']}/{s['seams']} | {f(s['rms']['mean_rank'], 1)} % | "
                  f"{f(s['rms']['above_p95'], 2)} | {f(s['flux']['mean_rank'], 1)} % | {f(s['flux']['above_p95'], 2)} | "
                  f"{f(r[m]['sch'])} | {f(r[m]['sch'] - r[m]['sch_null'])} |")


if __name__ == "__main__":
    sys.exit(main())
