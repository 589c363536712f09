"""Where model folders live: explicit paths, ``$V2M_MODELS_DIR/<kind>/<name>``, and roots a host registers.

Nothing here downloads and nothing imports ComfyUI: the nodes register ComfyUI's ``models/v2m``
folder with :func:`register_models_root` when the pack loads, so the library looks there too.
"""

from __future__ import annotations

import os

from ..core.errors import ModelError

_EXTRA_ROOTS: list[str] = []


def register_models_root(path: str | os.PathLike) -> None:
    """Also search ``path/<kind>/<name>`` for model folders (idempotent)."""
    p = os.path.abspath(os.fspath(path))
    if p not in _EXTRA_ROOTS:
        _EXTRA_ROOTS.append(p)


def models_roots() -> list[str]:
    """The roots searched, in order: ``$V2M_MODELS_DIR``, then the registered ones."""
    roots = []
    if os.environ.get("V2M_MODELS_DIR"):
        roots.append(os.environ["V2M_MODELS_DIR"])
    return roots + [r for r in _EXTRA_ROOTS if r not in roots]


def resolve_model_dir(name_or_path: str, kind: str) -> str:
    """A local model folder: an existing path, or ``<root>/<kind>/<name>`` under a models root.

    The error lists where we looked and what to put there.
    """
    if os.path.isdir(name_or_path):
        return name_or_path
    looked = [name_or_path]
    for root in models_roots():
        cand = os.path.join(root, kind, name_or_path)
        looked.append(cand)
        if os.path.isdir(cand):
            return cand
    raise ModelError(
        f"model folder {name_or_path!r} not found (looked in: {', '.join(looked)}). Put a Hugging Face "
        f"model folder (config.json, preprocessor_config.json, model.safetensors) at models/v2m/{kind}/"
        f"{os.path.basename(name_or_path) or name_or_path}/ or pass its path."
    )


#: The demo checkpoint that ships with the pack (``demo/`` at the package root; made by
#: ``benchmarks/zero_pair_toy.py``): a 1 M-parameter toy, not a music model.
DEMO_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo", "v2m-zero-demo-music.safetensors")
