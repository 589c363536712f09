"""``v2m-zero curve VIDEO``: the video's event curve, its smoothed conditioning curve and hit points."""

from __future__ import annotations

import argparse

from ..timing import curves
from ..timing.spec import MAX_CURVE_LENGTH, CurveSpec
from ..errors import V2MError
from ._common import add_smoothing_argument, OutputPlan, number, write_json
from ._pipeline import add_encoder_arguments, curve_document, video_curve

NAME = "curve"
HELP = "compute a video's event curve (JSON with times, smoothed values and hit points)"

#: Curves at more samples per second than this are no conditioning grid (latent rates are 10–100 Hz).
MAX_RATE = 1000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (any format PyAV reads)")
    add_encoder_arguments(p)
    p.add_argument("--rate", type=number(float, 0, MAX_RATE, lo_open=True), default=curves.SAO_LATENT_RATE,
                   help=f"output rate in Hz, at most {MAX_RATE:g} (default: Stable Audio latents, 44100/2048)")
    p.add_argument("--length", type=number(int, 0, MAX_CURVE_LENGTH), default=0,
                   help=f"exact number of output samples (overrides --rate; at most {MAX_RATE:g} per second of video)")
    add_smoothing_argument(p, default=curves.DEFAULT_SMOOTHING_SECONDS)
    p.add_argument("--min-gap", type=number(float, 0, 60), default=0.25, help="minimum seconds between hit points")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--plot", default=None, help="also write a PNG plot of the curves")


def compute(video, args) -> tuple[dict, "curves.Curve", "curves.Curve", list]:
    if args.length:  # fail fast, before decoding: the work of resampling grows with --length
        from ..timing import media

        duration = media.probe_video(video).duration
        if args.length > MAX_RATE * duration:
            raise V2MError(f"--length {args.length} is {args.length / duration:.0f} samples per second of this "
                           f"{duration:.2f} s video; at most {MAX_RATE:g}: use a smaller --length or --rate")
    raw = video_curve(video, args)
    peaks = curves.find_peaks(raw, min_gap=args.min_gap)
    spec = CurveSpec(encoder=args.encoder, smoothing_seconds=args.smoothing_seconds, length=args.length or None,
                     rate=None if args.length else args.rate)
    smooth = spec.smooth(raw)
    return curve_document(video, raw, smooth, peaks), raw, smooth, list(peaks)


def run(args) -> int:
    from ..timing import plot

    plan = OutputPlan()
    plan.input(args.video, "input video")
    out = plan.file(args.out, "--out", extensions=(".json",))
    png = plan.file(args.plot, "--plot", extensions=(".png",)) if args.plot else None
    with plan:
        data, raw, smooth, peaks = compute(args.video, args)
        write_json(out, data)
        print(f"curve: {len(smooth)} samples at {smooth.rate:.3f} Hz over {raw.duration:.3f} s -> {out}")
        print(f"hit points ({len(peaks)}): " + ", ".join(f"{p:.3f}" for p in peaks))
        if png:
            img = plot.plot_curves([("smoothed", smooth), ("raw", raw)], peaks=peaks,
                                   title=f"{args.video} ({args.encoder})")
            plot.save_png(img, png)
            print(f"plot -> {png}")
    return 0
