"""Stable Audio Open 1.0: its single-file layout, its default config, and the V2M initialisation.

``model.safetensors`` from ``stabilityai/stable-audio-open-1.0`` holds three parts:

* ``model.model.*``              the DiT (stable-audio-tools ``DiffusionTransformer``, ≈1.06 B params)
* ``conditioner.conditioners.*`` the ``seconds_start``/``seconds_total`` number embedders
* ``pretransform.model.*``       the Oobleck VAE (64 latent channels, 2048× downsampling at 44.1 kHz)

T5-base (the prompt encoder) is not in the file. ``init_from_sao`` widens the DiT by the event
curve channel and writes a V2M checkpoint that keeps the same layout (pretransform included, so
the codec can be read from the same file).

Also here: the key mapping between the stable-audio-tools DiT layout and diffusers'
``StableAudioDiTModel`` / ``StableAudioProjectionModel`` (both directions).
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any, Mapping

from ..core.errors import ModelError
from ..core.timing.curves import SAO_LATENT_RATE
from ..core.timing.spec import DEFAULT_MUSIC_ENCODER, CurveSpec

SAO1_SAMPLE_RATE = 44100
SAO1_DOWNSAMPLING = 2048

DIT_PREFIX = "model.model."
CONDITIONER_PREFIX = "conditioner.conditioners."
PRETRANSFORM_PREFIX = "pretransform.model."



def sao1_model_config(with_curve: bool = False) -> dict[str, Any]:
    """The ``model`` block of SAO 1.0's ``model_config.json`` (DiT + conditioning; the
    pretransform's own config is recorded for the codec loader)."""
    cfg: dict[str, Any] = {
        "diffusion": {
            "type": "dit",
            "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
            "global_cond_ids": ["seconds_start", "seconds_total"],
            "config": {
                "io_channels": 64,
                "embed_dim": 1536,
                "depth": 24,
                "num_heads": 24,
                "cond_token_dim": 768,
                "global_cond_dim": 1536,
                "project_cond_tokens": False,
                "transformer_type": "continuous_transformer",
            },
        },
        "conditioning": {
            "configs": [
                {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
                {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
            ],
            "cond_dim": 768,
        },
        "pretransform": {
            "type": "autoencoder",
            "config": {
                "encoder": {"type": "oobleck",
                            "config": {"in_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16],
                                       "strides": [2, 4, 4, 8, 8], "latent_dim": 128, "use_snake": True}},
                "decoder": {"type": "oobleck",
                            "config": {"out_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16],
                                       "strides": [2, 4, 4, 8, 8], "latent_dim": 64, "use_snake": True,
                                       "final_tanh": False}},
                "bottleneck": {"type": "vae"},
                "latent_dim": 64,
                "downsampling_ratio": SAO1_DOWNSAMPLING,
                "io_channels": 2,
            },
        },
        "io_channels": 64,
        "sample_rate": SAO1_SAMPLE_RATE,
        "sample_size": 2097152,
    }
    if with_curve:
        d = cfg["diffusion"]
        d["config"]["input_concat_dim"] = 1
        d["input_concat_ids"] = ["curve"]
        cfg["conditioning"]["configs"].append({"id": "curve", "type": "curve", "config": {"channels": 1}})
    return cfg


def widen_for_curve(
    state_dict: Mapping[str, Any], model_config: Mapping[str, Any], channels: int = 1, curve_id: str = "curve"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add ``channels`` input-concat channels (the event curve) with zero weights.

    stable-audio-tools concatenates input-concat conditioning *after* the latent channels, then
    applies ``x + preprocess_conv(x)`` over all channels and ``project_in``. So the new channel is
    index ``io_channels + old_concat_dim``; ``preprocess_conv.weight`` [C,C,1] → [C+k,C+k,1] and
    ``transformer.project_in.weight`` [D,C] → [D,C+k] gain zero rows/columns. The latent channels'
    path is then untouched and the curve reaches project_in only through zero weights: outputs
    are bit-identical until training moves those weights.
    """
    cfg = copy.deepcopy(dict(model_config))
    diff = cfg.setdefault("diffusion", {})
    dcfg = diff.setdefault("config", {})
    ids = list(diff.get("input_concat_ids", []))
    if curve_id in ids:
        raise ModelError(f"the model already has an input-concat conditioner {curve_id!r}")
    sd = dict(state_dict)
    conv_key = DIT_PREFIX + "preprocess_conv.weight"
    proj_key = DIT_PREFIX + "transformer.project_in.weight"
    for k in (conv_key, proj_key):
        if k not in sd:
            raise ModelError(f"cannot widen: {k} missing from the state dict")
    conv, proj = sd[conv_key], sd[proj_key]
    c = conv.shape[0]
    patch = int(dcfg.get("patch_size", 1))
    if proj.shape[1] != c * patch:
        raise ModelError(f"cannot widen: project_in {tuple(proj.shape)} does not match "
                         f"preprocess_conv {tuple(conv.shape)}")
    new_conv = conv.new_zeros(c + channels, c + channels, conv.shape[2])
    new_conv[:c, :c] = conv
    # project_in sees patches flattened as (channel, patch) pairs: channel-major, patch-minor
    d = proj.shape[0]
    new_proj = proj.new_zeros(d, c + channels, patch)
    new_proj[:, :c] = proj.reshape(d, c, patch)
    sd[conv_key] = new_conv
    sd[proj_key] = new_proj.reshape(d, (c + channels) * patch)
    dcfg["input_concat_dim"] = int(dcfg.get("input_concat_dim", 0)) + channels
    diff["input_concat_ids"] = ids + [curve_id]
    cond = cfg.setdefault("conditioning", {"configs": [], "cond_dim": dcfg.get("cond_token_dim", 768)})
    if not any(item.get("id") == curve_id for item in cond.setdefault("configs", [])):
        cond["configs"].append({"id": curve_id, "type": "curve", "config": {"channels": channels}})
    return sd, cfg


def split_sao_state_dict(state_dict: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Split a stable-audio-tools single-file state dict into ``dit``/``conditioner``/``pretransform``
    parts (keys keep their full prefixes) and ``other`` (anything else)."""
    parts: dict[str, dict[str, Any]] = {"dit": {}, "conditioner": {}, "pretransform": {}, "other": {}}
    for k, v in state_dict.items():
        if k.startswith(DIT_PREFIX):
            parts["dit"][k] = v
        elif k.startswith(CONDITIONER_PREFIX):
            parts["conditioner"][k] = v
        elif k.startswith(PRETRANSFORM_PREFIX):
            parts["pretransform"][k] = v
        else:
            parts["other"][k] = v
    return parts


def load_sao_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read SAO 1.0's ``model.safetensors`` and split it (see :func:`split_sao_state_dict`)."""
    from .weights import read_safetensors

    tensors, _ = read_safetensors(path)
    parts = split_sao_state_dict(tensors)
    if not parts["dit"]:
        found = ", ".join(sorted(tensors)[:5]) or "no tensors"
        raise ModelError(
            f"{path}: no '{DIT_PREFIX}*' keys, so this is not a stable-audio-tools single-file model "
            f"(first keys: {found}). Use stable-audio-open-1.0's model.safetensors."
        )
    return parts


def _sao_meta(cfg: Mapping[str, Any], source: str, curve: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """V2M metadata of a SAO 1.0-family model widened by the curve channel."""
    from .checkpoint import V2M_FORMAT

    return {
        "v2m_format": V2M_FORMAT,
        "model_config": dict(cfg),
        "objective": "v",
        "latent_rate": SAO_LATENT_RATE,
        "sample_rate": SAO1_SAMPLE_RATE,
        # the paper's curve (DINOv2-L video features, MusicFM music features, 2.52 s Hann), with overrides
        "curve": CurveSpec.from_dict({**CurveSpec(music_encoder=DEFAULT_MUSIC_ENCODER).to_dict(),
                                      **dict(curve or {})}).to_dict(),
        "base": {"name": "stable-audio-open-1.0", "source_file": os.path.basename(source)},
    }


def _widened_state(parts: Mapping[str, Mapping[str, Any]], base_cfg: Mapping[str, Any], source: str):
    """The DiT + conditioner tensors strictly checked against ``base_cfg``, then widened (zero curve channel)."""
    from ..core.model.dit import V2MDiT
    from .build import on_meta
    from .checkpoint import complete_dit_state_dict

    base = on_meta(lambda: V2MDiT(copy.deepcopy(dict(base_cfg))), name=source)
    dit_sd = complete_dit_state_dict(base, {**parts["dit"], **parts["conditioner"]}, source=source)
    return widen_for_curve(dit_sd, base_cfg)


def init_from_sao(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    curve: Mapping[str, Any] | None = None,
    include_pretransform: bool = True,
    dtype=None,
    base_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """SAO 1.0 file → V2M checkpoint: DiT widened by the curve channel (zero weights), objective
    ``v``, latent rate 44100/2048, curve spec defaults. Returns the metadata written.

    ``base_config`` replaces SAO 1.0's model config for other members of the family (same
    layout, other sizes); the file's weights are strictly checked against it either way."""
    from .checkpoint import save_v2m_checkpoint

    parts = load_sao_file(path)
    base_cfg = copy.deepcopy(dict(base_config)) if base_config is not None else sao1_model_config(with_curve=False)
    widened, cfg = _widened_state(parts, base_cfg, str(path))
    state = dict(widened)
    if include_pretransform:
        state.update(parts["pretransform"])
    if dtype is not None:
        state = {k: (v.to(dtype) if v.is_floating_point() and not k.endswith("inv_freq") else v)
                 for k, v in state.items()}
    meta = _sao_meta(cfg, str(path), curve)
    save_v2m_checkpoint(out, state, meta)
    return meta


# --------------------------------------------------------------------------------------------
# a SAO 1.0 file used directly as a base (ComfyUI's models/checkpoints), widened in memory

#: Shown wherever a widened base is used: its curve channel has zero weights.
SAO_BASE_NOTE = ("Stable Audio Open 1.0 used as a base: the event-curve channel was added with zero weights, so the "
                 "music ignores the video's timing until the model is fine-tuned on music curves "
                 "(V2M_Train / v2m-zero train)")
#: keys every SAO 1.0-layout file has (what :mod:`.formats` recognises it by)
SAO_ANCHORS = (DIT_PREFIX + "preprocess_conv.weight", DIT_PREFIX + "transformer.project_in.weight",
                DIT_PREFIX + "transformer.layers.0.self_attn.to_qkv.weight", CONDITIONER_PREFIX + "seconds_total.")


def sao_config_from_header(file) -> dict[str, Any]:
    """The model config of a SAO-family file, read off its tensor shapes: SAO 1.0's own config when
    the sizes are SAO 1.0's, else the same layout at the file's sizes (smaller family members, tests).
    SAO's attention heads are 64 wide, so the head count is the width / 64 (at least 1)."""
    from ..core.model.dit import make_model_config

    h = file.header
    io, dim = h[SAO_ANCHORS[1]]["shape"][1], h[SAO_ANCHORS[1]]["shape"][0]
    depth = 1 + max(int(m.group(1)) for k in h
                    for m in [re.match(re.escape(DIT_PREFIX) + r"transformer\.layers\.(\d+)\.", k)] if m)
    cond = h[DIT_PREFIX + "transformer.layers.0.cross_attn.to_kv.weight"]["shape"][1]
    glob = next((v["shape"][1] for k, v in h.items() if k.startswith(DIT_PREFIX + "to_global_embed.0.weight")),
                2 * cond)
    sao1 = sao1_model_config(with_curve=False)
    d = sao1["diffusion"]["config"]
    if (io, dim, depth, cond, glob) == (d["io_channels"], d["embed_dim"], d["depth"], d["cond_token_dim"],
                                        d["global_cond_dim"]):
        return sao1
    return make_model_config(io_channels=io, embed_dim=dim, depth=depth, num_heads=max(1, dim // 64),
                             cond_token_dim=cond, global_cond_dim=glob, project_cond_tokens=False)


def load_sao_as_v2m(path, *, device="cpu", dtype=None):
    """A SAO 1.0 file → a V2M DiT with the zero curve channel, built in memory (nothing is written).

    :func:`.formats.read_dit` calls this for files it recognised as SAO 1.0 single files. The
    returned model carries ``.objective`` (``v``) and ``.meta`` (as :func:`init_from_sao` would
    write, plus ``"note"``: :data:`SAO_BASE_NOTE`). The codec stays in the file (``pretransform``)."""
    from ..core.model.dit import V2MDiT
    from .build import build_with_weights
    from .weights import SafetensorsFile, read_safetensors

    file = path if isinstance(path, SafetensorsFile) else SafetensorsFile(path)
    name = str(file.path)
    tensors, _ = read_safetensors(file, skip_prefixes=(PRETRANSFORM_PREFIX,))
    widened, cfg = _widened_state(split_sao_state_dict(tensors), sao_config_from_header(file), name)
    # the rotary frequencies stay float32 under a dtype cast (as for every DiT)
    model = build_with_weights(lambda: V2MDiT(cfg, objective="v"), widened, name=name, device=device, dtype=dtype)
    model.meta = {**_sao_meta(cfg, name), "note": SAO_BASE_NOTE}
    return model


# --------------------------------------------------------------------------------------------
# stable-audio-tools <-> diffusers key mapping (StableAudioDiTModel, StableAudioProjectionModel)

_BLOCK_RENAMES = [
    ("pre_norm.gamma", "norm1.weight"), ("pre_norm.beta", "norm1.bias"),
    ("cross_attend_norm.gamma", "norm2.weight"), ("cross_attend_norm.beta", "norm2.bias"),
    ("ff_norm.gamma", "norm3.weight"), ("ff_norm.beta", "norm3.bias"),
    ("self_attn.to_out.weight", "attn1.to_out.0.weight"),
    ("cross_attn.to_out.weight", "attn2.to_out.0.weight"),
    ("cross_attn.to_q.weight", "attn2.to_q.weight"),
    ("ff.ff.0.proj.weight", "ff.net.0.proj.weight"), ("ff.ff.0.proj.bias", "ff.net.0.proj.bias"),
    ("ff.ff.2.weight", "ff.net.2.weight"), ("ff.ff.2.bias", "ff.net.2.bias"),
]
_TOP_RENAMES = [
    ("to_timestep_embed.", "timestep_proj."),
    ("to_global_embed.", "global_proj."),
    ("to_cond_embed.", "cross_attention_proj."),
    ("transformer.project_in.", "proj_in."),
    ("transformer.project_out.", "proj_out."),
    ("preprocess_conv.", "preprocess_conv."),
    ("postprocess_conv.", "postprocess_conv."),
]
_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.(.+)$")


def dit_to_diffusers(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``model.model.*`` (stable-audio-tools) → ``StableAudioDiTModel`` keys. The rotary
    ``inv_freq`` buffer is dropped (diffusers takes rotary embeddings as an input)."""
    import torch

    out: dict[str, Any] = {}
    for key, v in state_dict.items():
        if not key.startswith(DIT_PREFIX):
            continue
        k = key[len(DIT_PREFIX):]
        if k == "transformer.rotary_pos_emb.inv_freq":
            continue
        if k == "timestep_features.weight":
            out["time_proj.weight"] = v.reshape(-1)
            continue
        m = _LAYER.match(k)
        if m:
            i, rest = m.groups()
            pre = f"transformer_blocks.{i}."
            if rest == "self_attn.to_qkv.weight":
                q, kk, vv = torch.chunk(v, 3, dim=0)
                (out[pre + "attn1.to_q.weight"], out[pre + "attn1.to_k.weight"],
                 out[pre + "attn1.to_v.weight"]) = q, kk, vv
                continue
            if rest == "cross_attn.to_kv.weight":
                kk, vv = torch.chunk(v, 2, dim=0)
                out[pre + "attn2.to_k.weight"], out[pre + "attn2.to_v.weight"] = kk, vv
                continue
            for a, b in _BLOCK_RENAMES:
                if rest == a:
                    out[pre + b] = v
                    break
            else:
                raise ModelError(f"no diffusers name for DiT key {key!r}")
            continue
        for a, b in _TOP_RENAMES:
            if k.startswith(a):
                out[b + k[len(a):]] = v
                break
        else:
            raise ModelError(f"no diffusers name for DiT key {key!r}")
    return out


def dit_from_diffusers(state_dict: Mapping[str, Any], rotary_dim: int = 32) -> dict[str, Any]:
    """``StableAudioDiTModel`` keys → ``model.model.*``; the rotary buffer is recreated."""
    import torch

    out: dict[str, Any] = {}
    pending: dict[str, dict[str, Any]] = {}
    block = re.compile(r"^transformer_blocks\.(\d+)\.(.+)$")
    for k, v in state_dict.items():
        if k == "time_proj.weight":
            out[DIT_PREFIX + "timestep_features.weight"] = v.reshape(-1, 1)
            continue
        m = block.match(k)
        if m:
            i, rest = m.groups()
            pre = f"{DIT_PREFIX}transformer.layers.{i}."
            if rest in ("attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight", "attn2.to_k.weight",
                        "attn2.to_v.weight"):
                pending.setdefault(pre + rest.split(".")[0], {})[rest.split(".")[1]] = v
                continue
            for a, b in _BLOCK_RENAMES:
                if rest == b:
                    out[pre + a] = v
                    break
            else:
                raise ModelError(f"no stable-audio-tools name for diffusers key {k!r}")
            continue
        for a, b in _TOP_RENAMES:
            if k.startswith(b):
                out[DIT_PREFIX + a + k[len(b):]] = v
                break
        else:
            raise ModelError(f"no stable-audio-tools name for diffusers key {k!r}")
    for pre, qkv in pending.items():
        if pre.endswith("attn1"):
            out[pre[: -len("attn1")] + "self_attn.to_qkv.weight"] = torch.cat(
                [qkv["to_q"], qkv["to_k"], qkv["to_v"]], 0)
        else:
            out[pre[: -len("attn2")] + "cross_attn.to_kv.weight"] = torch.cat([qkv["to_k"], qkv["to_v"]], 0)
    out[DIT_PREFIX + "transformer.rotary_pos_emb.inv_freq"] = 1.0 / (
        10000 ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim)
    )
    return out


def conditioners_to_diffusers(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``conditioner.conditioners.seconds_{start,total}.*`` → ``StableAudioProjectionModel`` keys."""
    names = {"seconds_start": "start_number_conditioner", "seconds_total": "end_number_conditioner"}
    out: dict[str, Any] = {}
    for k, v in state_dict.items():
        if not k.startswith(CONDITIONER_PREFIX):
            continue
        cid, rest = k[len(CONDITIONER_PREFIX):].split(".", 1)
        if cid not in names:
            continue
        out[names[cid] + "." + rest.replace("embedder.embedding", "time_positional_embedding")] = v
    return out

