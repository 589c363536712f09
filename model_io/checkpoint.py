"""The V2M checkpoint: one ``.safetensors`` in the stable-audio-tools key layout + JSON metadata.

Tensors keep stable-audio-tools' names (``model.model.*`` DiT, ``conditioner.conditioners.*``,
optionally ``pretransform.model.*`` for the codec). The safetensors header metadata (a
str → str map) holds one JSON value per top-level field::

    v2m_format   1
    model_config {...stable-audio-tools "model" block: diffusion / conditioning / io_channels...}
    objective    "rectified_flow" | "v"
    latent_rate  21.533203125          (latent frames per second)
    sample_rate  44100
    curve        {"encoder": ..., "smoothing_seconds": ..., "standardise": true, ...}

Only safetensors is read: pickle-based files (``.ckpt``/``.pt``/``.pth``/``.bin``, zip or raw
pickle) can run code when loaded, so they are refused with the way to convert them.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ModelError

V2M_FORMAT = 1
OBJECTIVES = ("rectified_flow", "v")
# buffers that stable-audio-tools derives from the config; a file may lack them (e.g. one
# converted from diffusers) and they are then rebuilt with their defaults
OPTIONAL_BUFFER_SUFFIXES = ("rotary_pos_emb.inv_freq", "_norm.beta", "pre_norm.beta")
# prefixes a V2M/SAO file may carry that the DiT does not use
NON_DIT_PREFIXES = ("pretransform.",)

_PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
_MAX_HEADER = 100 * 1024 * 1024


def _pickle_refusal(path: Path) -> ModelError:
    return ModelError(
        f"{path}: this is a pickle checkpoint (.ckpt/.pt/zip), which can run code when loaded, so "
        "V2M-Zero does not open it. Convert it once to safetensors in a trusted environment, e.g. "
        "`python -c \"import torch, safetensors.torch as s; sd = torch.load('model.ckpt', "
        "weights_only=True)['state_dict']; s.save_file({k: v.contiguous() for k, v in sd.items()}, "
        "'model.safetensors')\"`, or download the .safetensors release of the model."
    )


def sniff_safetensors(path: str | os.PathLike) -> None:
    """Raise a clear ``ModelError`` unless ``path`` looks like a complete safetensors file."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: file not found")
    if p.is_dir():
        raise ModelError(f"{p}: is a folder; give the .safetensors file inside it")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80" or p.suffix.lower() in _PICKLE_SUFFIXES:
        raise _pickle_refusal(p)
    if len(head) < 9:
        raise ModelError(f"{p}: only {size} bytes — empty or truncated, not a safetensors file")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER or head[8:9] != b"{":
        raise ModelError(f"{p}: not a safetensors file (bad header); re-download or re-export it")
    if 8 + n > size:
        raise ModelError(f"{p}: truncated ({size} bytes, header alone needs {8 + n}); re-download it")
    with open(p, "rb") as f:
        f.seek(8)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelError(f"{p}: corrupt safetensors header ({exc}); re-download it") from exc
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ModelError(
            f"{p}: truncated — the header promises {8 + n + end} bytes but the file has {size}; "
            "the download or copy was cut short, fetch it again"
        )


def read_safetensors(
    path: str | os.PathLike, device: str = "cpu", skip_prefixes: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors (less those under ``skip_prefixes``) and raw metadata of a safetensors file,
    with errors that name the file."""
    from safetensors import safe_open

    sniff_safetensors(path)
    try:
        tensors: dict[str, Any] = {}
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                if not (skip_prefixes and k.startswith(skip_prefixes)):
                    tensors[k] = f.get_tensor(k)
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own error types (SafetensorError, OSError)
        raise ModelError(f"{path}: cannot read as safetensors ({exc})") from exc
    return tensors, meta


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Decoded V2M metadata without loading tensors (cheap: reads the header only)."""
    from safetensors import safe_open

    sniff_safetensors(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = dict(f.metadata() or {})
    except Exception as exc:
        raise ModelError(f"{path}: cannot read as safetensors ({exc})") from exc
    return _decode_meta(raw, path)


# --------------------------------------------------------------------------------------------
# metadata


def validate_meta(meta: Mapping[str, Any], where: str = "metadata") -> None:
    problems = []
    if meta.get("v2m_format") != V2M_FORMAT:
        problems.append(f"v2m_format must be {V2M_FORMAT} (got {meta.get('v2m_format')!r})")
    if not isinstance(meta.get("model_config"), dict) or "diffusion" not in meta["model_config"]:
        problems.append("model_config must be a dict with a 'diffusion' block")
    if meta.get("objective") not in OBJECTIVES:
        problems.append(f"objective must be one of {OBJECTIVES} (got {meta.get('objective')!r})")
    lr = meta.get("latent_rate")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        problems.append(f"latent_rate must be a positive number (got {lr!r})")
    sr = meta.get("sample_rate")
    if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
        problems.append(f"sample_rate must be a positive integer (got {sr!r})")
    if "curve" in meta and not isinstance(meta["curve"], dict):
        problems.append("curve must be a dict")
    if problems:
        raise ModelError(f"{where}: bad V2M metadata: " + "; ".join(problems))


def _encode_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    out = {"format": "pt"}
    for k, v in meta.items():
        out[str(k)] = json.dumps(v, sort_keys=True)
    return out


def _decode_meta(raw: Mapping[str, str], path) -> dict[str, Any]:
    if "v2m_format" not in raw:
        hint = ""
        if raw.get("format") == "pt" or not raw:
            hint = (" If it is Stable Audio Open 1.0's model.safetensors, make a V2M checkpoint from it "
                    "with `v2m-zero init-checkpoint --from sao1 model.safetensors --out v2m.safetensors`.")
        raise ModelError(f"{path}: not a V2M checkpoint (no 'v2m_format' in its metadata).{hint}")
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "format":
            continue
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    return meta


# --------------------------------------------------------------------------------------------
# save / load


def save_v2m_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``state_dict`` + ``meta`` atomically (temp file in the same folder, then ``os.replace``)."""
    import torch
    from safetensors.torch import save_file

    p = Path(path)
    validate_meta(meta, where=str(p))
    tensors = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{p}: state_dict[{k!r}] is a {type(v).__name__}, not a tensor")
        # safetensors refuses shared or strided storage: store each tensor on its own
        tensors[k] = v.detach().to("cpu").contiguous().clone()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=_encode_meta(meta))
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def load_v2m_checkpoint(
    path: str | os.PathLike, device: str = "cpu", skip_prefixes: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, meta)`` of a V2M checkpoint; ``ModelError`` naming the file if it is not one.
    ``skip_prefixes=("pretransform.",)`` leaves the codec's tensors unread."""
    tensors, raw = read_safetensors(path, device=device, skip_prefixes=skip_prefixes)
    meta = _decode_meta(raw, path)
    validate_meta(meta, where=str(path))
    return tensors, meta


def _first(items, n=5) -> str:
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def check_state_dict(model, state_dict: Mapping[str, Any], source: str = "state dict") -> dict[str, Any]:
    """Strict key/shape check of ``state_dict`` against ``model``; returns the dict to load.

    Optional derived buffers (rotary ``inv_freq``, LayerNorm ``beta``) missing from the file are
    filled from the model's defaults; ``pretransform.*`` keys are ignored. Anything else missing,
    unexpected or of the wrong shape raises a ``ModelError`` listing the first few.
    """
    expected = model.state_dict()
    given = {k: v for k, v in state_dict.items() if not k.startswith(NON_DIT_PREFIXES)}
    missing = [k for k in expected if k not in given and not k.endswith(OPTIONAL_BUFFER_SUFFIXES)]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f"{k} {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_first(mismatched, 3)}")
        raise ModelError(f"{source}: weights do not fit the model config — " + "; ".join(parts))
    out = dict(given)
    for k, v in expected.items():
        if k not in out:
            out[k] = v if v.device.type != "meta" else _default_buffer(model, k)
    return out


def _default_buffer(model, key: str):
    import torch

    mod_path, name = key.rsplit(".", 1)
    mod = model.get_submodule(mod_path)
    if name == "inv_freq":
        n = mod.inv_freq.shape[0] * 2
        return 1.0 / (10000 ** (torch.arange(0, n, 2).float() / n))
    if name == "beta":
        return torch.zeros(mod.beta.shape)
    raise ModelError(f"no default for missing buffer {key}")  # pragma: no cover


def build_dit_from_checkpoint(path: str | os.PathLike, device="cpu", dtype=None):
    """Build a :class:`~core.dit.V2MDiT` from a V2M checkpoint, strictly checked.

    The module is created on the meta device and the file's tensors are assigned (no double
    allocation of a 1 B-parameter model). ``dtype`` (e.g. ``torch.bfloat16``) casts floating
    weights; the rotary frequencies stay float32. The returned model carries ``.objective`` and
    ``.meta`` (the decoded metadata) and is in eval mode.
    """
    import torch

    from ..core.dit import V2MDiT

    state, meta = load_v2m_checkpoint(path, skip_prefixes=NON_DIT_PREFIXES)
    try:
        with torch.device("meta"):
            model = V2MDiT(meta["model_config"], objective=meta["objective"])
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    full = check_state_dict(model, state, source=str(path))
    model.load_state_dict(full, strict=True, assign=True)
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.meta = meta
    return model.eval()
