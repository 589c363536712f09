"""Stable Audio 3 single files: recognise them, read their config, make a V2M checkpoint from one.

An SA3 ``model.safetensors`` (``stabilityai/stable-audio-3-small-music-base`` and family, or the
ComfyUI repackage ``models/checkpoints/stable_audio_3_*.safetensors``) holds:

* ``model.model.*``              the DiT (``stable_audio_3`` ``DiffusionTransformer``, adaLN, memory tokens)
* ``conditioner.conditioners.*`` ``seconds_total``'s number embedder, the prompt's ``padding_embedding``
  (and, only in checkpoints trained with a trainable text encoder, ``prompt.model.*``: T5Gemma, not used here)
* ``pretransform.model.*``       the SAME autoencoder (256 channels, 4096× at 44.1 kHz)

The JSON ``model_config.json`` of the Hugging Face repository sits beside the file there, but a
ComfyUI checkpoint carries none: the DiT config is then read off the tensor shapes, and the few
values weights cannot show come from the published SA3 configs (:data:`SA3_DEFAULTS`).

Also here: the key mapping between this layout and diffusers' ``StableAudio3DiTModel`` /
``StableAudio3DurationEmbedder`` (both directions; diffusers is a test-only oracle).
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ModelError
from ..core.model.architectures import SA3
from ..core.model.sa3 import LOCAL_ADD_IDS, SA3DiTConfig, sa3_conditioning_config
from ..core.model.same import SAMEConfig
from ..core.timing.spec import DEFAULT_MUSIC_ENCODER, CurveSpec
from .model_config import (MAX_CONFIG_BYTES, bundled_text_encoder_dir, number_range,  # noqa: F401  (re-exported)
                           read_reference_config, reference_config_path)
from .sao import CONDITIONER_PREFIX, DIT_PREFIX, PRETRANSFORM_PREFIX, split_sao_state_dict, widen_for_curve

SA3_SAMPLE_RATE = 44100
SA3_DOWNSAMPLING = 4096
SA3_LATENT_RATE = SA3_SAMPLE_RATE / SA3_DOWNSAMPLING  # 10.7666 Hz
#: keys that only an SA3 DiT has (adaLN modulation, memory tokens): what :mod:`.formats` recognises it by
SIGNATURE = (DIT_PREFIX + "transformer.global_cond_embedder.0.weight",
             DIT_PREFIX + "transformer.layers.0.to_scale_shift_gate")
TEXT_ENCODER_PREFIX = CONDITIONER_PREFIX + "prompt.model."

# What the published SA3 configs say where the weights are silent (stable_audio_3 reference,
# model_config.json of the small/medium repositories, diffusers' converter).
SA3_DEFAULTS = {
    "norm_eps": 1e-5, "norm_fp32": True, "qk_norm_eps": 1e-6, "timestep_features_type": "expo",
    "timestep_features_logsnr": False, "text_max_length": 256, "seconds_max": 384.0,
}

# Sampling defaults of the undistilled ("-base") SA3 models, recorded in V2M metadata.
# stable_audio_3: rectified_flow objective → Euler; no sampling_distribution_shift_options in the
# base configs → LogSNRShift(rate=0, anchor_logsnr=-6.2, logsnr_end=2.0): steps uniform in log-SNR
# between -6.2 and 2.0 whatever the length; docs: "use something like 50 steps" for -base models,
# "try cfg_scale 7.0"; diffusers' StableAudio3Pipeline: 100 steps for the base, same log-SNR range.
SA3_BASE_SAMPLING = {
    "steps": 50, "cfg_scale": 7.0, "uncond": "both",
    "schedule": {"type": "logsnr", "logsnr_min": -6.2, "logsnr_max": 2.0},
    "reference": {"guidance": "APG (apg_scale 1.0) in stable_audio_3; plain CFG here", "duration_padding_seconds": 6.0,
                  "diffusers_steps": 100},
}


class _Shape:
    def __init__(self, shape):
        self.shape = tuple(shape)


def header_shapes(file, prefix: str) -> dict[str, _Shape]:
    """Tensor shapes under ``prefix`` (stripped) from a safetensors header, without reading tensors."""
    return {k[len(prefix):]: _Shape(h["shape"]) for k, h in file.header.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------------------------
# the config


def _layers(sd: Mapping[str, Any], prefix: str) -> int:
    found = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    return max(found) + 1 if found else 0


def infer_sa3_dit_config(sd: Mapping[str, Any], name: str = "state dict") -> dict[str, Any]:
    """The DiT ``config`` block read off the tensor shapes of ``model.model.*`` (plus SA3's silent defaults)."""
    def shape(key):
        if DIT_PREFIX + key not in sd:
            raise ModelError(f"{name}: not a Stable Audio 3 DiT (no {DIT_PREFIX + key!r})")
        return tuple(sd[DIT_PREFIX + key].shape)

    embed, t_dim = shape("to_timestep_embed.0.weight")
    head = (shape("transformer.layers.0.self_attn.q_norm.gamma")[0]
            if DIT_PREFIX + "transformer.layers.0.self_attn.q_norm.gamma" in sd else 64)
    qkv = shape("transformer.layers.0.self_attn.to_qkv.weight")[0]
    io = shape("postprocess_conv.weight")[0]
    dim_in = shape("preprocess_conv.weight")[0]
    cfg: dict[str, Any] = {
        "io_channels": io, "embed_dim": embed, "depth": _layers(sd, DIT_PREFIX + "transformer.layers."),
        "num_heads": embed // head, "cond_token_dim": shape("to_cond_embed.0.weight")[1],
        "project_cond_tokens": shape("to_cond_embed.0.weight")[0] == embed,
        "global_cond_dim": shape("to_global_embed.0.weight")[1], "input_concat_dim": dim_in - io,
        "patch_size": shape("transformer.project_in.weight")[1] // dim_in,
        "num_memory_tokens": (shape("transformer.memory_tokens")[0]
                              if DIT_PREFIX + "transformer.memory_tokens" in sd else 0),
        "timestep_features_type": ("learned" if DIT_PREFIX + "timestep_features.weight" in sd
                                   else SA3_DEFAULTS["timestep_features_type"]),
        "timestep_features_dim": t_dim, "timestep_features_logsnr": SA3_DEFAULTS["timestep_features_logsnr"],
        "global_cond_type": "adaLN", "norm_type": "rms_norm",
        "norm_kwargs": {"eps": SA3_DEFAULTS["norm_eps"], "force_fp32": SA3_DEFAULTS["norm_fp32"]},
        "attn_kwargs": {"qk_norm": ("rms" if DIT_PREFIX + "transformer.layers.0.self_attn.q_norm.gamma" in sd
                                    else "none"),
                        "qk_norm_eps": SA3_DEFAULTS["qk_norm_eps"], "differential": qkv == 5 * embed},
        "ff_kwargs": {"mult": shape("transformer.layers.0.ff.ff.0.proj.weight")[0] / (2 * embed)},
    }
    local = DIT_PREFIX + "transformer.layers.0.to_local_embed.0.weight"
    if local in sd:
        cfg["local_add_cond_dim"] = tuple(sd[local].shape)[1]
    return cfg


def sa3_model_config(sd: Mapping[str, Any], reference: Mapping[str, Any] | None = None,
                     name: str = "state dict") -> dict[str, Any]:
    """Our ``model_config`` (``architecture = stable_audio_3``) for an SA3 state dict.

    ``reference`` is the file's own ``model_config.json`` (its ``model`` block) when there is one:
    its DiT fields and conditioner settings win over what the shapes and defaults say.
    """
    ref = dict((reference or {}).get("model", reference or {}))
    ref_diff = dict(ref.get("diffusion") or {})
    dit = infer_sa3_dit_config(sd, name)
    if ref_diff.get("config"):
        dit = {**dit, **{k: v for k, v in ref_diff["config"].items() if k != "diffusion_objective"}}
    cfg = SA3DiTConfig.from_dict(dit)
    prompt = {"max_length": SA3_DEFAULTS["text_max_length"], "padding_mode": "zero"}
    if CONDITIONER_PREFIX + "prompt.padding_embedding" in sd:
        prompt["padding_mode"] = "learned"
    seconds = (0.0, SA3_DEFAULTS["seconds_max"])
    for item in (ref.get("conditioning") or {}).get("configs", []):
        c = item.get("config") or {}
        if item.get("id") == "prompt":
            prompt.update({k: c[k] for k in ("max_length", "padding_mode") if k in c})
        if item.get("id") == "seconds_total":  # absent keys: the reference NumberConditioner's defaults (0, 1)
            seconds = number_range(c, name)
    cond = sa3_conditioning_config(cfg.cond_token_dim, max_length=int(prompt["max_length"]),
                                   padding=prompt["padding_mode"], seconds_max=seconds[1], seconds_min=seconds[0],
                                   with_curve=cfg.input_concat_dim > 0)
    proj = sd.get(CONDITIONER_PREFIX + "prompt.proj_out.weight")  # T5Gemma's width when it differs from cond_dim
    cond["configs"][0]["config"]["text_dim"] = int(proj.shape[1]) if proj is not None else cfg.cond_token_dim
    diffusion: dict[str, Any] = {"type": "dit", "config": cfg.to_dict(),
                                 "cross_attention_cond_ids": ["prompt", "seconds_total"],
                                 "global_cond_ids": ["seconds_total"]}
    if cfg.local_add_cond_dim:
        diffusion["local_add_cond_ids"] = list(ref_diff.get("local_add_cond_ids") or LOCAL_ADD_IDS)
    if cfg.input_concat_dim:
        diffusion["input_concat_ids"] = list(ref_diff.get("input_concat_ids") or ["curve"])
    return {"architecture": SA3, "diffusion": diffusion, "conditioning": cond, "io_channels": cfg.io_channels}


def base_name(path: str | os.PathLike, sd_keys=()) -> str:
    """A readable name of the SA3 base a file is (from its file name; the weights do not say)."""
    stem = Path(path).stem.lower().replace("_", "-")
    for name in ("small-music-base", "small-sfx-base", "medium-base", "small-music", "small-sfx", "medium"):
        if stem.endswith(name) or name in stem:
            return f"stable-audio-3-{name}"
    return "stable-audio-3"


# --------------------------------------------------------------------------------------------
# V2M initialisation


def sa3_v2m_parts(path, *, curve: Mapping[str, Any] | None = None, reference: Mapping[str, Any] | None = None,
                  include_pretransform: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, meta)`` of a V2M checkpoint made from an SA3 file, in memory.

    The DiT is strictly checked against the config, widened by the curve channel (zero weights),
    and the metadata records objective ``rectified_flow``, SAME's latent rate, the text encoder
    (T5Gemma, 256 tokens), the codec spec and SA3's sampling defaults.
    """
    from ..core.model.sa3 import SA3DiT
    from .build import on_meta
    from .checkpoint import V2M_FORMAT, complete_dit_state_dict
    from .same import same_config_from_state_dict
    from .weights import SafetensorsFile, plain_weight_norm_names, read_safetensors

    file = path if isinstance(path, SafetensorsFile) else SafetensorsFile(path)
    name = os.fspath(file.path)
    if not all(k in file.header for k in SIGNATURE):  # the caller may hand any file (init-checkpoint --from sa3)
        found = ", ".join(sorted(file.keys())[:5]) or "no tensors"
        raise ModelError(f"{name}: not a Stable Audio 3 single file (no {SIGNATURE[0]!r}; first keys: {found}). Use "
                         "stable-audio-3-small-music-base's model.safetensors or ComfyUI's "
                         "models/checkpoints/stable_audio_3_*.safetensors.")
    if reference is None:
        reference = read_reference_config(file.path)
    skip = (TEXT_ENCODER_PREFIX,) + (() if include_pretransform else (PRETRANSFORM_PREFIX,))
    tensors, _ = read_safetensors(file, skip_prefixes=skip)
    # a file saved from ComfyUI's modules names SAME's weight norm parametrizations.weight.original0/1
    # (torch.nn.utils.parametrizations); the reference saves weight_g/weight_v: one naming from here on
    tensors = plain_weight_norm_names(tensors)
    parts = split_sao_state_dict(tensors)
    base_cfg = sa3_model_config(tensors, reference, name)
    base = on_meta(lambda: SA3DiT(base_cfg), name=name)
    dit_sd = complete_dit_state_dict(base, {**parts["dit"], **parts["conditioner"]}, source=name)
    state, cfg = widen_for_curve(dit_sd, base_cfg)
    codec: dict[str, Any] = {"type": "same"}
    shapes = plain_weight_norm_names(header_shapes(file, PRETRANSFORM_PREFIX))
    sample_rate = (reference or {}).get("sample_rate") or SA3_SAMPLE_RATE
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 384000:
        raise ModelError(f"{name}: model_config.json sample_rate {sample_rate!r} is not an integer in [8000, 384000]. "
                         "Fix: use the model's own model_config.json.")
    latent_rate = sample_rate / SA3_DOWNSAMPLING
    if shapes:
        ref_model = dict((reference or {}).get("model", reference or {}))
        codec["config"] = same_config_from_state_dict(shapes, reference=ref_model.get("pretransform"), name=name)
        codec["config"]["sample_rate"] = sample_rate
        latent_rate = sample_rate / SAMEConfig.from_dict(codec["config"]).downsampling_ratio
        state.update(parts["pretransform"])
    text = next(c["config"] for c in cfg["conditioning"]["configs"] if c["id"] == "prompt")
    meta = {
        "v2m_format": V2M_FORMAT, "model_config": cfg, "objective": "rectified_flow",
        "latent_rate": latent_rate, "sample_rate": sample_rate,
        "curve": CurveSpec.from_dict({**CurveSpec(music_encoder=DEFAULT_MUSIC_ENCODER).to_dict(),
                                      **dict(curve or {})}).to_dict(),
        "codec": codec, "text": {"type": "t5gemma", "max_length": int(text["max_length"])},
        "sampling": copy.deepcopy(SA3_BASE_SAMPLING),
        "base": {"name": base_name(name), "source_file": os.path.basename(name),
                 "licence": "Stability AI Community License"},
    }
    return state, meta


def init_from_sa3(path, out, *, curve: Mapping[str, Any] | None = None, include_pretransform: bool = True,
                  dtype=None) -> dict[str, Any]:
    """SA3 file → V2M checkpoint at ``out`` (see :func:`sa3_v2m_parts`). Returns the metadata written."""
    from .checkpoint import save_v2m_checkpoint

    state, meta = sa3_v2m_parts(path, curve=curve, include_pretransform=include_pretransform)
    if dtype is not None:
        state = {k: (v.to(dtype) if v.is_floating_point() and not k.endswith("inv_freq") else v)
                 for k, v in state.items()}
    save_v2m_checkpoint(out, state, meta)
    return meta


# --------------------------------------------------------------------------------------------
# reference layout <-> diffusers (StableAudio3DiTModel, StableAudio3DurationEmbedder)

_TOP = [("transformer.project_in.", "proj_in."), ("transformer.project_out.", "proj_out."),
        ("transformer.memory_tokens", "memory_tokens"), ("transformer.rotary_pos_emb.", "rotary_pos_emb."),
        ("transformer.global_cond_embedder.", "global_cond_embedder."), ("to_timestep_embed.", "to_timestep_embed."),
        ("to_cond_embed.", "to_cond_embed."), ("to_global_embed.", "to_global_embed."),
        ("preprocess_conv.", "preprocess_conv."), ("postprocess_conv.", "postprocess_conv.")]
_FF = [("ff.ff.0.proj.", "ff.proj_in."), ("ff.ff.2.", "ff.proj_out.")]
PADDING_KEY = CONDITIONER_PREFIX + "prompt.padding_embedding"
SECONDS_PREFIX = CONDITIONER_PREFIX + "seconds_total.embedder.embedding.1."


def _swap(key: str, pairs, forward: bool) -> str | None:
    for a, b in pairs:
        src, dst = (a, b) if forward else (b, a)
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def _qkv_order(w, to_diffusers: bool):
    """Differential fused self-attention rows: reference ``[q|k|v|q2|k2]`` ↔ diffusers ``[q|q2|k|k2|v]``."""
    import torch

    p = w.chunk(5, dim=0)
    return torch.cat([p[0], p[3], p[1], p[4], p[2]] if to_diffusers else [p[0], p[2], p[4], p[1], p[3]], dim=0)


def dit_to_diffusers(sd: Mapping[str, Any]) -> dict[str, Any]:
    """``model.model.*`` (+ the prompt's padding embedding) → ``StableAudio3DiTModel`` keys."""
    out: dict[str, Any] = {}
    for key, v in sd.items():
        if key == PADDING_KEY:
            out["prompt_padding_embedding"] = v
            continue
        if not key.startswith(DIT_PREFIX):
            continue
        k = key[len(DIT_PREFIX):]
        m = re.match(r"transformer\.layers\.(\d+)\.(.+)$", k)
        if m:
            rest = _swap(m.group(2), _FF, True) or m.group(2)
            if rest == "self_attn.to_qkv.weight" and v.shape[0] == 5 * v.shape[1]:
                v = _qkv_order(v, True)
            out[f"transformer_blocks.{m.group(1)}.{rest}"] = v
            continue
        new = _swap(k, _TOP, True)
        if new is None:
            raise ModelError(f"no diffusers name for SA3 DiT key {key!r}")
        out[new] = v
    return out


def dit_from_diffusers(sd: Mapping[str, Any]) -> dict[str, Any]:
    """``StableAudio3DiTModel`` keys → ``model.model.*`` and the prompt's padding embedding."""
    out: dict[str, Any] = {}
    for k, v in sd.items():
        if k == "prompt_padding_embedding":
            out[PADDING_KEY] = v
            continue
        m = re.match(r"transformer_blocks\.(\d+)\.(.+)$", k)
        if m:
            rest = _swap(m.group(2), _FF, False) or m.group(2)
            if rest == "self_attn.to_qkv.weight" and v.shape[0] == 5 * v.shape[1]:
                v = _qkv_order(v, False)
            out[f"{DIT_PREFIX}transformer.layers.{m.group(1)}.{rest}"] = v
            continue
        new = _swap(k, _TOP, False)
        if new is None:
            raise ModelError(f"no SA3 reference name for diffusers key {k!r}")
        out[DIT_PREFIX + new] = v
    return out


def seconds_to_diffusers(sd: Mapping[str, Any], min_freq: float = 0.5, max_freq: float = 10000.0) -> dict[str, Any]:
    """``conditioner.conditioners.seconds_total.*`` → ``StableAudio3DurationEmbedder`` keys (``freqs`` rebuilt)."""
    import torch

    out = {"linear." + k[len(SECONDS_PREFIX):]: v for k, v in sd.items() if k.startswith(SECONDS_PREFIX)}
    if "linear.weight" not in out:
        raise ModelError("no seconds_total number embedder in the state dict")
    half = out["linear.weight"].shape[1] // 2
    ramp = torch.linspace(0.0, 1.0, half)
    out["freqs"] = torch.exp(ramp * (math.log(max_freq) - math.log(min_freq)) + math.log(min_freq))
    return out


def seconds_from_diffusers(sd: Mapping[str, Any]) -> dict[str, Any]:
    return {SECONDS_PREFIX + k[len("linear."):]: v for k, v in sd.items() if k.startswith("linear.")}


# --------------------------------------------------------------------------------------------
# the fine-tuning preset (for ``train --example --base sa3``, which builds on the fine-tune road)

# Linear layers a LoRA adapts in SA3's DiT (names relative to ``model.model.transformer.layers.N``): each
# block's attention and MLP projections. The curve's new weights (``preprocess_conv`` and
# ``transformer.project_in``) are trained in full.
#
# stable_audio_3's own LoRA trainer (scripts/train_lora.py @ 636f906) does more by default: with no
# --include/--exclude it parametrises every nn.Linear and nn.Conv1d of the DiT *and* of the conditioner
# (timestep, global and cross-attention embedders, adaLN's global_cond_embedder, local-add embedders,
# project_in/out, the pre/post convs, seconds_total's number embedder), with DoRA rows (--adapter_type
# default "dora-rows"), rank 16, alpha = rank. Chosen here instead: the projections inside the blocks only,
# as plain LoRA. Why: V2M adds one thing, following a timing curve, which enters through the new input
# weights (trained in full) and is mixed in by attention and the MLPs; leaving the conditioning embedders
# alone keeps prompt, timestep and seconds_total conditioning exactly the base's (the reference's own docs
# advise --exclude seconds_total on small datasets against "conditioner hijacking"), and plain LoRA keeps
# adapters mergeable and loadable by our adapter code and peft's names.
SA3_LORA_TARGETS = ("self_attn.to_qkv", "self_attn.to_out", "cross_attn.to_q", "cross_attn.to_kv", "cross_attn.to_out",
                    "ff.ff.0.proj", "ff.ff.2")
SA3_FULL_TRAIN = ("model.model.preprocess_conv.weight", "model.model.transformer.project_in.weight")
SA3_SMALL_WINDOW_SECONDS = 5292032 / SA3_SAMPLE_RATE  # stable_audio_3 generate()'s sample_size for small: 120 s


def sa3_train_preset(checkpoint: str | None = None, text_encoder: str | None = None) -> dict[str, Any]:
    """What fine-tuning an SA3 base the paper's way needs, as data (the preset's values).

    ``checkpoint`` is the SA3 file or a V2M checkpoint made from one (its SAME is the codec);
    ``text_encoder`` a T5Gemma folder or ComfyUI's file. Objective: SA3's own rectified flow (no
    change of variables, unlike SAO 1.0). The reference LoRA trainer samples t from a flipped,
    truncated logit-normal and shifts it by length (``DistributionShift``); our trainer's
    ``logit_normal`` is the nearest it has (recorded under ``reference``).
    """
    return {
        "base": "sa3", "checkpoint": checkpoint, "objective": "rectified_flow",
        "codec": {"type": "same", "path": checkpoint}, "sample_rate": SA3_SAMPLE_RATE, "latent_rate": SA3_LATENT_RATE,
        "latent_channels": 256, "clip_seconds": SA3_SMALL_WINDOW_SECONDS,
        "text": {"encoder": text_encoder, "type": "t5gemma", "max_length": 256},
        "music_encoder": "musicfm", "curve": {"smoothing_seconds": CurveSpec().smoothing_seconds},
        "train": {"t_sampling": "logit_normal", "p_drop_text": 0.1, "p_drop_curve": 0.1, "lr": 1e-4},
        "lora": {"rank": 16, "alpha": 16, "targets": list(SA3_LORA_TARGETS), "train_in_full": list(SA3_FULL_TRAIN)},
        "sampling": copy.deepcopy(SA3_BASE_SAMPLING),
        "reference": {"t_sampling": "trunc_logit_normal, flipped, then DistributionShift(full) by length",
                      "optimizer": "AdamW lr 1e-4, betas (0.9, 0.95), weight decay 0.01", "lora_rank": 16,
                      "lora_targets": "every nn.Linear and nn.Conv1d of the DiT and the conditioner, DoRA rows "
                                      "(scripts/train_lora.py defaults); here: the blocks' projections, plain LoRA"},
    }
