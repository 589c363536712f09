"""Where model folders live: explicit paths, ``$V2M_MODELS_DIR/<kind>/<name>``, and roots a host registers.

Outside ComfyUI, without ``$V2M_MODELS_DIR``, models live in a per-user data folder
(:func:`default_models_root`: platformdirs' ``user_data_dir("v2m-zero")/models``, e.g.
``~/.local/share/v2m-zero/models`` on Linux), as ``huggingface_hub`` keeps its cache in one per-user place.

Nothing here downloads and nothing imports ComfyUI: the nodes register ComfyUI's ``models/v2m``
folder with :func:`register_models_root` when the pack loads, so the library looks there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from ..core.errors import ModelError

_EXTRA_ROOTS: list[str] = []


def register_models_root(path: str | os.PathLike) -> None:
    """Also search ``path/<kind>/<name>`` for model folders (idempotent)."""
    p = os.path.abspath(os.fspath(path))
    if p not in _EXTRA_ROOTS:
        _EXTRA_ROOTS.append(p)


def default_models_root() -> str:
    """The per-user models folder used when ``$V2M_MODELS_DIR`` is not set (it may not exist yet):
    ``platformdirs.user_data_dir("v2m-zero")/models`` (Linux ``~/.local/share/v2m-zero/models``, macOS
    ``~/Library/Application Support/v2m-zero/models``, Windows ``%LOCALAPPDATA%\\v2m-zero\\models``);
    without platformdirs, ``$XDG_DATA_HOME`` or ``~/.local/share`` the same way."""
    try:
        from platformdirs import user_data_dir

        base = user_data_dir("v2m-zero", appauthor=False)
    except ImportError:
        base = os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                                             "share"), "v2m-zero")
    return os.path.join(base, "models")


def user_models_root() -> tuple[str, str]:
    """(the models folder outside a host, where it comes from): ``$V2M_MODELS_DIR``, else the per-user default."""
    if os.environ.get("V2M_MODELS_DIR"):
        return os.environ["V2M_MODELS_DIR"], "$V2M_MODELS_DIR"
    return default_models_root(), "the per-user default; set V2M_MODELS_DIR or pass --dir to use another"


def models_roots() -> list[str]:
    """The roots searched, in order: ``$V2M_MODELS_DIR`` (else the per-user default), then the registered ones."""
    roots = [user_models_root()[0]]
    return roots + [r for r in _EXTRA_ROOTS if r not in roots]


def model_candidates(name_or_path: str | os.PathLike, kind: str | None = None) -> list[Path]:
    """Where ``name_or_path`` may be, in order: the path itself, then ``<root>/<kind>/<name>`` under each
    models root (only for a relative name and a ``kind``)."""
    p = Path(os.fspath(name_or_path))
    out = [p]
    if kind and not p.is_absolute():
        out += [Path(root) / kind / p for root in models_roots()]
    return out


def locate(name_or_path: str | os.PathLike, *, kind: str | None = None, folder: bool = False,
           names: Iterable[str] = (), patterns: Iterable[str] = (), pick: str = "only",
           skip: Callable[[Path], bool] | None = None, subfolders: Iterable[str] = ()) -> Path | None:
    """The one place that finds a weights file or folder; None when nothing fits (the caller's
    error then says what to put where, in its own words).

    1. The first of :func:`model_candidates` that exists (with ``folder=True``: that is a folder,
       which is returned).
    2. A file found so is returned as is. In a folder, and then in each of ``subfolders`` that
       exists (e.g. a diffusers pipeline's ``vae/``), the first of ``names`` that is a file, else
       the files matching the first of ``patterns`` (globs) that matches any (less those ``skip``
       accepts): the only one (``pick="only"``; several give None) or the first by name
       (``pick="first"``).
    """
    found = next((c for c in model_candidates(name_or_path, kind) if (c.is_dir() if folder else c.exists())), None)
    if found is None or folder or found.is_file():
        return found
    names, patterns = tuple(names), tuple(patterns)
    for d in [found] + [found / s for s in subfolders if (found / s).is_dir()]:
        for n in names:
            if (d / n).is_file():
                return d / n
        for pat in patterns:
            hits = sorted(f for f in d.glob(pat) if f.is_file() and not (skip and skip(f)))
            if hits:
                return hits[0] if pick == "first" or len(hits) == 1 else None
    return None


def resolve_model_dir(name_or_path: str, kind: str) -> str:
    """A local model folder: an existing path, or ``<root>/<kind>/<name>`` under a models root.

    The error lists where we looked and what to put there.
    """
    found = locate(name_or_path, kind=kind, folder=True)
    if found is not None:
        return os.fspath(found)
    looked = [os.fspath(c) for c in model_candidates(name_or_path, kind)]
    raise ModelError(
        f"model folder {name_or_path!r} not found (looked in: {', '.join(looked)}). Put a Hugging Face "
        f"model folder (config.json, preprocessor_config.json, model.safetensors) at models/v2m/{kind}/"
        f"{os.path.basename(name_or_path) or name_or_path}/ or pass its path."
    )


#: The demo checkpoint that ships with the pack (``demo/`` at the package root; made by
#: ``benchmarks/zero_pair_toy.py``): a 1 M-parameter toy, not a music model.
DEMO_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo",
                               "v2m-zero-demo-music.safetensors")
