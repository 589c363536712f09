"""Videos shorter than the training window: one pass at the video's length, or pad to the window?

Issue 12 item 6. For videos shorter than the checkpoint's training clips (the demo model: 8 s)
three ways to generate, scored with Scene Cut Hit against the clips' known cuts next to its
chance level:

* ``native``      — one pass of the video's own length, ``seconds_total`` = its duration (what
                    ``generate`` does; the model's seconds conditioning tells it the length);
* ``pad``         — one pass of the full window: the conditioning curve continues past the
                    video with the "no change" value (a still shot), ``seconds_total`` = the
                    window, and the music is trimmed to the video;
* ``pad-seconds`` — the same padded window with ``seconds_total`` = the video's duration
                    (stable-audio-tools' convention for clips padded in training).

    python benchmarks/short_clips.py [--durations 3 4 5 6] [--clips 20] [--checkpoint DEMO]

Prints one row per (duration, mode): mean SCH, chance, SCH − chance, and the paired difference
of SCH − chance from ``native`` on the same clips and seeds (mean ± standard error).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# the figures in RESULTS.md were measured with the first demo, the click toy
# (git show d95b9a2:demo/v2m-zero-pair-toy.safetensors);
# --checkpoint takes any V2M checkpoint, the bundled demo by default
DEMO = os.path.join(os.path.dirname(HERE), "demo", "v2m-zero-demo-music.safetensors")
MODES = ("native", "pad", "pad-seconds")


def cut_times(duration: float, rng, gap=(1.5, 3.0)) -> list[float]:
    """The first cut at 0.5–2 s, then one every 1.5–3 s (uniform), none in the last 0.3 s."""
    out, t = [round(float(rng.uniform(0.5, min(2.0, duration - 0.3))), 3)], 0.0
    t = out[0]
    while True:
        t += float(rng.uniform(*gap))
        if t > duration - 0.3:
            return out
        out.append(round(t, 3))


def padded_curve(gen, raw, duration: float, window: int):
    """The conditioning curve of ``raw`` continued to ``window`` latent frames with the value a
    still shot would have (raw dissimilarity 0 under the video's standardisation)."""
    from v2m_zero.core.timing.curves import Curve

    spec = raw.spec or {}
    still = -spec["raw_mean"] / spec["raw_std"] if spec.get("standardise") and spec.get("raw_std") else 0.0
    span = window / gen.latent_rate
    t = np.concatenate([raw.times, [max(duration, raw.times[-1] + 1e-6)]])
    v = np.concatenate([raw.values, [still]])
    ext = Curve(v, t, span, spec=dict(spec))
    return gen.curve_spec.smooth(ext, length=window)


def generate(gen, raw, duration: float, mode: str, *, steps: int, cfg: float, seed: int) -> np.ndarray:
    import torch

    from v2m_zero.core import generate as g
    from v2m_zero.core.model import flow

    if mode == "native":
        return g.music_for_curve(gen, raw, "", g.SamplingSettings(steps=steps, cfg=cfg, seed=seed))[0]
    window = g.window_frames(gen)[0]
    cond = padded_curve(gen, raw, duration, window)
    seconds = window / gen.latent_rate if mode == "pad" else duration
    c = torch.from_numpy(np.asarray(cond.values, np.float32))[None, None]
    cnd = gen.dit.conditioning(seconds=seconds, device=gen.device, dtype=gen.dtype)
    lat = flow.sample(gen.dit, (1, gen.dit.config.io_channels, window), flow.rf_timesteps(steps), seed=seed,
                      cfg_scale=cfg, cond=cnd, curve=c, device=gen.device, dtype=gen.dtype)
    return g.decode_latents(gen, lat.float(), duration)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=DEMO)
    ap.add_argument("--durations", type=float, nargs="+", default=[3.0, 4.0, 5.0, 6.0])
    ap.add_argument("--clips", type=int, default=20, help="clips per duration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared CPU is much faster so)")
    args = ap.parse_args(argv)

    import torch

    from v2m_zero.core import examples
    from v2m_zero.core import generate as g
    from v2m_zero.core.eval import sch
    from v2m_zero.core.timing import encoders

    torch.set_num_threads(args.threads)
    gen = g.load_music_model(args.checkpoint)
    sampling = g.resolve_sampling(gen, None)  # the checkpoint's own settings, bounded
    steps, cfg = sampling.steps, sampling.cfg
    enc = encoders.get_encoder(gen.curve_spec.encoder)
    print(f"checkpoint {os.path.basename(args.checkpoint)}: window {g.windows.training_window_seconds(gen.meta):g} s, "
          f"{steps} steps, cfg {cfg}; SCH against the clips' known cuts (±0.1 s), chance = circular beat shifts")
    rng = np.random.default_rng(args.seed)
    rows: dict[tuple[float, str], list[tuple[float, float]]] = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.durations:
            for i in range(args.clips):
                cuts = cut_times(d, rng)
                clip = examples.make_cut_clip(os.path.join(tmp, f"c{d}_{i}.mp4"), cut_times=cuts, duration=d, fps=24,
                                              size=(160, 90), seed=1000 * i + int(d * 10))
                raw = encoders.encode_video_curve(clip.path, enc)
                for mode in MODES:
                    wave = generate(gen, raw, clip.duration, mode, steps=steps, cfg=cfg, seed=args.seed + i)
                    assert wave.shape[-1] == round(clip.duration * gen.sample_rate)
                    beats = sch.beat_times(wave.mean(axis=0), gen.sample_rate)
                    hit = sch.scene_cut_hit(clip.cut_times, beats)
                    null = sch.sch_null(clip.cut_times, beats, clip.duration)
                    if hit is not None:
                        rows.setdefault((d, mode), []).append((hit, null))
    print(f"{'duration':>8} {'mode':<12} {'clips':>5} {'SCH':>6} {'chance':>7} {'SCH-chance':>10} {'vs native':>16}")
    diffs: dict[str, list[float]] = {m: [] for m in MODES}
    for (d, mode), r in rows.items():
        a = np.asarray(r)
        gain = a[:, 0] - a[:, 1]
        base = np.asarray(rows[(d, "native")])
        paired = gain - (base[:, 0] - base[:, 1])
        diffs[mode].extend(paired.tolist())
        se = paired.std(ddof=1) / np.sqrt(len(paired)) if len(paired) > 1 else float("nan")
        print(f"{d:>8g} {mode:<12} {len(a):>5} {a[:, 0].mean():>6.3f} {a[:, 1].mean():>7.3f} {gain.mean():>10.3f} "
              f"{paired.mean():>+8.3f} ± {se:.3f}")
    for mode, v in diffs.items():
        v = np.asarray(v)
        print(f"{'all':>8} {mode:<12} {len(v):>5} {'':>6} {'':>7} {'':>10} {v.mean():>+8.3f} "
              f"± {v.std(ddof=1) / np.sqrt(len(v)):.3f}")
    print(f"wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
