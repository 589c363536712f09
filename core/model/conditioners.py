"""Conditioners: the weight-owning part of stable-audio-tools' ``MultiConditioner``, built from config.

Conditioning is data: a model config lists conditioner ids with a type (``t5``/text tokens,
``number`` for seconds, ``curve`` for the event curve as an input-concat channel).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ModelError


class LearnedPositionalEmbedding(nn.Module):
    """Fourier embedding of a scalar in [0,1]: ``[x, sin(2π x w), cos(2π x w)]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None]
        freqs = x * self.weights[None, :] * 2 * math.pi
        return torch.cat((x, freqs.sin(), freqs.cos()), dim=-1)


class NumberEmbedder(nn.Module):
    """``learned`` (SAO): random learned Fourier features of the number; ``expo`` (SA3): fixed
    exponentially spaced ones (no weights in slot 0)."""

    def __init__(self, features: int, dim: int = 256, fourier_features_type: str = "learned"):
        super().__init__()
        self.expo = fourier_features_type == "expo"
        if self.expo:
            from .sa3_blocks import ExpoFourierFeatures

            self.embedding = nn.Sequential(ExpoFourierFeatures(dim), nn.Linear(dim, features))
        elif fourier_features_type == "learned":
            self.embedding = nn.Sequential(LearnedPositionalEmbedding(dim), nn.Linear(dim + 1, features))
        else:
            raise ModelError(f"number conditioner fourier_features_type {fourier_features_type!r} (learned or expo)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)


class NumberConditioner(nn.Module):
    """stable-audio-tools ``number`` conditioner: clamp to [min,max], normalise, embed → [B,1,dim]."""

    def __init__(self, output_dim: int, min_val: float = 0.0, max_val: float = 1.0,
                 fourier_features_type: str = "learned"):
        super().__init__()
        self.min_val, self.max_val = float(min_val), float(max_val)
        if not (math.isfinite(self.min_val) and math.isfinite(self.max_val) and self.min_val < self.max_val):
            raise ModelError(f"number conditioner range [{min_val!r}, {max_val!r}]: needs finite min_val < max_val. "
                             "Fix: use the model's own config.")
        self.embedder = NumberEmbedder(features=output_dim, fourier_features_type=fourier_features_type)

    def forward(self, floats) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.embedder.embedding[1].weight
        x = torch.as_tensor(floats, dtype=torch.float32, device=p.device).reshape(-1)
        x = (x.clamp(self.min_val, self.max_val) - self.min_val) / (self.max_val - self.min_val)
        if self.embedder.expo:  # fixed features up to 10 kHz: computed from float32 seconds (half precision moves them)
            emb = self.embedder.embedding[1](self.embedder.embedding[0](x).to(p.dtype)).unsqueeze(1)
        else:
            emb = self.embedder(x.to(p.dtype)).unsqueeze(1)
        return emb, torch.ones(emb.shape[0], 1, dtype=torch.bool, device=emb.device)


# d_model of the T5 encoders stable-audio-tools' ``t5`` conditioner accepts
_T5_DIMS = {
    "t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024,
    "google/flan-t5-small": 512, "google/flan-t5-base": 768, "google/flan-t5-large": 1024,
    "google/flan-t5-xl": 2048, "google/flan-t5-xxl": 4096, "google/t5gemma-b-b-ul2": 768,
}


class TokenConditioner(nn.Module):
    """Weights of a text conditioner: its optional ``proj_out`` and, for ``padding_mode="learned"``
    (SA3), the ``padding_embedding`` (the encoder itself lives elsewhere).

    After projection, padded positions are zeroed (``"zero"``, stable-audio-tools' T5 conditioner,
    SAO), replaced by the learned embedding (``"learned"``), or kept (``"none"``).
    """

    def __init__(self, text_dim: int, output_dim: int, project_out: bool = False, padding_mode: str = "zero"):
        super().__init__()
        self.text_dim = int(text_dim)
        self.proj_out = nn.Linear(text_dim, output_dim) if (text_dim != output_dim or project_out) else nn.Identity()
        if padding_mode not in ("zero", "learned", "none"):
            raise ModelError(f"text padding_mode {padding_mode!r} (zero, learned or none)")
        self.padding_mode = padding_mode
        if padding_mode == "learned":
            self.padding_embedding = nn.Parameter(torch.randn(output_dim) * 0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(self.proj_out, nn.Identity):
            tokens = tokens.to(self.proj_out.weight.dtype)
        tokens = self.proj_out(tokens)
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        mask = mask.to(device=tokens.device, dtype=torch.bool)
        if self.padding_mode == "learned":
            pad = self.padding_embedding.to(tokens.dtype).expand_as(tokens)
            return torch.where(mask.unsqueeze(-1), tokens, pad), mask
        if self.padding_mode == "none":
            return tokens, mask
        return tokens * mask.unsqueeze(-1).to(tokens.dtype), mask


class MultiConditioner(nn.Module):
    def __init__(self, conditioners: dict[str, nn.Module]):
        super().__init__()
        self.conditioners = nn.ModuleDict(conditioners)


_TEXT_TYPES = {"t5", "t5gemma", "text", "clap_text"}
_NUMBER_TYPES = {"number"}
_CURVE_TYPES = {"curve"}


def build_conditioners(cond_cfg: Mapping[str, Any]) -> tuple[dict[str, nn.Module], dict[str, str]]:
    cond_dim = int(cond_cfg.get("cond_dim", 768))
    modules: dict[str, nn.Module] = {}
    kinds: dict[str, str] = {}
    for item in cond_cfg.get("configs", []):
        cid, ctype, cc = item["id"], item["type"], dict(item.get("config", {}))
        if ctype in _NUMBER_TYPES:
            modules[cid] = NumberConditioner(cond_dim, cc.get("min_val", 0), cc.get("max_val", 1),
                                             cc.get("fourier_features_type", "learned"))
            kinds[cid] = "number"
        elif ctype in _TEXT_TYPES:
            text_dim = int(cc.get("text_dim")
                           or _T5_DIMS.get(cc.get("t5_model_name") or cc.get("model_name") or "", cond_dim))
            # weightless (Identity) when the encoder width already equals cond_dim, as SAO's T5
            modules[cid] = TokenConditioner(text_dim, cond_dim, bool(cc.get("project_out", False)),
                                            cc.get("padding_mode", "zero"))
            kinds[cid] = "tokens"
        elif ctype in _CURVE_TYPES:
            kinds[cid] = "curve"
        else:
            raise ModelError(f"unsupported conditioner type {ctype!r} for {cid!r}")
    return modules, kinds


def default_conditioning_config(cond_dim: int = 768, with_curve: bool = False) -> dict[str, Any]:
    """SAO 1.0's conditioning block (T5-base prompt, seconds_start/total numbers in [0, 512])."""
    configs = [
        {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
        {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
        {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
    ]
    if with_curve:
        configs.append({"id": "curve", "type": "curve", "config": {"channels": 1}})
    return {"configs": configs, "cond_dim": cond_dim}
