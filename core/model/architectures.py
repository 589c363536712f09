"""Which DiT a model config describes: the one place that maps ``model_config["architecture"]`` to a class.

``"stable_audio_open"`` (the default when the field is absent: every checkpoint written before
the field existed is SAO-family) → :class:`~.dit.V2MDiT`; ``"stable_audio_3"`` →
:class:`~.sa3.SA3DiT`. Both keep the same conditioning API, so the sampler, CFG and the trainer
need not know which one they drive.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ModelError

SAO = "stable_audio_open"
SA3 = "stable_audio_3"
ARCHITECTURES = (SAO, SA3)


def architecture_of(model_config: Mapping[str, Any]) -> str:
    arch = model_config.get("architecture") or SAO
    if arch not in ARCHITECTURES:
        raise ModelError(f"model architecture {arch!r} is not supported; known: {', '.join(ARCHITECTURES)}")
    return arch


def build_dit(model_config: Mapping[str, Any], objective: str | None = None):
    """The DiT module for ``model_config`` (random weights; load a state dict into it)."""
    arch = architecture_of(model_config)
    if arch == SA3:
        from .sa3 import SA3DiT

        return SA3DiT(model_config, objective=objective or "rectified_flow")
    from .dit import V2MDiT

    return V2MDiT(model_config, objective=objective or "v")
