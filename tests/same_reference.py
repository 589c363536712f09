"""The SAME-S reference fixture: a tiny SAME in the exact layout of stable-audio-3-small-music(-base)'s
(chunked attention, chunk 32 with a half-chunk shift, 1×1 encoder / kernel-3 decoder mappings), its
weights drawn from a seed, and the reference implementation's outputs on it.

``tests/fixtures/make_same_s_reference.py`` ran the reference (Stability-AI/stable-audio-3, the
commit in the fixture's JSON) once and wrote ``tests/fixtures/same_s_reference.{json,safetensors}``;
``tests/test_same.py`` rebuilds the weights from the seed here, saves them in the reference's key
layout and checks our loader's encode/decode against the stored outputs.
"""

from __future__ import annotations

import copy
import os

import torch

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "fixtures")
FIXTURE_JSON = os.path.join(FIXTURE_DIR, "same_s_reference.json")
FIXTURE_TENSORS = os.path.join(FIXTURE_DIR, "same_s_reference.safetensors")
SEED = 23

# small-music's SAME section ("pretransform" of model_config.json) with the widths shrunk: 8 channels × c_mult 2
# (16 wide, 2 heads of 8) instead of 128 × 6, patches of 4 samples instead of 256, 8 latent channels
# instead of 256; kept: one level of stride 16, 6 layers (3 + 3 shifted), chunk_size 32, the shift, the
# mappings (encoder 1×1, decoder kernel 3), differential attention, DyT norms, the soft-norm bottleneck.
PRETRANSFORM = {
    "type": "autoencoder",
    "config": {
        "encoder": {"type": "same", "config": {
            "in_channels": 8, "channels": 8, "c_mults": [2], "strides": [16], "latent_dim": 8,
            "transformer_depths": [6], "checkpointing": False, "differential": True, "dyt": True, "dim_heads": 8,
            "variable_stride": True, "chunk_size": 32, "chunk_midpoint_shift": True, "conv_mapping": False,
            "mask_noise": 0.0, "ff_mult": 3}},
        "decoder": {"type": "same", "config": {
            "out_channels": 8, "channels": 8, "c_mults": [2], "strides": [16], "latent_dim": 8,
            "transformer_depths": [6], "sinusoidal_blocks": [0], "checkpointing": False, "differential": True,
            "dyt": True, "dim_heads": 8, "variable_stride": True, "chunk_size": 32, "chunk_midpoint_shift": True,
            "conv_mapping": True, "mask_noise": 0.01, "ff_mult": 3}},
        "bottleneck": {"type": "softnorm", "config": {"dim": 8, "noise_augment_dim": 0, "noise_regularize": True,
                                                      "auto_scale": True, "freeze": True}},
        "pretransform": {"type": "patched", "config": {"patch_size": 4, "channels": 2}},
        "latent_dim": 8, "downsampling_ratio": 64, "io_channels": 2,
    },
}


def model_config() -> dict:
    """A whole model_config.json around the SAME section (what the loader finds beside an SA3 file)."""
    return {"model_type": "diffusion_cond", "sample_rate": 44100, "audio_channels": 2,
            "model": {"pretransform": copy.deepcopy(PRETRANSFORM)}}


def draw(name: str, shape, g: torch.Generator) -> torch.Tensor:
    """One parameter's fixture value: near 1 for scales, small random otherwise."""
    if name.endswith(("gamma", "weight_g", "running_std", "scaling_factor")):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if name.endswith("alpha"):  # DyT's input scale (the reference starts it at 4)
        return 1 + 0.5 * torch.rand(shape, generator=g)
    return 0.3 * torch.randn(shape, generator=g)


def fixture_parameters(params: list, seed: int = SEED) -> dict[str, torch.Tensor]:
    """``[(name, shape), ...]`` (the reference's parameters, in the order recorded) → values."""
    g = torch.Generator().manual_seed(seed)
    return {name: draw(name, tuple(shape), g) for name, shape in params}
