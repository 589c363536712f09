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

__all__ = ["T5TextEncoder", "T5GemmaTextEncoder", "SentencePieceTokens", "t5gemma_token_ids", "pad_token_rows",
           "SAO_T5_MAX_LENGTH", "SA3_T5GEMMA_MAX_LENGTH", "SA3_PAD_ID"]

SAO_T5_MAX_LENGTH = 128
SA3_T5GEMMA_MAX_LENGTH = 256
#: T5Gemma's padding id as SA3 pads prompts (``<pad>``, 0 in Gemma's vocabulary)
SA3_PAD_ID = 0


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


def pad_token_rows(rows: Sequence[Sequence[int]], max_length: int,
                   pad_id: int = SA3_PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows -> ``(ids [B, max_length] long, mask [B, max_length] bool)``: each row truncated to
    ``max_length`` and right-padded with ``pad_id`` (mask False there); ``[]`` gives a row of padding only."""
    ids = torch.full((len(rows), max_length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), max_length, dtype=torch.bool)
    for i, r in enumerate(rows):
        r = list(r)[:max_length]
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask


class SentencePieceTokens:
    """A tokenizer from SentencePiece model bytes, for text-encoder files that carry their own.

    ComfyUI's ``t5gemma_b_b_ul2.safetensors`` (Stable Audio 3) stores the tokenizer as a byte
    tensor ``spiece_model``. ``pieces`` gives the plain ids (no BOS/EOS); the padding rule is
    :func:`pad_token_rows`, shared with every other tokenizer road (see :class:`T5GemmaTextEncoder`).
    Needs the ``sentencepiece`` package (ComfyUI installs it).
    """

    def __init__(self, model_proto: bytes):
        try:
            import sentencepiece
        except ImportError:
            raise ModuleNotFoundError("reading a tokenizer stored in a text-encoder file needs the sentencepiece "
                                      "package: pip install sentencepiece") from None
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=bytes(model_proto))
        self.pad_id = SA3_PAD_ID

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(r) for r in self.sp.encode(list(texts), add_bos=False, add_eos=False)]

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_token_rows(self.pieces(texts), max_length, self.pad_id)


def t5gemma_token_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable Audio 3's prompt tokens, the same on every road: the plain SentencePiece ids of each prompt
    (no BOS, no EOS, whatever a folder's ``tokenizer_config.json`` asks for), truncated to ``max_length``
    and right-padded with id 0; ``""`` gives padding only (mask all False).

    That is how SA3's own ports tokenize (stable_audio_3 @ 636f906: the MLX port's
    ``SentencePieceProcessor.Encode``, the TensorRT port's bundled ``tokenizer.json`` through
    ``FastTokenizer``, both padding with 0 to 256) and how ComfyUI's SA3 text encoder does
    (``add_bos``/``add_eos`` False). ``tokenizer``: a :class:`SentencePieceTokens` or a transformers tokenizer
    (google's ``t5gemma-b-b-ul2`` copy adds ``<bos>`` by default: asked for no special tokens here).
    """
    if isinstance(tokenizer, SentencePieceTokens):
        rows = tokenizer.pieces(texts)
    else:
        rows = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return pad_token_rows(rows, max_length, SA3_PAD_ID)


class T5GemmaTextEncoder(_FrozenEncoder):
    """Prompts -> ``(tokens [B, L, D] float32, mask [B, L] bool)`` with T5Gemma's encoder (Stable Audio 3).

    Prompts are padded on the right to ``max_length`` (256 for SA3) and truncated. Padded positions
    are left as the encoder gives them: the DiT's prompt conditioner treats them as it was trained
    (SA3 replaces them with its learned ``padding_embedding`` and attends to all 256 positions).
    ``tokenizer`` is a transformers tokenizer (a Hugging Face folder) or a :class:`SentencePieceTokens`
    (ComfyUI's file); both give the same ids (:func:`t5gemma_token_ids`: no BOS/EOS, padding id 0).
    """

    kind = "t5gemma"

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = SA3_T5GEMMA_MAX_LENGTH):
        super().__init__(model, tokenizer, max_length=max_length)

    @property
    def dim(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "encoder", cfg).hidden_size)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, mask)`` by :func:`t5gemma_token_ids`: one rule whichever files the tokenizer came from."""
        return t5gemma_token_ids(self.tokenizer, texts, self.max_length)

    @torch.no_grad()
    def encode(self, texts: Sequence[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        texts = self._prompts(texts)
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        # a prompt of padding only ("") leaves attention nothing to attend to: one position is shown to the
        # encoder (as SA3's MLX port does); the mask returned stays all False, so every position is padding
        seen = mask.clone()
        seen[~mask.any(dim=1), 0] = True
        hidden = self.model(input_ids=ids, attention_mask=seen.long())["last_hidden_state"]
        return hidden.float(), mask
