"""T5 text conditioning as Stable Audio Open uses it (stable-audio-tools ``T5Conditioner``).

Prompts are tokenised with padding to ``max_length`` (128 for SAO) and truncation, encoded by a
``T5EncoderModel``, and the padded positions are zeroed (embeddings times the attention mask).

The unconditional (CFG) branch. stable-audio-tools does not encode an empty prompt: both the
10 % CFG dropout in training and the unconditional half of CFG at sampling replace the whole
cross-attention condition with ``torch.zeros_like`` (SAO's DiT also ignores the cross-attention
mask). ``null_condition(batch, mode="zeros")`` gives exactly that; ``mode="empty"`` encodes the
empty string instead (what diffusers' pipeline does for a negative prompt of ""). Use "zeros" with
SAO-family weights.

Reading the weights from a local folder is ``model_io.text.load_t5``; nothing is ever downloaded.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["T5TextEncoder", "SAO_T5_MAX_LENGTH"]

SAO_T5_MAX_LENGTH = 128


class T5TextEncoder:
    """Prompts -> ``(tokens [B, L, D] float32, mask [B, L] bool)`` with padded tokens zeroed."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = SAO_T5_MAX_LENGTH):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

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
