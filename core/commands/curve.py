"""``v2m-zero curve VIDEO``: the video's event curve, its smoothed conditioning curve and hit points."""

from __future__ import annotations

import argparse
import os

from ..timing import curves, encoders
from ..precision import PRECISIONS
from ..timing.spec import CurveSpec
from ..errors import V2MError
from ._common import OutputPlan, Progress, number, write_json

NAME = "curve"
HELP = "compute a video's event curve (JSON with times, smoothed values and hit points)"

#: Curves at more samples per second than this are no conditioning grid (latent rates are 10–100 Hz).
MAX_RATE = 1000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (any format PyAV reads)")
    add_encoder_arguments(p)
    p.add_argument("--rate", type=number(float, 0, MAX_RATE, lo_open=True), default=curves.SAO_LATENT_RATE,
                   help=f"output rate in Hz, at most {MAX_RATE:g} (default: Stable Audio latents, 44100/2048)")
    p.add_argument("--length", type=number(int, 0, 10_000_000), default=0,
                   help=f"exact number of output samples (overrides --rate; at most {MAX_RATE:g} per second of video)")
    p.add_argument("--smoothing", type=number(float, 0, 60), default=curves.DEFAULT_SMOOTHING_SECONDS,
                   help="Hann kernel in seconds, 0–60 (default 2.52 = paper)")
    p.add_argument("--min-gap", type=number(float, 0, 60), default=0.25, help="minimum seconds between hit points")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--plot", default=None, help="also write a PNG plot of the curves")


def add_encoder_arguments(p: argparse.ArgumentParser, default: str | None = "pixels") -> None:
    """Frame-encoder options shared by the commands that compute a video's curve."""
    p.add_argument("--encoder", default=default, help=f"frame encoder: {', '.join(encoders.encoder_ids())} (default {default or 'the one the checkpoint was made for'})")
    p.add_argument("--model", default=None, help="model folder for dinov2 (default dinov2-large under $V2M_MODELS_DIR/encoders)")
    p.add_argument("--pooling", default="mean_patch", choices=["mean_patch", "cls"], help="DINOv2 pooling")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="DINOv2 (and generator) precision")
    p.add_argument("--device", default=None, help="torch device for DINOv2 and the generator (default: cuda if available)")
    p.add_argument("--batch-size", type=number(int, 1, 4096), default=None,
                   help="frames per encoder batch (1–4096; default 64 on a GPU, 16 on a CPU)")
    p.add_argument("--sample-fps", type=number(float, 0, 480), default=0.0,
                   help="encode this many frames per second (0 = every frame); on a CPU, 4–8 makes DINOv2 affordable")
    p.add_argument("--size", type=number(int, 0, 8192), default=0, help="shorter side to decode at (0 = encoder default)")


def build_encoder(args):
    kwargs = {}
    if args.encoder.startswith("dinov2"):
        kwargs = dict(pooling=args.pooling, precision=args.precision, device=args.device, batch_size=args.batch_size)
        if args.model:
            kwargs["model"] = args.model
    return encoders.get_encoder(args.encoder, **kwargs)


def video_curve(video, args, *, label: str | None = None) -> "curves.Curve":
    """The raw event curve of ``video`` with the encoder the arguments name (progress on stderr)."""
    enc = build_encoder(args)
    try:
        with Progress(label or f"encoding frames of {os.path.basename(str(video))}", unit="frames") as bar:
            return encoders.encode_video_curve(video, enc, sample_fps=args.sample_fps or None, size=args.size or None,
                                               progress=bar)
    finally:
        enc.close()


def compute(video, args) -> tuple[dict, "curves.Curve", "curves.Curve", list]:
    if args.length:  # fail fast, before decoding: the work of resampling grows with --length
        from ..timing import media

        duration = media.probe_video(video).duration
        if args.length > MAX_RATE * duration:
            raise V2MError(f"--length {args.length} is {args.length / duration:.0f} samples per second of this "
                           f"{duration:.2f} s video; at most {MAX_RATE:g}: use a smaller --length or --rate")
    raw = video_curve(video, args)
    peaks = curves.find_peaks(raw, min_gap=args.min_gap)
    spec = CurveSpec(encoder=args.encoder, smoothing_seconds=args.smoothing, length=args.length or None,
                     rate=None if args.length else args.rate)
    smooth = spec.smooth(raw)
    return curve_document(video, raw, smooth, peaks), raw, smooth, list(peaks)


def curve_document(video, raw: "curves.Curve", smooth: "curves.Curve", peaks) -> dict:
    """The curve JSON: ``times``/``values`` of the conditioning curve, ``peaks``, the raw curve, spec."""

    def r(xs):
        return [round(float(x), 6) for x in xs]

    return {
        "video": str(video), "duration": raw.duration, "rate": smooth.rate,
        "times": r(smooth.times), "values": r(smooth.values), "peaks": r(peaks),
        "raw": {"times": r(raw.times), "values": r(raw.values)}, "spec": smooth.spec,
    }


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
            img = plot.plot_curves([("smoothed", smooth), ("raw", raw)], peaks=peaks, title=f"{args.video} ({args.encoder})")
            plot.save_png(img, png)
            print(f"plot -> {png}")
    return 0
