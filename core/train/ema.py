"""The trainer's EMA: keyed by the unwrapped model's parameter names, never silently left at the base.

Under FSDP the wrapped model's names carry ``_fsdp_wrapped_module.`` and its parameters are shards;
the trainer hands :func:`update_ema` the whole parameters by their unwrapped names
(``Runtime.full_parameters``), so the EMA stays keyed and shaped as the checkpoint is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ..errors import ModelError


def update_ema(ema: dict[str, torch.Tensor], params: Iterable[tuple[str, torch.Tensor]], decay: float) -> None:
    """``ema[n] = decay * ema[n] + (1 - decay) * p`` for each ``(n, p)`` of ``params`` with an EMA entry. Every
    entry must be found with its shape: a name that no longer matches (a wrapper's prefix, a shard) is an error."""
    found = 0
    for n, p in params:
        e = ema.get(n)
        if e is None:
            continue
        if tuple(p.shape) != tuple(e.shape):
            raise ModelError(f"EMA: parameter {n} is {tuple(p.shape)} but its EMA {tuple(e.shape)} (a shard?)")
        e.lerp_(p.detach().float().to(e.device), 1.0 - decay)
        found += 1
    if found != len(ema):
        raise ModelError(f"EMA: {len(ema) - found} of {len(ema)} trained parameters not found in the model by name; "
                         "the EMA would stay at the base weights")


def with_ema(state: Mapping[str, torch.Tensor], ema: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (the unwrapped model's full state dict) with the EMA's tensors in place of the trained ones;
    an EMA name missing from it is an error (the export would silently be the base weights)."""
    lost = [k for k in ema if k not in state]
    if lost:
        raise ModelError(f"EMA: {len(lost)} of {len(ema)} names are not in the model's state dict (e.g. {lost[:3]}); "
                         "cannot export the EMA weights")
    out = dict(state)
    out.update({k: v.to(device=state[k].device, dtype=state[k].dtype) for k, v in ema.items()})
    return out
