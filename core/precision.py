"""The one precision table: names ("fp32", "fp16", "bf16") ↔ torch dtypes, for encoders and the generator."""

from __future__ import annotations

from .errors import V2MError

PRECISIONS = ("fp32", "fp16", "bf16")


def _table() -> dict:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def torch_dtype(precision: str):
    """Precision name → torch dtype; an unknown name is a V2MError listing the choices."""
    table = _table()
    if precision not in table:
        raise V2MError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return table[precision]


def precision_name(dtype) -> str:
    """torch dtype → precision name (the inverse of :func:`torch_dtype`)."""
    for name, dt in _table().items():
        if dt == dtype:
            return name
    raise V2MError(f"no precision name for dtype {dtype}; expected one of {', '.join(PRECISIONS)}")


def torch_device(device: str | None = None):
    """A torch device: the named one (checked to exist), or CUDA when there is one, else the CPU."""
    import torch

    if not device or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise V2MError(f"device {device!r} is not a torch device ({exc}): use cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise V2MError(f"device {device!r}: this torch sees no CUDA GPU; use --device cpu (or a CUDA build of torch)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise V2MError(f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise V2MError(f"device {device!r}: MPS is not available here; use --device cpu")
    return dev
