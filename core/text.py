"""T5 text conditioning as Stable Audio Open uses it (stable-audio-tools ``T5Conditioner``).

Prompts are tokenised with padding to ``max_length`` (128 for SAO) and truncation, encoded by a
``T5EncoderModel``, and the padded positions are zeroed (embeddings times the attention mask).

The unconditional (CFG) branch. stable-audio-tools does not encode an empty prompt: both the
10 % CFG dropout in training and the unconditional half of CFG at sampling replace the whole
cross-attention condition with ``torch.zeros_like`` (SAO's DiT also ignores the cross-attention
mask). ``null_condition(batch, mode="zeros")`` gives exactly that; ``mode="empty"`` encodes the
empty string instead (what diffusers' pipeline does for a negative prompt of ""). Use "zeros" with
SAO-family weights.

Weights are read from a local folder only; nothing is ever downloaded here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ModelError

__all__ = ["T5TextEncoder", "SAO_T5_MAX_LENGTH", "find_t5_files"]

SAO_T5_MAX_LENGTH = 128
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


class T5TextEncoder:
    """Prompts -> ``(tokens [B, L, D] float32, mask [B, L] bool)`` with padded tokens zeroed."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = SAO_T5_MAX_LENGTH):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, max_length: int = SAO_T5_MAX_LENGTH,
                    device: Any = "cpu", dtype: torch.dtype = torch.float32) -> "T5TextEncoder":
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
        return cls(model.to(device), tokenizer, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def dim(self) -> int:
        """Width ``D`` of the token embeddings (768 for t5-base)."""
        return int(self.model.config.d_model)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "T5TextEncoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def encode(self, texts: Sequence[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts; ``""`` is a valid prompt (it encodes to the end-of-sequence token)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            raise ValueError("T5TextEncoder.encode needs at least one prompt.")
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="max_length",
                             return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device).bool()
        hidden = self.model(input_ids=ids, attention_mask=mask)["last_hidden_state"]
        tokens = hidden.float() * mask.unsqueeze(-1).float()
        return tokens, mask

    def null_condition(self, batch_size: int = 1, mode: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional branch for CFG.

        ``"zeros"`` (SAO/stable-audio-tools): all-zero tokens; the mask is all True, since SAO
        ignores the mask and an all-False mask would leave attention nothing to attend to.
        ``"empty"``: the encoding of the empty prompt.
        """
        if mode == "zeros":
            tokens = torch.zeros(batch_size, self.max_length, self.dim, device=self.device)
            return tokens, torch.ones(batch_size, self.max_length, dtype=torch.bool, device=self.device)
        if mode == "empty":
            return self.encode([""] * batch_size)
        raise ValueError(f"null_condition mode must be 'zeros' or 'empty', not {mode!r}.")
