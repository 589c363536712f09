"""Rectified-flow sampling and training maths, in the k-diffusion style (free functions).

Convention (paper eq. 1, 6): ``x_t = t·ε + (1 − t)·x0`` with t = 1 pure noise and t = 0 data; the
network predicts the velocity ``ε − x0`` and samples come from integrating ``dx/dt = v(x, t)``
from t = 1 down to t = 0. A *velocity model* here is any callable
``model(x, t[B], **extra_args) -> v`` in that convention. The schedule (``rf_timesteps``) is
separate from samplers (``sample_euler``), ``sample`` wires noise, guidance and a sampler, and
noise comes from ``make_noise`` so a seed gives the same music on any device.

Models trained with stable-audio-tools' ``v`` objective (Stable Audio Open 1.0) are turned into
velocity models by :class:`VPredictionVelocity`, an exact change of variables (see its doc), so
SAO 1.0 runs unchanged through the same sampler; :func:`velocity_model` picks the wrapper from a
model's ``objective``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Mapping, Sequence

import torch

from ..errors import ModelError, V2MError
from ..sampling import UNCOND_MODES
from .parallel import SideBySide, call, side_by_side

OBJECTIVES = ("rectified_flow", "v")


# --------------------------------------------------------------------------------------------
# noise and schedules


def make_noise(shape: Sequence[int], seed: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``torch.Generator().manual_seed(seed)``.

    Drawing on the CPU (then moving) makes a seed give bit-identical noise on CPU, CUDA or MPS.
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn(tuple(int(s) for s in shape), generator=g, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


def rf_timesteps(steps: int, *, shift: float | None = None, t_max: float = 1.0) -> torch.Tensor:
    """``steps + 1`` times from ``t_max`` down to 0, evenly spaced (float64, CPU).

    ``shift`` (SD3-style) warps them towards the noisy end: ``t' = s·t / (1 + (s − 1)·t)``;
    shift > 1 spends more steps at high noise, which long sequences benefit from.
    """
    if int(steps) < 1:
        raise V2MError(f"steps must be >= 1, got {steps}")
    t = torch.linspace(float(t_max), 0.0, int(steps) + 1, dtype=torch.float64)
    if shift is not None and shift != 1.0:
        if shift <= 0:
            raise V2MError(f"shift must be > 0, got {shift}")
        t = shift * t / (1 + (shift - 1) * t)
    return t


def logsnr_timesteps(steps: int, *, logsnr_min: float = -6.2, logsnr_max: float = 2.0,
                     t_max: float = 1.0) -> torch.Tensor:
    """``steps + 1`` times from ``t_max`` to 0, evenly spaced in log-SNR (Stable Audio 3's schedule).

    As stable_audio_3's ``LogSNRShift`` (rate 0): a linear ``u`` from ``t_max`` to 0 maps to
    ``logsnr = logsnr_max − u·(logsnr_max − logsnr_min)`` and ``t = sigmoid(−logsnr)``, with the
    end points kept exactly (``t_max`` and 0). ``logsnr = log((1 − t)/t)`` in the RF convention.
    """
    u = rf_timesteps(steps, t_max=t_max)
    t = torch.sigmoid(-(logsnr_max - u * (logsnr_max - logsnr_min)))
    t[0], t[-1] = float(t_max), 0.0
    return t


def schedule_timesteps(steps: int, schedule: Mapping[str, Any] | None = None) -> torch.Tensor:
    """Times for a schedule described as data (a checkpoint's ``sampling.schedule``): ``None`` or
    ``{"type": "linear", "shift": s}`` → :func:`rf_timesteps`; ``{"type": "logsnr", "logsnr_min",
    "logsnr_max"}`` → :func:`logsnr_timesteps`."""
    s = dict(schedule or {})
    kind = s.get("type", "linear")
    if kind == "linear":
        return rf_timesteps(steps, shift=s.get("shift"))
    if kind == "logsnr":
        return logsnr_timesteps(steps, logsnr_min=float(s.get("logsnr_min", -6.2)),
                                logsnr_max=float(s.get("logsnr_max", 2.0)))
    raise V2MError(f"unknown sampling schedule type {kind!r}; expected 'linear' or 'logsnr'")


# --------------------------------------------------------------------------------------------
# objectives


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (x.ndim - 1)))


class VPredictionVelocity:
    """Run a ``v``-objective model (stable-audio-tools / SAO 1.0) as an RF velocity model.

    stable-audio-tools' ``v`` objective: ``z = α·x0 + σ·ε`` with ``α = cos(πτ/2)``, ``σ = sin(πτ/2)``,
    network output ``v = α·ε − σ·x0``. An RF state ``x_t = t·ε + (1 − t)·x0`` is the same point of
    the same diffusion up to scale: with ``r = √(t² + (1 − t)²)``, ``z = x_t / r`` at
    ``τ = (2/π)·atan2(t, 1 − t)`` (so σ/α = t/(1 − t)). From v we get ``x0 = α·z − σ·v`` and
    ``ε = σ·z + α·v``, hence the RF velocity ``ε − x0``. This is exact (no retraining, no
    approximation); with it, Euler on the RF ODE is a first-order probability-flow solver for the
    v model, comparable to DDIM. CFG may be applied before or after this wrapper: the map is
    affine in v with coefficients shared by both branches, so the result is the same.
    """

    def __init__(self, model: Callable[..., torch.Tensor]):
        self.model = model

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).reshape(-1)
        if t.numel() == 1 and x.shape[0] > 1:
            t = t.expand(x.shape[0])
        r = torch.sqrt(t * t + (1 - t) * (1 - t))
        alpha, sigma = (1 - t) / r, t / r
        tau = torch.atan2(t, 1 - t) * (2 / math.pi)
        z = x / _bcast(r, x).to(x.dtype)
        v = self.model(z, tau, **kwargs).to(torch.float32)
        a, s, zf = _bcast(alpha, x), _bcast(sigma, x), z.to(torch.float32)
        x0 = a * zf - s * v
        eps = s * zf + a * v
        return (eps - x0).to(x.dtype)


def velocity_model(model: Callable[..., torch.Tensor], objective: str | None = None) -> Callable[..., torch.Tensor]:
    """The RF velocity view of ``model`` given its objective (default: ``model.objective``)."""
    objective = objective or getattr(model, "objective", None) or "rectified_flow"
    if objective == "rectified_flow":
        return model
    if objective == "v":
        return VPredictionVelocity(model)
    raise ModelError(f"unknown diffusion objective {objective!r}; expected one of {OBJECTIVES}")


# --------------------------------------------------------------------------------------------
# classifier-free guidance


def _double(value: Any, batch: int) -> Any:
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return torch.cat([value, value], dim=0)
    return value


class CFGDenoiser:
    """Classifier-free guidance over text and curve, as one forward of batch 2B, or, with
    ``side`` (a :class:`SideBySide`, e.g. :func:`side_by_side`'s), as two forwards of batch B side
    by side: the unconditional one on a worker thread while this thread runs the conditional one.

    ``out = uncond + cfg_scale · (cond − uncond)``. The unconditional branch is chosen by
    ``uncond`` (training drops text and curve independently, 10 % each, so all three nulls are
    in-distribution):

    * ``"both"``  — null text **and** zero curve: guidance pushes towards text and curve together
      (for SAO 1.0 with a zero-weight curve channel this is exactly SAO's own CFG);
    * ``"text"``  — null text, curve kept: guidance strengthens the prompt only, the curve acts
      as plain conditioning;
    * ``"curve"`` — zero curve, text kept: guidance strengthens the event timing only.

    "Null text" follows stable-audio-tools: the whole cross-attention sequence of the row (text
    *and* seconds tokens) is zeroed (``cond_drop=True``), the global seconds token is kept. "Zero
    curve" is the all-zero channel (a standardised curve has mean 0). The wrapped model must
    accept ``curve=`` and ``cond_drop=`` keywords (as :class:`~core.model.dit.V2MDiT` does); other
    keyword tensors with a leading batch dimension are duplicated for the 2B batch.
    With ``cfg_scale == 1`` only the conditional branch runs.

    ``negative`` (e.g. ``{"cond_tokens": ..., "cond_mask": ...}`` of a negative prompt) replaces
    those keyword inputs in the unconditional branch instead of zeroing the text there: guidance
    then pushes away from the negative prompt (the curve is still treated as ``uncond`` says).
    """

    def __init__(self, model: Callable[..., torch.Tensor], cfg_scale: float, uncond: str = "both",
                 negative: Mapping[str, Any] | None = None, side: SideBySide | None = None):
        if uncond not in UNCOND_MODES:
            raise V2MError(f"uncond must be one of {UNCOND_MODES}, got {uncond!r}")
        self.model, self.cfg_scale, self.uncond = model, float(cfg_scale), uncond
        self.negative = dict(negative or {})
        self.objective = getattr(model, "objective", None)
        self.side = side

    def __call__(self, x: torch.Tensor, t: torch.Tensor, *, curve=None, **kwargs) -> torch.Tensor:
        if self.cfg_scale == 1.0:
            return self.model(x, t, curve=curve, **kwargs)
        cond, uncond = self._branches(x, t, curve, kwargs)
        if self.side is not None:  # the unconditional forward on the worker thread, the conditional on this one
            out_cond, out_uncond = self.side.run(self.model, cond, uncond)
        else:
            b = x.shape[0]
            out = call(self.model, {k: _batch2(cond[k], uncond[k], b) for k in cond})
            out_cond, out_uncond = out.chunk(2, dim=0)
        return out_uncond + (out_cond - out_uncond) * self.cfg_scale

    def _branches(self, x: torch.Tensor, t, curve, kwargs: dict) -> tuple[dict, dict]:
        """The keyword inputs of the conditional and the unconditional forward, batch B each."""
        b = x.shape[0]
        drop_text = self.uncond in ("both", "text")
        drop_curve = self.uncond in ("both", "curve")
        kwargs = dict(kwargs)
        prev_drop = kwargs.pop("cond_drop", None)
        cond_drop = torch.zeros(b, dtype=torch.bool, device=x.device)
        if prev_drop is not None:
            cond_drop = torch.as_tensor(prev_drop, dtype=torch.bool, device=x.device).reshape(-1).expand(b)
        t = torch.as_tensor(t, device=x.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(b)
        cond = dict(kwargs, x=x, t=t, curve=None, cond_drop=cond_drop)
        uncond = dict(kwargs, x=x, t=t, curve=None, cond_drop=cond_drop | (drop_text and not self.negative))
        if curve is not None:
            c = torch.as_tensor(curve, device=x.device)
            if c.shape[0] != b:
                c = c.expand(b, *c.shape[1:])
            cond["curve"], uncond["curve"] = c, (torch.zeros_like(c) if drop_curve else c)
        for k, neg in self.negative.items():
            pos = torch.as_tensor(kwargs[k], device=x.device)
            neg = torch.as_tensor(neg, device=x.device)
            cond[k] = pos.expand(b, *pos.shape[1:]) if pos.shape[0] != b else pos
            uncond[k] = (neg.expand(b, *neg.shape[1:]) if neg.shape[0] != b else neg).to(pos.dtype)
        return cond, uncond


def _batch2(cond: Any, uncond: Any, batch: int) -> Any:
    """One input of the 2B batch: the branches' own tensors stacked (conditional rows first); an
    input both branches share doubled when it has the leading batch dimension, else passed once."""
    if cond is uncond:
        return _double(cond, batch)
    return torch.cat([cond, uncond], dim=0)


# --------------------------------------------------------------------------------------------
# samplers


def _progress(n: int, disable: bool | None):
    if disable is True:
        return range(n)
    try:
        from tqdm.auto import trange
    except ImportError:  # pragma: no cover - tqdm ships with transformers
        return range(n)
    return trange(n, disable=disable)


@torch.no_grad()
def sample_euler(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    *,
    project: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Euler method for the rectified-flow ODE ``dx/dt = v(x, t)``, from ``ts[0]`` down to ``ts[-1]``.

    ``x`` is the state at ``ts[0]`` (pure noise ``ε`` when ``ts[0] = 1``; ``ts[0]·ε`` is the usual
    start when ``ts[0] < 1``). ``callback({"i", "t", "x", "denoised"})`` runs once per step, with
    the state before the step and the model's x0 estimate ``x − t·v``; raise in it to stop.
    ``project(x, t)``, when given, maps the state at time ``t`` before the first step and after
    every step (e.g. inpainting holds known frames: :func:`sample_euler_inpaint`).
    """
    extra_args = dict(extra_args or {})
    times = [float(t) for t in torch.as_tensor(ts, dtype=torch.float64).tolist()]
    if len(times) < 2:
        raise V2MError("need at least two timesteps")
    if project is not None:
        x = project(x, times[0])
    ones = x.new_ones([x.shape[0]], dtype=torch.float32)
    for i in _progress(len(times) - 1, disable):
        t, t_next = times[i], times[i + 1]
        v = model(x, ones * t, **extra_args)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x - t * v})
        x = x + (t_next - t) * v
        if project is not None:
            x = project(x, t_next)
    return x


@torch.no_grad()
def sample_euler_inpaint(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    *,
    known: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Euler for the rectified-flow ODE with frames held to ``known`` (replacement inpainting).

    ``x`` is the start state ``ts[0]·ε``; before the first step and after every step the state
    becomes ``mask·(t·ε + (1 − t)·known) + (1 − mask)·x``: the known latents on the straight
    path from the same noise. At t = 0 the result equals ``known`` where ``mask`` is 1.
    """
    t0 = float(torch.as_tensor(ts, dtype=torch.float64).reshape(-1)[0]) if len(ts) else 0.0
    if len(ts) < 2 or t0 <= 0:
        raise V2MError("inpainting needs at least two timesteps starting above 0")
    eps = x / t0
    known = known.to(x.device, x.dtype)
    mask = mask.to(x.device, x.dtype)
    hold = mask == 1

    def pin(state: torch.Tensor, t: float) -> torch.Tensor:
        target = t * eps + (1 - t) * known if t > 0 else known
        return torch.where(hold, target, mask * target + (1 - mask) * state)

    return sample_euler(model, x, ts, extra_args, callback, disable, project=pin)


Sampler = Callable[..., torch.Tensor]  # sampler(model, x, ts, extra_args=, callback=, disable=) -> x at ts[-1]


def sample(
    model: Callable[..., torch.Tensor],
    shape: Sequence[int],
    timesteps: Sequence[float] | torch.Tensor,
    *,
    cfg_scale: float,
    seed: int = 0,
    uncond: str = "both",
    cond: Mapping[str, Any] | None = None,
    curve: torch.Tensor | None = None,
    negative: Mapping[str, Any] | None = None,
    sampler: Sampler | None = None,
    objective: str | None = None,
    callback: Callable[[dict], None] | None = None,
    device=None,
    dtype=torch.float32,
    side: SideBySide | None = None,
) -> torch.Tensor:
    """noise → classifier-free guidance → ``sampler`` over ``timesteps``: samples of ``model``.

    ``timesteps`` is the one schedule (e.g. :func:`rf_timesteps` or :func:`schedule_timesteps` of a
    checkpoint's schedule), from 1 down to 0. ``model`` is a network in its own objective
    (``objective`` or ``model.objective``; turned into a velocity model by :func:`velocity_model`);
    ``cond`` its conditioning keyword inputs (e.g. ``V2MDiT.conditioning``), ``curve`` the event
    curve, ``negative`` the negative prompt's text inputs for the unconditional branch. Noise comes
    from ``make_noise(shape, seed)``, so a seed gives the same samples on any device. ``sampler`` is
    any k-diffusion-style sampler (default :func:`sample_euler`). ``side``: a job's
    :class:`SideBySide` to run guidance's branches with (default: :func:`side_by_side`'s for this
    call, so a CPU with two or more torch threads runs them side by side).
    """
    x = make_noise(shape, seed, device=device, dtype=dtype)
    extra = dict(cond or {})
    if curve is not None:
        extra["curve"] = curve
    run = sampler or sample_euler
    with contextlib.ExitStack() as stack:
        if side is None:
            side = stack.enter_context(side_by_side(device, cfg_scale, model))
        den = CFGDenoiser(velocity_model(model, objective), cfg_scale, uncond=uncond, negative=negative, side=side)
        return run(den, x, timesteps, extra_args=extra, callback=callback, disable=True)


# --------------------------------------------------------------------------------------------
# training objective


def sample_t(batch: int, *, method: str = "logit_normal", generator: torch.Generator | None = None,
             mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training times in (0, 1): ``"uniform"`` or ``"logit_normal"`` (σ(N(mean, std²)), SD3)."""
    if method == "uniform":
        return torch.rand(batch, generator=generator)
    if method == "logit_normal":
        return torch.sigmoid(torch.randn(batch, generator=generator) * std + mean)
    raise V2MError(f"unknown t sampling {method!r}; expected 'uniform' or 'logit_normal'")


def rf_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    *,
    curve: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    t_sampling: str = "logit_normal",
    p_drop_text: float = 0.0,
    p_drop_curve: float = 0.0,
    reduction: str = "mean",
    **cond,
) -> torch.Tensor:
    """Paper eq. 6: ``‖(ε − x0) − f(x_t, [curve], c, t)‖²`` with ``x_t = t·ε + (1 − t)·x0``.

    ``t`` and ``noise`` default to draws from ``generator`` (on the CPU, then moved). Text and
    curve are dropped independently per row with ``p_drop_text``/``p_drop_curve`` (the paper: 10 %
    each) so that every CFG null seen at inference was seen in training. ``reduction`` "none"
    returns the per-row loss.
    """
    b = x0.shape[0]
    if t is None:
        t = sample_t(b, method=t_sampling, generator=generator)
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32)
    noise = noise.to(device=x0.device, dtype=x0.dtype)
    tb = _bcast(t, x0).to(x0.dtype)
    x_t = tb * noise + (1 - tb) * x0
    target = noise - x0
    if p_drop_text > 0:
        drop = torch.rand(b, generator=generator) < p_drop_text
        prev = cond.pop("cond_drop", None)
        if prev is not None:
            drop = drop | torch.as_tensor(prev, dtype=torch.bool).reshape(-1).cpu()
        cond["cond_drop"] = drop.to(x0.device)
    if curve is not None and p_drop_curve > 0:
        keep = (torch.rand(b, generator=generator) >= p_drop_curve).to(x0.device)
        curve = torch.as_tensor(curve, device=x0.device)
        curve = curve * _bcast(keep, curve).to(curve.dtype)
    pred = model(x_t, t, curve=curve, **cond) if curve is not None else model(x_t, t, **cond)
    err = (pred.float() - target.float()) ** 2
    per_row = err.reshape(b, -1).mean(dim=1)
    if reduction == "none":
        return per_row
    if reduction != "mean":
        raise V2MError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return per_row.mean()
