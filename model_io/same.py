"""Reading SAME autoencoders (Stable Audio 3): config from weights or JSON, public layouts, diffusers keys.

Layouts read by :func:`load_same`:

* an SA3 single file (``pretransform.model.*``; the DiT is not loaded), e.g. ComfyUI's
  ``models/checkpoints/stable_audio_3_small_music_base.safetensors`` or a V2M checkpoint made from one;
* a standalone SAME file (``stabilityai/SAME-S``: ``encoder.*``/``decoder.*``/``bottleneck.*``);
* a diffusers ``AutoencoderSAME`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
  or a pipeline folder with ``vae/``) or file with diffusers keys.

The stride of a block and the count of sine-gated decoder layers leave no trace in the weights
(SA3's blocks share one learned token whatever the stride): without a JSON config they come from
the published SAME-S / SAME-L configs (:data:`KNOWN`), keyed by width and depth.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.errors import ModelError
from ..core.model.same import SAMECodec, SAMEConfig
from .build import build_with_weights
from .folders import locate
from .model_config import read_reference_config
from .weights import SafetensorsFile, check_state_dict, plain_weight_norm_names, read_safetensors

PREFIX = "pretransform.model."
ANCHOR = "encoder.layers.0.new_tokens"
DIFFUSERS_ANCHOR = "encoder.blocks.0.new_tokens"
# (width of the first level, its depth) -> what the weights do not say: the published SAME-S (the codec
# of stable-audio-3-small-*: chunks of 32 frames with a half-chunk shift) and SAME-L (SA3 medium's:
# a sliding window of one group each side, 8 sine-gated decoder layers). Sources: stable_audio_3's
# MLX port (optimized/mlx/models/defs/same_{s,l}_*.py, "constants come from sa3-sm-music / sa3-medium").
KNOWN = {(768, 6): {"name": "SAME-S", "channels": 128, "decoder_sinusoidal_blocks": [0], "sliding_window": 0,
                    "chunk_size": 32, "chunk_midpoint_shift": True},
         (1536, 12): {"name": "SAME-L", "channels": 256, "decoder_sinusoidal_blocks": [8], "sliding_window": 1}}
SA3_STRIDE = 16
#: what decides how SAME's transformer sees its neighbours: never in the weights
ATTENTION_FIELDS = ("sliding_window", "chunk_size", "chunk_midpoint_shift")
# the reference constructors' defaults (TransformerResamplingBlock / SAMEEncoder): an absent key means these
REFERENCE_DEFAULTS = {"sliding_window": None, "chunk_size": 128, "chunk_midpoint_shift": False, "conv_mapping": False,
                      "variable_stride": False, "mapping_bias": True, "differential": True, "dim_heads": 128,
                      "ff_mult": 3, "dyt": True}
# reference options this implementation does not have: a config that turns one on is refused
UNSUPPORTED = ("conformer", "layer_scale", "cross_attn", "feat_scale", "causal")


def _count(sd, prefix: str, tail: str) -> int:
    found = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\." + re.escape(tail), k)] if m}
    return max(found) + 1 if found else 0


def _kernels(sd, part: str) -> set[int]:
    return {int(v.shape[-1]) for k, v in sd.items()
            if re.fullmatch(part + r"\.layers\.\d+\.mapping\.weight_v", k)}


def same_config_from_state_dict(sd: Mapping[str, torch.Tensor], reference: Mapping[str, Any] | None = None,
                                name: str = "state dict", stated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A :class:`SAMEConfig` dict for a SAME state dict (reference layout, prefix stripped).

    ``reference`` is the ``pretransform`` block of a ``model_config.json`` (or an AE-only config's
    ``model``): its values win (absent keys mean the reference constructors' defaults); ``stated``
    (e.g. from a diffusers ``config.json``) wins over the shapes too. Without either, the shapes
    say the sizes and both channel mappings (kernel 1 or 3); the attention layout (sliding window
    or chunks) is in no weight, so it comes from :data:`KNOWN` (SAME-S, SAME-L) or, for any other
    shapes, is an error that names the file and the fix.
    """
    if ANCHOR not in sd:
        raise ModelError(f"{name}: not a SAME autoencoder (no {ANCHOR!r}). Fix: give the Stable Audio 3 file, "
                         "a SAME-S/L file or a diffusers AutoencoderSAME folder.")
    levels = _count(sd, "encoder.layers.", "new_tokens")
    widths = [int(sd[f"encoder.layers.{i}.new_tokens"].shape[2]) for i in range(levels)]
    depths = [_count(sd, f"encoder.layers.{i}.transformers.", "pre_norm.gamma") for i in range(levels)]
    in_ch = (int(sd["encoder.layers.0.mapping.weight_v"].shape[1]) if "encoder.layers.0.mapping.weight_v" in sd
             else widths[0])
    known = KNOWN.get((widths[0], depths[0]), {})
    channels = known.get("channels") or math.gcd(*widths)
    qkv = sd["encoder.layers.0.transformers.0.self_attn.to_qkv.weight"].shape[0]
    dec_first = 3
    dec_tokens = sd.get(f"decoder.layers.{dec_first}.new_tokens")
    variable = dec_tokens is None or dec_tokens.shape[1] == 1
    strides = [SA3_STRIDE] * levels
    if not variable:
        strides = [int(sd[f"decoder.layers.{dec_first + levels - 1 - i}.new_tokens"].shape[1]) for i in range(levels)]
    mappings = {}
    for part in ("encoder", "decoder"):
        kernels = _kernels(sd, part)
        if len(kernels) > 1 or not kernels <= {1, 3}:
            raise ModelError(f"{name}: the {part}'s channel mappings have kernel sizes {sorted(kernels)}; "
                             "a SAME has 1 or 3 on each side. Fix: give an unmodified SAME file.")
        mappings[f"{part}_conv_mapping"] = kernels == {3}
    cfg: dict[str, Any] = {
        "audio_channels": 2, "patch_size": in_ch // 2, "channels": channels, "c_mults": [w // channels for w in widths],
        "strides": strides, "transformer_depths": depths, "latent_dim": int(sd["bottleneck.scaling_factor"].shape[1]),
        "dim_heads": int(sd["encoder.layers.0.transformers.0.self_attn.q_norm.gamma"].shape[0]),
        "differential": qkv == 5 * widths[0],
        "ff_mult": sd["encoder.layers.0.transformers.0.ff.ff.0.proj.weight"].shape[0] / (2 * widths[0]),
        "encoder_sinusoidal_blocks": [0], "variable_stride": variable,
        "decoder_sinusoidal_blocks": list(known.get("decoder_sinusoidal_blocks", [0])),
        "mapping_bias": "encoder.layers.0.mapping.bias" in sd, **mappings,
        "auto_scale": "bottleneck.running_std" in sd, "sample_rate": 44100,
    }
    cfg.update({k: known[k] for k in ATTENTION_FIELDS if k in known})
    cfg.update(_from_reference(reference, name))
    cfg.update(stated or {})
    if "sliding_window" not in cfg:
        raise ModelError(
            f"{name}: this SAME autoencoder ({widths[0]} channels, {depths[0]} layers) is neither SAME-S nor SAME-L, "
            "and its weights cannot say how its attention sees neighbours (a sliding window or chunks). "
            "Fix: put the model's model_config.json beside the file (the Hugging Face repository's, as "
            "`v2m-zero models download` fetches it), or load a V2M checkpoint that records its codec.")
    return SAMEConfig.from_dict(cfg).to_dict()


def _from_reference(ref: Mapping[str, Any] | None, name: str = "model_config.json") -> dict[str, Any]:
    """The fields a stable_audio_3 ``pretransform`` (or AE-only ``model``) config states, read as the
    reference reads them: a key the encoder's or decoder's config leaves out means the reference
    constructor's default (:data:`REFERENCE_DEFAULTS`). Values are bounded by :meth:`SAMEConfig.validate`."""
    if not ref:
        return {}
    if not isinstance(ref, Mapping):
        raise ModelError(f"{name}: the SAME config is not a JSON object. Fix: use the model's own model_config.json.")
    ae = ref.get("config", ref)
    parts = {}
    for part in ("encoder", "decoder", "bottleneck", "pretransform"):
        block = ae.get(part) if isinstance(ae, Mapping) else None
        block = block.get("config") if isinstance(block, Mapping) else None
        if block is not None and not isinstance(block, Mapping):
            raise ModelError(f"{name}: SAME {part} config is not a JSON object. Fix: use the model's own "
                             "model_config.json.")
        parts[part] = dict(block or {})
    for part in ("encoder", "decoder"):
        kind = ae.get(part, {}).get("type") if isinstance(ae, Mapping) and isinstance(ae.get(part), Mapping) else None
        if kind not in (None, "same"):
            raise ModelError(f"{name}: the model_config.json found with it describes a {kind!r} {part}, not SAME: it "
                             "belongs to another model. Fix: put the SA3 model's own model_config.json in the folder "
                             "named like the weights file (or remove the stray one).")
    enc, dec, bott, patch = parts["encoder"], parts["decoder"], parts["bottleneck"], parts["pretransform"]
    out: dict[str, Any] = {}
    if enc or dec:
        for part, c in (("encoder", enc), ("decoder", dec)):
            bad = [k for k in UNSUPPORTED if c.get(k)] + (["dyt: false"] if c.get("dyt", True) is False else [])
            if bad:
                raise ModelError(f"{name}: SAME {part} uses {', '.join(bad)}, which this loader does not implement. "
                                 "Fix: use a SAME-S or SAME-L model (stable-audio-3-small-* or -medium).")
        look = {part: {**REFERENCE_DEFAULTS, **c} for part, c in (("encoder", enc), ("decoder", dec))}
        for field in ("sliding_window", "chunk_size", "chunk_midpoint_shift", "variable_stride", "mapping_bias",
                      "differential", "dim_heads", "ff_mult"):
            if enc and dec and look["encoder"][field] != look["decoder"][field]:
                raise ModelError(f"{name}: SAME encoder and decoder differ in {field} "
                                 f"({look['encoder'][field]!r} vs {look['decoder'][field]!r}); this loader needs "
                                 "them equal. Fix: use the model's own model_config.json.")
        side = look["encoder"] if enc else look["decoder"]
        for field in ("channels", "c_mults", "strides", "transformer_depths", "latent_dim"):
            for c in (enc, dec):
                if field in c:
                    out[field] = c[field]
                    break
        for field in ("dim_heads", "differential", "ff_mult", "variable_stride", "mapping_bias", "chunk_size",
                      "chunk_midpoint_shift"):
            out[field] = side[field]
        sw = side["sliding_window"]
        if sw is None or sw == 0:
            out["sliding_window"] = 0
        else:
            sw = list(sw) if isinstance(sw, (list, tuple)) else [sw, sw]
            if len(sw) != 2 or sw[0] != sw[1]:
                raise ModelError(f"{name}: SAME sliding_window {sw}: only symmetric windows are supported")
            out["sliding_window"] = sw[0]
        if enc:
            out["encoder_conv_mapping"] = look["encoder"]["conv_mapping"]
            if "sinusoidal_blocks" in enc:
                out["encoder_sinusoidal_blocks"] = enc["sinusoidal_blocks"]
        if dec:
            out["decoder_conv_mapping"] = look["decoder"]["conv_mapping"]
            out["decoder_sinusoidal_blocks"] = dec.get("sinusoidal_blocks", [0])
    dec_block = ae.get("decoder") if isinstance(ae, Mapping) and isinstance(ae.get("decoder"), Mapping) else {}
    if "soft_clip" in dec_block:
        out["soft_clip"] = dec_block["soft_clip"]
    if "auto_scale" in bott:
        out["auto_scale"] = bott["auto_scale"]
    if "noise_augment_dim" in bott:
        out["noise_augment_dim"] = bott["noise_augment_dim"]
    if "patch_size" in patch:
        out["patch_size"] = patch["patch_size"]
    channels = patch.get("channels", ae.get("io_channels") if isinstance(ae, Mapping) else None)
    if channels is not None:
        out["audio_channels"] = channels
    rate = ref.get("sample_rate") or (ae.get("sample_rate") if isinstance(ae, Mapping) else None)
    if rate is not None:
        out["sample_rate"] = rate
    return out


def config_from_diffusers(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers ``AutoencoderSAME`` config.json → :class:`SAMEConfig` fields."""
    pick = {"audio_channels": "audio_channels", "patch_size": "patch_size", "channels": "encoder_channels",
            "c_mults": "encoder_c_mults", "strides": "encoder_strides",
            "transformer_depths": "encoder_transformer_depths", "latent_dim": "latent_dim",
            "differential": "use_differential_attention", "dim_heads": "dim_heads", "ff_mult": "ff_mult",
            "sliding_window": "sliding_window", "encoder_sinusoidal_blocks": "encoder_sinusoidal_blocks",
            "decoder_sinusoidal_blocks": "decoder_sinusoidal_blocks", "sample_rate": "sampling_rate"}
    out = {ours: (list(cfg[theirs]) if isinstance(cfg[theirs], (list, tuple)) else cfg[theirs])
           for ours, theirs in pick.items() if theirs in cfg}
    out.setdefault("sliding_window", 1)  # AutoencoderSAME has only the sliding window (default 1)
    return out


# --------------------------------------------------------------------------------------------
# reference layout <-> diffusers AutoencoderSAME

_TRB = [("pre_norm.", "norm_attn."), ("self_attn.", "attn."), ("ff_norm.", "norm_ff."),
        ("ff.ff.0.proj.", "ff.proj_in."), ("ff.ff.2.", "ff.proj_out.")]


def _qkv(w, to_diffusers: bool):
    p = w.chunk(5, dim=0)
    return torch.cat([p[0], p[3], p[1], p[4], p[2]] if to_diffusers else [p[0], p[2], p[4], p[1], p[3]], dim=0)


def _rename_trb(rest: str, v, to_diffusers: bool):
    m = re.match(r"transformers\.(\d+)\.(.+)$", rest)
    if not m:
        return rest, v  # mapping.*, new_tokens
    tail = m.group(2)
    for a, b in _TRB:
        src, dst = (a, b) if to_diffusers else (b, a)
        if tail.startswith(src):
            tail = dst + tail[len(src):]
            break
    if tail.endswith("to_qkv.weight") and v.shape[0] == 5 * v.shape[1]:
        v = _qkv(v, to_diffusers)
    return f"transformers.{m.group(1)}.{tail}", v


def same_to_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference SAME keys (no prefix) → ``AutoencoderSAME`` keys (per-block rotary buffers dropped)."""
    n = _count(sd, "encoder.layers.", "new_tokens")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.endswith("rope.inv_freq") or k == "bottleneck.noise_scaling_factor":
            continue
        if k.startswith("bottleneck."):
            out[k.replace("scaling_factor", "scale")] = v
            continue
        part, i, rest = re.match(r"(encoder|decoder)\.layers\.(\d+)\.(.+)$", k).groups()
        i = int(i)
        if part == "encoder" and i == n + 1 or part == "decoder" and i == 1:
            out[f"{part}.proj.{rest}"] = v
            continue
        rest, v = _rename_trb(rest, v, True)
        out[f"{part}.blocks.{i if part == 'encoder' else i - 3}.{rest}"] = v
    return out


def same_from_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``AutoencoderSAME`` keys → reference keys (per-block rotary buffers rebuilt)."""
    n = _count(sd, "encoder.blocks.", "new_tokens")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith("bottleneck."):
            out[k.replace(".scale", ".scaling_factor")] = v
            continue
        part, kind, rest = re.match(r"(encoder|decoder)\.(proj|blocks)\.(.+)$", k).groups()
        if kind == "proj":
            out[f"{part}.layers.{n + 1 if part == 'encoder' else 1}.{rest}"] = v
            continue
        i, rest = rest.split(".", 1)
        rest, v = _rename_trb(rest, v, False)
        out[f"{part}.layers.{int(i) + (0 if part == 'encoder' else 3)}.{rest}"] = v
        m = re.match(r"transformers\.(\d+)\.self_attn\.q_norm\.gamma$", rest)
        if m:
            rot = v.shape[0] // 2
            out[f"{part}.layers.{int(i) + (0 if part == 'encoder' else 3)}.transformers.{m.group(1)}.rope.inv_freq"] = \
                1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    out.setdefault("bottleneck.noise_scaling_factor", torch.ones(1, 0, 1))
    return out


# --------------------------------------------------------------------------------------------
# loading


def _source(path: Path) -> tuple[Path, dict]:
    """A diffusers folder → (weights file, config.json); a file → (file, {})."""
    if not path.is_dir():
        return path, {}
    found = locate(path, names=("diffusion_pytorch_model.safetensors", "model.safetensors"), subfolders=("vae",))
    if found is not None:
        config = found.parent / "config.json"
        return found, json.loads(config.read_text()) if config.is_file() else {}
    folder = path / "vae" if (path / "vae").is_dir() else path
    raise ModelError(f"{folder}: no diffusion_pytorch_model.safetensors or model.safetensors. "
                     "Fix: put the SAME weights (safetensors) there, or give the Stable Audio 3 file itself.")


def find_same_prefix(keys) -> tuple[str, bool] | None:
    """``(prefix, diffusers_layout)`` of SAME weights among ``keys``, or None."""
    for k in keys:
        for anchor, diff in ((ANCHOR, False), (DIFFUSERS_ANCHOR, True)):
            if k.endswith(anchor) and (k == anchor or k[-len(anchor) - 1] == "."):
                return k[: len(k) - len(anchor)], diff
    return None


def load_same(path, *, config: Mapping[str, Any] | None = None, device: Any = "cpu",
              dtype: torch.dtype = torch.float32) -> SAMECodec:
    """Load a SAME codec (eval mode, no gradients) from any layout above; ``config`` (a
    :class:`SAMEConfig` dict, e.g. a checkpoint's codec spec) overrides what is read or inferred."""
    side: dict = {}
    if isinstance(path, SafetensorsFile):
        file = path
    else:
        src = Path(path)
        if not src.exists():
            raise ModelError(f"{src}: SAME weights not found. Fix: give the Stable Audio 3 model.safetensors "
                             "(or ComfyUI's models/checkpoints/stable_audio_3_*.safetensors), a SAME-S file, "
                             "or a diffusers folder.")
        src, side = _source(src)
        file = SafetensorsFile(src)
    found = find_same_prefix(file.keys())
    if found is None:
        raise ModelError(f"{file.path}: no SAME autoencoder weights (expected keys like '{PREFIX}{ANCHOR}'; "
                         f"first keys: {', '.join(file.keys()[:5])}). "
                         "Fix: give a Stable Audio 3 file or a SAME-S/L file.")
    prefix, diffusers_layout = found
    sd, _ = read_safetensors(file, prefix=prefix or None)
    if diffusers_layout:
        sd = same_from_diffusers(sd)
    else:  # weight norm saved from ComfyUI's modules (parametrizations.weight.original0/1) as the reference names it
        sd = plain_weight_norm_names(sd)
    if not config and "v2m_format" in file.metadata:  # a V2M checkpoint records its codec's config
        from .checkpoint import json_metadata

        codec = json_metadata(file.metadata).get("codec")
        if isinstance(codec, Mapping) and codec.get("type") == "same" and isinstance(codec.get("config"), Mapping):
            config = codec["config"]
    if config:
        cfg = dict(config)
    else:
        reference = None
        if not diffusers_layout:
            found_ref = read_reference_config(file.path)
            if found_ref is not None:
                model = found_ref.get("model", found_ref) if isinstance(found_ref, Mapping) else found_ref
                # as the reference's factory: an AE-only config (SAME-S/L) has encoder/decoder at the top
                reference = (model if not isinstance(model, Mapping) or "encoder" in model
                             else model.get("pretransform"))
                if isinstance(reference, Mapping) and isinstance(found_ref, Mapping) and "sample_rate" in found_ref:
                    reference = {**reference, "sample_rate": found_ref["sample_rate"]}
        stated = config_from_diffusers(side) if side else ({"sliding_window": 1} if diffusers_layout else None)
        cfg = same_config_from_state_dict(sd, reference=reference, name=str(file.path), stated=stated)
    model = build_with_weights(lambda: SAMECodec(cfg), sd, name=str(file.path), device=device, dtype=dtype,
                               fit=_fit_same)
    return model.requires_grad_(False)


def _fit_same(model: SAMECodec, sd: dict, name: str) -> dict:
    """The empty noise factor (no noise augmentation) is not saved by every exporter: fill it, then check."""
    if "bottleneck.noise_scaling_factor" not in sd and model.bottleneck.noise_scaling_factor.numel() == 0:
        sd = {**sd, "bottleneck.noise_scaling_factor": torch.ones(1, 0, 1)}
    check_state_dict(model, sd, name=name)
    return sd
