"""Video → music: the sampling pipeline over a :class:`~.model.bundle.MusicModel`.

``load_music_model`` (from ``model_io.bundle``) reads a V2M checkpoint and what travels with it; ``conditioning_curve_for``
turns a raw event curve into the curve the checkpoint was trained on (its own smoothing, the
latent grid of the requested duration); ``sample_latents`` runs Euler + CFG; ``decode_latents``
decodes and trims to the exact duration. The CLI and the ComfyUI nodes are thin layers over
these functions.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import windows
from .timing import curves
from .model.bundle import MusicModel
from .errors import V2MError
from ..model_io.bundle import load_music_model  # noqa: F401  (the pipeline's loader, re-exported)

def conditioning_curve_for(gen: MusicModel, curve: curves.Curve, duration: float | None = None) -> curves.Curve:
    """An event curve fitted to this model's latent grid.

    A raw event curve (no uniform rate) is resampled and smoothed as the model was trained (its
    curve spec); an already smoothed curve (e.g. from Smooth Curve) is only resampled by time.
    Latent length = ceil(duration · latent_rate) (rounded up to the DiT's patch size), so the
    decoded audio covers the whole video and is then trimmed to its exact length.
    """
    duration = float(duration or curve.duration)
    n = latent_frames(gen, duration)
    on_grid = curve.replace(duration=n / gen.latent_rate)
    if curve.rate is None:
        fitted = gen.curve_spec.smooth(on_grid, length=n)
    else:
        fitted = curves.resample_curve(on_grid, length=n)
    return fitted.replace(duration=duration)


def latent_frames(gen: MusicModel, duration: float) -> int:
    n = curves.latent_length(duration, gen.latent_rate)
    p = int(getattr(gen.dit.config, "patch_size", 1) or 1)
    return int(math.ceil(n / p) * p)


def sample_latents(
    gen: MusicModel,
    curve: curves.Curve | None,
    prompt: str,
    *,
    negative_prompt: str = "",
    duration: float,
    steps: int = 96,
    cfg_scale: float = 7.0,
    seed: int = 0,
    uncond: str = "both",
    callback: Callable[[dict], None] | None = None,
    fast: str = "auto",
    plan: windows.WindowPlan | None = None,
) -> torch.Tensor:
    """Euler sampling of the rectified flow with CFG → latents [1, D, L] (float32, CPU).

    ``curve`` is the conditioning curve on the model's latent grid (:func:`conditioning_curve_for`),
    or None for the zero curve (text only). ``plan`` (:func:`plan_for`) generates a long video in
    windows (:mod:`.windows`); without one, or with a one-window plan, it is one pass.
    ``callback`` gets the sampler's state per step, with ``step``/``total`` over the whole job
    and ``window``/``windows``; raise in it to stop. ``fast``: the fast-sampler mode of
    :func:`core.model.fast.fast_model` (compiled + CUDA graphs on CUDA by default; "off": eager).
    """
    from .model import fast as fast_path
    from .model import flow

    n = latent_frames(gen, duration)
    if curve is not None and len(curve) != n:
        raise V2MError(f"curve has {len(curve)} samples but {duration:.3f} s needs {n} latent frames: use conditioning_curve_for")
    if plan is not None and plan.total != n:
        raise V2MError(f"the window plan covers {plan.total} latent frames but {duration:.3f} s needs {n}")
    dev, dt, dit = gen.device, gen.dtype, gen.dit
    multi = plan is not None and len(plan) > 1
    seconds = plan.windows[0].length / gen.latent_rate if multi else float(duration)
    text = gen.text.encode([prompt]) if gen.text is not None and dit.takes_text else None
    cond = dit.conditioning(text=text, seconds=seconds, device=dev, dtype=dt)
    negative = None
    if negative_prompt and gen.text is not None and dit.takes_text:
        negative = dit.conditioning(text=gen.text.encode([negative_prompt]), device=dev, dtype=dt)
    values = None if curve is None else curve.values
    ts = flow.schedule_timesteps(steps, (gen.meta.get("sampling") or {}).get("schedule"))  # the checkpoint's schedule
    model = fast_path.fast_model(dit, fast, device=dev)  # compiled (+ CUDA graphs) or dit itself
    if multi:
        out = windows.sample_windows(gen, values, plan, cond=cond, negative=negative, steps=steps, cfg_scale=cfg_scale,
                                     seed=seed, uncond=uncond, callback=callback, model=model, timesteps=ts)
    else:
        cb = None if callback is None else (lambda s: callback(dict(s, window=0, windows=1, step=s["i"], total=steps)))
        c = torch.zeros(1, 1, n) if values is None else torch.from_numpy(np.asarray(values, np.float32))[None, None]
        out = flow.sample(model, (1, dit.config.io_channels, n), seed=seed, steps=steps, cfg_scale=cfg_scale, uncond=uncond,
                          cond=cond, curve=c.to(dev, dt), negative=negative, callback=cb, device=dev, dtype=dt,
                          timesteps=ts)
    out = out.float().cpu()
    check_finite(out, "the sampled latents")
    return out


def window_frames(gen: MusicModel, window_seconds: float | None = None,
                  overlap_seconds: float | None = None) -> tuple[int, int]:
    """(window, overlap) in latent frames: the checkpoint's training length and the automatic
    overlap unless given (``None`` or 0 = automatic)."""
    win_s = float(window_seconds) if window_seconds else training_window_seconds(gen)
    if not (math.isfinite(win_s) and win_s > 0):
        raise V2MError(f"the window length must be a positive number of seconds, got {window_seconds!r}")
    over_s = float(overlap_seconds) if overlap_seconds else windows.auto_overlap_seconds(win_s)
    if not (math.isfinite(over_s) and 0 < over_s <= win_s / 2):
        raise V2MError(f"the overlap ({over_s:g} s) must be more than 0 and at most half the window ({win_s:g} s)")
    window = latent_frames(gen, win_s)
    return window, max(1, min(window // 2, int(round(over_s * gen.latent_rate))))


def training_window_seconds(gen: MusicModel) -> float:
    """The checkpoint's training clip length (see :func:`windows.training_window_seconds`)."""
    return windows.training_window_seconds(gen.meta)[0]


def plan_for(gen: MusicModel, cond: curves.Curve | None, duration: float, *, hits=(),
             window_seconds: float | None = None, overlap_seconds: float | None = None) -> windows.WindowPlan:
    """The windows for ``duration`` seconds: joins where ``cond`` (the conditioning curve) is low
    and away from ``hits`` (hit-point times, e.g. ``curves.find_peaks`` of the raw curve)."""
    window, overlap = window_frames(gen, window_seconds, overlap_seconds)
    values = None if cond is None else cond.values
    return windows.plan_windows(latent_frames(gen, duration), window, overlap, rate=gen.latent_rate, curve=values,
                                hits=hits)


def hit_points(curve: curves.Curve | None) -> np.ndarray:
    """Hit points of a raw (or smoothed) event curve, in seconds; none for the zero curve."""
    return np.zeros(0) if curve is None else curves.find_peaks(curve)


def check_finite(t: torch.Tensor | np.ndarray, what: str) -> None:
    ok = torch.isfinite(t).all().item() if isinstance(t, torch.Tensor) else np.isfinite(t).all()
    if not ok:
        raise V2MError(
            f"NaN/Inf in {what}: try precision fp32 (fp16 overflows on some models), a lower cfg, or more steps; nothing was written"
        )


@torch.no_grad()
def decode_latents(gen: MusicModel, latents: torch.Tensor, duration: float) -> np.ndarray:
    """Decode [1, D, L] latents → float32 [C, T] with T = round(duration · sample_rate) exactly."""
    check_finite(latents, "the latents")
    lat = latents.to(gen.device, torch.float32)
    decode = getattr(gen.codec, "decode_chunked", None) if lat.shape[-1] > 256 else None
    wave = (decode(lat) if decode else gen.codec.decode(lat)).float().cpu().numpy()[0]
    check_finite(wave, "the decoded audio")
    n = int(round(duration * gen.sample_rate))
    if wave.shape[-1] < n:
        wave = np.pad(wave, ((0, 0), (0, n - wave.shape[-1])))
    from .timing.media.levels import limit_true_peak

    wave = np.ascontiguousarray(wave[:, :n], dtype=np.float32)
    # the model's output can exceed full scale: limit it (true peak -1 dBTP) instead of clipping
    return limit_true_peak(wave, gen.sample_rate) if np.max(np.abs(wave), initial=0.0) > 1.0 else wave


def decode_to_spool(gen: MusicModel, latents: torch.Tensor, duration: float, *, folder: str | None = None):
    """Decode ``[1, D, L]`` latents chunk by chunk into an :class:`~.timing.media.stream.AudioSpool`
    of exactly round(duration · sample_rate) samples (flat memory; close it when done). As in
    :func:`decode_latents`, audio above full scale is limited (true peak -1 dBTP), never clipped:
    then a second spool holds the limited audio, streamed through the limiter."""
    from .timing.media.stream import AudioSpool, master_stream

    check_finite(latents, "the latents")
    n = int(round(duration * gen.sample_rate))
    spool = AudioSpool(int(gen.codec.audio_channels), gen.sample_rate, folder=folder)
    try:
        for piece in windows.iter_decode(gen.codec, latents, n, device=gen.device):
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


def curve_and_plan(gen: MusicModel, raw: curves.Curve | None, duration: float, *, windowed: bool = True,
                   window_seconds: float | None = None, overlap_seconds: float | None = None,
                   ) -> tuple[curves.Curve | None, windows.WindowPlan]:
    """The conditioning curve for ``raw`` (None: the zero curve) and the window plan of the job
    (``windowed=False``: one pass, whatever the length)."""
    cond = conditioning_curve_for(gen, raw, duration) if raw is not None else None
    if not windowed:
        n = latent_frames(gen, duration)
        return cond, windows.WindowPlan((windows.Window(0, n),), n, gen.latent_rate)
    return cond, plan_for(gen, cond, duration, hits=hit_points(raw), window_seconds=window_seconds,
                          overlap_seconds=overlap_seconds)


def music_for_curve(
    gen: MusicModel,
    raw: curves.Curve | None,
    prompt: str = "",
    *,
    duration: float | None = None,
    negative_prompt: str = "",
    steps: int = 96,
    cfg_scale: float = 7.0,
    seed: int = 0,
    uncond: str = "both",
    callback: Callable[[dict], None] | None = None,
    fast: str = "auto",
    windowed: bool = True,
    window_seconds: float | None = None,
    overlap_seconds: float | None = None,
) -> tuple[np.ndarray, curves.Curve | None]:
    """Raw event curve → the model's conditioning curve → Euler + CFG (in windows of the
    checkpoint's training length when the video is longer) → decoded audio.

    ``raw=None`` (with ``duration``) samples with the zero curve (text only). Returns the audio
    (float32 [C, T], exactly the duration) and the conditioning curve that was used.
    """
    duration = float(duration if duration is not None else raw.duration)
    cond, plan = curve_and_plan(gen, raw, duration, windowed=windowed, window_seconds=window_seconds,
                                overlap_seconds=overlap_seconds)
    lat = sample_latents(gen, cond, prompt, negative_prompt=negative_prompt, duration=duration, steps=steps,
                         cfg_scale=cfg_scale, seed=seed, uncond=uncond, callback=callback, plan=plan, fast=fast)
    return decode_latents(gen, lat, duration), cond
