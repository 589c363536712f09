"""Reading MusicFM checkpoints: the public ``pretrained_*.pt`` (``torch.load(weights_only=True)``) or safetensors."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ModelError
from ..core.model.musicfm import MusicFM25Hz, musicfm_conformer_config
from .folders import locate


MUSICFM_HINT = (
    "Fix: download MusicFM's pretrained_msd.pt and msd_stats.json from "
    "https://huggingface.co/minzwon/MusicFM into models/v2m/music_encoders/musicfm/ (the .pt is read "
    "with torch.load(weights_only=True), tensors only; a .safetensors with the same keys also works: "
    "`v2m-zero models convert-musicfm pretrained_msd.pt` makes one)."
)


# keys of the public checkpoint that only the pre-training heads use
_MUSICFM_TRAINING_PREFIXES = ("quantizer_", "linear.", "cls_token")
# buffers we can derive (torchaudio's window / mel bank, rotary inverse frequencies, BN counters)
_MUSICFM_DERIVED_SUFFIXES = ("spectrogram.window", "mel_scale.fb", "embed_positions.inv_freq", "num_batches_tracked")


def musicfm_state_dict(raw: Mapping[str, Any], *, name: str = "checkpoint") -> dict:
    """The public checkpoint's tensors in our module's key layout.

    ``pretrained_*.pt`` is a Lightning-style ``{"state_dict": {"model.<key>": tensor}}``; the
    original loader strips the 6-character ``model.`` prefix. Pre-training heads (random
    quantizers, the codebook projection ``linear``, ``cls_token``) are dropped, and weight norm
    saved by older torch (``weight_g``/``weight_v``) is renamed to the parametrization names
    current torch uses.
    """
    import torch

    sd = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    if not isinstance(sd, Mapping):
        raise ModelError(f"{name}: not a MusicFM state dict (got {type(sd).__name__}). {MUSICFM_HINT}")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        key = k.removeprefix("model.")
        if key.startswith(_MUSICFM_TRAINING_PREFIXES):
            continue
        key = key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        key = key.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        out[key] = v
    return out


def _read_musicfm_file(path: Path) -> dict:
    import pickle

    import torch

    if path.suffix.lower() == ".safetensors":
        from .weights import read_safetensors

        tensors, _ = read_safetensors(path)
        return tensors
    try:
        # tensors and plain containers only: a pickle that needs anything else is refused
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        raise ModelError(
            f"{path}: cannot be read as tensors only with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Fix: convert it once: "
            f"`v2m-zero models convert-musicfm {path}` writes its tensors to {path.with_suffix('.safetensors').name} "
            "beside it (read without running any of the pickle's code); give that file (in the models folder it "
            "is found first)."
        ) from None


class _Inert:
    """What a non-tensor object of a pickled checkpoint becomes when converting: nothing is called or imported."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()


def _tensors_only_pickle():
    """A ``pickle_module`` for ``torch.load`` whose unpickler imports nothing: torch's tensor-rebuilding
    functions and plain containers are allowed, every other global becomes :class:`_Inert` (so a Lightning
    checkpoint's hyper-parameters, callbacks or loops are dropped instead of run)."""
    import collections
    import pickle
    import types

    import torch

    allowed = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
               ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
               ("torch", "Size"): torch.Size, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
               ("builtins", "slice"): slice, ("builtins", "complex"): complex}
    allowed.update({("torch", n): getattr(torch, n) for n in dir(torch) if n.endswith("Storage")})
    allowed.update({("torch", str(d).split(".")[-1]): d for d in (torch.float32, torch.float16, torch.bfloat16,
                                                                  torch.float64, torch.int64, torch.int32, torch.bool,
                                                                  torch.uint8, torch.int8, torch.int16)})

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            return allowed.get((module, name), _Inert)

    mod = types.ModuleType("v2m_tensors_only_pickle")
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    mod.__name__ = "v2m_tensors_only_pickle"
    return mod


def convert_musicfm(src: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, int]:
    """MusicFM's ``pretrained_*.pt`` → ``.safetensors`` (its ``state_dict`` tensors, keys as stored).

    For a checkpoint that ``torch.load(weights_only=True)`` refuses (a Lightning checkpoint's extra
    objects): the pickle is read by an unpickler that imports and calls nothing but torch's tensor
    rebuilding (:func:`_tensors_only_pickle`), the tensors are checked to be MusicFM's and written
    atomically. Returns ``(path written, tensor count)``; ``src`` is never modified.
    """
    import torch

    from .weights import write_safetensors

    src = Path(src)
    if not src.is_file():
        raise ModelError(f"{src}: MusicFM checkpoint not found. {MUSICFM_HINT}")
    dst = Path(out) if out is not None else src.with_suffix(".safetensors")
    if dst.resolve() == src.resolve():
        raise ModelError(f"{dst}: the output would overwrite the checkpoint; choose another --out")
    try:
        raw = torch.load(str(src), map_location="cpu", weights_only=False, pickle_module=_tensors_only_pickle())
    except Exception as exc:  # a damaged or foreign file: torch raises many kinds here
        raise ModelError(f"{src}: not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:200]}). "
                         f"{MUSICFM_HINT}") from None
    sd = raw.get("state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(sd, Mapping):
        raise ModelError(f"{src}: holds no state_dict of tensors. {MUSICFM_HINT}")
    tensors = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    ours = musicfm_state_dict(tensors, name=str(src))
    if "conv.linear.weight" not in ours or not any(k.startswith("conformer.layers.") for k in ours):
        raise ModelError(f"{src}: its tensors are not MusicFM's (no conv.linear / conformer.layers). {MUSICFM_HINT}")
    write_safetensors(dst, tensors, {"converted_from": src.name})
    return dst, len(tensors)


def _find_stats(ckpt: Path, stats: str | os.PathLike | None) -> Path:
    if stats is not None:
        p = Path(stats)
        if not p.is_file():
            raise ModelError(f"{p}: MusicFM stats file not found. {MUSICFM_HINT}")
        return p
    folder = ckpt.parent
    stem = ckpt.stem.replace("pretrained_", "")
    found = locate(folder, names=(f"{stem}_stats.json", "msd_stats.json", "fma_stats.json"), patterns=("*stats*.json",))
    if found is not None:
        return found
    raise ModelError(f"{folder}: no MusicFM stats JSON (e.g. msd_stats.json) next to {ckpt.name}. {MUSICFM_HINT}")


def _read_stats(path: Path, key: str = "melspec_2048") -> tuple[float, float]:
    try:
        d = json.loads(path.read_text())
        return float(d[f"{key}_mean"]), float(d[f"{key}_std"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a MusicFM stats file (needs {key}_mean and {key}_std; {exc}). "
                         f"{MUSICFM_HINT}") from None


def load_musicfm(path: str | os.PathLike, *, stats: str | os.PathLike | None = None, conformer_config=None,
                 device: Any = "cpu", dtype=None):
    """Load MusicFM from a local ``pretrained_*.pt`` (``weights_only=True``) or ``.safetensors``.

    The architecture (depth, width, conv width, mel bands) is read off the tensor shapes unless
    ``conformer_config`` is given; the rest of the config is MusicFM's. ``stats`` is the dataset
    stats JSON (default: ``<name>_stats.json``/``msd_stats.json`` next to the checkpoint).
    Missing derived buffers (mel bank, window, rotary frequencies) are rebuilt; any other
    missing, unexpected or mis-shaped key raises ``ModelError``.
    """

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: MusicFM checkpoint not found. {MUSICFM_HINT}")
    sd = musicfm_state_dict(_read_musicfm_file(p), name=str(p))
    mean, std = _read_stats(_find_stats(p, stats))
    try:
        hidden = int(sd["conv.linear.weight"].shape[0])
        conv_dim = int(sd["conv.conv.0.conv1.weight"].shape[0])
        n_mels = int(sd["conv.linear.weight"].shape[1]) * 4 // conv_dim
        depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("conformer.layers."))
        ffn = int(sd["conformer.layers.0.ffn1.intermediate_dense.weight"].shape[0])
        kernel = int(sd["conformer.layers.0.conv_module.depthwise_conv.weight"].shape[-1])
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"{p}: not a MusicFM checkpoint (missing {exc}). {MUSICFM_HINT}") from None
    if conformer_config is None:
        inv = sd.get("conformer.embed_positions.inv_freq")  # head_dim / 2 rotary frequencies
        heads = (hidden // (2 * int(inv.shape[0])) if inv is not None
                 else (16 if hidden == 1024 else max(1, hidden // 64)))
        pos_k = sd.get("conformer.pos_conv_embed.conv.parametrizations.weight.original1")
        extra = {}
        if pos_k is not None:
            extra = {"num_conv_pos_embeddings": int(pos_k.shape[-1]),
                     "num_conv_pos_embedding_groups": hidden // int(pos_k.shape[1])}
        conformer_config = musicfm_conformer_config(hidden_size=hidden, num_hidden_layers=depth,
                                                    num_attention_heads=heads, intermediate_size=ffn,
                                                    conv_depthwise_kernel_size=kernel, **extra)
    model = MusicFM25Hz(conformer_config, n_mels=n_mels, conv_dim=conv_dim, stat_mean=mean, stat_std=std)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith(_MUSICFM_DERIVED_SUFFIXES)]
    unexpected = [k for k in sd if k not in own]
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        parts = [f"{len(x)} {what}: {', '.join(x[:4])}" for what, x in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", bad)) if x]
        raise ModelError(f"{p}: weights do not fit MusicFM — " + "; ".join(parts) + f". {MUSICFM_HINT}")
    full = {k: sd.get(k, v) for k, v in own.items()}
    model.load_state_dict(full, strict=True)
    model = model.to(device=device).eval().requires_grad_(False)
    if dtype is not None:
        model.conv.to(dtype)
        model.conformer.to(dtype)
    return model


MUSICFM_FILES = ("pretrained_msd.safetensors", "pretrained_msd.pt", "musicfm.safetensors")


def find_musicfm() -> str | None:
    """A MusicFM checkpoint in the models folders (``<root>/music_encoders/musicfm/``), or None; a
    ``pretrained_msd.safetensors`` written by ``models convert-musicfm`` before the ``.pt``."""
    from .folders import models_roots

    for root in models_roots():  # only the models folders, never a "musicfm" in the working directory
        found = locate(Path(root) / "music_encoders" / "musicfm", names=MUSICFM_FILES)
        if found is not None and found.name in MUSICFM_FILES:
            return str(found)
    return None
