"""The host's runtime: progress bars, interrupts, memory and device placement (``comfy.model_management``)."""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Callable, Iterator


class Progress:
    """ComfyUI ProgressBar + interrupt check, usable as the core's progress callback."""

    def __init__(self, total: int | None):
        import comfy.utils

        self.total = max(int(total or 1), 1)
        self.bar = comfy.utils.ProgressBar(self.total)

    def __call__(self, done: int, total: int | None = None) -> None:
        if total:
            self.total = max(int(total), 1)
        self.bar.update_absolute(min(int(done), self.total), self.total)

    @staticmethod
    def check_interrupt() -> None:
        import comfy.model_management

        comfy.model_management.throw_exception_if_processing_interrupted()


def release_memory(*objs: Callable | object) -> None:
    import gc

    for o in objs:
        close = getattr(o, "close", None)
        if callable(close):
            close()
    gc.collect()
    try:
        import comfy.model_management

        comfy.model_management.soft_empty_cache()
    except Exception:  # host without a cache to empty
        pass


# --------------------------------------------------------------------------------------------
# Device placement. A model loaded with "offload" lives in CPU memory between runs and is on
# ComfyUI's compute device only inside ``placed``; the choice is kept here, beside the model
# (by identity), not in its checkpoint metadata.

_OFFLOADED: dict[int, weakref.ref] = {}


def load_device(offload: bool):
    """Where a model is loaded: the CPU when it is offloaded between runs, else ComfyUI's compute device."""
    import comfy.model_management as mm

    return "cpu" if offload else mm.get_torch_device()


def set_offload(model, offload: bool) -> None:
    """Remember whether ``model`` (anything with ``.to(device)``) goes back to the CPU after each use."""
    key = id(model)
    _OFFLOADED.pop(key, None)
    if offload:
        _OFFLOADED[key] = weakref.ref(model, lambda _ref, key=key: _OFFLOADED.pop(key, None))


def is_offloaded(model) -> bool:
    ref = _OFFLOADED.get(id(model))
    return ref is not None and ref() is model


def _weight_bytes(model) -> int:
    import torch

    parts = [getattr(model, name, None) for name in ("dit", "codec", "text")]
    total = 0
    for part in parts:
        if isinstance(part, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in part.state_dict().values())
    return total


def _make_room(model, device) -> None:
    """Ask ComfyUI to unload its own models from ``device`` until ours fits (hosts without the call: nothing)."""
    import comfy.model_management as mm

    free_memory = getattr(mm, "free_memory", None)
    if free_memory is None or getattr(device, "type", str(device)) == "cpu":
        return
    reserve = getattr(mm, "minimum_inference_memory", lambda: 0)()
    free_memory(_weight_bytes(model) + reserve, device)


@contextmanager
def placed(model) -> Iterator:
    """``model`` on ComfyUI's compute device for the block.

    An offloaded model (:func:`set_offload`) is moved there on entry, after ComfyUI has made room, and
    back to the CPU on exit (also when the block fails), then the host's cache is emptied; any other
    model is used where it was loaded.
    """
    if not is_offloaded(model):
        yield model
        return
    import torch

    import comfy.model_management as mm

    device = torch.device(mm.get_torch_device())
    _make_room(model, device)
    model.to(device)
    try:
        yield model
    finally:
        model.to("cpu")
        release_memory()
