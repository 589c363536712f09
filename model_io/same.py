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
from .weights import SafetensorsFile, check_state_dict, read_safetensors

PREFIX = "pretransform.model."
ANCHOR = "encoder.layers.0.new_tokens"
DIFFUSERS_ANCHOR = "encoder.blocks.0.new_tokens"
# (width of the first level, its depth) -> what the weights do not say (diffusers' AutoencoderSAME docs)
KNOWN = {(768, 6): {"name": "SAME-S", "channels": 128, "decoder_sinusoidal_blocks": [0]},
         (1536, 12): {"name": "SAME-L", "channels": 256, "decoder_sinusoidal_blocks": [8]}}
SA3_STRIDE = 16


def _count(sd, prefix: str, tail: str) -> int:
    found = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\." + re.escape(tail), k)] if m}
    return max(found) + 1 if found else 0


def same_config_from_state_dict(sd: Mapping[str, torch.Tensor], reference: Mapping[str, Any] | None = None,
                                name: str = "state dict") -> dict[str, Any]:
    """A :class:`SAMEConfig` dict for a SAME state dict (reference layout, prefix stripped).

    ``reference`` is the ``pretransform`` block of a ``model_config.json`` (or an AE-only config's
    ``model``): its values win; otherwise shapes plus :data:`KNOWN` defaults.
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
    mapping = sd.get("encoder.layers.0.mapping.weight_v")
    cfg: dict[str, Any] = {
        "audio_channels": 2, "patch_size": in_ch // 2, "channels": channels, "c_mults": [w // channels for w in widths],
        "strides": strides, "transformer_depths": depths, "latent_dim": int(sd["bottleneck.scaling_factor"].shape[1]),
        "dim_heads": int(sd["encoder.layers.0.transformers.0.self_attn.q_norm.gamma"].shape[0]),
        "differential": qkv == 5 * widths[0],
        "ff_mult": sd["encoder.layers.0.transformers.0.ff.ff.0.proj.weight"].shape[0] / (2 * widths[0]),
        "sliding_window": 1, "encoder_sinusoidal_blocks": [0], "variable_stride": variable,
        "decoder_sinusoidal_blocks": list(known.get("decoder_sinusoidal_blocks", [0])),
        "mapping_bias": "encoder.layers.0.mapping.bias" in sd,
        "conv_mapping": mapping is not None and mapping.shape[-1] == 3,
        "auto_scale": "bottleneck.running_std" in sd, "sample_rate": 44100,
    }
    cfg.update(_from_reference(reference))
    return SAMEConfig.from_dict(cfg).to_dict()


def _from_reference(ref: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields a stable_audio_3 ``pretransform`` (or AE-only ``model``) config states."""
    if not ref:
        return {}
    ae = dict(ref.get("config", ref))
    enc = dict((ae.get("encoder") or {}).get("config") or {})
    dec = dict((ae.get("decoder") or {}).get("config") or {})
    bott = dict((ae.get("bottleneck") or {}).get("config") or {})
    patch = dict((ae.get("pretransform") or {}).get("config") or {})
    out: dict[str, Any] = {}
    for ours, theirs in (("channels", "channels"), ("c_mults", "c_mults"), ("strides", "strides"),
                         ("transformer_depths", "transformer_depths"), ("latent_dim", "latent_dim"),
                         ("dim_heads", "dim_heads"), ("differential", "differential"), ("ff_mult", "ff_mult"),
                         ("variable_stride", "variable_stride"), ("mapping_bias", "mapping_bias"),
                         ("conv_mapping", "conv_mapping")):
        if theirs in enc:
            out[ours] = enc[theirs]
    if enc.get("sliding_window"):
        sw = enc["sliding_window"]
        sw = list(sw) if isinstance(sw, (list, tuple)) else [sw, sw]
        if sw[0] != sw[-1]:
            raise ModelError(f"SAME sliding_window {sw}: only symmetric windows are supported")
        out["sliding_window"] = int(sw[0])
    elif "sliding_window" in enc or enc:
        raise ModelError("SAME configs without a sliding window (chunked attention) are not supported")
    if "sinusoidal_blocks" in enc:
        out["encoder_sinusoidal_blocks"] = list(enc["sinusoidal_blocks"])
    if "sinusoidal_blocks" in dec:
        out["decoder_sinusoidal_blocks"] = list(dec["sinusoidal_blocks"])
    if "soft_clip" in ae.get("decoder", {}) or "soft_clip" in dec:
        out["soft_clip"] = bool(ae.get("decoder", {}).get("soft_clip", dec.get("soft_clip", False)))
    if "auto_scale" in bott:
        out["auto_scale"] = bool(bott["auto_scale"])
    if "noise_augment_dim" in bott:
        out["noise_augment_dim"] = int(bott["noise_augment_dim"])
    if patch.get("patch_size"):
        out["patch_size"] = int(patch["patch_size"])
    if patch.get("channels") or ae.get("io_channels"):
        out["audio_channels"] = int(patch.get("channels") or ae["io_channels"])
    if ref.get("sample_rate") or ae.get("sample_rate"):
        out["sample_rate"] = int(ref.get("sample_rate") or ae["sample_rate"])
    return out


def config_from_diffusers(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers ``AutoencoderSAME`` config.json → :class:`SAMEConfig` fields."""
    pick = {"audio_channels": "audio_channels", "patch_size": "patch_size", "channels": "encoder_channels",
            "c_mults": "encoder_c_mults", "strides": "encoder_strides",
            "transformer_depths": "encoder_transformer_depths", "latent_dim": "latent_dim",
            "differential": "use_differential_attention", "dim_heads": "dim_heads", "ff_mult": "ff_mult",
            "sliding_window": "sliding_window", "encoder_sinusoidal_blocks": "encoder_sinusoidal_blocks",
            "decoder_sinusoidal_blocks": "decoder_sinusoidal_blocks", "sample_rate": "sampling_rate"}
    return {ours: (list(cfg[theirs]) if isinstance(cfg[theirs], (list, tuple)) else cfg[theirs])
            for ours, theirs in pick.items() if theirs in cfg}


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
    cfg = dict(config) if config else same_config_from_state_dict(sd, name=str(file.path))
    if side and not config:
        cfg.update(config_from_diffusers(side))
    model = build_with_weights(lambda: SAMECodec(cfg), sd, name=str(file.path), device=device, dtype=dtype,
                               fit=_fit_same)
    return model.requires_grad_(False)


def _fit_same(model: SAMECodec, sd: dict, name: str) -> dict:
    """The empty noise factor (no noise augmentation) is not saved by every exporter: fill it, then check."""
    if "bottleneck.noise_scaling_factor" not in sd and model.bottleneck.noise_scaling_factor.numel() == 0:
        sd = {**sd, "bottleneck.noise_scaling_factor": torch.ones(1, 0, 1)}
    check_state_dict(model, sd, name=name)
    return sd
