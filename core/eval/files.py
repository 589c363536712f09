"""Input checks the metrics share: a file that must exist, a local weights folder that must hold something."""

from __future__ import annotations

import os

from ..errors import MediaError


def require_file(path, what: str = "video") -> str:
    """``path`` as a string if it is an existing file, else a MediaError naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"{what} file not found: {path!r}")
    return path


def weights_problem(weights_dir) -> str | None:
    """Why ``weights_dir`` cannot hold local weights (None when it is a non-empty folder)."""
    if weights_dir is None:
        return "no weights folder given (weights are never downloaded)"
    path = os.fspath(weights_dir)
    if not os.path.isdir(path):
        return f"weights folder not found: {path!r}"
    if not any(os.scandir(path)):
        return f"weights folder is empty: {path!r}"
    return None
