"""Loading the prompt models (Whisper, a VLM, an LLM) from local transformers folders, offline."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError, V2MError


@dataclass
class LoadedModel:
    kind: str  # "asr" | "vlm" | "llm"
    path: str
    model: Any
    processor: Any  # WhisperProcessor | AutoProcessor | tokenizer
    device: str
    dtype: Any

    def release(self) -> None:
        """Drop the weights now (not at the next garbage collection) and empty the CUDA cache."""
        self.model = None
        self.processor = None
        gc.collect()
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def resolve_dtype(dtype: Any, device: str):
    """None/"auto" → float32 on CPU, bfloat16 (float16 where unsupported) on CUDA."""
    import torch

    if dtype is None or dtype == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    d = getattr(torch, str(dtype), None)
    if not isinstance(d, torch.dtype) or not d.is_floating_point:
        raise V2MError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return d


def load_model(kind: str, model_dir: str, *, device: str = "cpu", dtype: Any = None) -> LoadedModel:
    """Load an ASR (Whisper), VLM (image-text-to-text) or LLM (causal LM) folder, offline."""
    import transformers as tf

    from ...model_io.hf import check_model_dir, load_pretrained

    role = {"asr": "ASR", "vlm": "VLM", "llm": "LLM"}[kind]
    path = check_model_dir(model_dir, role)
    torch_dtype = resolve_dtype(dtype, device)
    processor_cls, model_cls, expected = {
        "asr": (tf.WhisperProcessor, tf.WhisperForConditionalGeneration,
                "a Whisper model (e.g. openai/whisper-small)"),
        "vlm": (tf.AutoProcessor, tf.AutoModelForImageTextToText,
                "an image-text-to-text model with its processor (e.g. google/gemma-3-4b-it or "
                "HuggingFaceTB/SmolVLM2-256M-Video-Instruct)"),
        "llm": (tf.AutoTokenizer, tf.AutoModelForCausalLM,
                "a causal language model with its tokenizer (e.g. Qwen/Qwen2.5-1.5B-Instruct)"),
    }[kind]

    def failed(exc: Exception) -> ModelError:
        return ModelError(f"cannot load the {role} model from {path}: {exc}. The folder must hold {expected}")

    try:
        processor = processor_cls.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise failed(exc) from exc
    if kind == "vlm" and not getattr(processor, "chat_template", None):
        raise ModelError(
            f"the VLM folder {path} has no chat template (chat_template.jinja, or chat_template in its "
            f"processor/tokenizer config); use an instruction-tuned model such as gemma-3-4b-it"
        )
    model = load_pretrained(model_cls, path, what=f"the {role} model", hint=f"The folder must hold {expected}",
                            dtype=torch_dtype)
    model.to(device)
    model.eval()
    return LoadedModel(kind, path, model, processor, str(device), torch_dtype)


def use_model(kind: str, model: LoadedModel | None, model_dir: str | None, device: str, dtype: Any):
    """(loaded model, whether we own it and must release it)."""
    if model is not None:
        return model, False
    if model_dir is None:
        raise V2MError(f"give either model_dir or model for the {kind} step")
    return load_model(kind, model_dir, device=device, dtype=dtype), True
