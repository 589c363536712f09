"""Zero-pair transfer on CPU (issue 5 item 4): train on music curves only, condition on video curves.

The paper's claim (§3.4) in miniature, with nothing downloaded:

1. **Music** (training only): synthetic percussive audio (``synth.click_track``) whose onsets
   follow random event patterns — sparse aperiodic accents, a steady pulse with dropped beats,
   or a pulse with extra accents — captioned ``captions.csv`` (captions are not used: the model
   trains without a text encoder, ``text.type = "none"``).
2. **Data prep** through the library (``core.train.prepare_dataset``): weightless ``PatchCodec``
   latents and music event curves from the weightless ``logmel`` music encoder →
   ``curves.conditioning_curve`` (standardise → resample by time → Hann smoothing), exactly the
   training path of ``v2m-zero prepare``.
3. **Training** through the library trainer (``core.train.train``): a tiny rectified-flow DiT
   with the curve channel, ``flow.rf_loss`` with 10 % text and 10 % curve dropout, AdamW, EMA.
   The exported checkpoint is re-written with the demo metadata (patch codec with its latent
   scale, ``pixels`` video encoder, fp16 weights) — a few MB, loadable by
   ``generate.load_music_model``.
4. **Zero-pair evaluation** on synthetic cut videos never seen in training: their *video* event
   curves (``encoders.encode_video_curve`` with the ``pixels`` encoder) drive
   ``generate.conditioning_curve_for`` → ``generate.sample_latents`` (Euler + CFG, uncond
   "both") → ``generate.decode_audio`` → ``media.mux_audio`` → ``metrics.evaluate_video`` (Scene
   Cut Hit and its chance level ``sch_null``). The same with no curve (text-only: the all-zero
   curve) on the same noise, plus two references without any model: clicks exactly at the cuts
   (oracle) and clicks at random times.

    python benchmarks/zero_pair_toy.py [--out DIR] [--minutes 20] [--seed 0] [--quick]

Design (measured on 2 shared CPU cores: ~14 min end to end, 12 of them training): 1200 clips of
8 s at 8 kHz mono; PatchCodec P = 128 (62.5 Hz latents, 128 channels, scaled to unit std);
curves smoothed with a 0.2 s Hann window; DiT width 128 (= latent channels), depth 3, 4 heads
(1.06 M parameters), batch 8, 2500 AdamW steps (1e-3 → 1e-4 cosine), EMA 0.995; evaluation on
24 unseen 8 s cut videos, 50 Euler steps, CFG 3. The DiT must be at least as wide as the latent:
a 64-wide DiT on 256-channel latents could not cancel the noise of silent frames (3/4 of it
survived as hiss) and the beat tracker then found almost no beats (SCH ≈ 0).

Deterministic for a seed on one machine (fixed step count, fixed thread count); ``--minutes``
only guards the wall time: if training would overrun its share, it stops early and says so.
Prints a markdown results table and the checkpoint path; writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

import torch

from v2m_zero.core.timing import curves, encoders, media
from v2m_zero.core.timing.spec import CurveSpec
from v2m_zero.core import examples, generate, eval as metrics
from v2m_zero.core.eval import synth
from v2m_zero.core.model.codec import PatchCodec
from v2m_zero.model_io.checkpoint import V2M_FORMAT, load_v2m_checkpoint, save_v2m_checkpoint
from v2m_zero.core.sampling import SamplingSettings

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, ".cache", "zero_pair_toy")

# ---- the experiment's fixed design (recorded in results.json and the checkpoint)
SAMPLE_RATE = 8000  # Hz, mono
PATCH = 128  # samples per latent frame → 62.5 Hz latents, 128 channels (= the DiT width: see below)
CLIP_SECONDS = 8.0  # training clips and evaluation videos (latent length 500)
SMOOTHING = 0.2  # s, Hann kernel of the event curves (13 taps at 62.5 Hz)
FILE_SECONDS = 64.0  # one synthetic music file = 8 clips with their own patterns
VIDEO_FPS = 24
VIDEO_SIZE = (96, 54)

FULL = {
    "music_files": 150,  # × 8 clips = 1200 training clips (2 held out for validation)
    # embed_dim >= the latent channels: the DiT must pass the whole noise of silent frames
    # through its residual stream (a 64-wide model on 256 channels left 3/4 of it: audible hiss)
    "model": {"embed_dim": 128, "depth": 3, "num_heads": 4, "cond_token_dim": 32},
    "batch_size": 8,
    "steps": 2500,
    "lr": 1e-3,
    "min_lr_ratio": 0.1,
    "warmup": 100,
    "videos": 24,
    "sample_steps": 50,
    "cfg": 3.0,
}
QUICK = dict(FULL, music_files=2, steps=3, batch_size=4, videos=2, sample_steps=4)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# 1. synthetic music with random event patterns


# The patterns and the writer live in the library: the train template's demo dataset uses them too.
PATTERNS = examples.MUSIC_PATTERNS
segment_onsets = examples.segment_onsets


def make_music(folder: str, n_files: int, seed: int) -> dict:
    """``n_files`` FLAC files of FILE_SECONDS, each 8 clip-aligned segments with their own pattern."""
    return examples.make_pattern_music(folder, n_files, seed=seed, file_seconds=FILE_SECONDS, clip_seconds=CLIP_SECONDS,
                                       sample_rate=SAMPLE_RATE)


def latent_scale(folder: str, n_files: int = 8) -> float:
    """Std of the unscaled patch latents over the first files (rounded): the codec's ``scale``."""
    codec = PatchCodec(patch_size=PATCH, audio_channels=1, sample_rate=SAMPLE_RATE)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".flac"))[:n_files]
    sq, n = 0.0, 0
    for name in names:
        wave, _ = media.decode_audio(os.path.join(folder, name), sample_rate=SAMPLE_RATE, channels=1)
        z = codec.encode(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None]).double()
        sq += float((z**2).sum())
        n += z.numel()
    return float(f"{math.sqrt(sq / max(n, 1)):.4g}")


# --------------------------------------------------------------------------------------------
# 2–3. data prep and training through the library


def prepare(music_dir: str, cache_dir: str, scale: float):
    codec = PatchCodec(patch_size=PATCH, audio_channels=1, sample_rate=SAMPLE_RATE, scale=scale)
    return prepare_with(codec, music_dir, cache_dir, clip_seconds=CLIP_SECONDS, smoothing_seconds=SMOOTHING)


def prepare_with(codec, music_dir: str, cache_dir: str, *, clip_seconds: float, smoothing_seconds: float,
                 log_every: float = 10.0):
    """The library's ``prepare_dataset`` with log-mel music curves, whole clips only, a log line now and then
    (shared with ``zero_pair_music.py``)."""
    from v2m_zero.core.train.prepare import prepare_dataset

    last = [0.0]

    def progress(done, total, name):
        if time.time() - last[0] > log_every or done == total:
            last[0] = time.time()
            log(f"prepare {done}/{total} files")

    return prepare_dataset(music_dir, cache_dir, codec=codec, music_encoder="logmel", clip_seconds=clip_seconds,
                           smoothing_seconds=smoothing_seconds, last_clip="drop", shard_size=512, progress=progress,
                           log=log)


def train_config(p: dict, cache_dir: str, run_dir: str, seed: int) -> dict:
    return {
        "seed": seed,
        "run_dir": run_dir,
        "resume": False,
        "data": {"cache": cache_dir, "val_clips": 2},
        "model": {"from_config": dict(p["model"]), "objective": "rectified_flow"},
        "text": {"encoder": "none"},
        "optim": {"lr": p["lr"], "weight_decay": 1e-3, "warmup_steps": min(p["warmup"], p["steps"]),
                  "schedule": "cosine", "min_lr_ratio": p["min_lr_ratio"], "grad_clip": 1.0},
        "train": {"batch_size": p["batch_size"], "max_steps": p["steps"], "precision": "fp32", "device": "cpu",
                  "accelerate": False, "p_drop_text": 0.1, "p_drop_curve": 0.1, "t_sampling": "logit_normal"},
        "ema": {"enabled": True, "decay": 0.995},
        "checkpoint": {"every": 0, "keep_last": 1, "export": "ema"},
        # validation loss only: the curve metric's extra sampling would not fit the CPU budget
        "validation": {"every": max(1, p["steps"] // 5), "curve_metric": False},
        "log": {"every": 50, "tensorboard": False},
        "curve": {"video_encoder": "pixels"},
    }


def run_training(p: dict, cache_dir: str, run_dir: str, seed: int, deadline: float):
    from v2m_zero.core.train import train

    if os.path.isdir(run_dir):  # a fresh run every time (determinism)
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.time()
    last = [0.0]

    def progress(info):
        if time.time() - last[0] > 15 or info["step"] == info["max_steps"]:
            last[0] = time.time()
            eta = info.get("eta_seconds")
            val = info.get("val") or {}
            vl = f" val_loss {val['val_loss']:.4f}" if val.get("val_loss") is not None else ""
            log(f"train step {info['step']}/{info['max_steps']} loss {info['loss']:.4f} lr {info['lr']:.2e}{vl}"
                + (f" eta {eta:.0f}s" if eta is not None else ""))

    res = train(train_config(p, cache_dir, run_dir, seed), progress=progress,
                should_stop=lambda: time.time() > deadline, log=log)
    return res, time.time() - t0


DEMO_NOTE = ("toy demo: trained on synthetic click tracks only (benchmarks/zero_pair_toy.py); "
             "makes percussive hits at the events of a video, not music")


def write_demo_checkpoint(src: str, dst: str, scale: float, p: dict, extra: dict) -> str:
    """The trainer's export, re-written with the demo metadata (codec scale, pixels) in fp16."""
    state, meta = load_v2m_checkpoint(src)
    state = {k: (v.half() if v.is_floating_point() and not k.endswith("inv_freq") else v) for k, v in state.items()}
    curve = CurveSpec.from_dict(meta.get("curve")).replace(encoder="pixels", music_encoder="logmel",
                                                          smoothing_seconds=SMOOTHING, standardise=True).to_dict()
    new = {
        "v2m_format": V2M_FORMAT,
        "model_config": meta["model_config"],
        "objective": "rectified_flow",
        "latent_rate": SAMPLE_RATE / PATCH,
        "sample_rate": SAMPLE_RATE,
        "curve": curve,
        "codec": {"type": "patch", "config": {"patch_size": PATCH, "audio_channels": 1, "sample_rate": SAMPLE_RATE,
                                              "scale": scale}},
        "text": {"type": "none"},
        "demo": True,
        "demo_note": DEMO_NOTE,
        "sampling": {"steps": p["sample_steps"], "cfg_scale": p["cfg"], "uncond": "both"},
        "training": dict(meta.get("training") or {}, **extra),
    }
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    save_v2m_checkpoint(dst, state, new)
    return dst


# --------------------------------------------------------------------------------------------
# 4. zero-pair evaluation on unseen cut videos


def cut_times(rng: np.random.Generator, dur: float) -> list[float]:
    """Cuts with gaps uniform in [0.7, 2.2] s, none in the first 0.5 s or the last 0.4 s."""
    out, t = [], rng.uniform(0.5, 1.5)
    while t < dur - 0.4:
        out.append(round(float(t), 3))
        t += rng.uniform(0.7, 2.2)
    return out


def make_videos(folder: str, n: int, seed: int) -> list[synth.SynthClip]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed + 2**20)  # never the training stream
    return [synth.make_cut_clip(os.path.join(folder, f"cuts-{i:03d}.mp4"), cut_times=cut_times(rng, CLIP_SECONDS),
                                duration=CLIP_SECONDS, fps=VIDEO_FPS, size=VIDEO_SIZE, seed=seed * 1000 + i)
            for i in range(n)]


def manual_latents(gen, raw: curves.Curve | None, duration: float, steps: int, cfg: float, seed: int) -> torch.Tensor:
    """The sampling spelled out with curves/flow primitives (checks generate.* reproduces it)."""
    from v2m_zero.core.model import flow

    n = curves.latent_length(duration, SAMPLE_RATE / PATCH)
    if raw is None:
        c = torch.zeros(1, 1, n)
    else:
        res = curves.resample_curve(raw.replace(duration=n * PATCH / SAMPLE_RATE), length=n)
        c = torch.from_numpy(curves.smooth_curve(res, SMOOTHING).values)[None, None]
    x = flow.make_noise((1, gen.dit.config.io_channels, n), seed)
    dim = gen.dit.text_dim
    extra = {"cond_tokens": torch.zeros(1, 1, dim), "cond_mask": torch.ones(1, 1, dtype=torch.bool),
             "seconds_start": 0.0, "seconds_total": float(duration), "curve": c}
    # guidance in the form generate.* takes here: its two branches side by side on a CPU with >= 2 torch threads
    with flow.side_by_side("cpu", cfg, gen.dit) as side:
        model = flow.CFGDenoiser(flow.velocity_model(gen.dit), cfg, uncond="both", side=side)
        return flow.sample_euler(model, x, flow.rf_timesteps(steps), extra_args=extra, disable=True)


def evaluate(ckpt: str, clips, out_dir: str, p: dict, seed: int) -> dict:
    gen = generate.load_music_model(ckpt, device="cpu")
    enc = encoders.get_encoder("pixels")
    rows = {"curve": [], "text-only": [], "oracle (clicks at cuts)": [], "random clicks": []}
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed + 3 * 2**20)
    max_diff = None
    for i, clip in enumerate(clips):
        raw = encoders.encode_video_curve(clip.path, enc)
        dur = float(raw.duration)
        cond = generate.conditioning_curve_for(gen, raw, dur)
        noise_seed = seed * 1000 + i
        for name, curve in (("curve", cond), ("text-only", None)):
            lat = generate.sample_latents(gen, curve, "",
                                          SamplingSettings(steps=p["sample_steps"], cfg=p["cfg"], seed=noise_seed,
                                                           uncond="both"),
                                          duration=dur)
            if i == 0:  # the spelled-out curves/flow path gives the same latents
                ref = manual_latents(gen, raw if curve is not None else None, dur, p["sample_steps"], p["cfg"],
                                     noise_seed)
                d = float((ref - lat).abs().max())
                max_diff = d if max_diff is None else max(max_diff, d)
            wave = generate.decode_latents(gen, lat, dur)
            out = media.mux_audio(clip.path, wave, gen.sample_rate,
                                  os.path.join(out_dir, f"{name.split()[0]}-{i:03d}.mp4"))
            rows[name].append(metrics.evaluate_video(out))
        for name, onsets in (("oracle (clicks at cuts)", clip.cut_times),
                             ("random clicks", sorted(rng.uniform(0.05, dur - 0.05, len(clip.cut_times))))):
            wave = synth.click_track(onsets, dur, sample_rate=SAMPLE_RATE, channels=1, seed=noise_seed)
            out = media.mux_audio(clip.path, wave, SAMPLE_RATE, os.path.join(out_dir, f"{name.split()[0]}-{i:03d}.mp4"))
            rows[name].append(metrics.evaluate_video(out))
        r = rows["curve"][-1], rows["text-only"][-1]
        log(f"video {i + 1}/{len(clips)}: cuts {len(clip.cut_times)} detected {r[0]['n_cuts']} | curve SCH "
            f"{_f(r[0]['sch'])} null {_f(r[0]['sch_null'])} | "
            f"text-only SCH {_f(r[1]['sch'])} null {_f(r[1]['sch_null'])}")
    summary = {k: metrics.summarise_results(v) for k, v in rows.items()}
    return {"rows": rows, "summary": summary, "generate_vs_manual_max_abs_diff": max_diff}


def _f(x, d: int = 3) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def results_table(summary: dict) -> str:
    lines = ["| condition | videos scored | mean SCH | mean sch_null | SCH − sch_null |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['n_sch']} | {_f(s['sch'])} | {_f(s['sch_null'])} | {_f(s['sch_minus_null'])} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="work folder (data, cache, run, videos, results)")
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-time budget; training stops early past its share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="toy scale (smoke test): 2 files, 3 steps, 2 videos")
    ap.add_argument("--steps", type=int, help="training steps (default 2500; --quick 3)")
    ap.add_argument("--videos", type=int, help="evaluation videos (default 24; --quick 2)")
    ap.add_argument("--cfg", type=float, help="CFG scale at evaluation (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (results are bit-exact per thread count)")
    ap.add_argument("--checkpoint",
                    help="where to write the demo checkpoint (default OUT/v2m-zero-pair-toy.safetensors)")
    args = ap.parse_args(argv)

    t_start = time.time()
    deadline_total = t_start + 60.0 * args.minutes
    torch.set_num_threads(max(1, args.threads))
    p = dict(QUICK if args.quick else FULL)
    for key in ("steps", "videos", "cfg"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.time()
    log(f"1/5 synthesising {p['music_files']} music files × {FILE_SECONDS:g} s ({p['music_files'] * 8} clips)")
    music_dir = os.path.join(out, "music")
    if os.path.isdir(music_dir):
        import shutil

        shutil.rmtree(music_dir)
    patterns = make_music(music_dir, p["music_files"], args.seed)
    scale = latent_scale(music_dir)
    log(f"   patterns per clip {patterns}; patch-latent std {scale} (codec scale)")
    timings["synth"] = time.time() - t

    t = time.time()
    log(f"2/5 prepare: PatchCodec(P={PATCH}, mono, {SAMPLE_RATE} Hz) latents + logmel music curves "
        f"(smoothing {SMOOTHING} s)")
    prep = prepare(music_dir, os.path.join(out, "cache"), scale)
    log(f"   {prep.clips} clips, latent length {prep.spec['latent_length']} at {prep.spec['latent_rate']:g} Hz")
    timings["prepare"] = time.time() - t

    t = time.time()
    # training gets what is left of the budget minus a reserve for evaluation (~6 s a video)
    reserve = 60.0 + 8.0 * p["videos"]
    deadline = max(time.time() + 30.0, deadline_total - reserve)
    log(f"3/5 training {p['model']} for {p['steps']} steps, batch {p['batch_size']} (stops early after "
        f"{(deadline - time.time()) / 60:.1f} min)")
    res, train_s = run_training(p, os.path.join(out, "cache"), os.path.join(out, "run"), args.seed, deadline)
    timings["train"] = train_s
    if res.stopped:
        log(f"   WARNING: stopped early at step {res.step} to stay within --minutes {args.minutes:g}")
    ckpt = args.checkpoint or os.path.join(out, "v2m-zero-pair-toy.safetensors")
    n_params = sum(v.numel() for k, v in load_v2m_checkpoint(res.checkpoint_path)[0].items()
                   if not k.endswith("inv_freq"))
    write_demo_checkpoint(res.checkpoint_path, ckpt, scale, p,
                          {"steps_done": res.step, "stopped_early": res.stopped,
                           "script": "benchmarks/zero_pair_toy.py", "seed": args.seed, "clips": prep.clips})
    log(f"   {res.step} steps in {train_s:.0f} s, last loss {res.last_loss:.4f}; checkpoint {ckpt} "
        f"({os.path.getsize(ckpt) / 1e6:.2f} MB, {n_params} parameters)")

    t = time.time()
    log(f"4/5 {p['videos']} unseen cut videos ({CLIP_SECONDS:g} s, {VIDEO_FPS} fps, {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]})")
    clips = make_videos(os.path.join(out, "videos"), p["videos"], args.seed)
    timings["videos"] = time.time() - t

    t = time.time()
    log(f"5/5 zero-pair generation ({p['sample_steps']} Euler steps, CFG {p['cfg']:g}, uncond both) and SCH")
    ev = evaluate(ckpt, clips, os.path.join(out, "generated"), p, args.seed)
    timings["evaluate"] = time.time() - t
    timings["total"] = time.time() - t_start

    s = ev["summary"]
    curve_gain = s["curve"]["sch_minus_null"]
    text_gain = s["text-only"]["sch_minus_null"]
    target_met = (curve_gain is not None and text_gain is not None and curve_gain >= 0.3 and abs(text_gain) <= 0.05)
    table = results_table(s)
    result = {
        "design": {"sample_rate": SAMPLE_RATE, "patch_size": PATCH, "latent_rate": SAMPLE_RATE / PATCH,
                   "latent_channels": PATCH, "codec_scale": scale, "clip_seconds": CLIP_SECONDS,
                   "smoothing_seconds": SMOOTHING, "music_encoder": prep.spec["encoder"], "video_encoder": "pixels",
                   "patterns": patterns, "params": p, "n_parameters": n_params, "threads": args.threads},
        "training": {"steps": res.step, "stopped_early": res.stopped, "last_loss": res.last_loss, "val": res.val,
                     "clips": prep.clips},
        "summary": s,
        "target_met": target_met,
        "generate_vs_manual_max_abs_diff": ev["generate_vs_manual_max_abs_diff"],
        "checkpoint": ckpt,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "per_video": {k: [{kk: r.get(kk) for kk in ("video", "n_cuts", "n_beats", "sch", "sch_null", "cuts", "beats")}
                          for r in v] for k, v in ev["rows"].items()},
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(table)
    print()
    print(f"target (curve SCH − null ≥ 0.30, text-only within 0.05 of null): {'met' if target_met else 'MISSED'}")
    print(f"generate.* vs spelled-out sampling, max |Δ latent|: {ev['generate_vs_manual_max_abs_diff']}")
    print(f"checkpoint: {ckpt}")
    print(f"wall time: {timings['total']:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items() if k != 'total')})")
    print(f"results: {os.path.join(out, 'results.json')}")
    return result


if __name__ == "__main__":
    main()
