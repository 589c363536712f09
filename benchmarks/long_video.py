"""Videos of any length (issue 13): windowed generation vs a naive cut-and-concatenate baseline.

For generated clips with a cut every 1.5–3 s (default 10 s, 1, 3 and 5 minutes) and the bundled
demo checkpoint (8 s training clips) on the CPU:

* **windowed** — ``v2m-zero generate`` as shipped, run in a fresh process per clip: wall time
  of the job (curve → windows → decode → mux → audio file; imports excluded) and the process's
  peak RSS (VmHWM);
* **one pass** — the same command with ``--window 512`` (the whole video in one pass, as before
  windowing), for the clips up to ``--one-pass-max`` seconds;
* **naive** — cut and concatenate: pieces generated alone at their own length (each its own seed
  from the same stream; no overlap, no crossfade), concatenated; either cut at the windowed run's
  joins (same places, so only continuity differs) or every 8 s (a window) regardless of content.

Scores on the whole video: exact length; Scene Cut Hit against the clip's known cuts (±0.1 s)
and its chance level (circular beat shifts); and the **seam statistics** of ``seams.py``: the
percentile rank of each join among the clip's other places, for the instantaneous jump (short-
time RMS in dB, spectral flux) and for the step in level and timbre between the second before
and the second after. A seamless join ranks like any other place: mean rank ≈ 50 %, about 5 %
of joins above the 95th percentile.

    python benchmarks/long_video.py [--durations 10 60 180 300] [--short-clips 5] [--json out.json]

Footage: with ``--footage`` (default when ``benchmarks/.cache/footage`` holds the clips that
``real_footage.py`` fetches), each clip is a composite of real footage with a real cut every
1–3 s, written frame by frame (never all frames in memory); otherwise the generated cut clips.

Two more modes (issue 24):

* ``--stages SECONDS``: where the CPU time of the main job goes, in one process, per stage
  (``time.process_time``: CPU seconds of all threads): load, decode + curve, sampling, latent
  decode (split into the mel inversion and Griffin-Lim for the demo's mel codec), mastering +
  mux, scoring; plus the old NNLS mel inversion timed on the same latents for comparison.
* ``--compare-norms SECONDS``: the seam statistics and SCH of the same clip generated with each
  window's curve standardised on its own (as training clips) and as a slice of the whole
  video's standardised curve.
* ``--compare-joins SECONDS``: the same for joins placed at cuts (the new window taking over just
  before a cut in the join's search range) vs where the curve is calm (away from cuts).
* ``--compare-steps SECONDS``: the music of one clip sampled with fewer Euler steps (32, 24, 16, 12,
  8), with classifier-free guidance on part of the steps only (the unconditional pass skipped
  outside a guidance interval of t, Kynkäänniemi et al. 2024; a wrapper of this benchmark's), and
  with another seed: sampling CPU s, SCH − chance, seam ranks and the log-mel distance (mean |Δ| in
  dB, 64 mel bands) to the 32-step run of the same seed: another seed's distance is the scale of
  "different music". With ``--precision P``: the 32-step reference, another seed, and the reference
  sampled in precision P instead.
* ``--compare-threads SECONDS``: wall and CPU seconds of sampling one clip with 1 torch thread,
  with 2 and guidance's two branches side by side (``core.model.parallel.SideBySide``, the
  default), and with 2 on one forward of batch 2 (torch's intra-op threads), alternating
  (``--rounds``), with the load average.
* ``--compare-warm-up SECONDS``: ``demo --video`` on one clip in fresh processes with the scoring's
  ``librosa.beat`` import on a second thread during sampling (``demo.warm_up_scoring``) off and on,
  alternating (``--rounds``): wall and CPU seconds, load average.
* ``--compare-execution SECONDS``: CPU seconds of sampling and latent decode on one clip with
  issue 24's execution changes on (cross-attention re-associated for a short context, Griffin-Lim
  in torch) and off (SDPA, ``librosa.griffinlim``), alternating in one process, and how far the
  results differ.
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

import seams  # benchmarks/seams.py

HERE = os.path.dirname(os.path.abspath(__file__))
# the figures in RESULTS.md were measured with the first demo, the click toy
# (git show d95b9a2:demo/v2m-zero-pair-toy.safetensors);
# --checkpoint takes any V2M checkpoint, the bundled demo by default
DEMO = os.path.join(os.path.dirname(HERE), "demo", "v2m-zero-demo-music.safetensors")

CHILD = r"""
import json, os, sys, time
import av, librosa, numpy, torch, torch._dynamo  # imported before the clock, as every run pays them once
from v2m_zero.core import cli, generate, windows
from v2m_zero.core.commands import demo
demo.WARM_UP_SCORING = os.environ.get("V2M_BENCH_WARM_UP", "1") == "1"  # --compare-warm-up turns it off
from v2m_zero.core.timing import encoders, media
from v2m_zero.core.sampling import SamplingSettings
if int(sys.argv[1]) > 0:
    torch.set_num_threads(int(sys.argv[1]))
import resource
ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
rc = cli.main(sys.argv[2:])
wall = time.perf_counter() - t0
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rc": rc, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime - cpu0, "rss_mb": rss}))
"""


FOOTAGE = os.path.join(HERE, ".cache", "footage")


def footage_clip(path: str, duration: float, rng, *, fps: int = 24, size=(160, 90)):
    """A composite of real footage (``real_footage.Footage``) written frame by frame: shots of
    1–3 s at random offsets of random clips, each boundary a real cut. Returns (path, duration, cuts)."""
    import real_footage
    from v2m_zero.core.timing.media import write_video

    if not hasattr(footage_clip, "_footage"):
        paths = {n: os.path.join(FOOTAGE, n) for n in real_footage.SOURCES}
        footage_clip._footage = real_footage.Footage(paths, size=size)
    foot = footage_clip._footage
    n_frames = int(round(duration * fps))
    cuts: list[float] = []

    def frames():
        i, prev = 0, None
        while i < n_frames:
            name = str(rng.choice([n for n in foot.clips if n != prev]))
            clip, times = foot.clips[name]
            length = float(rng.uniform(1.0, 3.0))
            offset = float(rng.uniform(0, max(0.0, times[-1] - length)))
            n = min(n_frames - i, max(1, int(round(length * fps))))
            if n_frames - i - n < fps:  # no sliver of a shot at the end
                n = n_frames - i
            if i > 0:
                cuts.append(round(i / fps, 6))
            for k in range(n):
                yield clip[min(int(np.searchsorted(times, offset + k / fps + 1e-6, side="right")) - 1, len(clip) - 1)]
            i, prev = i + n, name

    write_video(frames(), fps, path)
    return path, n_frames / fps, cuts


def have_footage() -> bool:
    import real_footage

    return all(os.path.isfile(os.path.join(FOOTAGE, n)) for n in real_footage.SOURCES)


def make_clip(path: str, duration: float, rng, seed: int, footage: bool):
    """(path, duration, cut times) of a test clip: real-footage composite or generated cuts."""
    if footage:
        return footage_clip(path, duration, rng)
    from v2m_zero.core import examples

    clip = examples.make_cut_clip(path, cut_times=cut_times(duration, rng), duration=duration, fps=24, size=(160, 90),
                                  seed=seed)
    return clip.path, clip.duration, list(clip.cut_times)


def cut_times(duration: float, rng) -> list[float]:
    """The first cut at 0.5–2 s, then one every 1.5–3 s (uniform), none in the last 0.3 s."""
    out = [round(float(rng.uniform(0.5, 2.0)), 3)]
    while out[-1] + 1.5 < duration - 0.3:
        t = out[-1] + float(rng.uniform(1.5, 3.0))
        if t > duration - 0.3:
            break
        out.append(round(t, 3))
    return out


def run_generate(video: str, out: str, args, *, window: float | None = None, warm_up: bool = True) -> dict:
    """``generate`` (or ``demo --video`` with ``--command demo``) in a fresh process; the music
    is then at ``out + ".wav"`` (generate) or in ``out + "/demo_with_music.mp4"`` (demo)."""
    own = [] if args.steps is None else ["--steps", str(args.steps)]
    own += [] if args.cfg is None else ["--cfg", str(args.cfg)]
    own += [] if args.precision is None else ["--precision", args.precision]
    if args.command == "demo":
        argv = ["demo", "--video", video, "--checkpoint", args.checkpoint, *own, "--seed", str(args.seed), "--out", out]
    else:
        argv = ["generate", video, "--checkpoint", args.checkpoint, *own, "--seed", str(args.seed),
                "--out", out + ".mp4", "--audio-out", out + ".wav"]
    if window:
        argv += ["--window", str(window)]
    env = dict(os.environ, V2M_BENCH_WARM_UP="1" if warm_up else "0")
    if args.threads > 0:
        env["OMP_NUM_THREADS"] = str(args.threads)
    p = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), *argv], capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["log"] = [ln for ln in p.stderr.splitlines() if ln.startswith("windows:")]
    res["music"] = os.path.join(out, "demo_with_music.mp4") if args.command == "demo" else out + ".wav"
    return res


def _clip_and_curve(args, seconds: float):
    """One composite of ``seconds`` (seed ``args.seed``, made in a temporary folder), the model and
    the clip's raw video curve: ``(gen, raw, duration, cuts)``."""
    from v2m_zero.core import generate
    from v2m_zero.core.timing import encoders

    with tempfile.TemporaryDirectory() as tmp:
        path, duration, cuts = make_clip(os.path.join(tmp, "clip.mp4"), seconds, np.random.default_rng(args.seed), 0,
                                         args.footage)
        gen = generate.load_music_model(args.checkpoint)
        raw = encoders.encode_video_curve(path, encoders.get_encoder(gen.curve_spec.encoder))
    return gen, raw, duration, cuts


def naive(gen, raw, bounds, args) -> np.ndarray:
    """Cut and concatenate: each piece between ``bounds`` (latent frames) generated alone at its
    own length, with its own seed from the same stream, and the pieces concatenated."""
    import torch

    from v2m_zero.core import generate, windows

    cond = generate.conditioning_curve_for(gen, raw)
    parts = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        piece = cond.replace(values=cond.values[a:b], times=cond.times[a:b], duration=(b - a) / gen.latent_rate)
        parts.append(generate.sample_latents(gen, piece, "",
                                             generate.SamplingSettings(steps=args.steps, cfg=args.cfg,
                                                                       seed=windows.window_seed(args.seed, k)),
                                             duration=(b - a) / gen.latent_rate))
    return generate.decode_latents(gen, torch.cat(parts, dim=-1), raw.duration)


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
    ap.add_argument("--steps", type=int, default=None, help="default: the checkpoint's own")
    ap.add_argument("--cfg", type=float, default=None, help="default: the checkpoint's own")
    ap.add_argument("--command", choices=["generate", "demo"], default="generate",
                    help="the job each clip runs in a fresh process (demo also scores, as a user sees it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None,
                    help="generator precision passed to the command (default: the command's own, fp32); with "
                         "--compare-steps: the 32-step reference against the same in this precision")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default 0: torch's own, as the CLI; on 2 cores guidance's two branches "
                         "then run side by side); 1: one forward of batch 2 on one core, as measured before 2026-12-06")
    ap.add_argument("--skip-naive", action="store_true", help="only the windowed runs (time, CPU time, RSS)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--footage", action=argparse.BooleanOptionalAction, default=None,
                    help="real-footage composites (default: when the footage cache is there)")
    ap.add_argument("--stages", type=float, default=None, metavar="SECONDS",
                    help="only: CPU seconds per stage of the main job on one clip of this length")
    ap.add_argument("--compare-joins", type=float, default=None, metavar="SECONDS",
                    help="seams and SCH of one clip with joins at cuts vs where the curve is calm")
    ap.add_argument("--compare-execution", type=float, default=None, metavar="SECONDS",
                    help="only: CPU s of sampling and decode with the faster execution on and off")
    ap.add_argument("--compare-steps", type=float, default=None, metavar="SECONDS",
                    help="only: steps / guidance interval / seed vs the 32-step run of one clip (distance, SCH, seams)")
    ap.add_argument("--compare-threads", type=float, default=None, metavar="SECONDS",
                    help="only: wall and CPU s of sampling one clip with 1 torch thread, 2 threads with guidance's "
                         "branches side by side (the default) and 2 threads on one forward of batch 2, alternating")
    ap.add_argument("--compare-warm-up", type=float, default=None, metavar="SECONDS",
                    help="only: demo --video wall and CPU s with the scoring warm-up thread off and on, alternating")
    ap.add_argument("--rounds", type=int, default=3, help="--compare-execution: alternating rounds")
    ap.add_argument("--compare-norms", type=float, default=None, metavar="SECONDS",
                    help="only: seams and SCH with per-window vs whole-video curve standardisation")
    args = ap.parse_args(argv)

    import torch

    from v2m_zero.core import generate
    from v2m_zero.core.timing import encoders, media

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.footage is None:
        args.footage = have_footage()
    print(f"footage: {'real (composites of benchmarks/.cache/footage)' if args.footage else 'generated cut clips'}")
    modes = {"stages": stages, "compare_norms": compare_norms, "compare_joins": compare_joins,
             "compare_execution": compare_execution, "compare_steps": compare_steps,
             "compare_threads": compare_threads, "compare_warm_up": compare_warm_up}
    for option, mode in modes.items():  # one mode per run: the first option given
        if getattr(args, option):
            return mode(args)
    gen = generate.load_music_model(args.checkpoint)
    enc = encoders.get_encoder(gen.curve_spec.encoder)
    rng = np.random.default_rng(args.seed)
    jobs = [(d, "long") for d in args.durations] + [(10.0, "short")] * args.short_clips
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (d, kind) in enumerate(jobs):
            t0 = time.time()
            path, duration, cuts = make_clip(os.path.join(tmp, f"clip{i}.mp4"), d, rng, i, args.footage)
            clip = Clip(path, duration, cuts)
            out = os.path.join(tmp, f"w{i}")
            res = run_generate(clip.path, out, args)
            wave, sr = media.decode_audio(res["music"])
            raw = encoders.encode_video_curve(clip.path, enc)
            plan = generate.plan_job(gen, raw).plan
            seams_w = [j - plan.fade / (2 * plan.rate) for j in plan.joins]  # centre of each crossfade
            row = {"duration": clip.duration, "kind": kind, "cuts": len(clip.cut_times), "windows": len(plan),
                   "footage": "real" if args.footage else "generated",
                   "samples": int(wave.shape[1]), "exact_length": wave.shape[1] == round(clip.duration * sr),
                   "wall_s": res["wall"], "cpu_s": res.get("cpu"), "rss_mb": res["rss_mb"],
                   "windowed": score(wave, sr, clip.cut_times, clip.duration)}
            row["windowed"]["seams"] = seams.seam_report(wave, sr, seams_w, clip.cut_times)
            if len(plan) > 1 and kind == "long" and not args.skip_naive:
                window = plan.windows[0].length
                baselines = {"naive (same joins)": [0] + [w.join for w in plan.windows[1:]] + [plan.total],
                             "naive (every window)": list(range(0, plan.total, window)) + [plan.total]}
                for name, bounds in baselines.items():
                    nv = naive(gen, raw, bounds, args)
                    row[name] = score(nv, gen.sample_rate, clip.cut_times, clip.duration)
                    row[name]["seams"] = seams.seam_report(nv, gen.sample_rate, [b / plan.rate for b in bounds[1:-1]],
                                                           clip.cut_times)
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


class Clip:
    def __init__(self, path, duration, cut_times):
        self.path, self.duration, self.cut_times = path, duration, cut_times


def stages(args) -> int:
    """CPU seconds (process time, all threads) per stage of the main job on one clip."""
    import librosa

    from v2m_zero.core import generate
    from v2m_zero.core.commands.demo import score as demo_score
    from v2m_zero.core.model import melcodec
    from v2m_zero.core.timing import encoders, media

    cpu = time.process_time
    spent: dict[str, float] = {}
    hwm: dict[str, float] = {}  # the process's peak RSS (VmHWM, MB) after each stage

    def mark(stage: str, t0: float) -> None:
        spent[stage] = cpu() - t0
        hwm[stage] = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")) / 1024
    gl_cpu = [0.0]
    real_gl = melcodec.griffin_lim

    def gl(*a, **kw):
        t = cpu()
        try:
            return real_gl(*a, **kw)
        finally:
            gl_cpu[0] += cpu() - t

    with tempfile.TemporaryDirectory() as tmp:
        path, duration, cuts = make_clip(os.path.join(tmp, "clip.mp4"), args.stages, np.random.default_rng(args.seed),
                                         0, args.footage)
        t = cpu()
        gen = generate.load_music_model(args.checkpoint)
        mark("load model", t)
        t = cpu()
        raw = encoders.encode_video_curve(path, encoders.get_encoder(gen.curve_spec.encoder))
        mark("video decode + curve", t)
        t = cpu()
        sampled = generate.sample_music(gen, raw, "", generate.SamplingSettings(seed=args.seed))
        mark("sampling", t)
        melcodec.griffin_lim = gl
        try:
            t = cpu()
            spool = generate.decode_to_spool(gen, sampled.latents, raw.duration)
            total = cpu() - t
        finally:
            melcodec.griffin_lim = real_gl
        mark("latent decode: mel inversion + rest", cpu() - total + gl_cpu[0])
        spent["latent decode: Griffin-Lim"] = gl_cpu[0]
        t = cpu()
        media.mux_audio(path, spool, gen.sample_rate, os.path.join(tmp, "out.mp4"))
        mark("mastering + mux", t)
        t = cpu()
        result = demo_score(os.path.join(tmp, "out.mp4"), spool, gen.sample_rate, raw.duration, cuts, "composite cuts")
        mark("scoring (cuts + beats)", t)
        spool.close()
        # the old mel inversion (librosa's NNLS) on the same latents, chunk by chunk as decoded
        codec, lat = gen.codec, sampled.latents
        old = None
        if isinstance(codec, melcodec.MelCodec):
            t = cpu()
            for s0 in range(0, lat.shape[-1], 256):
                z = lat[0, :, max(0, s0 - 16):s0 + 256 + 16].numpy()
                mel = np.exp(z * codec.scale + codec.offset)
                mel = np.where(mel <= codec.amin * 1.0001, 0.0, mel).astype(np.float32)
                librosa.util.nnls(codec.mel_filters(), mel)
            old = cpu() - t
    whole = sum(spent.values())
    print(f"\n{duration:.0f} s clip, {len(sampled.job.plan)} windows x {sampled.job.sampling.steps} steps, "
          f"torch threads {args.threads}; SCH {result['sch']:.3f} (chance {result['sch_null']:.3f})")
    print("\n| stage | CPU s | share | CPU s per minute of video | peak RSS after it (MB) |\n|---|---|---|---|---|")
    for k, v in spent.items():
        rss = f"{hwm[k]:.0f}" if k in hwm else ""
        print(f"| {k} | {v:.1f} | {100 * v / whole:.0f} % | {60 * v / duration:.1f} | {rss} |")
    print(f"| **total** | {whole:.1f} | 100 % | {60 * whole / duration:.1f} |")
    if old is not None:
        print(f"\nbefore (librosa NNLS mel inversion on the same latents): {old:.1f} CPU s "
              f"({60 * old / duration:.1f} per minute of video)")
    return 0


def compare_norms(args) -> int:
    """Seams and SCH of one clip with per-window vs whole-video curve standardisation."""
    from v2m_zero.core import generate

    return _compare(args, args.compare_norms, "standardisation",
                    [(norm, dict(norm=norm)) for norm in generate.WINDOW_NORMS])


def compare_execution(args) -> int:
    """CPU s of sampling and latent decode with the faster execution switched on and off, alternating."""
    import librosa
    import torch

    from v2m_zero.core import generate
    from v2m_zero.core.model import blocks, melcodec

    few, gl = blocks.Attention._few_keys, melcodec.griffin_lim

    def librosa_gl(mag, n_iter, hop, n_fft):
        return librosa.griffinlim(mag, n_iter=n_iter, hop_length=hop, n_fft=n_fft, window="hann", center=True,
                                  pad_mode="constant", length=(mag.shape[1] - 1) * hop, momentum=0.99, init="random",
                                  random_state=0).astype(np.float32)

    cpu = time.process_time
    gen, raw, duration, _ = _clip_and_curve(args, args.compare_execution)
    spent, outs = {False: [], True: []}, {}
    try:
        for _ in range(args.rounds):
            for on in (False, True):
                blocks.Attention._few_keys = few if on else (lambda *a: False)
                melcodec.griffin_lim = gl if on else librosa_gl
                t = cpu()
                s = generate.sample_music(gen, raw, "", generate.SamplingSettings(seed=args.seed))
                t_s = cpu() - t
                t = cpu()
                wave = generate.decode_latents(gen, s.latents, raw.duration)
                spent[on].append((t_s, cpu() - t))
                outs[on] = (s.latents, wave)
                print(f"{'on ' if on else 'off'}: {len(s.job.plan)} windows, sampling {t_s:.2f} CPU s, "
                      f"latent decode {spent[on][-1][1]:.2f} CPU s", flush=True)
    finally:
        blocks.Attention._few_keys, melcodec.griffin_lim = few, gl
    (l0, w0), (l1, w1) = outs[False], outs[True]
    m0, m1 = np.mean(spent[False], axis=0), np.mean(spent[True], axis=0)
    print(f"\n{duration:.0f} s clip, {args.rounds} rounds, torch threads {torch.get_num_threads()}: sampling "
          f"{m0[0]:.2f} -> {m1[0]:.2f} CPU s ({100 * (m1[0] / m0[0] - 1):+.0f} %), latent decode {m0[1]:.2f} -> "
          f"{m1[1]:.2f} CPU s ({100 * (m1[1] / m0[1] - 1):+.0f} %)")
    print(f"latents differ by <= {float((l0 - l1).abs().max()):.1e} (max |x| {float(l0.abs().max()):.2f}); audio by "
          f"{float(np.sqrt(np.mean((w0 - w1) ** 2) / np.mean(w0 ** 2))):.1e} relative RMS")
    return 0


#: --compare-steps: (label, steps, guidance interval (lo, hi] of t or None = every step, seed offset)
STEP_VARIANTS = (("32 steps (reference)", 32, None, 0), ("another seed, 32 steps", 32, None, 1),
                 ("24 steps", 24, None, 0), ("16 steps", 16, None, 0), ("12 steps", 12, None, 0),
                 ("8 steps", 8, None, 0), ("32 steps, guidance for t > 0.25", 32, (0.25, 1.0), 0),
                 ("32 steps, guidance for t > 0.5", 32, (0.5, 1.0), 0),
                 ("32 steps, guidance for t <= 0.75", 32, (0.0, 0.75), 0),
                 ("16 steps, guidance for t > 0.25", 16, (0.25, 1.0), 0))


def log_mel_db(wave, sr: int) -> np.ndarray:
    """64-band log-mel (dB, floor −80 dB) of the mono mix: the distance measure of --compare-steps."""
    import librosa

    m = librosa.feature.melspectrogram(y=np.asarray(wave, np.float32).mean(axis=0), sr=sr, n_fft=1024,
                                       hop_length=256, n_mels=64)
    return librosa.power_to_db(m, ref=1.0, amin=1e-8, top_db=None).clip(-80, None)


def compare_steps(args) -> int:
    """Steps, guidance interval and seed vs the 32-step run of the same clip (see the module doc)."""
    import torch

    from v2m_zero.core import generate
    from v2m_zero.core.model import flow

    interval = [None]
    plain = flow.CFGDenoiser.__call__

    def guided_in_interval(self, x, t, *, curve=None, **kw):  # guidance 1 (the conditional pass alone) outside
        lo_hi = interval[0]
        if lo_hi is not None and self.cfg_scale != 1.0:
            tt = float(torch.as_tensor(t).reshape(-1)[0])
            if not lo_hi[0] < tt <= lo_hi[1]:
                return self.model(x, t, curve=curve, **kw)
        return plain(self, x, t, curve=curve, **kw)

    cpu = time.process_time
    gen, raw, duration, cuts = _clip_and_curve(args, args.compare_steps)
    print(f"\n{duration:.0f} s clip, seed {args.seed}, torch threads {torch.get_num_threads()}")
    print("\n| sampling | windows | sampling CPU s | SCH | chance | SCH − chance | level step | timbre step "
          "| RMS jump | flux jump | log-mel distance to the reference (dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    variants = [(*v, gen) for v in STEP_VARIANTS]
    if args.precision:  # the reference, another seed, and the reference's steps in that precision
        other = generate.load_music_model(args.checkpoint, precision=args.precision)
        variants = variants[:2] + [(f"32 steps, {args.precision}", 32, None, 0, other)]
    ref = None
    flow.CFGDenoiser.__call__ = guided_in_interval
    try:
        for label, steps, lo_hi, seed_offset, model in variants:
            interval[0] = lo_hi
            t = cpu()
            out = generate.sample_music(model, raw, "", generate.SamplingSettings(steps=steps,
                                                                                  seed=args.seed + seed_offset))
            spent = cpu() - t
            wave = generate.decode_latents(model, out.latents.float(), raw.duration)
            plan = out.job.plan
            s = seams.seam_report(wave, gen.sample_rate, [j - plan.fade / (2 * plan.rate) for j in plan.joins], cuts)
            sc = score(wave, gen.sample_rate, cuts, duration)
            mel = log_mel_db(wave, gen.sample_rate)
            ref = mel if ref is None else ref
            cell = lambda d: "–" if d["mean_rank"] is None else f"{d['mean_rank']:.0f} %"  # noqa: E731
            print(f"| {label} | {len(plan)} | {spent:.1f} | {sc['sch']:.3f} | {sc['sch_null']:.3f} "
                  f"| {sc['sch'] - sc['sch_null']:.3f} | {cell(s['steps']['level_step'])} "
                  f"| {cell(s['steps']['timbre_step'])} | {cell(s['jumps']['rms_jump'])} "
                  f"| {cell(s['jumps']['flux_jump'])} | {float(np.mean(np.abs(mel - ref))):.2f} |", flush=True)
    finally:
        flow.CFGDenoiser.__call__ = plain
    return 0


def _alternate(rounds: int, variants: dict, run, duration: float) -> None:
    """Run each variant (label -> argument of ``run``) in turn, ``rounds`` times; ``run`` returns
    (wall, CPU seconds). Prints each run with the load average, then each variant's medians."""
    spent: dict[str, list] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, value in variants.items():
            load = os.getloadavg()[0]
            spent[label].append(run(value))
            print(f"{label}: wall {spent[label][-1][0]:.1f} s, CPU {spent[label][-1][1]:.1f} s "
                  f"(load average {load:.1f})", flush=True)
    for label, v in spent.items():
        wall, cpu = np.array(v).T
        print(f"{label}, {duration:.0f} s clip, {rounds} rounds: wall median {np.median(wall):.1f} s "
              f"(min {wall.min():.1f}, max {wall.max():.1f}), CPU median {np.median(cpu):.1f} s")


def compare_threads(args) -> int:
    """Sampling one clip with 1 torch thread, with 2 and guidance's branches side by side (the
    default), and with 2 on one forward of batch 2 (torch's intra-op threads), alternating: wall
    and CPU seconds, load average; and how far the side-by-side latents are from the batched ones."""
    import torch

    from v2m_zero.core import generate
    from v2m_zero.core.model import parallel

    gen, raw, duration, _ = _clip_and_curve(args, args.compare_threads)

    side_by_side = parallel.branches_in_parallel
    latents = {}

    def sample(variant: tuple[int, bool]) -> tuple[float, float]:
        n, batched = variant
        torch.set_num_threads(n)
        parallel.branches_in_parallel = (lambda *a, **k: 0) if batched else side_by_side
        try:
            w, c = time.perf_counter(), time.process_time()
            latents[variant] = generate.sample_music(gen, raw, "", generate.SamplingSettings(seed=args.seed)).latents
            return time.perf_counter() - w, time.process_time() - c
        finally:
            parallel.branches_in_parallel = side_by_side

    _alternate(args.rounds, {"1 thread": (1, True), "2 threads, branches side by side": (2, False),
                             "2 threads, one forward of batch 2": (2, True)}, sample, duration)
    diff = (latents[(2, False)] - latents[(1, True)]).abs().max().item()
    print(f"side-by-side latents vs the batched ones: max |diff| {diff:.2e} "
          f"(max |x| {latents[(1, True)].abs().max().item():.2f})")
    return 0


def compare_warm_up(args) -> int:
    """``demo --video`` with the scoring warm-up thread off and on, alternating, fresh processes."""
    args.command = "demo"
    with tempfile.TemporaryDirectory() as tmp:
        path, duration, _ = make_clip(os.path.join(tmp, "clip.mp4"), args.compare_warm_up,
                                      np.random.default_rng(args.seed), 0, args.footage)

        def demo(on: bool) -> tuple[float, float]:
            res = run_generate(path, os.path.join(tmp, "out"), args, warm_up=on)
            return res["wall"], res["cpu"]

        _alternate(args.rounds, {"warm-up off": False, "warm-up on ": True}, demo, duration)
    return 0


def compare_joins(args) -> int:
    """Seams and SCH of one clip with joins at cuts vs joins where the curve is calm."""
    from v2m_zero.core import windows

    return _compare(args, args.compare_joins, "joins", [(j, dict(joins=j)) for j in windows.JOIN_MODES])


def _compare(args, seconds, label, variants) -> int:
    from v2m_zero.core import generate, windows

    gen, raw, duration, cuts = _clip_and_curve(args, seconds)
    print(f"\n| {label} | windows | RMS jump | flux jump | level step | timbre step | SCH − chance "
          "| joins just before a cut |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kw in variants:
        out = generate.sample_music(gen, raw, "", generate.SamplingSettings(seed=args.seed), **kw)
        wave = generate.decode_latents(gen, out.latents, raw.duration)
        plan = out.job.plan
        centres = [j - plan.fade / (2 * plan.rate) for j in plan.joins]
        s = seams.seam_report(wave, gen.sample_rate, centres, cuts)
        before = windows.HIT_GUARD_SECONDS + 1.0 / plan.rate  # a join this close before a cut is placed by it
        near = sum(any(0 <= x - j <= before for x in cuts) for j in plan.joins)
        sc = score(wave, gen.sample_rate, cuts, duration)
        cell = lambda d: "(none scored)" if d["mean_rank"] is None else f"{d['mean_rank']:.0f} % ({d['above_p95']:.2f})"  # noqa: E731,E501
        print(f"| {name} | {len(plan)} | {cell(s['jumps']['rms_jump'])} | {cell(s['jumps']['flux_jump'])} "
              f"| {cell(s['steps']['level_step'])} | {cell(s['steps']['timbre_step'])} "
              f"| {sc['sch'] - sc['sch_null']:.3f} | {near} of {len(centres)} |", flush=True)
    return 0


METHODS = ("windowed", "naive (same joins)", "naive (every window)")


def _line(r) -> str:
    w = r["windowed"]
    s = f"{r['kind']:5s} {r['duration']:6.1f} s: {r['windows']} windows, exact {r['exact_length']}, " \
        f"{r['wall_s']:.1f} s, {r['cpu_s'] or 0:.1f} CPU s, {r['rss_mb']:.0f} MB, SCH {w['sch']:.3f} " \
        f"(chance {w['sch_null']:.3f})"
    for m in METHODS[1:]:
        if m in r:
            s += f"; {m} SCH {r[m]['sch']:.3f}"
    return s


def _table(rows) -> None:
    f = lambda x, p=3: "–" if x is None else f"{x:.{p}f}"  # noqa: E731
    print("\n| clip | windows | exact length | time (s) | CPU time (s) | CPU s per min of video | peak RSS (MB) "
          "| SCH | chance | SCH − chance | one pass: time, RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] != "long":
            continue
        w, one = r["windowed"], r.get("one_pass")
        one = "–" if not one else f"{one['wall_s']:.1f} s, {one['rss_mb']:.0f} MB"
        cpu = r.get("cpu_s")
        print(f"| {r['duration']:.0f} s | {r['windows']} | {r['exact_length']} | {r['wall_s']:.1f} | {f(cpu, 1)} "
              f"| {f(None if cpu is None else 60 * cpu / r['duration'], 1)} "
              f"| {r['rss_mb']:.0f} | {f(w['sch'])} | {f(w['sch_null'])} | {f(w['sch'] - w['sch_null'])} | {one} |")
    short = ([r for r in rows if r["kind"] == "short"]
             + [r for r in rows if r["kind"] == "long" and r["duration"] <= 10.5])
    if short:
        g = np.mean([r["windowed"]["sch"] - r["windowed"]["sch_null"] for r in short])
        print(f"\n10 s clips ({len(short)}): mean SCH − chance {g:.3f}")
    print("\nSeams: mean percentile rank among the clip's other places (above p95: fraction of seams)")
    print("\n| clip | method | seams (jumps scored) | RMS jump | flux jump | level step | timbre step | SCH − chance |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for m in METHODS:
            if m not in r or r["kind"] != "long" or r["windows"] < 2:
                continue
            s = r[m]["seams"]
            cell = lambda d: f"{f(d['mean_rank'], 0)} % ({f(d['above_p95'], 2)})"  # noqa: E731
            print(f"| {r['duration']:.0f} s | {m} | {s['seams']} ({s['jumps']['scored']}) "
                  f"| {cell(s['jumps']['rms_jump'])} | {cell(s['jumps']['flux_jump'])} "
                  f"| {cell(s['steps']['level_step'])} | {cell(s['steps']['timbre_step'])} | "
                  f"{f(r[m]['sch'] - r[m]['sch_null'])} |")


if __name__ == "__main__":
    sys.exit(main())
