"""Reading VGGish weights (torchvggish layout) from a local folder or file; never downloads.

``.safetensors`` is preferred; the public ``vggish-10086976.pth`` (and the PCA file) are read with
``torch.load(weights_only=True)``, which refuses any pickle holding more than tensors and plain
containers (numpy array reconstruction is allowed for the PCA file's arrays).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ModelError
from .folders import locate
from ..core.model.vggish import (
    EMBEDDING_SIZE,
    PCA_EIGEN_VECTORS_NAME,
    PCA_MEANS_NAME,
    Postprocessor,
    VGGish,
)


#: File names looked for in a weights folder, best first.
WEIGHT_FILES = ("vggish.safetensors", "vggish-10086976.safetensors", "vggish-10086976.pth", "vggish.pth")
PCA_FILES = ("vggish_pca_params.safetensors", "vggish_pca_params-970ea276.safetensors",
             "vggish_pca_params-970ea276.pth", "vggish_pca_params.pth")
_FIX = ("put the VGGish weights there: vggish.safetensors (torchvggish's state dict converted with "
        "safetensors.torch.save_file) or the public torchvggish file vggish-10086976.pth "
        "(https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth); "
        "nothing is downloaded")


def find_weights(weights_dir_or_file) -> Path | None:
    """The VGGish weights file: the path itself if it is a file, else the best match in the
    folder (``WEIGHT_FILES`` first, then the first other ``*vggish*`` ``.safetensors``/``.pth``)."""
    return locate(weights_dir_or_file, names=WEIGHT_FILES, patterns=("*vggish*.safetensors", "*vggish*.pth"),
                  pick="first", skip=lambda f: "pca" in f.name.lower())


def _find_pca(folder: Path) -> Path | None:
    found = locate(folder, names=PCA_FILES)
    return found if found is not None and found.name in PCA_FILES else None


def _numpy_safe_globals() -> list:
    """numpy array/dtype reconstruction under both the numpy 1 and numpy 2 module names."""
    core = getattr(np, "_core", None) or np.core
    rebuild = core.multiarray._reconstruct
    out: list = [np.ndarray, np.dtype, rebuild]
    for name in ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"):
        out.append((rebuild, name))
    for t in (np.float16, np.float32, np.float64, np.int32, np.int64):
        out.append(type(np.dtype(t)))
    return out


def _load_error(exc: Exception) -> str:
    """The useful part of torch.load's message (not its advice to turn weights_only off)."""
    import re

    text = str(exc)
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s+Please use|\n\n|$)", text, re.S)
    detail = " ".join((m.group(1) if m else text.strip().splitlines()[0] if text.strip() else "").split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _read_tensors(path: Path) -> dict:
    """All tensors of a ``.safetensors`` file, or of a ``torch.save``d dict via weights_only."""
    if path.suffix == ".safetensors":
        from .weights import read_safetensors

        return read_safetensors(path)[0]
    if path.suffix not in (".pth", ".pt"):
        raise ModelError(f"{path}: unknown weights format {path.suffix!r}. Fix: {_FIX}.")
    # The public PCA file stores numpy arrays: allow numpy's array reconstruction (not arbitrary
    # code) next to torch's own safe types.
    safe = _numpy_safe_globals()
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe content, RuntimeError/EOFError for junk
        raise ModelError(
            f"{path}: refused by torch.load(weights_only=True) ({_load_error(exc)}): not a plain "
            f"tensor state dict (or a damaged file); we never unpickle anything else. Fix: {_FIX}."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors. Fix: {_FIX}.")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "fiub":
                raise ModelError(f"{path}: entry {k!r} is a numpy array of dtype {v.dtype}, not numbers.")
            v = torch.from_numpy(np.array(v))
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor. Fix: {_FIX}.")
        out[str(k)] = v
    return out


def _pca_tensors(sd: dict, name: str) -> dict:
    vec = sd.get(PCA_EIGEN_VECTORS_NAME)
    means = sd.get(PCA_MEANS_NAME)
    if vec is None or means is None:
        raise ModelError(f"{name}: needs {PCA_EIGEN_VECTORS_NAME!r} and {PCA_MEANS_NAME!r}, found "
                         f"{sorted(sd)[:6]}. Fix: use torchvggish's vggish_pca_params-970ea276.pth.")
    vec = vec.float()
    means = means.float().reshape(-1, 1)
    if tuple(vec.shape) != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape[0] != EMBEDDING_SIZE:
        raise ModelError(f"{name}: PCA shapes {tuple(vec.shape)}, {tuple(means.shape)}; expected "
                         f"({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE}, 1).")
    return {PCA_EIGEN_VECTORS_NAME: vec, PCA_MEANS_NAME: means}


def load_vggish(weights_dir_or_file, device="cpu", *, postprocess: bool = False,
                final_relu: bool = False, pca_file=None) -> VGGish:
    """VGGish in eval mode from local weights (a folder or the file itself); never downloads.

    Raises ``ModelError`` naming the folder and the file to put there when no weights are found,
    listing missing/unexpected keys and shape mismatches when the file does not fit, and refusing
    pickles that hold anything but tensors. With ``postprocess=True`` the PCA parameters come from
    ``pproc.*`` keys of the weights file, ``pca_file``, or a ``vggish_pca_params*`` file next to it.
    Defaults (no PCA, no final ReLU) give the embeddings ``frechet_audio_distance`` uses.
    """
    src = Path(os.fspath(weights_dir_or_file))
    path = find_weights(src)
    if path is None:
        where = f"weights folder {str(src)!r}" if src.is_dir() else f"{str(src)!r} (not found)"
        raise ModelError(f"no VGGish weights in {where}. Fix: {_FIX}.")
    sd = _read_tensors(path)
    pproc = {k[len("pproc."):]: v for k, v in sd.items() if k.startswith("pproc.")}
    sd = {k: v for k, v in sd.items() if not k.startswith("pproc.")}
    from .weights import check_state_dict

    model = VGGish(final_relu=final_relu, postprocess=False)
    check_state_dict(model, sd, name=f"{path} (VGGish)")
    model.load_state_dict(sd)
    if postprocess:
        model.postprocess, model.pproc = True, Postprocessor()
        if not pproc:
            pfile = Path(os.fspath(pca_file)) if pca_file is not None else _find_pca(path.parent)
            if pfile is None or not pfile.is_file():
                raise ModelError(
                    f"postprocess=True needs the PCA parameters: none in {str(path)!r} and no "
                    f"{PCA_FILES[0]} / {PCA_FILES[2]} in {str(path.parent)!r}. Fix: put torchvggish's "
                    "vggish_pca_params-970ea276.pth (or its .safetensors) there, or use postprocess=False "
                    "(what FAD uses)."
                )
            pproc = _read_tensors(pfile)
            name = str(pfile)
        else:
            name = str(path)
        model.pproc.load_state_dict(_pca_tensors(pproc, name))
    return model.to(device).eval()
