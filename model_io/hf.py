"""Hugging Face model folders, read offline and from safetensors only (``local_files_only``)."""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import ModelError
from .folders import resolve_model_dir


def load_pretrained(model_cls: Any, path: str | os.PathLike, *, what: str, hint: str = "", **kwargs) -> Any:
    """``model_cls.from_pretrained(path)`` offline, safetensors only; a failure names the folder (and ``hint``)."""
    try:
        return model_cls.from_pretrained(os.fspath(path), local_files_only=True, use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load {what} from {os.fspath(path)}: {exc}{'. ' + hint if hint else ''}") from exc


def check_model_dir(model_dir: str | os.PathLike, role: str) -> str:
    """The absolute path of a transformers model folder (it exists and has a config.json), else a ModelError."""
    path = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(path):
        raise ModelError(
            f"{role} model folder not found: {path}. Download the model into that folder "
            f"(e.g. `huggingface-cli download <repo> --local-dir {path}`), fix the path, or leave "
            f"the {role} model unset to skip this step"
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelError(
            f"{role} model folder {path} has no config.json; it must be a transformers model "
            f"folder (config.json, weights and tokenizer/processor files)"
        )
    return path


def load_dinov2(name_or_path: str, *, dtype=None) -> tuple[str, Any, Any]:
    """``(folder, image processor, Dinov2Model)`` of a DINOv2 folder (a path or a name under ``encoders/``)."""
    from transformers import AutoImageProcessor, Dinov2Model

    path = resolve_model_dir(name_or_path, "encoders")
    try:
        processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load DINOv2 from {path}: {exc}") from exc
    model = load_pretrained(Dinov2Model, path, what="DINOv2", dtype=dtype)
    return path, processor, model
