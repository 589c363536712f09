"""Torch's intra-op thread count, set for a block and restored after it."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, the previous count restored after it. The count
    is process-wide for :func:`torch.get_num_threads`, while the OpenMP pool that runs the work
    follows the setting of the OS thread that last set it (a new thread sets its own)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
