"""Text encoders from local folders (T5 for Stable Audio Open); never downloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ModelError
from ..core.model.text import SAO_T5_MAX_LENGTH, T5TextEncoder


_DEFAULT_FOLDER_HINT = "models/v2m/text_encoders/t5-base/"
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def _needs(folder: Path, what: str) -> ModelError:
    return ModelError(
        f"{folder}: {what}. Fix: put the Hugging Face T5 files there (config.json, model.safetensors, "
        f"tokenizer.json or spiece.model, tokenizer_config.json), e.g. the google-t5/t5-base repository in "
        f"{_DEFAULT_FOLDER_HINT}; a diffusers Stable Audio folder with text_encoder/ and tokenizer/ also works."
    )


def find_t5_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """``(model_folder, tokenizer_folder)`` for a T5 folder, checking the needed files are there.

    Accepts a plain transformers folder or a diffusers pipeline folder (``text_encoder/`` +
    ``tokenizer/``). Raises ``ModelError`` naming the folder and what to put in it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise _needs(root, "text encoder folder not found" if not root.exists() else "is not a folder")
    model_dir, tok_dir = root, root
    if (root / "text_encoder").is_dir() and not (root / "config.json").is_file():
        model_dir = root / "text_encoder"
        tok_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else model_dir
    if not (model_dir / "config.json").is_file():
        raise _needs(model_dir, "config.json is missing")
    if not any((model_dir / f).is_file() for f in _WEIGHT_FILES):
        pickles = [f for f in ("pytorch_model.bin", "tf_model.h5") if (model_dir / f).is_file()]
        extra = f" (found {pickles[0]}, which we do not open: get model.safetensors)" if pickles else ""
        raise _needs(model_dir, "model.safetensors is missing" + extra)
    if not any((tok_dir / f).is_file() for f in _TOKENIZER_FILES):
        raise _needs(tok_dir, "the tokenizer (tokenizer.json or spiece.model) is missing")
    return model_dir, tok_dir


def load_t5(folder: str | os.PathLike, *, max_length: int = SAO_T5_MAX_LENGTH,
            device: Any = "cpu", dtype: torch.dtype = torch.float32) -> T5TextEncoder:
    """Load ``T5EncoderModel`` + tokenizer from ``folder`` (never downloads).

    stable-audio-tools runs T5 in float16 on GPU; float32 is the default here so CPU works.
    """
    model_dir, tok_dir = find_t5_files(folder)
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True,
                                               dtype=dtype)
    except ModelError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for bad folders
        raise _needs(Path(folder), f"cannot be loaded as a T5 encoder ({type(exc).__name__}: {exc})") from None
    return T5TextEncoder(model.to(device), tokenizer, max_length=max_length)
