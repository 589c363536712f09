"""Video → music: the one generation pipeline, used by the ComfyUI nodes, ``v2m-zero generate`` and the demo.

A raw event curve becomes music in four stages over a :class:`~.model.bundle.MusicModel`
(loaded by ``model_io.bundle.load_music_model``, re-exported here):

1. :func:`plan_job` — the sampling settings resolved once against the checkpoint's own defaults
   (:mod:`.sampling`), the curve fitted to the model's latent grid as the checkpoint was trained
   (:func:`conditioning_curve_for`), and the window plan of a video longer than the training
   clips (:mod:`.windows`). Every bad setting fails here, before any work.
2. :func:`sample_job` — Euler + CFG over the job (window by window when planned so), with
   ``progress(done, total)`` and ``interrupt()`` called at every step.
3. :func:`decode_latents` / :func:`decode_to_spool` — codec decode trimmed to exactly the
   video's duration (in memory, or streamed into a spool for long videos).

:func:`sample_music` is stages 1–2 in one call (the Sampler node, the CLI and the demo all use it)
and :func:`music_for_curve` adds stage 3 (the library's one-call form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import windows
from ..model_io.bundle import load_music_model  # noqa: F401  (the pipeline's loader, re-exported)
from .errors import ModelError, V2MError
from .model.bundle import MusicModel
from .sampling import ResolvedSampling, SamplingSettings
from .timing import curves

Progress = Callable[[int, int], None]  # progress(done, total) in sampling steps over the whole job
Interrupt = Callable[[], None]  # raises to stop between steps (e.g. ComfyUI's interrupt check)


# --------------------------------------------------------------------------------------------
# what the model needs: its latent grid, its curve, its notes


def latent_frames(model: MusicModel, duration: float) -> int:
    """Latent frames for ``duration`` seconds: ceil(duration · latent_rate), rounded up to the DiT's patch size."""
    n = curves.latent_length(duration, model.latent_rate)
    p = int(getattr(model.dit.config, "patch_size", 1) or 1)
    return int(math.ceil(n / p) * p)


def conditioning_curve_for(model: MusicModel, curve: curves.Curve, duration: float | None = None) -> curves.Curve:
    """An event curve fitted to this model's latent grid.

    A raw event curve (no uniform rate) is resampled and smoothed as the model was trained (its
    curve spec); an already smoothed curve (e.g. from Smooth Curve) is only resampled by time.
    Latent length = :func:`latent_frames` of the duration, so the decoded audio covers the whole
    video and is then trimmed to its exact length.
    """
    duration = float(duration or curve.duration)
    n = latent_frames(model, duration)
    on_grid = curve.replace(duration=n / model.latent_rate)
    if curve.rate is None:
        fitted = model.curve_spec.smooth(on_grid, length=n)
    else:
        fitted = curves.resample_curve(on_grid, length=n)
    return fitted.replace(duration=duration)


DEMO_NOTE = ("DEMO checkpoint: a 4.6 M-parameter DiT trained on a CPU on General MIDI music rendered with FluidSynth, "
             "with music curves only (benchmarks/zero_pair_music.py); its accents land on the video's cuts, but it is "
             "16 kHz mono with Griffin-Lim phase and no text control: not a real music model")


def model_notes(model: MusicModel) -> list[str]:
    """What a user must know about the loaded model: the demo, an SAO/SA3 base without curve training."""
    notes = []
    if model.meta.get("demo"):
        note = str(model.meta.get("demo_note") or "")
        notes.append(DEMO_NOTE if not note else "DEMO checkpoint: " + note.removeprefix("demo: "))
    if model.meta.get("note"):
        notes.append(str(model.meta["note"]))
    return notes


def hit_points(curve: curves.Curve | None) -> np.ndarray:
    """Hit points of a raw (or smoothed) event curve, in seconds; none for the zero curve."""
    return np.zeros(0) if curve is None else curves.find_peaks(curve)


# --------------------------------------------------------------------------------------------
# 1. the job: settings, curve on the latent grid, windows


@dataclass(frozen=True)
class Job:
    """One generation, planned: what :func:`sample_job` runs."""

    duration: float  # seconds of music (the video's exact duration)
    latent_curve: curves.Curve | None  # the curve on the model's latent grid (None: the zero curve, text only)
    plan: windows.WindowPlan
    sampling: ResolvedSampling
    norms: np.ndarray | None = None  # per-window (mean, std) of the curve (windows.window_norms); None: as it is

    @property
    def total_steps(self) -> int:
        return self.sampling.steps * len(self.plan)


def resolve_sampling(model: MusicModel, settings: SamplingSettings | ResolvedSampling | None) -> ResolvedSampling:
    """``settings`` with what they leave open taken from the checkpoint's recorded defaults, and the
    window and overlap checked against this model: a bad setting fails here, before any work."""
    if isinstance(settings, ResolvedSampling):
        return settings
    try:
        resolved = (settings or SamplingSettings()).resolve(model.sampling)
    except ModelError as exc:  # a recorded value out of bounds: name the file it came from (CLI and nodes alike)
        text = str(exc)
        raise ModelError(f"{model.source}: {text}" if model.source and model.source not in text else text) from None
    window_frames(model, resolved.window_seconds, resolved.overlap_seconds)
    return resolved


def window_frames(model: MusicModel, window_seconds: float | None = None,
                  overlap_seconds: float | None = None) -> tuple[int, int]:
    """(window, overlap) in latent frames: the checkpoint's training length and the automatic
    overlap unless given (``None`` or 0 = automatic)."""
    win_s = float(window_seconds) if window_seconds else windows.training_window_seconds(model.meta)
    if not (math.isfinite(win_s) and win_s > 0):
        raise V2MError(f"the window length must be a positive number of seconds, got {window_seconds!r}")
    over_s = float(overlap_seconds) if overlap_seconds else windows.auto_overlap_seconds(win_s)
    if not (math.isfinite(over_s) and 0 < over_s <= win_s / 2):
        raise V2MError(f"the overlap ({over_s:g} s) must be more than 0 and at most half the window ({win_s:g} s)")
    window = latent_frames(model, win_s)
    return window, max(1, min(window // 2, int(round(over_s * model.latent_rate))))


#: How a window's curve is standardised: ``"window"`` on its own, as every training clip was (see
#: :func:`windows.window_norms`), or ``"video"``: its slice of the curve standardised over the whole
#: video. Measured with ``benchmarks/seams.py --compare-norms`` (benchmarks/RESULTS.md, long videos).
WINDOW_NORMS = ("window", "video")
DEFAULT_WINDOW_NORM = "window"


def plan_job(model: MusicModel, raw: curves.Curve | None, settings: SamplingSettings | ResolvedSampling | None = None,
             *, duration: float | None = None, windowed: bool = True, norm: str = DEFAULT_WINDOW_NORM,
             joins: str = windows.DEFAULT_JOINS) -> Job:
    """Plan a generation: resolved settings, the conditioning curve of ``raw`` (None: the zero
    curve; then ``duration`` is required) and the windows (``joins``: see :func:`windows.plan_windows`;
    ``windowed=False``: one pass whatever the length). ``norm`` (one of
    :data:`WINDOW_NORMS`) says how each window's curve is standardised: on the raw event curve's
    samples inside the window, the same on every road (a curve smoothed by Smooth Curve carries
    its raw curve, :func:`raw_source`, and keeps its scale and offset); only a smoothed curve
    whose raw samples are unknown (e.g. read from JSON) keeps the whole video's standardisation.
    Hit points (for the joins) come from that raw curve too."""
    if norm not in WINDOW_NORMS:
        raise V2MError(f"norm must be one of {', '.join(WINDOW_NORMS)}, got {norm!r}")
    if raw is None and duration is None:
        raise V2MError("a job without a curve needs a duration")
    duration = float(duration if duration is not None else raw.duration)
    sampling = resolve_sampling(model, settings)
    window, overlap = window_frames(model, sampling.window_seconds, sampling.overlap_seconds)
    latent_curve = conditioning_curve_for(model, raw, duration) if raw is not None else None
    n = latent_frames(model, duration)
    source = raw_source(raw)
    scale, offset = 1.0, 0.0  # Smooth Curve's scale and offset of a smoothed curve (planned without them)
    if source is not raw and raw is not None:
        scale, offset = float(raw.spec.get("scale", 1.0) or 1.0), float(raw.spec.get("offset", 0.0) or 0.0)
        if not (math.isfinite(scale) and math.isfinite(offset)):
            scale, offset = 1.0, 0.0
    if windowed:
        values = None if latent_curve is None else (latent_curve.values - offset) / scale
        plan = windows.plan_windows(n, window, overlap, rate=model.latent_rate, curve=values,
                                    hits=hit_points(source if source is not None else raw), joins=joins)
    else:
        plan = windows.WindowPlan((windows.Window(0, n),), n, model.latent_rate)
    norms = None
    if len(plan) > 1 and norm == "window" and source is not None and model.curve_spec.standardise:
        norms = windows.window_norms(plan, source.times, source.values, min_std=model.curve_spec.min_std)
        # ((c − offset)/scale − mean)/std · scale + offset  ==  (c − a)/std: the scale and offset kept
        norms[:, 0] = offset + norms[:, 0] * scale - offset * norms[:, 1]
    return Job(duration, latent_curve, plan, sampling, norms)


def raw_source(curve: curves.Curve | None) -> curves.Curve | None:
    """The raw event curve behind ``curve``: itself when raw, the raw curve a smoothed curve carries
    (:meth:`CurveSpec.smooth`), else None (a smoothed curve whose raw samples are unknown)."""
    if curve is None:
        return None
    return curve if curve.rate is None else curve.source


# --------------------------------------------------------------------------------------------
# 2. sampling


def sample_job(model: MusicModel, job: Job, prompt: str = "", *, negative_prompt: str = "",
               progress: Progress | None = None, interrupt: Interrupt | None = None,
               callback: Callable[[dict], None] | None = None, only_window: int | None = None,
               previous: torch.Tensor | None = None) -> torch.Tensor:
    """Euler sampling of the rectified flow with CFG → latents [1, D, L] (float32, CPU).

    ``progress(done, total)`` after every step and ``interrupt()`` before it, over the whole job
    (all windows). ``callback`` gets the sampler's state per step, with ``step``/``total`` over
    the whole job and ``window``/``windows``; raise in it (or in ``interrupt``) to stop.
    ``only_window=k`` with ``previous`` (the latents an earlier run of this job made, e.g. from
    :func:`load_redo`) samples window k alone again against its neighbours (seed: the job's
    ``sampling.seed``); every frame outside ``job.plan.own(k)`` stays bit-identical.
    """
    from .model import fast as fast_path
    from .model import flow

    n = latent_frames(model, job.duration)
    if job.latent_curve is not None and len(job.latent_curve) != n:
        raise V2MError(f"curve has {len(job.latent_curve)} samples but {job.duration:.3f} s needs {n} latent frames: "
                       "use conditioning_curve_for")
    if job.plan.total != n:
        raise V2MError(f"the window plan covers {job.plan.total} latent frames but {job.duration:.3f} s needs {n}")
    s, dit, dev, dt = job.sampling, model.dit, model.device, model.dtype
    multi = len(job.plan) > 1
    seconds = job.plan.windows[0].length / model.latent_rate if multi else job.duration
    takes_text = model.text is not None and dit.takes_text
    text_cond = dit.conditioning(text=model.text.encode([prompt]) if takes_text else None, seconds=seconds, device=dev,
                                 dtype=dt)
    negative = None
    if negative_prompt and takes_text:
        negative = dit.conditioning(text=model.text.encode([negative_prompt]), device=dev, dtype=dt)
    total = job.total_steps if only_window is None else s.steps

    def on_step(state: dict) -> None:
        if interrupt is not None:
            interrupt()
        if callback is not None:
            callback(state)
        if progress is not None:
            progress(state["step"] + 1, total)

    values = None if job.latent_curve is None else job.latent_curve.values
    net = fast_path.fast_model(dit, s.fast, device=dev)  # compiled (+ CUDA graphs) or the DiT itself
    ts = flow.schedule_timesteps(s.steps, s.schedule)  # the checkpoint's schedule (bounded in core.sampling)
    with flow.side_by_side(dev, s.cfg, net) as side:  # on a CPU: guidance's two branches on two threads
        if multi or only_window is not None:
            out = windows.sample_windows(model, values, job.plan, text_cond=text_cond, negative=negative,
                                         timesteps=ts, cfg_scale=s.cfg, seed=s.seed, uncond=s.uncond,
                                         callback=on_step, net=net, norms=job.norms, only=only_window,
                                         previous=previous, side=side)
        else:
            c = torch.zeros(1, 1, n) if values is None else torch.from_numpy(np.asarray(values, np.float32))[None, None]
            out = flow.sample(net, (1, dit.config.io_channels, n), ts, seed=s.seed, cfg_scale=s.cfg, uncond=s.uncond,
                              cond=text_cond, curve=c.to(dev, dt), negative=negative, device=dev, dtype=dt, side=side,
                              callback=lambda st: on_step(dict(st, window=0, windows=1, step=st["i"], total=total)))
    out = out.float().cpu()
    check_finite(out, "the sampled latents")
    return out


@dataclass(frozen=True)
class Sampled:
    """Latents and the job that made them."""

    latents: torch.Tensor
    job: Job


def sample_music(model: MusicModel, raw: curves.Curve | None, prompt: str = "",
                 settings: SamplingSettings | ResolvedSampling | None = None, *, negative_prompt: str = "",
                 duration: float | None = None, windowed: bool = True, progress: Progress | None = None,
                 interrupt: Interrupt | None = None, on_plan: Callable[[Job], None] | None = None,
                 norm: str = DEFAULT_WINDOW_NORM, joins: str = windows.DEFAULT_JOINS) -> Sampled:
    """The pipeline's entry: raw event curve → job (settings, curve, windows) → latents.

    ``on_plan(job)`` runs once the job is planned, before sampling starts (e.g. to say how many
    windows it has, or to size a progress bar); ``norm`` and ``joins``: see :func:`plan_job`."""
    job = plan_job(model, raw, settings, duration=duration, windowed=windowed, norm=norm, joins=joins)
    if on_plan is not None:
        on_plan(job)
    lat = sample_job(model, job, prompt, negative_prompt=negative_prompt, progress=progress, interrupt=interrupt)
    return Sampled(lat, job)


def sample_latents(model: MusicModel, latent_curve: curves.Curve | None, prompt: str = "",
                   settings: SamplingSettings | ResolvedSampling | None = None, *, duration: float,
                   negative_prompt: str = "", plan: windows.WindowPlan | None = None,
                   callback: Callable[[dict], None] | None = None) -> torch.Tensor:
    """Latents for a curve already on the latent grid (:func:`conditioning_curve_for`; None: the
    zero curve), in one pass or over ``plan``: :func:`sample_job` without the planning."""
    n = latent_frames(model, duration)
    plan = plan or windows.WindowPlan((windows.Window(0, n),), n, model.latent_rate)
    job = Job(float(duration), latent_curve, plan, resolve_sampling(model, settings))
    return sample_job(model, job, prompt, negative_prompt=negative_prompt, callback=callback)


# --------------------------------------------------------------------------------------------
# 3. decoding


def check_finite(t: torch.Tensor | np.ndarray, what: str) -> None:
    """Refuse NaN/Inf in ``t``, checked in blocks along the last axis: ``isfinite`` of an hour of
    latents at once (115 MB for the demo model) would briefly allocate about twice that again."""
    block = 1 << 14
    if isinstance(t, torch.Tensor):
        parts = t.split(block, dim=-1) if t.ndim else (t,)
        ok = all(bool(torch.isfinite(p).all()) for p in parts)
    else:
        a = np.asarray(t)
        parts = (a[..., i:i + block] for i in range(0, a.shape[-1], block)) if a.ndim else (a,)
        ok = all(bool(np.isfinite(p).all()) for p in parts)
    if not ok:
        raise V2MError(f"NaN/Inf in {what}: try precision fp32 (fp16 overflows on some models), a lower cfg, or more "
                       "steps; nothing was written")


@torch.no_grad()
def decode_latents(model: MusicModel, latents: torch.Tensor, duration: float) -> np.ndarray:
    """Decode [1, D, L] latents → float32 [C, T] with T = round(duration · sample_rate) exactly."""
    check_finite(latents, "the latents")
    decode = getattr(model.codec, "decode_chunked", None) if latents.shape[-1] > 256 else None
    if latents.shape[-1] > 256 and decode is None:
        # chunk by chunk through a spool on disk: memory holds the result and one chunk, not a whole
        # codec decode of a long video (a whole Griffin-Lim of an hour needs several GB)
        with decode_to_spool(model, latents, duration) as spool:
            return spool.to_array()
    lat = latents.to(model.device, torch.float32)
    wave = (decode(lat) if decode else model.codec.decode(lat)).float().cpu().numpy()[0]
    check_finite(wave, "the decoded audio")
    n = int(round(duration * model.sample_rate))
    if wave.shape[-1] < n:
        wave = np.pad(wave, ((0, 0), (0, n - wave.shape[-1])))
    from .timing.media.levels import limit_true_peak

    wave = np.ascontiguousarray(wave[:, :n], dtype=np.float32)
    # the model's output can exceed full scale: limit it (true peak -1 dBTP) instead of clipping
    return limit_true_peak(wave, model.sample_rate) if np.max(np.abs(wave), initial=0.0) > 1.0 else wave


def decode_to_spool(model: MusicModel, latents: torch.Tensor, duration: float, *, folder: str | None = None):
    """Decode ``[1, D, L]`` latents chunk by chunk into an :class:`~.timing.media.stream.AudioSpool`
    of exactly round(duration · sample_rate) samples (flat memory; close it when done). As in
    :func:`decode_latents`, audio above full scale is limited (true peak -1 dBTP), never clipped:
    then a second spool holds the limited audio, streamed through the limiter."""
    from .timing.media.stream import AudioSpool, master_stream

    check_finite(latents, "the latents")
    n = int(round(duration * model.sample_rate))
    spool = AudioSpool(int(model.codec.audio_channels), model.sample_rate, folder=folder)
    try:
        for piece in windows.iter_decode(model.codec, latents, n, device=model.device):
            check_finite(piece, "the decoded audio")
            spool.append(piece)
        if spool.peak <= 1.0:
            return spool
        with spool:
            limited = AudioSpool(spool.channels, spool.sample_rate, folder=folder)
            try:
                for piece in master_stream(spool, n, aac=False, report=False)[0]():
                    limited.append(piece)
            except BaseException:
                limited.close()
                raise
            return limited
    except BaseException:
        spool.close()
        raise


# --------------------------------------------------------------------------------------------
# 4. redoing one window: the latents and the plan of a run, kept beside its output

#: The sidecar beside an output that keeps what a redo of one window needs (``<output>`` + this).
REDO_SUFFIX = ".v2m-latents.safetensors"
_REDO_KEY = "v2m_redo"
_MAX_SECONDS = 7 * 24 * 3600.0  # a week: bounds a duration read from a sidecar


def redo_path(output: str) -> str:
    """Where the redo sidecar of ``output`` lives: ``output`` + :data:`REDO_SUFFIX`."""
    import os

    return os.fspath(output) + REDO_SUFFIX


def save_redo(path: str, model: MusicModel, sampled: Sampled) -> str:
    """Write the latents, window plan, conditioning curve and settings of a run to ``path``
    (safetensors, atomically): what :func:`load_redo` and ``--only-window`` read back. The latents
    are the only part that grows with length (128 × 62.5 float32 per second for the demo: 32 KB/s)."""
    import dataclasses
    import json
    import os

    from safetensors.torch import save_file

    from .atomic import atomic_path

    job = sampled.job
    tensors = {"latents": sampled.latents.detach().to("cpu", torch.float32).contiguous()}
    if job.latent_curve is not None:
        tensors["curve"] = torch.from_numpy(np.ascontiguousarray(job.latent_curve.values, np.float32))
    if job.norms is not None:
        tensors["norms"] = torch.from_numpy(np.ascontiguousarray(job.norms, np.float64))
    s = dataclasses.asdict(job.sampling)
    meta = {"version": 1, "duration": job.duration, "plan": job.plan.to_dict(), "latent_rate": model.latent_rate,
            "channels": int(model.dit.config.io_channels), "sample_rate": model.sample_rate,
            "curve_spec": None if job.latent_curve is None else job.latent_curve.spec,
            "sampling": {k: s[k] for k in ("steps", "cfg", "seed", "uncond", "fast", "window_seconds",
                                           "overlap_seconds")}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={_REDO_KEY: json.dumps(meta, default=float)})
    return path


def load_redo(path: str, model: MusicModel) -> Sampled:
    """The run :func:`save_redo` wrote, checked against ``model`` (same latent grid and channels)
    with every number bounded: a damaged or foreign file fails here in one line."""
    import json
    import os

    from safetensors import safe_open

    from .sampling import SamplingSettings

    if not os.path.isfile(path):
        raise V2MError(f"{path}: no redo file (it is written beside the output of a full run; run without "
                       "--only-window first)")
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(_REDO_KEY) or "null")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - a damaged file: one line
        raise V2MError(f"{path}: not a readable redo file ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("version") != 1 or "latents" not in tensors:
        raise V2MError(f"{path}: not a V2M redo file (no {_REDO_KEY!r} metadata of version 1 or no latents)")
    try:
        plan = windows.WindowPlan.from_dict(meta["plan"])
        duration = float(meta["duration"])
        rate, channels = float(meta["latent_rate"]), int(meta["channels"])
        sampling = SamplingSettings(**{k: meta["sampling"].get(k) for k in ("steps", "cfg", "seed", "uncond", "fast",
                                                                            "window_seconds", "overlap_seconds")})
    except (KeyError, TypeError, ValueError, AttributeError, V2MError) as e:
        raise V2MError(f"{path}: damaged redo file ({e})") from None
    if not (math.isfinite(duration) and 0 < duration <= _MAX_SECONDS):
        raise V2MError(f"{path}: duration {duration!r} is out of range")
    if abs(rate - model.latent_rate) > 1e-6 or channels != int(model.dit.config.io_channels):
        raise V2MError(f"{path}: made by a model with {channels} latent channels at {rate:g} frames/s; this model has "
                       f"{model.dit.config.io_channels} at {model.latent_rate:g}: redo with the same checkpoint")
    if plan.total != latent_frames(model, duration):
        raise V2MError(f"{path}: its plan covers {plan.total} latent frames but {duration:.3f} s needs "
                       f"{latent_frames(model, duration)}")
    lat = tensors["latents"].float()
    if tuple(lat.shape) != (1, channels, plan.total):
        raise V2MError(f"{path}: latents {tuple(lat.shape)}, expected {(1, channels, plan.total)}")
    check_finite(lat, f"{path}'s latents")
    latent_curve = None
    if "curve" in tensors:
        values = tensors["curve"].float().numpy().reshape(-1)
        if values.shape[0] != plan.total:
            raise V2MError(f"{path}: curve of {values.shape[0]} values for {plan.total} latent frames")
        latent_curve = curves.Curve(values=values, times=np.arange(plan.total) / model.latent_rate, duration=duration,
                                    rate=model.latent_rate, spec=dict(meta.get("curve_spec") or {}))
    norms = None
    if "norms" in tensors:
        norms = tensors["norms"].double().numpy()
        if norms.shape != (len(plan), 2) or not np.isfinite(norms).all() or (norms[:, 1] < 0).any():
            raise V2MError(f"{path}: per-window curve statistics {norms.shape} do not fit {len(plan)} windows")
    job = Job(duration, latent_curve, plan, resolve_sampling(model, sampling), norms)
    return Sampled(lat, job)


def redo_window(model: MusicModel, previous: Sampled, window: int, seed: int, prompt: str = "", *,
                negative_prompt: str = "", progress: Progress | None = None,
                interrupt: Interrupt | None = None) -> Sampled:
    """Window ``window`` of an earlier run sampled again with ``seed`` against its neighbours
    (inpainting both overlaps): the new latents of the whole soundtrack, bit-identical to
    ``previous`` outside ``plan.own(window)``."""
    import dataclasses

    job = dataclasses.replace(previous.job, sampling=dataclasses.replace(previous.job.sampling, seed=int(seed)))
    lat = sample_job(model, job, prompt, negative_prompt=negative_prompt, progress=progress, interrupt=interrupt,
                     only_window=int(window), previous=previous.latents)
    return Sampled(lat, job)


def music_for_curve(model: MusicModel, raw: curves.Curve | None, prompt: str = "",
                    settings: SamplingSettings | ResolvedSampling | None = None, *, duration: float | None = None,
                    negative_prompt: str = "", windowed: bool = True, progress: Progress | None = None,
                    interrupt: Interrupt | None = None) -> tuple[np.ndarray, Job]:
    """Raw event curve → decoded audio (float32 [C, T], exactly the duration) and the job that made it."""
    out = sample_music(model, raw, prompt, settings, negative_prompt=negative_prompt, duration=duration,
                       windowed=windowed, progress=progress, interrupt=interrupt)
    return decode_latents(model, out.latents, out.job.duration), out.job
