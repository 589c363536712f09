"""Music alignment on real material: SCH before → after vs chance, tempo change, onsets, seams, runtime.

    python benchmarks/align_media.py            # fetch + prepare the media once (git-ignored cache)
    python benchmarks/align_real.py [--edits beats] [--max-stretch 0.08] [--slack 0.04] [--json out.json]

For every (video, music) pair: hit points of the video (pixels event curve), the music aligned to
them (``core.align``), then, on the video's PySceneDetect cuts (paper Algorithm 1):

* SCH of the unaligned music (from its start, cut to the video) and of the aligned music, each
  with its chance level (``sch_null``, 200 circular shifts of that music's beats);
* the tempo change applied: largest and duration-weighted mean ``|rate - 1|``;
* an onset check independent of librosa's beat tracker: onsets from a plain numpy spectral-flux
  detector (5.8 ms hop, adaptive threshold); the share of cuts with an onset within ±50 ms, before
  and after, against its own chance level (circular shifts of the onsets);
* a seam-quality proxy: spectral flux and RMS jump (dB between consecutive 10 ms frames) at the
  joins (every piece boundary: rate changes, edits, loops) against the same measures just before
  the other beats of the aligned music (joins sit just before a beat): ratios near 1 mean joins
  are no rougher than the music around them;
* runtime: wall and CPU seconds of the alignment per minute of output music.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache", "align")
VIDEOS = ["bikes.mp4", "city.mpg", "edit_1.5s.mp4", "edit_2.5s.mp4", "edit_4s.mp4"]
MUSIC = ["1918.mp3", "funkyrobot.mp3", "energetic_electronic_2.opus", "happy_acoustic_1.opus",
         "nostalgic_acoustic_1.opus"]
HOP = 256  # at 44.1 kHz: 5.8 ms


def flux_onsets(wave: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset times, flux per frame, frame times): log-magnitude spectral flux, numpy only."""
    y = np.asarray(wave, dtype=np.float64)
    y = y.mean(axis=0) if y.ndim == 2 else y
    n_fft = 1024
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::HOP] * np.hanning(n_fft)
    mag = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.concatenate([[0.0], np.maximum(np.diff(mag, axis=0), 0.0).sum(axis=1)])
    t = np.arange(len(flux)) * HOP / sr
    w = int(0.25 * sr / HOP)
    local = np.convolve(flux, np.ones(2 * w + 1) / (2 * w + 1), "same")
    peak = (flux > np.roll(flux, 1)) & (flux >= np.roll(flux, -1)) & (flux > 1.5 * local + 1e-9)
    idx = np.flatnonzero(peak)
    keep, last = [], -1e9
    for i in idx:  # at most one onset per 50 ms
        if t[i] - last >= 0.05:
            keep.append(i)
            last = t[i]
    return t[keep], flux, t


def onset_hit(cuts, onsets, duration, tol=0.05, shifts=200):
    from v2m_zero.core.eval.sch import scene_cut_hit, sch_null

    return scene_cut_hit(cuts, onsets, tol), sch_null(cuts, onsets, duration, tol, n_shifts=shifts)


def rms_jump(wave, sr, t, width=0.15):
    """Largest |ΔRMS| in dB between consecutive 10 ms frames in [t - width, t]."""
    y = np.asarray(wave, dtype=np.float64).mean(axis=0)
    a, b = int((t - width) * sr), int(t * sr)
    seg = y[max(a, 0):max(b, 1)]
    n = int(0.01 * sr)
    if seg.size < 2 * n:
        return 0.0
    r = np.sqrt(np.mean(seg[: seg.size // n * n].reshape(-1, n) ** 2, axis=1)) + 1e-6
    return float(np.max(np.abs(np.diff(20 * np.log10(r)))))


def seam_stats(wave, sr, joins, beats):
    _on, flux, ft = flux_onsets(wave, sr)

    def peak_flux(t, width=0.15):
        m = (ft >= t - width) & (ft < t - 0.005)
        return float(flux[m].max()) if m.any() else 0.0

    others = [b for b in beats if all(abs(b - j) > 0.3 for j in joins) and b > 0.3]
    if not joins or not others:
        return None, None
    jf = np.median([peak_flux(j) for j in joins]) / max(np.median([peak_flux(b) for b in others]), 1e-9)
    jr = (np.median([rms_jump(wave, sr, j) for j in joins])
          / max(np.median([rms_jump(wave, sr, b) for b in others]), 1e-9))
    return float(jf), float(jr)


def run_pair(video, music, args):
    from v2m_zero.core.align import pipeline
    from v2m_zero.core.align.analysis import bpm_of
    from v2m_zero.core.align.timemap import AlignOptions
    from v2m_zero.core.timing import cuts as cutmod, media

    duration = media.probe_video(video).duration
    cuts = list(cutmod.detect_cuts(video, "scenedetect"))
    wave, sr = media.decode_audio(music)
    t0, c0 = time.perf_counter(), time.process_time()
    _raw, hits, strengths = pipeline.video_hit_points(video)
    res = pipeline.align_music(wave, sr, hits, duration, strengths=strengths,
                               options=AlignOptions(max_stretch=args.max_stretch, edits=args.edits, slack=args.slack))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    before = pipeline.unaligned(wave, sr, duration)
    sync = pipeline.sync_report(cuts, before, res.audio, sr, duration)
    ob, oa = flux_onsets(before, sr)[0], flux_onsets(res.audio, sr)[0]
    on_b, on_b0 = onset_hit(cuts, ob, duration)
    on_a, on_a0 = onset_hit(cuts, oa, duration)
    rates = np.array([p.rate for p in res.tmap.pieces])
    lens = np.array([p.out_b - p.out_a for p in res.tmap.pieces])
    joins = [p.out_a for p in res.tmap.pieces[1:]]
    flux_ratio, rms_ratio = seam_stats(res.audio, sr, joins, list(res.tmap.beats_out))
    return {
        "video": os.path.basename(video), "music": os.path.basename(music), "duration": round(duration, 2),
        "cuts": len(cuts), "cut_rate_s": round(duration / max(len(cuts), 1), 2),
        "sch_before": sync["sch_before"], "chance_before": sync["chance_before"],
        "sch_after": sync["sch_after"], "chance_after": sync["chance_after"],
        "max_tempo_change": float(np.max(np.abs(rates - 1))),
        "mean_tempo_change": float(np.sum(np.abs(rates - 1) * lens) / lens.sum()),
        "onset_before": on_b, "onset_chance_before": on_b0, "onset_after": on_a, "onset_chance_after": on_a0,
        "joins": len(joins), "edits": len(res.tmap.edits), "loop_seams": len(res.tmap.seams) - len(res.tmap.edits),
        "seam_flux_ratio": flux_ratio, "seam_rms_ratio": rms_ratio,
        "sec_per_min_wall": wall / (duration / 60), "sec_per_min_cpu": cpu / (duration / 60),
        "tempo_bpm": res.analysis.tempo, "meter": res.analysis.meter, "readings": res.attempts,
        "heard_bpm": bpm_of(np.asarray(sync["beats_after"])) if len(sync["beats_after"]) > 1 else None,
    }


def _f(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=CACHE)
    ap.add_argument("--edits", default="beats", choices=["none", "beats", "bars"])
    ap.add_argument("--slack", type=float, default=0.04)
    ap.add_argument("--max-stretch", type=float, default=0.08)
    ap.add_argument("--videos", nargs="*", default=VIDEOS)
    ap.add_argument("--music", nargs="*", default=MUSIC)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print("| video | cuts (s/cut) | music (grid BPM, heard BPM; readings) | SCH before (chance) | SCH after (chance) "
          "| after − chance | max / mean tempo change "
          "| onsets ±50 ms before → after (chance) | joins (edits, loops) | seam flux / RMS-jump ratio "
          "| s per min (wall / CPU) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for v in args.videos:
        for m in args.music:
            r = run_pair(os.path.join(args.cache, "video", v), os.path.join(args.cache, "music", m), args)
            rows.append(r)
            print(f"| {r['video']} | {r['cuts']} ({r['cut_rate_s']}) | {r['music']} ({r['tempo_bpm']:.0f} BPM, "
                  f"heard {_f(r['heard_bpm'], 0)}; {r['readings']}) "
                  f"| {_f(r['sch_before'])} ({_f(r['chance_before'])}) "
                  f"| **{_f(r['sch_after'])}** ({_f(r['chance_after'])}) "
                  f"| {_f(r['sch_after'] - r['chance_after'] if r['sch_after'] is not None else None)} "
                  f"| {100 * r['max_tempo_change']:.1f} % / {100 * r['mean_tempo_change']:.1f} % "
                  f"| {_f(r['onset_before'])} → {_f(r['onset_after'])} ({_f(r['onset_chance_after'])}) "
                  f"| {r['joins']} ({r['edits']}, {r['loop_seams']}) "
                  f"| {_f(r['seam_flux_ratio'])} / {_f(r['seam_rms_ratio'])} "
                  f"| {r['sec_per_min_wall']:.1f} / {r['sec_per_min_cpu']:.1f} |", flush=True)
    ok = [r for r in rows if r["sch_after"] is not None]
    goal = [r for r in ok if 1.5 <= r["cut_rate_s"] <= 4.0]
    met = [r for r in goal
           if r["sch_after"] >= 0.8 and r["sch_after"] - r["chance_after"] >= 0.35
           and r["max_tempo_change"] <= 0.08 + 1e-9]
    mean = lambda k, rs: float(np.mean([r[k] for r in rs])) if rs else float("nan")  # noqa: E731
    print(f"\nmeans over {len(ok)} pairs: SCH {mean('sch_before', ok):.3f} -> {mean('sch_after', ok):.3f}, "
          f"chance after "
          f"{mean('chance_after', ok):.3f}; onsets {mean('onset_before', ok):.3f} -> {mean('onset_after', ok):.3f} "
          f"(chance {mean('onset_chance_after', ok):.3f}); "
          f"seam flux ratio {np.nanmedian([r['seam_flux_ratio'] or np.nan for r in ok]):.2f}, "
          f"RMS-jump ratio {np.nanmedian([r['seam_rms_ratio'] or np.nan for r in ok]):.2f}; "
          f"{mean('sec_per_min_wall', ok):.1f} s wall / {mean('sec_per_min_cpu', ok):.1f} s CPU per minute of music")
    print(f"goal (cut every 1.5–4 s: SCH >= 0.8, >= 0.35 above chance, tempo change <= 8 %): "
          f"{len(met)}/{len(goal)} pairs; "
          f"over those {len(goal)} pairs: mean SCH {mean('sch_after', goal):.3f}, mean SCH - chance "
          f"{float(np.mean([r['sch_after'] - r['chance_after'] for r in goal])) if goal else float('nan'):.3f}, "
          f"largest tempo change {100 * max((r['max_tempo_change'] for r in goal), default=0):.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
