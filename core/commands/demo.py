"""``v2m-zero demo``: the main job end to end on a generated clip, offline and without weights.

It writes a short clip with known cuts, computes its event curve with a weightless encoder,
finds the hit points, and muxes a soundtrack into the clip. Until a generator checkpoint is
given, the soundtrack is a *sonification of the curve* (a hit at each hit point over a pad whose
loudness follows the smoothed curve) — it shows timing, it is not generated music.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

NAME = "demo"
HELP = "run the main job on a generated clip: video -> event curve -> soundtrack mux (offline, no weights)"

DEMO_CUTS = (1.5, 3.0, 4.25, 6.0, 7.5, 8.0, 10.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="v2m_out", help="output folder (default ./v2m_out)")
    p.add_argument("--video", default=None, help="use this video instead of a generated clip")
    p.add_argument("--encoder", default="pixels", help="frame encoder (default pixels: weightless)")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the generated clip")
    p.add_argument("--duration", type=float, default=12.0, help="length of the generated clip in seconds")


def sonify(smooth, peaks, duration: float, sample_rate: int = 44100) -> np.ndarray:
    """A stereo soundtrack that makes the curve audible: hits at ``peaks``, a pad following ``smooth``."""
    from .. import synth

    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    env = np.interp(t, smooth.times + 0.5 / smooth.rate, smooth.values)
    env = (env - env.min()) / (np.ptp(env) or 1.0)
    pad = 0.12 * (0.25 + 0.75 * env) * (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 164.8 * t))
    hits = synth.click_track(list(peaks), duration, sample_rate=sample_rate, channels=2)
    return np.clip(hits * 0.8 + pad[None].astype(np.float32), -1, 1).astype(np.float32)


def run(args) -> int:
    from .. import curves, encoders, media, plot, synth
    from ._common import write_json

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.video:
        video, truth = args.video, None
    else:
        video = os.path.join(out, "demo_clip.mp4")
        clip = synth.make_cut_clip(video, cut_times=[c for c in DEMO_CUTS if c < args.duration], duration=args.duration, fps=args.fps, size=(320, 180))
        truth = clip.cut_times
        print(f"generated {video}: {args.duration:g} s at {args.fps:g} fps with cuts at " + ", ".join(f"{c:.3f}" for c in truth))

    enc = encoders.get_encoder(args.encoder)
    raw = encoders.encode_video_curve(video, enc)
    peaks = curves.find_peaks(raw)
    smooth = curves.smooth_curve(curves.resample_curve(raw, rate=44100 / 2048))

    curve_json = os.path.join(out, "curve.json")
    write_json(curve_json, {
        "video": video,
        "duration": raw.duration,
        "rate": smooth.rate,
        "times": [round(float(x), 6) for x in smooth.times],
        "values": [round(float(x), 6) for x in smooth.values],
        "peaks": [round(float(x), 6) for x in peaks],
        "spec": smooth.spec,
    })
    png = plot.save_png(plot.plot_curves([("smoothed (latent rate)", smooth), ("event curve", raw)], peaks=peaks, title=f"event curve of {os.path.basename(video)}"), os.path.join(out, "curve.png"))
    soundtrack = sonify(smooth, peaks, raw.duration)
    muxed = media.mux_audio(video, soundtrack, 44100, os.path.join(out, "demo_with_soundtrack.mp4"))

    print(f"hit points ({len(peaks)}): " + ", ".join(f"{p:.3f}" for p in peaks))
    if truth is not None:
        frame = 1.0 / args.fps
        matched = sum(any(abs(p - c) <= frame + 1e-6 for p in peaks) for c in truth)
        print(f"cuts found within one frame: {matched}/{len(truth)}")
    print("results:")
    for label, path in (("curve JSON", curve_json), ("curve plot", png), ("video + soundtrack", muxed)):
        print(f"  {label:18s} {path}")
    print("note: the soundtrack is a sonification of the curve (hits at hit points), not generated music")
    return 0
