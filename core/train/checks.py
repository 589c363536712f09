"""Consistency checks that refuse a training run before its first step, with one clear line each.

A run is refused when the cache cannot have come from the base checkpoint's codec (codec type or
architecture, latent rate, latent channels, sample rate differ), when a prompt-conditioned base
would be trained without text (``text.encoder = "none"``) unless ``text.allow_none = true`` says
the user means it, or with another text encoder or prompt length than it was trained with (T5 for
SAO 1.0, T5Gemma for Stable Audio 3, whose 256 prompt tokens are kept: another
``text.max_length`` is a warning), and when the cache's curves differ from what the config asks for
(``[curve] music_encoder`` / ``smoothing_seconds``). A cache whose curves fell back to log-mel
because MusicFM's weights were missing passes when the config accepts that fallback
(``curve.music_encoder_fallback``): the run warns, and the fallback is recorded in the exported
checkpoint's curve metadata.

Only file headers are read here (no tensors), except one content hash of the two codecs' weights
when the cache was encoded from another file than the base checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import V2MError
from ..outputs import same_file
from ..timing.spec import same_smoothing

__all__ = ["RunChecks", "check_run", "base_takes_text"]

_ARCH_KEYS = ("channels", "c_mults", "strides", "latent_dim", "audio_channels", "sample_rate")


class ConsistencyError(V2MError):
    """The cache, the base checkpoint and the config do not belong together."""


@dataclass
class RunChecks:
    warnings: list[str] = field(default_factory=list)
    curve_record: dict = field(default_factory=dict)  # extra fields for the checkpoint's curve metadata


def base_takes_text(meta: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's DiT is prompt-conditioned (a text conditioner feeds cross-attention)."""
    mc = meta.get("model_config") or {}
    kinds = {c.get("id"): c.get("type") for c in (mc.get("conditioning") or {}).get("configs", [])}
    ids = (mc.get("diffusion") or {}).get("cross_attention_cond_ids", [])
    text_in_model = any(kinds.get(cid) not in (None, "number", "curve") for cid in ids)
    return text_in_model and (meta.get("text") or {}).get("type", "t5") != "none"


def _prepare_hint(base_path: str, base_codec: Mapping | None = None) -> str:
    if base_codec and base_codec.get("type") == "patch":
        c = dict(base_codec.get("config") or {})
        spec = f"patch:{c.get('patch_size')}:{c.get('audio_channels')}:{c.get('sample_rate')}"
        return ("Fix: prepare the cache with the checkpoint's codec: "
                f"`v2m-zero prepare MUSIC_DIR --out NEW_CACHE --codec {spec}`")
    preset = "sa3" if base_codec and base_codec.get("type") == "same" else "sao1"
    return (f"Fix: prepare the cache with the checkpoint's own codec: `v2m-zero prepare MUSIC_DIR --out NEW_CACHE "
            f"--preset {preset} --checkpoint {base_path}` (or --codec {base_path})")


def _patch_config(spec: Mapping) -> dict:
    from ...model_io.codec import codec_spec, make_codec

    return codec_spec(make_codec({"type": "patch", "config": dict(spec.get("config") or {})}))["config"]


def _check_codec(spec: Mapping, meta: Mapping, header: Mapping, base_path: str, cache: str) -> None:
    from ...model_io.codec import infer_oobleck_config

    cache_codec = dict(spec.get("codec") or {})
    has_vae = any(k.startswith("pretransform.") for k in header)
    base_codec = dict(meta.get("codec") or {"type": "oobleck"})
    ctype, btype = cache_codec.get("type"), base_codec.get("type")
    name = os.path.basename(base_path)
    hint = _prepare_hint(base_path, base_codec)
    if ctype != btype:
        raise ConsistencyError(f"the cache {cache} was encoded with the {ctype} codec but the base checkpoint {name} "
                               f"uses {btype} latents: training would teach it another latent space. {hint}")
    if ctype == "patch" and _patch_config(cache_codec) != _patch_config(base_codec):
        raise ConsistencyError(f"the cache {cache} used patch codec {cache_codec.get('config')} but the "
                               f"base checkpoint {name} declares {base_codec.get('config')}. {hint}")
    if ctype == "oobleck" and has_vae:
        import torch

        shapes = {k[len("pretransform.model."):]: torch.empty(v["shape"], device="meta")
                  for k, v in header.items() if k.startswith("pretransform.model.")}
        base_arch = infer_oobleck_config(shapes, name=base_path)
        cache_arch = dict(cache_codec.get("config") or {})
        diff = [k for k in _ARCH_KEYS
                if k in cache_arch and k != "sample_rate" and list(_flat(cache_arch[k])) != list(_flat(base_arch[k]))]
        if diff:
            raise ConsistencyError(f"the cache {cache} was encoded with another VAE than the one in {name} "
                                   f"(differs in {', '.join(diff)}). {_prepare_hint(base_path)}")
        _check_same_vae(cache_codec, base_path, cache)
    if ctype == "same" and has_vae:
        cache_arch, base_arch = dict(cache_codec.get("config") or {}), dict(base_codec.get("config") or {})
        diff = sorted(k for k in set(cache_arch) & set(base_arch)
                      if k != "sample_rate" and cache_arch[k] != base_arch[k])
        if diff:
            raise ConsistencyError(f"the cache {cache} was encoded with another SAME codec than the one in {name} "
                                   f"(differs in {', '.join(diff)}). {hint}")
        _check_same_vae(cache_codec, base_path, cache)


def _flat(v):
    return v if isinstance(v, (list, tuple)) else [v]


def _check_same_vae(cache_codec: Mapping, base_path: str, cache: str) -> None:
    """Same architecture but another file: the weights must be the same too (compared by content hash)."""
    from ...model_io.lora import codec_content_hash

    src = cache_codec.get("path")
    if not src or not os.path.exists(src) or same_file(src, base_path):
        return
    a, b = codec_content_hash(src), codec_content_hash(base_path)
    if a is not None and b is not None and a != b:
        raise ConsistencyError(f"the cache {cache} was encoded with the VAE in {src}, whose weights differ from the "
                               f"VAE in the base checkpoint {os.path.basename(base_path)}. {_prepare_hint(base_path)}")


def _check_rates(spec: Mapping, meta: Mapping, base_path: str, cache: str) -> None:
    name = os.path.basename(base_path)
    io = ((meta.get("model_config") or {}).get("diffusion") or {}).get("config", {}).get("io_channels")
    for what, have, want in (("latent rate", spec.get("latent_rate"), meta.get("latent_rate")),
                             ("sample rate", spec.get("sample_rate"), meta.get("sample_rate")),
                             ("latent channels", spec.get("latent_channels"), io)):
        if have is None or want is None:
            continue
        if not math.isclose(float(have), float(want), rel_tol=1e-6):
            raise ConsistencyError(f"the cache {cache} has {what} {have:g} but the base checkpoint {name} "
                                   f"has {float(want):g}. {_prepare_hint(base_path, meta.get('codec'))}")


_TEXT_MODELS = {"t5": "t5-base", "t5gemma": "t5gemma-b-b-ul2"}
_TEXT_LABELS = {"t5": "T5", "t5gemma": "T5Gemma"}


def _check_text(cfg: Mapping, meta: Mapping, base_path: str, out: RunChecks) -> None:
    t = cfg["text"]
    name = os.path.basename(base_path)
    want = (meta.get("text") or {}).get("type", "t5")
    folder = _TEXT_MODELS.get(want, want)
    if t["encoder"] in (None, "", "none"):
        if base_takes_text(meta) and not t.get("allow_none"):
            raise ConsistencyError(
                f"the base checkpoint {name} is prompt-conditioned ({_TEXT_LABELS.get(want, want)}) "
                "but text.encoder = \"none\": training it without captions makes a prompt-deaf "
                f"model. Fix: set text.encoder = \"{folder}\" (`v2m-zero models download "
                f"{folder}`), or text.allow_none = true if that is what you want")
        return
    if not base_takes_text(meta):
        return
    have = _text_kind(t["encoder"])
    if have is not None and have != want:
        raise ConsistencyError(f"the base checkpoint {name} was trained with a "
                               f"{_TEXT_LABELS.get(want, want)} text encoder but text.encoder = "
                               f"{t['encoder']!r} is {_TEXT_LABELS.get(have, have)}: its prompt embeddings "
                               f"would mean nothing to the model. Fix: set text.encoder = \"{folder}\"")
    length = (meta.get("text") or {}).get("max_length")
    if want == "t5gemma" and length and t.get("max_length") and int(t["max_length"]) != int(length):
        out.warnings.append(f"text.max_length = {t['max_length']} is not used: {name} attends to all {length} "
                            "T5Gemma positions it was trained with, so its captions are encoded at that length")


def _text_kind(encoder: str) -> str | None:
    """``t5`` / ``t5gemma`` for a configured text encoder found on disk (None when it cannot be found
    here: the trainer's own loader then says what is missing)."""
    from ...model_io.folders import resolve_model_dir
    from ...model_io.text import text_encoder_kind

    try:
        path = encoder if os.path.isfile(encoder) else resolve_model_dir(encoder, "text_encoders")
        if os.path.isdir(path) and not any(os.path.isfile(os.path.join(d, "config.json"))
                                           for d, _, _ in os.walk(path)):
            return None  # no config to tell the kind: the loader names what is missing
        return text_encoder_kind(path)
    except (V2MError, OSError):
        return None


def _check_curve(cfg: Mapping, spec: Mapping, cache: str, out: RunChecks) -> None:
    c = cfg["curve"]
    have = (spec.get("encoder") or {}).get("id")
    want, fallback = c.get("music_encoder"), c.get("music_encoder_fallback")
    recorded = spec.get("music_encoder_fallback") or {}
    if want and have != want:
        if fallback and have == fallback:
            why = recorded.get("reason") or f"the cache holds {have} curves"
            out.warnings.append(f"training on {have} music curves instead of {want} ({why}); "
                                "the checkpoint records this fallback")
            out.curve_record["music_encoder_fallback"] = {"wanted": want, "used": have, "reason": why}
        else:
            raise ConsistencyError(
                f"the cache {cache} holds {have} music curves but the config asks for {want} (curve.music_encoder): "
                f"prepare the cache with --music-encoder {want}, or set curve.music_encoder = \"{have}\"")
    elif recorded:
        out.curve_record["music_encoder_fallback"] = dict(recorded)
    s = c.get("smoothing_seconds")
    if s is not None and not same_smoothing(s, spec["smoothing_seconds"]):
        raise ConsistencyError(
            f"the cache {cache} smoothed its curves with a {float(spec['smoothing_seconds']):.6g} "
            f"s Hann kernel but the config asks for {float(s):.6g} s (curve.smoothing_seconds): "
            f"prepare again with --smoothing-seconds {float(s):.6g}, or change the config")


def check_run(cfg: Mapping[str, Any], spec: Mapping[str, Any]) -> RunChecks:
    """Every check of the module doc; raises ``ConsistencyError`` (one line) for the first failure."""
    out = RunChecks()
    m = cfg["model"]
    cache = cfg["data"]["cache"]
    base_path = m.get("from_checkpoint")
    if cfg.get("base") in ("sao1", "sa3") and not base_path:
        b = cfg["base"]
        raise ConsistencyError(f"base = \"{b}\" needs model.from_checkpoint: the V2M checkpoint made by "
                               f"`v2m-zero init-checkpoint --from {b} model.safetensors --out v2m_{b}.safetensors`")
    if cfg["lora"]["enabled"] and not base_path:
        raise ConsistencyError("lora.enabled needs a base to adapt: set model.from_checkpoint (a V2M checkpoint)")
    _check_curve(cfg, spec, cache, out)
    if base_path:
        from ...model_io.checkpoint import read_metadata
        from ...model_io.weights import SafetensorsFile

        f = SafetensorsFile(base_path)
        meta = read_metadata(f)
        header = {k: f.header[k] for k in f.keys()}
        _check_codec(spec, meta, header, base_path, cache)
        _check_rates(spec, meta, base_path, cache)
        _check_text(cfg, meta, base_path, out)
    return out
