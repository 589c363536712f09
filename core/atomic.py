"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a failed or interrupted write leaves the previous
file (or nothing) in place. Files get the usual permissions (0o666 minus the umask).
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[str]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path``.

    The temporary name keeps the target's extension (muxers choose formats by it). On any
    exception the temporary file is removed and the target is untouched.
    """
    final = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(final)
    stem, ext = os.path.splitext(os.path.basename(final))
    while True:  # O_EXCL reserves a unique name with ordinary permissions
        tmp = os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.tmp{ext}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    mode = os.stat(tmp).st_mode & 0o777  # 0o666 minus the umask
    try:
        yield tmp
        os.chmod(tmp, mode)  # writers that recreate the file (safetensors) would leave 0o600
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 1, **dump_kw) -> str:
    """JSON to ``path`` atomically (parent folders created)."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, **dump_kw)
            f.write("\n")
    return os.fspath(path)
