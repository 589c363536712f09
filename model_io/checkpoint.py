"""The V2M checkpoint: one ``.safetensors`` in the stable-audio-tools key layout + JSON metadata.

Tensors keep stable-audio-tools' names (``model.model.*`` DiT, ``conditioner.conditioners.*``,
optionally ``pretransform.model.*`` for the codec). The safetensors header metadata (a
str → str map) holds one JSON value per top-level field::

    v2m_format   1
    model_config {...stable-audio-tools "model" block: diffusion / conditioning / io_channels...}
    objective    "rectified_flow" | "v"
    latent_rate  21.533203125          (latent frames per second)
    sample_rate  44100
    curve        {"encoder": ..., "smoothing_seconds": ..., "standardise": true, ...}

All file reading, writing (atomic), header checks and pickle refusal go through
:mod:`.weights`: only safetensors is read; pickle-based files (``.ckpt``/``.pt``/``.pth``/``.bin``,
zip or raw pickle) can run code when loaded, so they are refused with the way to convert them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ModelError
from ..core.model.bounds import (
    CODEC_BOUNDS,
    CONDITIONER_BOUNDS,
    DIT_CONFIG_BOUNDS,
    SAMPLE_RATE,
    Bound,
    check_numbers,
    check_value,
)
from ..core.model.flow import OBJECTIVES
from ..core.timing.spec import CLIP_SECONDS_BOUNDS, MAX_CURVE_LENGTH, MAX_SMOOTHING_SECONDS
from .weights import (
    SafetensorsFile,
    diff_state_dict,
    list_keys,
    read_safetensors,
    read_safetensors_header,
    write_safetensors,
)

V2M_FORMAT = 1
# buffers that stable-audio-tools derives from the config; a file may lack them (e.g. one
# converted from diffusers) and they are then rebuilt with their defaults
OPTIONAL_BUFFER_SUFFIXES = ("rotary_pos_emb.inv_freq", "_norm.beta", "pre_norm.beta")
# prefixes a V2M/SAO file may carry that the DiT does not use
NON_DIT_PREFIXES = ("pretransform.",)


def read_metadata(path: "str | os.PathLike | SafetensorsFile") -> dict[str, Any]:
    """Decoded V2M metadata without loading tensors (cheap: reads the header only)."""
    raw = path.metadata if isinstance(path, SafetensorsFile) else read_safetensors_header(path)[1]
    return _decode_meta(raw, path)


# --------------------------------------------------------------------------------------------
# metadata


#: Bounds of the numbers in V2M metadata, by dotted key (``*``: any list item); see :mod:`core.model.bounds`.
#: The ``sampling`` block is bounded where it is resolved (``core.sampling``), against the CLI's own bounds.
META_BOUNDS: dict[str, Bound] = {
    "curve.smoothing_seconds": Bound(float, 0, MAX_SMOOTHING_SECONDS, "--smoothing-seconds"),
    "curve.clip_seconds": Bound(float, *CLIP_SECONDS_BOUNDS, "prepare --clip-seconds"),
    "curve.rate": Bound(float, 0, SAMPLE_RATE.hi, "curve points per second", lo_open=True),
    "curve.length": Bound(int, 1, MAX_CURVE_LENGTH, "curve --length"),
    "curve.channels": Bound(int, 1, 64, "curve channels"),
    "curve.min_std": Bound(float, 0, 1000, "standardisation floor"),
    "text.max_length": CONDITIONER_BOUNDS["max_length"],
    "model_config.io_channels": DIT_CONFIG_BOUNDS["io_channels"],
    "model_config.sample_rate": SAMPLE_RATE,
    "model_config.sample_size": Bound(int, 1, 512 * SAMPLE_RATE.hi, "samples of a training clip"),
    "model_config.conditioning.cond_dim": Bound(int, 1, 16_384, "conditioning width"),
    **{f"model_config.diffusion.config.{k}": b for k, b in DIT_CONFIG_BOUNDS.items()},
    **{f"model_config.conditioning.configs.*.config.{k}": b for k, b in CONDITIONER_BOUNDS.items()},
    **{f"codec.config.{k}": b for k, b in CODEC_BOUNDS.items()},
}
#: Metadata blocks whose numbers are bounded here (informational blocks such as ``training`` are not used).
_BOUNDED_BLOCKS = ("model_config", "codec", "curve", "text")


def check_meta_numbers(meta: Mapping[str, Any], where: str = "metadata") -> None:
    """Every number the model is built or run from, held to its bound (:data:`META_BOUNDS`): one
    ModelError line naming the file, the key, the value and the bound. Cheap: the header only."""
    check_value(meta.get("sample_rate"), SAMPLE_RATE, source=where, key="sample_rate")
    sr = meta["sample_rate"]
    check_value(meta.get("latent_rate"), Bound(float, 0, sr, "at most one latent frame per audio sample",
                                               lo_open=True), source=where, key="latent_rate")
    check_numbers({k: meta[k] for k in _BOUNDED_BLOCKS if k in meta}, META_BOUNDS, source=where)


def validate_meta(meta: Mapping[str, Any], where: str = "metadata") -> None:
    problems = []
    if meta.get("v2m_format") != V2M_FORMAT:
        problems.append(f"v2m_format must be {V2M_FORMAT} (got {meta.get('v2m_format')!r})")
    if not isinstance(meta.get("model_config"), dict) or "diffusion" not in meta["model_config"]:
        problems.append("model_config must be a dict with a 'diffusion' block")
    if meta.get("objective") not in OBJECTIVES:
        problems.append(f"objective must be one of {OBJECTIVES} (got {meta.get('objective')!r})")
    lr = meta.get("latent_rate")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        problems.append(f"latent_rate must be a positive number (got {lr!r})")
    sr = meta.get("sample_rate")
    if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
        problems.append(f"sample_rate must be a positive integer (got {sr!r})")
    if "curve" in meta and not isinstance(meta["curve"], dict):
        problems.append("curve must be a dict")
    if problems:
        raise ModelError(f"{where}: bad V2M metadata: " + "; ".join(problems))
    check_meta_numbers(meta, where)


def _encode_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    out = {"format": "pt"}
    for k, v in meta.items():
        out[str(k)] = json.dumps(v, sort_keys=True)
    return out


def _decode_meta(raw: Mapping[str, str], path) -> dict[str, Any]:
    if "v2m_format" not in raw:
        hint = ""
        if raw.get("format") == "pt" or not raw:
            hint = (" If it is Stable Audio Open 1.0's (or Stable Audio 3's) model.safetensors, make a V2M checkpoint "
                    "from it with `v2m-zero init-checkpoint --from sao1 (or sa3) model.safetensors "
                    "--out v2m.safetensors`.")
        raise ModelError(f"{path}: not a V2M checkpoint (no 'v2m_format' in its metadata).{hint}")
    return json_metadata(raw)


def json_metadata(raw: Mapping[str, str]) -> dict[str, Any]:
    """A safetensors header's string metadata with each JSON value decoded (plain strings kept;
    the ``format`` tag dropped): how V2M checkpoints and adapters store their fields."""
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "format":
            continue
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    return meta


# --------------------------------------------------------------------------------------------
# save / load


def save_v2m_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``state_dict`` + ``meta`` atomically (see :func:`weights.write_safetensors`)."""
    import torch

    p = Path(path)
    validate_meta(meta, where=str(p))
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise ModelError(f"{p}: state_dict[{k!r}] is a {type(v).__name__}, not a tensor. "
                             "Fix: pass a state dict of tensors (e.g. model.state_dict()).")
    return write_safetensors(p, state_dict, _encode_meta(meta))


def load_v2m_checkpoint(
    path: "str | os.PathLike | SafetensorsFile", device: str = "cpu", skip_prefixes: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, meta)`` of a V2M checkpoint; ``ModelError`` naming the file if it is not one.
    ``skip_prefixes=("pretransform.",)`` leaves the codec's tensors unread."""
    tensors, raw = read_safetensors(path, device=device, skip_prefixes=skip_prefixes)
    meta = _decode_meta(raw, path)
    validate_meta(meta, where=str(path))
    return tensors, meta


def complete_dit_state_dict(model, state_dict: Mapping[str, Any], source: str = "state dict") -> dict[str, Any]:
    """Strict key/shape check of ``state_dict`` against ``model``; returns the dict to load.

    Optional derived buffers (rotary ``inv_freq``, LayerNorm ``beta``) missing from the file are
    filled from the model's defaults; ``pretransform.*`` keys are ignored. Anything else missing,
    unexpected or of the wrong shape raises a ``ModelError`` listing the first few.
    """
    expected = model.state_dict()
    given = {k: v for k, v in state_dict.items() if not k.startswith(NON_DIT_PREFIXES)}
    missing, unexpected, mismatched = diff_state_dict(expected, given, optional_suffixes=OPTIONAL_BUFFER_SUFFIXES)
    shapes = [f"{k} {got} vs model {want}" for k, got, want in mismatched]
    parts = [s for s in (list_keys("missing key(s)", missing), list_keys("unexpected key(s)", unexpected),
                         list_keys("shape mismatch(es)", shapes, 3)) if s]
    if parts:
        raise ModelError(
            f"{source}: weights do not fit the model config — " + "; ".join(parts)
            + ". Fix: use a checkpoint whose model_config matches these weights (a different model "
            "size/variant or a damaged or partial file gives these errors)."
        )
    out = dict(given)
    for k, v in expected.items():
        if k not in out:
            out[k] = v if v.device.type != "meta" else _default_buffer(model, k)
    return out


def _default_buffer(model, key: str):
    import torch

    mod_path, name = key.rsplit(".", 1)
    mod = model.get_submodule(mod_path)
    if name == "inv_freq":
        n = mod.inv_freq.shape[0] * 2
        return 1.0 / (10000 ** (torch.arange(0, n, 2).float() / n))
    if name == "beta":
        return torch.zeros(mod.beta.shape)
    raise ModelError(f"no default for missing buffer {key}")  # pragma: no cover


def build_dit_from_checkpoint(path: "str | os.PathLike | SafetensorsFile", device="cpu", dtype=None):
    """Build the DiT of a V2M checkpoint (the architecture its ``model_config`` names), strictly checked.

    Only V2M checkpoints: :func:`.formats.read_dit` reads the DiT of any file that carries one
    (Stable Audio base files included). See :func:`dit_from_parts` for what the model carries.
    """
    file = path if isinstance(path, SafetensorsFile) else SafetensorsFile(path)
    state, meta = load_v2m_checkpoint(file, skip_prefixes=NON_DIT_PREFIXES)
    return dit_from_parts(state, meta, source=str(file.path), device=device, dtype=dtype)


def dit_from_parts(state: Mapping[str, Any], meta: Mapping[str, Any], *, source: str, device="cpu", dtype=None):
    """The DiT that ``meta["model_config"]`` names, holding ``state`` (strictly checked).

    The module is created on the meta device and the tensors are assigned (no double allocation of
    a 1 B-parameter model, :mod:`.build`). ``dtype`` (e.g. ``torch.bfloat16``) casts floating
    weights; the rotary frequencies stay float32. The returned model carries ``.objective`` and
    ``.meta`` (the decoded metadata) and is in eval mode.
    """
    from ..core.model.architectures import build_dit
    from .build import build_with_weights

    state = {k: v for k, v in state.items() if not k.startswith(NON_DIT_PREFIXES)}
    model = build_with_weights(lambda: build_dit(meta["model_config"], objective=meta["objective"]), state,
                               name=source, device=device, dtype=dtype, fit=complete_dit_state_dict)
    model.meta = dict(meta)
    return model
