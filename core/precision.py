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
