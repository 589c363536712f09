"""What the commands that run the pipeline share (curve, generate, demo): the frame-encoder options,
a video's event curve with progress, the curve JSON, and sampling with progress on stderr.

Commands import helpers from here (and ``_common``), never from one another.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..precision import PRECISIONS
from ..timing import curves, encoders
from ._common import Progress, number


def add_encoder_arguments(p: argparse.ArgumentParser, default: str | None = "pixels") -> None:
    """Frame-encoder options shared by the commands that compute a video's curve."""
    p.add_argument("--encoder", default=default, help=f"frame encoder: {', '.join(encoders.encoder_ids())} (default "
                                                      f"{default or 'the one the checkpoint was made for'})")
    p.add_argument("--model", default=None, help="model folder for dinov2 (default "
                                                 "dinov2-large under $V2M_MODELS_DIR/encoders)")
    p.add_argument("--pooling", default="mean_patch", choices=["mean_patch", "cls"], help="DINOv2 pooling")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="DINOv2 (and generator) precision")
    p.add_argument("--device", default=None, help="torch device for DINOv2 and the "
                                                  "generator (default: cuda if available)")
    p.add_argument("--batch-size", type=number(int, 1, 4096), default=None,
                   help="frames per encoder batch (1–4096; default 64 on a GPU, 16 on a CPU)")
    p.add_argument("--sample-fps", type=number(float, 0, 480), default=0.0,
                   help="encode this many frames per second (0 = every frame); on a CPU, 4–8 makes DINOv2 affordable")
    p.add_argument("--size", type=number(int, 0, 8192), default=0,
                   help="shorter side to decode at (0 = encoder default)")


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


def curve_document(video, raw: "curves.Curve", smooth: "curves.Curve", peaks) -> dict:
    """The curve JSON: ``times``/``values`` of the conditioning curve, ``peaks``, the raw curve, spec."""

    def r(xs):
        return [round(float(x), 6) for x in xs]

    return {
        "video": str(video), "duration": raw.duration, "rate": smooth.rate,
        "times": r(smooth.times), "values": r(smooth.values), "peaks": r(peaks),
        "raw": {"times": r(raw.times), "values": r(raw.values)}, "spec": smooth.spec,
    }


def sample_with_progress(model, raw, settings, *, prompt: str = "", negative_prompt: str = ""):
    """The pipeline's latents for a raw curve (:func:`core.generate.sample_music`), with the job's
    windows and settings said on stderr and its progress over all windows."""
    from .. import generate

    def announce(job):
        if len(job.plan) > 1:
            print(f"windows: {job.plan.describe()}", file=sys.stderr)
        print(f"sampling: {job.sampling.describe()}", file=sys.stderr)

    with Progress("sampling", unit="steps") as bar:  # the pipeline gives it the job's total
        return generate.sample_music(model, raw, prompt, settings, negative_prompt=negative_prompt, on_plan=announce,
                                     progress=bar)


def redo_with_progress(model, sidecar: str, video, window: int, seed: int, *, prompt: str = "",
                       negative_prompt: str = ""):
    """Window ``window`` of the run saved in ``sidecar`` sampled again with ``seed``
    (:func:`core.generate.redo_window`), after checking that ``video`` is as long as that run's."""
    from .. import generate
    from ..timing import media

    previous = generate.load_redo(sidecar, model)
    job = previous.job
    if video is not None:
        length = float(media.probe_video(video).duration)
        if abs(length - job.duration) > 1e-3:
            raise generate.V2MError(f"{sidecar} is the run of a {job.duration:.3f} s video but {video} lasts "
                                    f"{length:.3f} s: redo with the video of that run")
    if not 0 <= window < len(job.plan):
        raise generate.V2MError(f"--only-window {window}: that run has windows 0–{len(job.plan) - 1} "
                                f"({job.plan.describe()})")
    a, b = job.plan.own(window)
    print(f"redo: window {window} of {len(job.plan)} with seed {seed}: {a / job.plan.rate:.2f}–"
          f"{b / job.plan.rate:.2f} s change, everything else is kept bit for bit", file=sys.stderr)
    with Progress(f"sampling window {window}", unit="steps") as bar:
        return generate.redo_window(model, previous, window, seed, prompt, negative_prompt=negative_prompt,
                                    progress=bar)


def agreement_notes(model, encoder: str | None) -> list[str]:
    """Warnings: a frame encoder other than the checkpoint's; a Stable Audio base whose timing is untrained.
    (The demo checkpoint is no warning: ``demo`` names it in its own report.)"""
    from ..timing.spec import curve_mismatches

    notes = curve_mismatches({"encoder": encoder}, model.curve_spec) if encoder else []
    return notes + ([str(model.meta["note"])] if model.meta.get("note") else [])
