"""Stages 2–4 of Algorithm 2: frame captions (a VLM), their summary and the music prompt (an LLM)."""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from .models import LoadedModel, use_model
from .pacing import Pacing
from .templates import (
    _MAX_CAPTION_CHARS,
    _MAX_TRANSCRIPT_CHARS,
    _NONE,
    CAPTION_PROMPT,
    MUSIC_PROMPT_TEMPLATE,
    PLAIN_TEMPLATE,
    SUMMARY_TEMPLATE,
)


def generate_reply(lm: LoadedModel, content: list[dict] | str, max_new_tokens: int) -> str:
    """Greedy reply of a VLM (content parts, may hold images) or an LLM (text) to one user turn."""
    import torch

    if lm.kind == "vlm":
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        messages = [{"role": "user", "content": content}]
        inputs = lm.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        tokenizer = getattr(lm.processor, "tokenizer", lm.processor)
    else:
        tokenizer = lm.processor
        text = content if isinstance(content, str) else "\n".join(c.get("text", "") for c in content)
        if getattr(tokenizer, "chat_template", None):
            inputs = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt",
            )
        else:
            inputs = tokenizer(PLAIN_TEMPLATE.format(instruction=text), return_tensors="pt")
    inputs = inputs.to(lm.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(lm.dtype)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = lm.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens),
                                pad_token_id=pad)
    new = out[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new, skip_special_tokens=True)[0].strip()


def caption_frames(
    frames: Sequence[Any], *, model_dir: str | None = None, model: LoadedModel | None = None,
    device: str = "cpu", dtype: Any = None, prompt: str = CAPTION_PROMPT, max_new_tokens: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """One caption per frame (PIL images, or ``(time, image)`` pairs) with a VLM, greedy."""
    imgs = [f[1] if isinstance(f, tuple) else f for f in frames]
    if not imgs:
        return []
    lm, own = use_model("vlm", model, model_dir, device, dtype)
    try:
        out = []
        for i, img in enumerate(imgs):
            content = [{"type": "image", "image": img}, {"type": "text", "text": prompt}]
            out.append(" ".join(generate_reply(lm, content, max_new_tokens).split()))
            if progress is not None:
                progress(i + 1, len(imgs))
        return out
    finally:
        if own:
            lm.release()


def summarise_captions(
    captions: Sequence[str], *, model_dir: str | None = None, model: LoadedModel | None = None,
    kind: str = "llm", device: str = "cpu", dtype: Any = None, template: str = SUMMARY_TEMPLATE,
    max_new_tokens: int = 160,
) -> str:
    """Visual summary S = LLM(C) of the frame captions (``kind="vlm"`` runs a VLM folder text-only)."""
    caps = [c.strip()[:_MAX_CAPTION_CHARS] for c in captions if c and c.strip()]
    if not caps:
        return ""
    lm, own = use_model(kind, model, model_dir, device, dtype)
    try:
        listing = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(caps))
        return " ".join(generate_reply(lm, template.format(captions=listing), max_new_tokens).split())
    finally:
        if own:
            lm.release()


def _clean_prompt(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"^(music prompt|prompt|paragraph)\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"“”').strip()


def music_prompt(
    transcript: str, summary: str, *, model_dir: str | None = None, model: LoadedModel | None = None,
    kind: str = "llm", device: str = "cpu", dtype: Any = None, user_text: str = "",
    pacing: Pacing | None = None, template: str = MUSIC_PROMPT_TEMPLATE, max_new_tokens: int = 128,
) -> str:
    """Music prompt P = LLM(T, S): one paragraph on mood, genre, instrumentation, tempo, energy."""
    t = " ".join((transcript or "").split())
    if len(t) > _MAX_TRANSCRIPT_CHARS:
        t = t[:_MAX_TRANSCRIPT_CHARS] + " …"
    instruction = template.format(
        summary=summary.strip() or _NONE,
        transcript=t or _NONE,
        user_text=" ".join((user_text or "").split()) or _NONE,
        pacing=pacing.describe() if pacing is not None else _NONE,
    )
    lm, own = use_model(kind, model, model_dir, device, dtype)
    try:
        return _clean_prompt(generate_reply(lm, instruction, max_new_tokens))
    finally:
        if own:
            lm.release()
