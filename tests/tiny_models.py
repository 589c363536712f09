"""Tiny random generator checkpoints written in the real V2M format (for tests only)."""

from __future__ import annotations

import torch

from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint

# A weightless patch codec at a low rate keeps latents short: 16 channels at 100 Hz.
PATCH = {"patch_size": 16, "audio_channels": 1, "sample_rate": 1600}


def tiny_v2m_checkpoint(path: str, *, seed: int = 0, smoothing_seconds: float = 0.5, text_dim: int = 32, text: str = "none") -> str:
    torch.manual_seed(seed)
    cfg = make_model_config(io_channels=16, embed_dim=64, depth=2, num_heads=2, cond_token_dim=32, text_dim=text_dim, with_curve=True)
    dit = V2MDiT(cfg, objective="rectified_flow")
    with torch.no_grad():  # non-zero curve weights, so the curve matters in tests
        for p in dit.parameters():
            if p.ndim > 1 and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    meta = {
        "v2m_format": V2M_FORMAT,
        "model_config": cfg,
        "objective": "rectified_flow",
        "latent_rate": PATCH["sample_rate"] / PATCH["patch_size"],
        "sample_rate": PATCH["sample_rate"],
        "curve": {"encoder": "pixels", "smoothing_seconds": smoothing_seconds, "standardise": True},
        "codec": {"type": "patch", "config": PATCH},
        "text": {"type": text},
    }
    save_v2m_checkpoint(path, dit.state_dict(), meta)
    return path
