"""Beat This! checkpoints (Foscarin, Schlüter & Widmer, ISMIR 2024; MIT, github.com/CPJKU/beat_this): where they
are, and reading one. Never downloads: ``v2m-zero models download beat-this`` fetches one, on request.

The authors publish PyTorch Lightning checkpoints stripped to four keys: ``state_dict`` (their LightningModule's, the
network under ``model.``; ``model.<part>._orig_mod.`` where a part was ``torch.compile``d), ``hyper_parameters``
(PLBeatThis's arguments: ``spect_dim``, ``transformer_dim``, ``n_layers``, ...), ``datamodule_hyper_parameters`` and
``pytorch-lightning_version``; plain containers and tensors, so ``torch.load(weights_only=True)`` reads them (their
own loader does the same). The network is the package's own ``beat_this.model.beat_tracker.BeatThis``
(``pip install --no-deps beat-this einops rotary-embedding-torch``: those modules need torch, einops and
rotary-embedding-torch, never torchaudio). Every hyper-parameter used is bounded before anything is built.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..core.errors import ModelError, WeightsMissing

#: the folder kind: ``models/v2m/beat_trackers/`` in ComfyUI, ``$V2M_MODELS_DIR/beat_trackers/`` outside it
KIND = "beat_trackers"
#: the files looked for, best first (the names ``models download`` gives them; the authors' cache names)
FILES = ("beat_this-final0.ckpt", "beat_this-small0.ckpt")
#: the packages the network needs (not torchaudio: we compute its log-mel input ourselves)
PACKAGES = ("beat_this", "einops", "rotary_embedding_torch")
INSTALL = "pip install --no-deps beat-this==1.1.0 einops rotary-embedding-torch"
FIX = (f"`v2m-zero models download beat-this` (the authors' final0, 78 MB, MIT) puts it there; the network needs "
       f"`{INSTALL}`")

MAX_FILE_BYTES = 512 * 2**20  # final0 is 78 MB
#: (low, high) for every integer hyper-parameter read; spect_dim and fps are what our log-mel input gives
INT_BOUNDS = {"spect_dim": (128, 128), "transformer_dim": (8, 2048), "ff_mult": (1, 16), "n_layers": (1, 48),
              "head_dim": (4, 256), "stem_dim": (4, 512), "fps": (50, 50)}
BOOL_KEYS = ("sum_head", "partial_transformers")
#: BeatThis's own defaults, for a key a checkpoint leaves out (as the authors' loader does)
DEFAULTS = {"spect_dim": 128, "transformer_dim": 512, "ff_mult": 4, "n_layers": 6, "head_dim": 32, "stem_dim": 32,
            "fps": 50, "sum_head": True, "partial_transformers": True}


def package_missing() -> list[str]:
    """The packages of :data:`PACKAGES` that are not installed (nothing is imported)."""
    return [p for p in PACKAGES if importlib.util.find_spec(p) is None]


def find_checkpoint(path: str | os.PathLike | None = None) -> Path | None:
    """A Beat This! checkpoint: ``path`` itself when given (a file, or a folder holding one of :data:`FILES`), else the
    first of :data:`FILES` in ``<root>/beat_trackers/`` under each models root; None when there is none."""
    from .folders import models_roots

    if path is not None:
        p = Path(os.fspath(path))
        if p.is_dir():
            return next((p / f for f in FILES if (p / f).is_file()), None)
        return p if p.is_file() else None
    for root in models_roots():
        for f in FILES:
            if (Path(root) / KIND / f).is_file():
                return Path(root) / KIND / f
    return None


def _bounded(hp: dict, name: str) -> dict:
    out = {}
    for key, (lo, hi) in INT_BOUNDS.items():
        v = hp.get(key, DEFAULTS[key])
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            want = str(lo) if lo == hi else f"an integer in [{lo}, {hi}]"
            raise ModelError(f"{name}: hyper_parameters[{key!r}] = {v!r}, expected {want}: not a Beat This! "
                             f"checkpoint we can run. Fix: {FIX}")
        out[key] = v
    for key in BOOL_KEYS:
        v = hp.get(key, DEFAULTS[key])
        if not isinstance(v, bool):
            raise ModelError(f"{name}: hyper_parameters[{key!r}] = {v!r}, expected true or false. Fix: {FIX}")
        out[key] = v
    if out["transformer_dim"] % out["head_dim"] or (out["partial_transformers"] and out["stem_dim"] % out["head_dim"]):
        raise ModelError(f"{name}: hyper_parameters transformer_dim {out['transformer_dim']} and stem_dim "
                         f"{out['stem_dim']} must be multiples of head_dim {out['head_dim']}. Fix: {FIX}")
    return out


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(the network's state dict, bounded hyper-parameters) of a Beat This! ``.ckpt``, read with
    ``torch.load(weights_only=True)``; one-line :class:`ModelError` for a missing, damaged or foreign file."""
    import torch

    p = Path(os.fspath(path))
    if not p.is_file():
        raise WeightsMissing(f"Beat This! checkpoint {str(p)!r} not found. Fix: {FIX}")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelError(f"{p}: {size / 2**20:.0f} MiB is larger than any Beat This! checkpoint "
                         f"({MAX_FILE_BYTES // 2**20} MiB at most). Fix: {FIX}")
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe content, RuntimeError/EOFError for a damaged file
        detail = " ".join(str(exc).split())[:160]
        raise ModelError(f"{p}: not readable with torch.load(weights_only=True) ({type(exc).__name__}: {detail}): "
                         f"a damaged or partial download, or not a checkpoint. Fix: remove it and {FIX}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) \
            or not isinstance(ckpt.get("hyper_parameters"), dict):
        what = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"{p}: not a Beat This! checkpoint (needs 'state_dict' and 'hyper_parameters'; holds "
                         f"{what}). Fix: {FIX}")
    hp = _bounded(ckpt["hyper_parameters"], str(p))
    sd = {}
    for k, v in ckpt["state_dict"].items():
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{p}: state_dict[{k!r}] is a {type(v).__name__}, not a tensor. Fix: {FIX}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelError(f"{p}: state_dict[{k!r}] holds NaN or Inf: a damaged file. Fix: remove it and {FIX}")
        key = str(k)
        # the LightningModule keeps the network as `model`; compiled parts add `_orig_mod.` (as the authors' loader)
        key = key[len("model."):] if key.startswith("model.") else "<not under model.>." + key
        sd[key.replace("_orig_mod.", "")] = v
    return sd, hp


def load_beat_this(path: str | os.PathLike | None = None):
    """(``BeatThis`` in eval mode on the CPU, info ``{"path", "name", "hyper_parameters"}``) from a local checkpoint
    (``path``, else :func:`find_checkpoint`); never downloads. :class:`WeightsMissing` when there is none,
    :class:`ModelError` (one line) for a missing package or a file that does not fit."""
    found = find_checkpoint(path)
    if found is None:
        from .folders import models_roots

        where = str(path) if path is not None else ", ".join(str(Path(r) / KIND) for r in models_roots())
        raise WeightsMissing(f"no Beat This! checkpoint ({' or '.join(FILES)}) in {where}. Fix: {FIX}")
    missing = package_missing()
    if missing:
        raise ModelError(f"Beat This! needs the package(s) {', '.join(missing)}: `{INSTALL}` (no torchaudio needed)")
    sd, hp = read_checkpoint(found)
    from beat_this.model.beat_tracker import BeatThis

    from .weights import check_state_dict

    kwargs = {k: hp[k] for k in ("spect_dim", "transformer_dim", "ff_mult", "n_layers", "head_dim", "stem_dim",
                                 "sum_head", "partial_transformers")}
    model = BeatThis(**kwargs, dropout={"frontend": 0.0, "transformer": 0.0})  # dropout: training only
    check_state_dict(model, sd, name=f"{found} (Beat This!)")
    model.load_state_dict(sd)
    name = found.stem.removeprefix("beat_this-")
    return model.eval(), {"path": str(found), "name": name, "hyper_parameters": hp}
