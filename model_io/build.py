"""The one way this pack builds a module for weights it has read: on the meta device, then assigned.

A 1 B-parameter DiT built normally would allocate its random weights only to throw them away when
the file's tensors are loaded; built under ``torch.device("meta")`` it allocates nothing, and
``load_state_dict(assign=True)`` makes the file's tensors its parameters. Every loader that can do
this (DiT, Oobleck, SAME, single-file T5) goes through :func:`on_meta` and :func:`assign_weights`
so the steps (build, check, assign, place, cast, eval) happen in one order everywhere.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

from ..core.errors import ModelError
from .weights import check_state_dict

M = TypeVar("M")


def on_meta(factory: Callable[[], M], *, name: str | None = None) -> M:
    """``factory()`` run under the meta device (no memory for its weights).

    A ``ModelError`` the factory raises (a bad config) is re-raised with ``name`` (the file) in front,
    so the message says which file's config was wrong.
    """
    import torch

    try:
        with torch.device("meta"):
            return factory()
    except ModelError as exc:
        if name is None or str(exc).startswith(str(name)):
            raise
        raise ModelError(f"{name}: {exc}") from None


def assign_weights(model, state_dict: Mapping[str, Any], *, name: str, device: Any = "cpu", dtype=None,
                   fit: Callable[[Any, Mapping[str, Any], str], Mapping[str, Any]] | None = None):
    """Give ``model`` (built by :func:`on_meta`) the tensors of ``state_dict``; returns it in eval mode.

    ``fit(model, state_dict, name)`` checks the tensors against the model and returns the dict to
    assign (e.g. with derived buffers filled in); by default the keys and shapes must match exactly
    (:func:`.weights.check_state_dict`). The model is then moved to ``device`` and, when ``dtype`` is
    given, cast (modules that keep some buffers in float32 do so in their own ``_apply``).
    """
    if fit is None:
        check_state_dict(model, state_dict, name=name)
        full = state_dict
    else:
        full = fit(model, state_dict, name)
    model.load_state_dict(full, strict=True, assign=True)
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    return model.eval()


def build_with_weights(factory: Callable[[], M], state_dict: Mapping[str, Any], *, name: str, device: Any = "cpu",
                       dtype=None, fit=None) -> M:
    """:func:`on_meta` then :func:`assign_weights`: a module holding exactly the file's tensors."""
    return assign_weights(on_meta(factory, name=name), state_dict, name=name, device=device, dtype=dtype, fit=fit)
