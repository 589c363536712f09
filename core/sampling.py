"""One sampling contract: the settings of a generation, their bounds, and the checkpoint's own defaults.

:class:`SamplingSettings` is what a user asks for (steps, guidance, seed, unconditional branch,
fast sampler, window, overlap); ``None`` in a field means "the checkpoint's own" (steps, cfg,
uncond: its metadata ``sampling``) or "automatic" (window: the training clip length; overlap: a
quarter of the window). :data:`FIELDS` carries each field's bounds and help: the CLI's argparse
types and the ComfyUI widgets both read them, so the two accept the same values. Widgets show
"the checkpoint's own" as 0 (numbers) or :data:`FROM_CHECKPOINT` (choices): :meth:`from_widgets`
maps those to None.

:meth:`SamplingSettings.resolve` fills the gaps from the checkpoint's recorded ``sampling`` once,
here in core: a checkpoint is untrusted input, so each value it records is held to the same bounds
as the argument it stands for. The result, :class:`ResolvedSampling`, is what the pipeline runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ModelError, V2MError

UNCOND_MODES = ("both", "text", "curve")  # what guidance's unconditional branch drops (core.model.flow.CFGDenoiser)
FAST_MODES = ("auto", "off", "compile")  # core.model.fast.fast_model
#: Window lengths a user may ask for, and clip lengths a checkpoint may record (seconds).
MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS = 1.0, 512.0

FROM_CHECKPOINT = "from checkpoint"  # the widget choice that follows the checkpoint
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes any unsigned 64-bit seed

#: Defaults where neither the user nor the checkpoint says (paper §5: 96 Euler steps, CFG 7).
DEFAULT_STEPS = 96
DEFAULT_CFG = 7.0
DEFAULT_UNCOND = "both"


@dataclass(frozen=True)
class Field:
    """One setting: its bounds (inclusive), what None / the widget's 0 means, and its help text."""

    name: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    auto: str = ""  # what None means ("" = None is not allowed)
    help: str = ""

    def check(self, value: Any, source: str = "") -> Any:
        """``value`` as this field's type within its bounds; a V2MError naming the value otherwise."""
        where = source or self.name
        if value is None:
            if not self.auto:
                raise V2MError(f"{where} must be given")
            return None
        if self.choices:
            if value not in self.choices:
                raise V2MError(f"{where} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        try:
            v = self.kind(value)
            ok = math.isfinite(float(v)) and (self.kind is not int or float(value) == v)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok or isinstance(value, bool):
            raise V2MError(f"{where} must be a {'whole number' if self.kind is int else 'number'}; got {value!r}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise V2MError(f"{where} must be in [{self.lo:g}, {self.hi:g}]; got {value!r}")
        return v


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("steps", int, 1, 1000, auto=f"the checkpoint's own, else {DEFAULT_STEPS}",
          help="Euler steps (paper: 96)"),
    Field("cfg", float, 0.0, 30.0, auto=f"the checkpoint's own, else {DEFAULT_CFG:g}",
          help="classifier-free guidance scale (1 = no guidance)"),
    Field("seed", int, 0, SEED_MAX, help="noise seed (the same seed gives the same music on any device)"),
    Field("uncond", str, choices=UNCOND_MODES, auto=f"the checkpoint's own, else {DEFAULT_UNCOND}",
          help="what guidance's unconditional branch drops: both text and curve, only the text (the curve acts as "
               "plain conditioning), or only the curve (stronger timing)"),
    Field("fast", str, choices=FAST_MODES,
          help="auto: on a GPU, SAO-size DiTs (100 M+ parameters) are compiled and replayed as CUDA graphs (the "
               "first run of a model and length compiles for about a minute; a failure falls back to eager with a "
               "warning); small models and CPUs run eagerly. compile: compile on any device. off: always eager"),
    Field("window_seconds", float, MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS, auto="the checkpoint's training clip length",
          help="a video longer than this is generated in windows of this length, joined where the video is calm"),
    Field("overlap_seconds", float, 0.05, 256.0, auto="a quarter of the window, at most 5 s",
          help="how much of the previous window each window continues from (at most half a window)"),
)}


@dataclass(frozen=True)
class SamplingSettings:
    """What the user asks for; None = the checkpoint's own (steps, cfg, uncond) or automatic (window, overlap)."""

    steps: int | None = None
    cfg: float | None = None
    seed: int = 0
    uncond: str | None = None
    fast: str = "auto"
    window_seconds: float | None = None
    overlap_seconds: float | None = None

    def __post_init__(self):
        for name, f in FIELDS.items():
            object.__setattr__(self, name, f.check(getattr(self, name)))

    @classmethod
    def from_widgets(cls, **values) -> "SamplingSettings":
        """From ComfyUI widget values: 0 (numbers) and :data:`FROM_CHECKPOINT` (choices) mean None."""
        clean = {}
        for name, v in values.items():
            f = FIELDS[name]
            auto = bool(f.auto) and (v == FROM_CHECKPOINT if f.choices else (v is not None and float(v) == 0))
            clean[name] = None if auto else v
        return cls(**clean)

    def resolve(self, recorded: Mapping[str, Any] | None, *, source: str = "the checkpoint") -> "ResolvedSampling":
        """Fill what the user left open from the checkpoint's recorded ``sampling`` (each value held
        to its field's bounds: a ModelError names one that is not), then from the defaults."""
        rec = dict(recorded) if isinstance(recorded, Mapping) else {}
        from_ckpt = []

        def pick(name: str, key: str, default):
            if getattr(self, name) is not None:
                return getattr(self, name)
            if rec.get(key) is None:
                return default
            try:
                value = FIELDS[name].check(rec[key], f"{source}'s sampling.{key}")
            except V2MError as e:
                raise ModelError(f"{e}: give {name} explicitly or fix the checkpoint's metadata") from None
            from_ckpt.append(name)
            return value

        steps = pick("steps", "steps", DEFAULT_STEPS)
        cfg = pick("cfg", "cfg_scale", DEFAULT_CFG)
        uncond = pick("uncond", "uncond", DEFAULT_UNCOND)
        schedule = check_schedule(rec.get("schedule"), source)
        return ResolvedSampling(steps=steps, cfg=cfg, seed=self.seed, uncond=uncond, fast=self.fast,
                                window_seconds=self.window_seconds, overlap_seconds=self.overlap_seconds,
                                schedule=schedule, from_checkpoint=tuple(from_ckpt))


@dataclass(frozen=True)
class ResolvedSampling:
    """The settings a job runs with: every choice made (window and overlap may still be automatic)."""

    steps: int
    cfg: float
    seed: int
    uncond: str
    fast: str
    window_seconds: float | None
    overlap_seconds: float | None
    schedule: dict | None  # the checkpoint's timestep schedule (None: linear)
    from_checkpoint: tuple[str, ...] = ()  # which fields came from the checkpoint's metadata

    def describe(self) -> str:
        own = f" ({', '.join(self.from_checkpoint)} from the checkpoint)" if self.from_checkpoint else ""
        kind = (self.schedule or {}).get("type", "linear")
        return f"{self.steps} steps ({kind}), cfg {self.cfg:g}, uncond {self.uncond}, seed {self.seed}{own}"


#: Bounds of a recorded schedule's numbers (log-SNR range; SD3-style shift).
_SCHEDULE_BOUNDS = {"logsnr_min": (-20.0, 20.0), "logsnr_max": (-20.0, 20.0), "shift": (0.01, 100.0)}


def check_schedule(schedule: Any, source: str = "the checkpoint") -> dict | None:
    """A recorded ``sampling.schedule`` with its type known and its numbers bounded (None: linear)."""
    if schedule is None:
        return None
    if not isinstance(schedule, Mapping) or schedule.get("type", "linear") not in ("linear", "logsnr"):
        raise ModelError(f"{source}'s sampling.schedule {schedule!r} is not a known schedule (linear or logsnr)")
    out = {"type": schedule.get("type", "linear")}
    for key, (lo, hi) in _SCHEDULE_BOUNDS.items():
        if schedule.get(key) is not None:
            v = schedule[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= float(v) <= hi):
                raise ModelError(f"{source}'s sampling.schedule.{key} = {v!r} is outside [{lo:g}, {hi:g}]")
            out[key] = float(v)
    if out["type"] == "logsnr" and out.get("logsnr_min", -6.2) >= out.get("logsnr_max", 2.0):
        raise ModelError(f"{source}'s sampling.schedule has logsnr_min >= logsnr_max")
    return out
