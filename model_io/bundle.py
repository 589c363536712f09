"""Load a music model bundle (:class:`~core.model.bundle.MusicModel`): a V2M checkpoint or a Stable
Audio base file, the audio codec it carries or declares, its text encoder and an optional LoRA."""

from __future__ import annotations

import torch

from ..core.errors import ModelError
from ..core.model.bundle import MusicModel
from ..core.precision import torch_device, torch_dtype
from .codec import make_codec
from .formats import read_dit
from .weights import SafetensorsFile


def load_music_model(
    checkpoint: str,
    *,
    text_encoder: str | None = None,
    codec: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    lora: str | None = None,
    lora_strength: float = 1.0,
    tokenizer: str | None = None,
) -> MusicModel:
    """Load a V2M checkpoint (or a Stable Audio 3 / Stable Audio Open 1.0 base file), its codec
    (embedded, declared, or ``codec`` path) and its text encoder (T5 or T5Gemma, as the checkpoint's
    metadata says).

    A Stable Audio Open 1.0 single file is widened by the zero curve channel in memory
    (``meta["note"]`` says that timing needs fine-tuning). ``text_encoder`` is a folder or a single
    file (ComfyUI's ``t5_base.safetensors``, whose tokenizer comes from the folder ``tokenizer``; or
    ``t5gemma_b_b_ul2.safetensors``). ``lora``: a LoRA adapter file trained on this checkpoint, folded
    into the DiT's weights at ``lora_strength`` (0 = the base, 1 = as trained) before the cast to
    ``precision``; its curve spec and text settings replace the checkpoint's (they describe what
    training used).
    """
    dev = torch_device(device)
    dtype = torch_dtype(precision)
    file = SafetensorsFile(checkpoint)  # the header is parsed once for the DiT and the codec
    load_device, load_dtype = ("cpu", None) if lora else (dev, dtype)
    dit = read_dit(file, device=load_device, dtype=load_dtype)  # what the file is decides how it is read
    if lora:
        from ..core.model.bounds import check_numbers
        from .checkpoint import META_BOUNDS
        from .lora import ADAPTER_META_KEYS, apply_adapter

        adapter = apply_adapter(dit, lora, strength=lora_strength, base=file)
        check_numbers({k: adapter[k] for k in ADAPTER_META_KEYS if k in adapter}, META_BOUNDS, source=str(lora))
        dit.meta.update({k: adapter[k] for k in ADAPTER_META_KEYS if k in adapter})
        dit.meta["lora"] = {"file": str(lora), "strength": float(lora_strength), **(adapter.get("lora") or {})}
        dit.to(device=dev, dtype=dtype)
    meta = dict(getattr(dit, "meta", {}) or {})
    if dit.curve_channels < 1:
        raise ModelError(f"{checkpoint} has no event-curve input channel: make one with `v2m-zero init-checkpoint`")
    cod = make_codec(codec) if codec else make_codec(meta.get("codec") or {"type": "oobleck"}, checkpoint=file)
    if isinstance(cod, torch.nn.Module):
        cod = cod.to(dev)
    if cod.latent_channels != dit.config.io_channels:
        raise ModelError(f"codec has {cod.latent_channels} latent channels "
                         f"but the DiT expects {dit.config.io_channels}")
    text = None
    needs_text = "prompt" in getattr(dit, "cross_attention_cond_ids", [])
    text_spec = meta.get("text") or {}
    if needs_text and text_spec.get("type", "t5") in ("t5", "t5gemma"):
        kind = text_spec.get("type", "t5")
        if not text_encoder:
            hint = ("a T5Gemma encoder (models/text_encoders/t5gemma_b_b_ul2.safetensors or the t5gemma-b-b-ul2 folder)"
                    if kind == "t5gemma" else "a T5 folder (models/v2m/text_encoders/t5-base)")
            raise ModelError(f"{checkpoint} is conditioned on {kind} text: choose {hint}")
        from .text import load_text_encoder

        if kind == "t5gemma" and tokenizer is None:  # an SA3 file's own bundled tokenizer, when it was fetched
            from .model_config import bundled_text_encoder_dir

            bundled = bundled_text_encoder_dir(checkpoint)
            if bundled is not None and any((bundled / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
                tokenizer = str(bundled)
        text = load_text_encoder(text_encoder, kind=kind, max_length=text_spec.get("max_length"), device=dev,
                                 tokenizer=tokenizer)
    return MusicModel(dit=dit, codec=cod, text=text, meta=meta, device=dev, dtype=dtype, source=str(checkpoint))
