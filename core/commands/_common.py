"""Helpers shared by the subcommands: bounded argument types, progress on stderr, the output plan."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable

from ..atomic import write_json  # noqa: F401  (re-exported for the commands)
from ..outputs import AUDIO_OUT, VIDEO_OUT, OutputPlan  # noqa: F401  (re-exported for the commands)

#: core.generate.REDO_SUFFIX (here so that building the parser imports no torch; tests/test_windows.py checks)
REDO_SUFFIX = ".v2m-latents.safetensors"

# the base presets of core.train.presets (listed here so that building the parser imports no torch)
# core.train.presets.PRESETS (no import at parser time; tests/test_presets.py checks they agree)
PRESETS = ("toy", "sao1", "sa3")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``v2m-zero CMD: error: …`` (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind=float, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    """An argparse type: a finite ``kind`` in [lo, hi] (``lo_open``: lo itself excluded).

    Arguments that scale time or memory get bounds, so a typo fails at once instead of running for
    hours (``--rate 1e7``).
    """

    def parse(text: str):
        try:
            value = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected a {'whole number' if kind is int else 'number'}, "
                                             f"got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        low_ok = lo is None or (value > lo if lo_open else value >= lo)
        if not low_ok or (hi is not None and value > hi):
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(f"must be in {left}{lo if lo is not None else '-inf'}, "
                                             f"{hi if hi is not None else 'inf'}], got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


class Progress:
    """Progress of one stage on stderr: a tqdm bar on a terminal, one line when the stage ends otherwise.

    Call it with ``(done, total)``; use it as a context manager (or call :meth:`close`).
    """

    def __init__(self, label: str, total: int | None = None, *, unit: str = "it", stream=None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done, self.t0, self.bar, self.closed = 0, time.time(), None, False
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, leave=True, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None = None) -> None:
        if total:
            self.total = int(total)
        self.done = int(done)
        if self.bar is not None:
            if self.total and self.bar.total != self.total:
                self.bar.total = self.total
            self.bar.n = self.done
            self.bar.refresh()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            return
        of = f"/{self.total}" if self.total else ""
        count = f" {self.done}{of} {self.unit}" if (self.done or self.total) else ""
        print(f"{self.label}:{count} done in {time.time() - self.t0:.1f} s", file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        elif self.bar is not None:
            self.bar.close()
        self.closed = True
        return False


def bounded(field) -> "Callable[[str], object]":
    """The argparse type of a sampling setting (:data:`core.sampling.FIELDS`): the same bounds as the node's widget."""
    return number(field.kind, field.lo, field.hi)


#: CLI spelling of each sampling setting (core.sampling.FIELDS names) and its metavar.
SAMPLING_FLAGS = {"steps": ("--steps", None), "cfg": ("--cfg", None), "seed": ("--seed", None),
                  "uncond": ("--uncond", None), "fast": ("--fast-sampler", None),
                  "window_seconds": ("--window", "SECONDS"), "overlap_seconds": ("--overlap", "SECONDS")}


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """The sampling settings as options, from :data:`core.sampling.FIELDS` (bounds, choices, help):
    left out, a setting is the checkpoint's own (steps, cfg, uncond) or automatic (window, overlap)."""
    from ..sampling import FIELDS, SamplingSettings

    defaults = SamplingSettings()
    for name, (flag, metavar) in SAMPLING_FLAGS.items():
        f = FIELDS[name]
        default = getattr(defaults, name)
        bounds = f"; {f.lo:g}–{f.hi:g}" if f.lo is not None else ""
        when = f" (default: {f.auto})" if f.auto else f" (default {default})"
        kw = dict(choices=list(f.choices)) if f.choices else dict(type=bounded(f), metavar=metavar)
        p.add_argument(flag, dest=name, default=default, help=f"{f.help}{bounds}{when}", **kw)


def resolve_sampling(gen, args):
    """``generate.resolve_sampling`` for the parsed options, before any work (a refused recorded value names the
    checkpoint's file: the model knows where it was loaded from)."""
    from .. import generate

    return generate.resolve_sampling(gen, sampling_settings(args))


def sampling_settings(args):
    """The :class:`core.sampling.SamplingSettings` of parsed :func:`add_sampling_arguments` options."""
    from ..sampling import FIELDS, SamplingSettings

    return SamplingSettings(**{name: getattr(args, name) for name in FIELDS})


def add_smoothing_argument(p: argparse.ArgumentParser, *, default: float | None) -> None:
    """``--smoothing-seconds`` (old spelling ``--smoothing`` kept): the Hann kernel, 0–60 s, one bound everywhere."""
    from ..timing.curves import DEFAULT_SMOOTHING_SECONDS
    from ..timing.spec import MAX_SMOOTHING_SECONDS

    p.add_argument("--smoothing-seconds", "--smoothing", dest="smoothing_seconds", metavar="SECONDS",
                   type=number(float, 0, MAX_SMOOTHING_SECONDS), default=default,
                   help=f"Hann smoothing kernel in seconds, 0–{MAX_SMOOTHING_SECONDS:g} (0 = none; default "
                        + (f"{default:.3g}" if default is not None else f"the paper's {DEFAULT_SMOOTHING_SECONDS:.3g}")
                        + ")")


def duration_text(seconds: float | None) -> str:
    """``H:MM:SS`` (days included past 24 h: ``2 days, 3:04:05``); ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    import datetime

    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


def plan_video_output(video, out: str):
    """How ``mux_audio`` will write ``out`` from ``video`` (stream copy or re-encode), decided before any work
    (:func:`core.timing.media.plan_mux`: a video that can be neither copied nor decoded is refused here);
    a re-encode is said on stdout."""
    from ..timing import media

    mux_plan = media.plan_mux(video, out)
    if mux_plan.note:
        print(f"note: {mux_plan.note}")
    return mux_plan
