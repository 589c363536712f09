"""T5 text conditioning as Stable Audio Open uses it (stable-audio-tools ``T5Conditioner``).

Prompts are tokenised with padding to ``max_length`` (128 for SAO) and truncation, encoded by a
``T5EncoderModel``, and the padded positions are zeroed (embeddings times the attention mask).

The unconditional (CFG) branch. stable-audio-tools does not encode an empty prompt: both the
10 % CFG dropout in training and the unconditional half of CFG at sampling replace the whole
cross-attention condition with ``torch.zeros_like`` (SAO's DiT also ignores the cross-attention
mask). ``null_condition(batch, mode="zeros")`` gives exactly that; ``mode="empty"`` encodes the
empty string instead (what diffusers' pipeline does for a negative prompt of ""). Use "zeros" with
SAO-family weights.

Stable Audio 3 uses T5Gemma's encoder instead (:class:`T5GemmaTextEncoder`, 256 tokens).

Reading the weights from a local folder is ``model_io.text.load_t5`` / ``load_t5gemma``; nothing
is ever downloaded.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["T5TextEncoder", "T5GemmaTextEncoder", "SentencePieceTokens", "SAO_T5_MAX_LENGTH", "SA3_T5GEMMA_MAX_LENGTH"]

SAO_T5_MAX_LENGTH = 128
SA3_T5GEMMA_MAX_LENGTH = 256


class _FrozenEncoder:
    """A frozen transformers text encoder with its tokenizer and prompt length (shared by T5 and T5Gemma)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: Any = None, dtype: torch.dtype | None = None):
        self.model.to(device=device, dtype=dtype)
        return self

    def _prompts(self, texts: Sequence[str] | str) -> list[str]:
        """One prompt or several as a non-empty list of strings (None → "")."""
        texts = [texts] if isinstance(texts, str) else ["" if t is None else str(t) for t in texts]
        if not texts:
            raise ValueError(f"{type(self).__name__}.encode needs at least one prompt.")
        return texts


class T5TextEncoder(_FrozenEncoder):
    """Prompts -> ``(tokens [B, L, D] float32, mask [B, L] bool)`` with padded tokens zeroed."""

    kind = "t5"

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = SAO_T5_MAX_LENGTH):
        super().__init__(model, tokenizer, max_length=max_length)

    @property
    def dim(self) -> int:
        """Width ``D`` of the token embeddings (768 for t5-base)."""
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, texts: Sequence[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts; ``""`` is a valid prompt (it encodes to the end-of-sequence token)."""
        texts = self._prompts(texts)
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


class SentencePieceTokens:
    """A tokenizer from SentencePiece model bytes, for text-encoder files that carry their own.

    ComfyUI's ``t5gemma_b_b_ul2.safetensors`` (Stable Audio 3) stores the tokenizer as a byte
    tensor ``spiece_model`` and encodes prompts without BOS/EOS (as Stability's own MLX port of
    SA3 does); so does this. Prompts are truncated to ``max_length`` and right-padded with id 0.
    Needs the ``sentencepiece`` package (ComfyUI installs it).
    """

    def __init__(self, model_proto: bytes):
        try:
            import sentencepiece
        except ImportError:
            raise ModuleNotFoundError("reading a tokenizer stored in a text-encoder file needs the sentencepiece "
                                      "package: pip install sentencepiece") from None
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=bytes(model_proto))
        self.pad_id = 0

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.sp.encode(t)[:max_length] for t in texts]
        ids = torch.full((len(rows), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), max_length, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
        return ids, mask


class T5GemmaTextEncoder(_FrozenEncoder):
    """Prompts -> ``(tokens [B, L, D] float32, mask [B, L] bool)`` with T5Gemma's encoder (Stable Audio 3).

    Prompts are padded on the right to ``max_length`` (256 for SA3) and truncated. Padded positions
    are left as the encoder gives them: the DiT's prompt conditioner treats them as it was trained
    (SA3 replaces them with its learned ``padding_embedding`` and attends to all 256 positions).
    ``tokenizer`` is a transformers tokenizer (a Hugging Face folder: its own settings, e.g. BOS)
    or a :class:`SentencePieceTokens`.
    """

    kind = "t5gemma"

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = SA3_T5GEMMA_MAX_LENGTH):
        super().__init__(model, tokenizer, max_length=max_length)

    @property
    def dim(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "encoder", cfg).hidden_size)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.tokenizer, SentencePieceTokens):
            return self.tokenizer(texts, self.max_length)
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding="max_length",
                             padding_side="right", return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    @torch.no_grad()
    def encode(self, texts: Sequence[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        texts = self._prompts(texts)
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask.long())["last_hidden_state"]
        return hidden.float(), mask
