"""LoRA adapters for V2M checkpoints: the file format, applying one with a strength, merged export.

An adapter is one small ``.safetensors`` file::

    <module>.lora_A.weight   [rank, in]   low-rank factors of a Linear, module in the stable-audio-tools
    <module>.lora_B.weight   [out, rank]  key layout (e.g. model.model.transformer.layers.3.self_attn.to_qkv)
    <param>.delta            full-shape change of a parameter trained in full: the curve channel's
                             model.model.preprocess_conv.weight and model.model.transformer.project_in.weight

and JSON metadata: ``v2m_lora`` (format 1); ``base`` (``name`` and ``content_sha256``, the hash of the
base checkpoint's DiT and conditioner tensors: names, dtypes, shapes and bytes, so the same weights
hash the same whatever the file's metadata or codec); ``lora`` (rank, alpha, scale = alpha / rank,
targets); ``curve`` (the curve spec training used: it replaces the base's at inference); ``text``,
``latent_rate``, ``sample_rate``, ``objective`` and ``training``.

Applied with strength ``s``: ``W ← W + s · scale · B @ A`` and ``P ← P + s · delta``, in float32,
before the model is cast to its inference precision. This is exactly what peft's LoRA layers
compute during training (``base(x) + scale · B(A(x))``), folded into the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ModelError
from .weights import SafetensorsFile, read_safetensors, write_safetensors

LORA_FORMAT = 1
LORA_A, LORA_B, DELTA = ".lora_A.weight", ".lora_B.weight", ".delta"
_NON_DIT = ("pretransform.",)
_HASH_MEMO: dict[tuple, str | None] = {}


# --------------------------------------------------------------------------------------------
# content hashes


def _tensor_hash(path: Path, header: Mapping[str, Mapping], keys: list[str], strip: str = "") -> str:
    """sha256 over (name, dtype, shape, sha256(bytes)) of ``keys`` in name order; bytes read in file order."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        base = 8 + n
        digests = {}
        for k in sorted(keys, key=lambda k: header[k]["data_offsets"][0]):
            start, stop = header[k]["data_offsets"]
            f.seek(base + int(start))
            h, left = hashlib.sha256(), int(stop) - int(start)
            while left:
                chunk = f.read(min(left, 1 << 24))
                if not chunk:
                    raise ModelError(f"{path}: truncated while hashing {k}")
                h.update(chunk)
                left -= len(chunk)
            digests[k] = h.hexdigest()
    total = hashlib.sha256()
    for k in sorted(keys):
        info = header[k]
        total.update(json.dumps([k[len(strip):], info["dtype"], list(info["shape"]), digests[k]]).encode())
    return total.hexdigest()


def _memo(path, kind: str, compute) -> str | None:
    p = Path(path)
    st = p.stat()
    key = (os.path.realpath(p), st.st_size, st.st_mtime_ns, kind)
    if key not in _HASH_MEMO:
        _HASH_MEMO[key] = compute()
    return _HASH_MEMO[key]


def base_content_hash(path: "str | os.PathLike | SafetensorsFile") -> str:
    """The content hash of a checkpoint's DiT + conditioner tensors (``pretransform.*`` left out)."""
    f = path if isinstance(path, SafetensorsFile) else SafetensorsFile(path)
    keys = [k for k in f.keys() if not k.startswith(_NON_DIT)]
    return _memo(f.path, "dit", lambda: _tensor_hash(f.path, f.header, keys))


def codec_content_hash(path: "str | os.PathLike") -> str | None:
    """The content hash of the Oobleck VAE tensors in a file (SAO/V2M single file or standalone VAE in the
    stable-audio-tools layout, prefix stripped); None for another layout (e.g. diffusers) or a folder."""
    from .codec import SAT_ANCHORS, find_prefix

    if os.path.isdir(path):
        return None
    f = SafetensorsFile(path)
    prefix = find_prefix(f.keys(), SAT_ANCHORS)
    if prefix is None:
        return None
    keys = [k for k in f.keys() if k.startswith(prefix)]
    return _memo(f.path, "vae:" + prefix, lambda: _tensor_hash(f.path, f.header, keys, strip=prefix))


# --------------------------------------------------------------------------------------------
# the file


def save_adapter(path: str | os.PathLike, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write an adapter (atomically); ``meta`` is stored as one JSON value per field."""
    bad = [k for k in tensors if not k.endswith((LORA_A, LORA_B, DELTA))]
    if bad:
        raise ModelError(f"adapter tensor names must end in {LORA_A}, {LORA_B} or {DELTA}; got {bad[:3]}")
    return write_safetensors(path, tensors, {"v2m_lora": json.dumps(LORA_FORMAT),
                                             **{k: json.dumps(v, sort_keys=True) for k, v in meta.items()}})


def read_adapter(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(tensors, meta)`` of an adapter file; a ``ModelError`` naming the file if it is not one."""
    tensors, raw = read_safetensors(path)
    if "v2m_lora" not in raw:
        hint = " (it is a full V2M checkpoint: load it as the checkpoint instead)" if "v2m_format" in raw else ""
        raise ModelError(f"{path}: not a V2M LoRA adapter (no 'v2m_lora' in its metadata){hint}")
    from .checkpoint import json_metadata

    meta = json_metadata(raw)
    if meta.get("v2m_lora") != LORA_FORMAT:
        raise ModelError(f"{path}: adapter format {meta.get('v2m_lora')!r} is not supported (expected {LORA_FORMAT})")
    return tensors, meta


def adapter_deltas(tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{parameter name: full-strength change (float32)}`` of an adapter."""
    scale = float((meta.get("lora") or {}).get("scale", 1.0))
    out = {}
    for k, v in tensors.items():
        if k.endswith(LORA_A):
            mod = k[: -len(LORA_A)]
            b = tensors.get(mod + LORA_B)
            if b is None:
                raise ModelError(f"adapter: {mod}{LORA_A} has no {LORA_B} partner")
            out[mod + ".weight"] = scale * (b.float() @ v.float())
        elif k.endswith(DELTA):
            out[k[: -len(DELTA)]] = v.float()
    return out


def _check_base(meta: Mapping, base, where: str) -> None:
    want = (meta.get("base") or {}).get("content_sha256")
    if not want or base is None:
        return
    have = base_content_hash(base)
    if have != want:
        name = (meta.get("base") or {}).get("name", "?")
        raise ModelError(f"{where} was trained on another base ({name}, content sha256 {want[:12]}…) than "
                         f"{os.path.basename(os.fspath(base))} (sha256 {have[:12]}…): "
                         "choose the checkpoint it was trained on")


def merge_deltas(state: dict, deltas: Mapping[str, Any], strength: float, where: str) -> dict:
    """``state[k] + strength · delta`` for every delta (float32 maths, the state's dtype kept); checked."""
    missing = [k for k in deltas if k not in state]
    if missing:
        raise ModelError(f"{where} does not fit this model: no parameter {missing[0]} ({len(missing)} missing); "
                         "it was made for another architecture")
    for k, d in deltas.items():
        w = state[k]
        if tuple(w.shape) != tuple(d.shape):
            raise ModelError(f"{where} does not fit this model: {k} is {tuple(w.shape)} but the adapter changes "
                             f"{tuple(d.shape)}")
        state[k] = (w.float() + float(strength) * d.to(w.device)).to(w.dtype)
    return state


def apply_adapter(dit, adapter: str | os.PathLike, *, strength: float = 1.0, base=None) -> dict:
    """Fold an adapter into a built DiT in place (``W + strength · ΔW``); returns the adapter's metadata.

    ``base`` (the checkpoint file the DiT came from) is checked against the adapter's base hash.
    """
    import torch

    tensors, meta = read_adapter(adapter)
    where = f"LoRA {os.path.basename(os.fspath(adapter))}"
    _check_base(meta, base, where)
    params = dict(dit.named_parameters())
    deltas = adapter_deltas(tensors, meta)
    merged = merge_deltas({k: params[k].detach() for k in deltas if k in params}, deltas, strength, where)
    with torch.no_grad():
        for k, v in merged.items():
            params[k].copy_(v)
    return meta


ADAPTER_META_KEYS = ("curve", "text")  # what an adapter's training changes in the checkpoint's metadata


def merge_adapter_into_checkpoint(base: str | os.PathLike, adapter: str | os.PathLike, out: str | os.PathLike, *,
                                  strength: float = 1.0) -> Path:
    """Write ``base + strength · adapter`` as one full V2M checkpoint (codec carried over, metadata from both)."""
    from .checkpoint import load_v2m_checkpoint, save_v2m_checkpoint

    tensors, ameta = read_adapter(adapter)
    where = f"LoRA {os.path.basename(os.fspath(adapter))}"
    _check_base(ameta, base, where)
    state, meta = load_v2m_checkpoint(base)
    state = merge_deltas(state, adapter_deltas(tensors, ameta), strength, where)
    meta = dict(meta)
    meta.update({k: ameta[k] for k in ADAPTER_META_KEYS if k in ameta})
    meta["training"] = ameta.get("training", {})
    meta["lora_merged"] = {"adapter": os.path.basename(os.fspath(adapter)), "strength": float(strength),
                           "base": ameta.get("base"), "lora": ameta.get("lora")}
    return save_v2m_checkpoint(out, state, meta)
