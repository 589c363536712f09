"""Safe tensor I/O: safetensors only, never pickle; every failure names the file and the fix.

Shared by every loader (codec, text encoder, DiT, V2M checkpoints). ``torch.load`` is never
called: a pickle can run arbitrary code, so ``.ckpt``/``.pt``/``.pth``/``.bin`` files are refused
with a note on how to convert them.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.atomic import atomic_path
from ..core.errors import ModelError

__all__ = [
    "read_safetensors",
    "read_safetensors_header",
    "SafetensorsFile",
    "write_safetensors",
    "strip_prefix",
    "diff_state_dict",
    "list_keys",
    "check_state_dict",
]

# Pickle protocol 2+ starts with 0x80; torch.save's default container is a zip archive.
_PICKLE_MAGIC = b"\x80"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
# A header larger than this is not a real safetensors header (the format caps it at 100 MB).
_MAX_HEADER = 100 * 1024 * 1024
_MAX_LISTED = 5

_CONVERT_HINT = (
    "convert it once to .safetensors in a trusted Python session, e.g. "
    "`from safetensors.torch import save_file; import torch; "
    "sd = torch.load(PATH, map_location='cpu', weights_only=True); "
    "save_file(sd.get('state_dict', sd), OUT)` (or download the .safetensors release)"
)


def _fail(path: Path, problem: str, fix: str) -> ModelError:
    return ModelError(f"{path}: {problem}. Fix: {fix}.")


def _check_file(path: str | os.PathLike) -> tuple[Path, int]:
    p = Path(path)
    if not p.exists():
        raise _fail(p, "file not found", "check the path, or put the file in the folder named here")
    if p.is_dir():
        raise _fail(p, "is a folder, not a .safetensors file", "point to the .safetensors file inside it")
    size = p.stat().st_size
    if size == 0:
        raise _fail(p, "file is empty (0 bytes)", "the download or copy was interrupted; fetch the file again")
    return p, size


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Validate a safetensors file without loading tensors.

    Returns ``({key: {"dtype", "shape", "data_offsets"}}, metadata)``. Raises ``ModelError`` for a
    missing, empty, pickled, truncated or garbage file.
    """
    p, size = _check_file(path)
    with open(p, "rb") as f:
        head = f.read(8)
        # A safetensors header length can itself start with 0x80 (any length ≡ 128 mod 256): it is a
        # pickle only when the bytes are not a plausible safetensors header ({ right after the length).
        plausible = len(head) == 8 and 8 + struct.unpack("<Q", head)[0] <= size and f.read(1) == b"{"
        f.seek(8)
        if head.startswith(_ZIP_MAGIC) or (head.startswith(_PICKLE_MAGIC) and not plausible):
            raise _fail(p, "is a PyTorch pickle/zip checkpoint, which we never open (unsafe)", _CONVERT_HINT)
        if len(head) < 8:
            raise _fail(p, f"is too short to be a safetensors file ({size} bytes)", "fetch the file again")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or 8 + n > size:
            if p.suffix.lower() in _PICKLE_SUFFIXES:
                raise _fail(p, f"is not a safetensors file ({p.suffix} files are usually pickles)", _CONVERT_HINT)
            if 8 + n > size and 0 < n <= _MAX_HEADER:
                raise _fail(p, f"is truncated: its header needs {8 + n} bytes but the file has {size}",
                            "the download or copy was interrupted; fetch the file again")
            raise _fail(p, "is not a safetensors file (no valid header)",
                        "use a .safetensors weights file; if this is a pickle, " + _CONVERT_HINT)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(p, f"has a corrupt safetensors header ({exc})", "fetch the file again") from None
    metadata = header.pop("__metadata__", None) or {}
    end = 0
    for key, info in header.items():
        try:
            start, stop = info["data_offsets"]
            info["dtype"], info["shape"]
        except (TypeError, KeyError, ValueError):
            raise _fail(p, f"has a corrupt entry for tensor {key!r}", "fetch the file again") from None
        end = max(end, int(stop))
    if 8 + n + end > size:
        raise _fail(p, f"is truncated: its tensors need {8 + n + end} bytes but the file has {size}",
                    "the download or copy was interrupted; fetch the file again")
    return header, dict(metadata)


class SafetensorsFile:
    """One safetensors file whose header is validated and parsed once (tensors are read on demand).

    Pass it instead of a path to :func:`read_safetensors` (and to the loaders built on it) when
    several readers take parts of the same file, e.g. a V2M checkpoint's DiT and its codec.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.header, self.metadata = read_safetensors_header(self.path)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def keys(self) -> list[str]:
        return list(self.header)


def read_safetensors(
    path: "str | os.PathLike | SafetensorsFile", *, prefix: str | None = None, device: Any = "cpu",
    skip_prefixes: Iterable[str] = (),
) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:  # noqa: F821
    """Load tensors (optionally only those under ``prefix``, with it stripped) and the metadata.

    Only the selected tensors are read from disk, so taking the VAE out of a full Stable Audio
    checkpoint does not load the DiT. Tensors whose full key starts with one of
    ``skip_prefixes`` are left unread (e.g. ``("pretransform.",)`` to skip the codec).
    """
    from safetensors import safe_open

    f = path if isinstance(path, SafetensorsFile) else SafetensorsFile(path)
    header, metadata, p = f.header, f.metadata, f.path
    keys = list(header)
    if prefix:
        keys = [k for k in keys if k.startswith(prefix)]
        if not keys:
            sample = ", ".join(list(header)[:_MAX_LISTED]) or "(no tensors)"
            raise _fail(p, f"has no tensors under the prefix {prefix!r} (first keys: {sample})",
                        "check that this is the right kind of checkpoint")
    skip = tuple(skip_prefixes)
    if skip:
        keys = [k for k in keys if not k.startswith(skip)]
    out: dict[str, Any] = {}
    try:
        with safe_open(str(p), framework="pt", device=str(device)) as f:
            for k in keys:
                out[k[len(prefix):] if prefix else k] = f.get_tensor(k)
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt data
        raise _fail(p, f"cannot be read as safetensors ({type(exc).__name__}: {exc})", "fetch the file again") from None
    return out, metadata


def write_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, "torch.Tensor"], metadata: Mapping[str, Any] | None = None  # noqa: F821
) -> Path:
    """Write atomically: a temporary file in the same folder, then ``os.replace``.

    Non-string metadata values are stored as JSON. Tensors that share memory (tied weights) are
    copied, since safetensors refuses aliases.
    """
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    seen: set[tuple[int, int]] = set()
    clean = {}
    for k, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) if t.numel() else None
        if ident is not None and ident in seen:
            t = t.clone()
        elif ident is not None:
            seen.add(ident)
        clean[str(k)] = t
    with atomic_path(p) as tmp:
        save_file(clean, tmp, metadata=meta)
    return p


def plain_weight_norm_names(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Weight norm saved by newer torch (``parametrizations.weight.original0/1``, e.g. from ComfyUI's modules)
    -> the ``weight_g``/``weight_v`` names older torch and the reference checkpoints use."""
    return {k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}


def strip_prefix(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keys under ``prefix`` with it removed; keys outside it are dropped."""
    if not prefix:
        return dict(sd)
    n = len(prefix)
    return {k[n:]: v for k, v in sd.items() if k.startswith(prefix)}


def list_keys(label: str, items: Iterable[str], limit: int = _MAX_LISTED) -> str:
    """``"N label: a, b, c (+k more)"`` for a non-empty ``items``, else ``""``."""
    items = list(items)
    if not items:
        return ""
    shown = ", ".join(items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{len(items)} {label}: {shown}{more}"


def diff_state_dict(
    expected: Mapping[str, Any], given: Mapping[str, Any], *,
    ignore_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
    optional_suffixes: Iterable[str] = (),
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Compare two state dicts key for key and shape.

    Returns ``(missing, unexpected, mismatched)``: keys of ``expected`` absent from ``given``
    (less ``ignore_missing`` and keys ending in one of ``optional_suffixes``), keys of ``given``
    absent from ``expected`` (less ``ignore_unexpected``), and ``(key, given shape, expected
    shape)`` for every shared key whose shapes differ.
    """
    ign_m, ign_u, opt = set(ignore_missing), set(ignore_unexpected), tuple(optional_suffixes)
    missing = [k for k in expected if k not in given and k not in ign_m and not (opt and k.endswith(opt))]
    unexpected = [k for k in given if k not in expected and k not in ign_u]
    mismatched = [
        (k, tuple(given[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    return missing, unexpected, mismatched


def check_state_dict(module: "torch.nn.Module", sd: Mapping[str, Any], *, name: str,  # noqa: F821
                     ignore_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = ()) -> None:
    """Raise ``ModelError`` unless ``sd`` matches ``module.state_dict()`` key for key and shape.

    ``name`` is what the message calls the weights (usually the file path). Keys listed in
    ``ignore_missing``/``ignore_unexpected`` are tolerated.
    """
    missing, unexpected, mismatched = diff_state_dict(
        module.state_dict(), sd, ignore_missing=ignore_missing, ignore_unexpected=ignore_unexpected)
    shapes = [f"{k} (file {got} vs model {want})" for k, got, want in mismatched]
    parts = [s for s in (list_keys("missing keys", missing), list_keys("unexpected keys", unexpected),
                         list_keys("shape mismatches", shapes)) if s]
    if parts:
        raise ModelError(
            f"{name}: weights do not fit {type(module).__name__}: " + "; ".join(parts)
            + ". Fix: use the weights made for this model/config (a different variant or a damaged "
            "or partial file gives these errors)."
        )
