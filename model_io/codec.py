"""Reading audio codecs: the Oobleck VAE from any public layout, and the one codec factory.

``load_codec`` reads a Stable Audio single file (``pretransform.model.*``), a standalone VAE file
(stable-audio-tools/ComfyUI or diffusers keys) or a diffusers ``AutoencoderOobleck`` folder.
Stable Audio 3's SAME is read by :mod:`.same`. ``make_codec`` builds any codec (patch, Oobleck,
SAME) from a codec spec (what caches and checkpoints record) or a file, recognising SAME by its keys.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.errors import ModelError
from ..core.model.codec import AudioCodec, PatchCodec
from ..core.model.melcodec import MelCodec
from ..core.model.oobleck import SAO_VAE_CONFIG, OobleckVAE, normalize_config
from .build import build_with_weights
from .folders import locate
from .weights import SafetensorsFile, plain_weight_norm_names, read_safetensors


SAT_ANCHORS = ("decoder.layers.0.weight_v", "decoder.layers.0.parametrizations.weight.original1")
DIFFUSERS_ANCHORS = ("decoder.conv1.weight_v", "decoder.conv1.parametrizations.weight.original1")


def infer_oobleck_config(sd: Mapping[str, torch.Tensor], *, name: str = "state dict") -> dict[str, Any]:
    """Read an Oobleck config off the tensor shapes of a stable-audio-tools-layout state dict.

    ``final_tanh``, ``sample_rate`` and ``scale`` leave no trace in the weights: they default to
    SAO 1.0's (no tanh, 44.1 kHz, 1.0).
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ModelError(f"{name}: not an Oobleck VAE in the stable-audio-tools layout (no {key!r}). "
                             "Fix: give the Stable Audio VAE weights (SAO single file, standalone VAE "
                             "or a diffusers AutoencoderOobleck folder).")
        return tuple(sd[key].shape)

    channels, audio_channels, _ = shape("encoder.layers.0.weight_v")
    blocks = sorted({int(m.group(1)) for k in sd
                     for m in [re.match(r"encoder\.layers\.(\d+)\.layers\.4\.weight_v$", k)] if m})
    if not blocks or blocks != list(range(1, len(blocks) + 1)):
        raise ModelError(f"{name}: cannot find the encoder blocks (encoder.layers.N.layers.4.*). "
                         "Fix: give Oobleck VAE weights in the stable-audio-tools layout.")
    c_mults, strides = [], []
    for i in blocks:
        out_c, _, k = shape(f"encoder.layers.{i}.layers.4.weight_v")
        c_mults.append(out_c // channels)
        strides.append(k // 2)
    n = len(blocks)
    enc_latent = shape(f"encoder.layers.{n + 2}.weight_v")[0]
    _, latent_dim, _ = shape("decoder.layers.0.weight_v")
    dec_out, dec_channels, _ = shape(f"decoder.layers.{n + 2}.weight_v")
    use_snake = "encoder.layers.1.layers.0.layers.0.alpha" in sd
    bottleneck = "vae" if enc_latent == 2 * latent_dim else None
    if dec_out != audio_channels:
        raise ModelError(f"{name}: encoder takes {audio_channels} audio channels but decoder makes {dec_out}.")
    return {
        "channels": int(channels), "decoder_channels": int(dec_channels), "c_mults": c_mults, "strides": strides,
        "latent_dim": int(latent_dim), "encoder_latent_dim": int(enc_latent), "audio_channels": int(audio_channels),
        "sample_rate": SAO_VAE_CONFIG["sample_rate"], "use_snake": use_snake, "final_tanh": False,
        "bottleneck": bottleneck, "scale": 1.0,
    }


def diffusers_to_oobleck(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``AutoencoderOobleck`` state dict to the stable-audio-tools layout."""
    sd = plain_weight_norm_names(sd)
    n_enc = len({m.group(1) for k in sd for m in [re.match(r"encoder\.block\.(\d+)\.", k)] if m})
    n_dec = len({m.group(1) for k in sd for m in [re.match(r"decoder\.block\.(\d+)\.", k)] if m})
    unit = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}
    enc_block = {"snake1": "layers.3", "conv1": "layers.4"}
    dec_block = {"snake1": "layers.0", "conv_t1": "layers.1"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        part, _, rest = key.partition(".")
        n = n_enc if part == "encoder" else n_dec
        m = re.match(r"block\.(\d+)\.(.+)$", rest)
        if part not in ("encoder", "decoder"):
            new = key
        elif m:
            idx, tail = int(m.group(1)), m.group(2)
            ru = re.match(r"res_unit(\d)\.(\w+)\.(.+)$", tail)
            if ru:
                slot = int(ru.group(1)) - 1 if part == "encoder" else int(ru.group(1)) + 1
                new = f"{part}.layers.{idx + 1}.layers.{slot}.layers.{unit[ru.group(2)]}.{ru.group(3)}"
            else:
                head, _, leaf = tail.partition(".")
                table = enc_block if part == "encoder" else dec_block
                new = f"{part}.layers.{idx + 1}.{table.get(head, head)}.{leaf}"
        else:
            head, _, leaf = rest.partition(".")
            slot = {"conv1": 0, "snake1": n + 1, "conv2": n + 2}.get(head)
            new = f"{part}.layers.{slot}.{leaf}" if slot is not None else key
        if new.endswith((".alpha", ".beta")) and value.ndim == 3:
            value = value.reshape(-1)  # diffusers keeps Snake parameters as [1, C, 1]
        out[new] = value
    return out


def find_prefix(keys: list[str], anchors: tuple[str, ...]) -> str | None:
    for k in keys:
        for a in anchors:
            if k.endswith(a) and (len(k) == len(a) or k[-len(a) - 1] == "."):
                return k[: len(k) - len(a)]
    return None


def _resolve_source(path: Path) -> tuple[Path, dict[str, Any]]:
    """The weights file to read and any config that travels with it (diffusers config.json)."""
    if not path.is_dir():
        return path, {}
    found = locate(path, names=("diffusion_pytorch_model.safetensors",), patterns=("*.safetensors",),
                   subfolders=("vae",))
    folder = found.parent if found is not None else (path / "vae" if (path / "vae").is_dir() else path)
    cfg: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except ValueError as exc:
            raise ModelError(f"{folder / 'config.json'}: not valid JSON ({exc}). Fix: fetch the file again.") from None
    if found is not None:
        return found, cfg
    files = sorted(folder.glob("*.safetensors"))
    pickles = sorted(f.name for f in folder.iterdir() if f.suffix in (".bin", ".ckpt", ".pt", ".pth"))
    what = (f"{len(files)} .safetensors files ({', '.join(f.name for f in files[:5])})" if files
            else "no .safetensors file")
    hint = f" (found pickles {', '.join(pickles[:3])}: convert them to .safetensors)" if pickles else ""
    raise ModelError(f"{folder}: {what}{hint}. Fix: put exactly one codec .safetensors file in the folder "
                     "(e.g. models/v2m/codecs/), or a diffusers AutoencoderOobleck folder "
                     "(config.json + diffusion_pytorch_model.safetensors), or pass the file path.")


def load_codec(path: "str | os.PathLike | SafetensorsFile", *, config: Mapping[str, Any] | None = None,
               sample_rate: int | None = None, device: Any = "cpu",
               dtype: torch.dtype = torch.float32) -> OobleckVAE:
    """Load an Oobleck VAE from any public layout, in eval mode without gradients.

    ``path`` is a Stable Audio single file (``pretransform.model.*`` taken, the DiT not loaded),
    a standalone VAE ``.safetensors`` (stable-audio-tools/ComfyUI keys or diffusers keys), or a
    diffusers ``AutoencoderOobleck`` folder (or a pipeline folder with ``vae/``). The architecture
    is read off the tensor shapes unless ``config`` is given; ``sample_rate`` comes from, in order,
    the argument, ``config``, diffusers' config.json / the file metadata, else 44100. A
    :class:`~.weights.SafetensorsFile` is read without parsing its header again.
    """
    if isinstance(path, SafetensorsFile):
        file, side_cfg = path, {}
    else:
        src = Path(path)
        if not src.exists():
            raise ModelError(f"{src}: codec weights not found. Fix: put the Stable Audio VAE (or the full SAO "
                             "model.safetensors) in models/v2m/codecs/ or pass its path.")
        file, side_cfg = _resolve_source(src)
        file = SafetensorsFile(file)
    keys = file.keys()
    prefix = find_prefix(keys, SAT_ANCHORS)
    diffusers_layout = False
    if prefix is None:
        prefix = find_prefix(keys, DIFFUSERS_ANCHORS)
        diffusers_layout = prefix is not None
    if prefix is None:
        raise ModelError(f"{file.path}: no Oobleck VAE weights found "
                         f"(expected keys like 'pretransform.model.{SAT_ANCHORS[0]}' "
                         f"or '{DIFFUSERS_ANCHORS[0]}'; first keys: {', '.join(keys[:5])}). Fix: give the Stable "
                         "Audio VAE, the full SAO model.safetensors, or a diffusers AutoencoderOobleck folder.")
    sd, metadata = read_safetensors(file, prefix=prefix or None)
    sd = diffusers_to_oobleck(sd) if diffusers_layout else plain_weight_norm_names(sd)
    if config is not None:
        cfg = normalize_config(config)
    else:
        cfg = infer_oobleck_config(sd, name=str(file.path))
        meta_cfg = metadata.get("config") or metadata.get("model_config")
        if meta_cfg:
            try:
                meta = json.loads(meta_cfg)
                sr = meta.get("sample_rate") or meta.get("model", {}).get("sample_rate")
                if sr:
                    cfg["sample_rate"] = int(sr)
            except (ValueError, AttributeError):
                pass
        if side_cfg.get("sampling_rate"):
            cfg["sample_rate"] = int(side_cfg["sampling_rate"])
    if sample_rate is not None:
        cfg["sample_rate"] = int(sample_rate)
    model = build_with_weights(lambda: OobleckVAE(cfg), sd, name=str(file.path), device=device, dtype=dtype)
    return model.requires_grad_(False)


# --------------------------------------------------------------------------------------------
# the codec factory (codec specs as caches and checkpoints record them)


def make_codec(source: Any = "patch", *, checkpoint: Any = None) -> AudioCodec:
    """The one codec factory.

    ``source`` is a codec instance (returned as is); a codec spec dict as :func:`codec_spec` writes
    it (``{"type": "patch", "config": {...}}``, ``{"type": "mel", "config": {...}}`` or ``{"type":
    "oobleck", "path": ..., "config": ...}``); ``"patch"`` / ``"patch:PATCH_SIZE:CHANNELS:SAMPLE_RATE"``;
    ``"mel"`` / ``"mel:N_MELS:SAMPLE_RATE:HOP"`` (weightless log-mel + Griffin-Lim); or a codec weights path. An
    ``oobleck`` spec is read from ``checkpoint`` (a path or :class:`~.weights.SafetensorsFile`)
    when one is given: a V2M checkpoint carries its codec as ``pretransform.model.*``.
    """
    if isinstance(source, AudioCodec):
        return source
    if isinstance(source, Mapping):
        kind = source.get("type")
        if kind == "patch":
            return PatchCodec(**dict(source.get("config") or {}))
        if kind == "mel":
            return MelCodec(**dict(source.get("config") or {}))
        if kind == "oobleck" and checkpoint is not None:
            try:
                return load_codec(checkpoint)
            except ModelError as exc:
                raise ModelError(
                    f"{_name(checkpoint)} carries no audio codec ({exc}). Choose a codec file "
                    "(models/v2m/codecs/, e.g. the Stable Audio Open 1.0 model.safetensors) or write the checkpoint "
                    "with its pretransform."
                ) from None
        if kind == "oobleck" and source.get("path"):
            return load_codec(source["path"])
        if kind == "same":
            return _load_same_spec(source, checkpoint)
        raise ModelError(f"codec spec {dict(source)!r}: type must be 'patch' or 'mel' (with config), "
                         "'oobleck' or 'same' (with path)")
    s = os.fspath(source)
    if s == "patch" or s.startswith("patch:"):
        try:
            vals = [int(x) for x in s.split(":")[1:]]
        except ValueError:
            raise ModelError(f"codec {s!r}: write patch:PATCH_SIZE:CHANNELS:SAMPLE_RATE, "
                             "e.g. patch:32:2:44100") from None
        return PatchCodec(**dict(zip(("patch_size", "audio_channels", "sample_rate"), vals)))
    if s == "mel" or s.startswith("mel:"):
        try:
            vals = [int(x) for x in s.split(":")[1:]]
        except ValueError:
            raise ModelError(f"codec {s!r}: write mel:N_MELS:SAMPLE_RATE:HOP, e.g. mel:128:16000:256") from None
        return MelCodec(**dict(zip(("n_mels", "sample_rate", "hop_length"), vals)))
    if _is_same(s):
        from .same import load_same

        return load_same(s)
    return load_codec(s)


def _is_same(path: str) -> bool:
    """Whether ``path`` (a file or a diffusers folder) holds SAME weights (Stable Audio 3's autoencoder)."""
    from .same import find_same_prefix

    p = Path(path)
    if p.is_dir():
        config = locate(p, names=("config.json",), subfolders=("vae",))
        try:
            return config is not None and json.loads(config.read_text()).get("_class_name") == "AutoencoderSAME"
        except (OSError, ValueError):
            return False
    try:
        return p.is_file() and find_same_prefix(SafetensorsFile(p).keys()) is not None
    except ModelError:
        return False


def _load_same_spec(spec: Mapping[str, Any], checkpoint: Any) -> AudioCodec:
    from .same import load_same

    source = checkpoint if checkpoint is not None else spec.get("path")
    if source is None:
        raise ModelError("codec spec 'same' needs weights: a checkpoint carrying pretransform.model.* or a 'path'")
    try:
        return load_same(source, config=spec.get("config") or None)
    except ModelError as exc:
        if checkpoint is not None and spec.get("path"):
            return load_same(spec["path"], config=spec.get("config") or None)
        raise ModelError(f"{_name(source)} carries no SAME autoencoder ({exc}). Choose a codec file "
                         "(the Stable Audio 3 model.safetensors or a SAME-S file) or write the checkpoint with its "
                         "pretransform.") from None


def codec_spec(codec: AudioCodec, source: Any = None) -> dict:
    """JSON description of a codec (cache spec and checkpoint metadata ``codec``); ``make_codec`` reads it back."""
    if isinstance(codec, PatchCodec):
        return {"type": "patch", "config": {"patch_size": codec.patch_size, "audio_channels": codec.audio_channels,
                                            "sample_rate": codec.sample_rate, "scale": codec.scale}}
    from ..core.model.same import SAMECodec

    if isinstance(codec, MelCodec):
        return {"type": "mel", "config": codec.config}
    kind = "same" if isinstance(codec, SAMECodec) else "oobleck"
    spec = {"type": kind, "config": dict(getattr(codec, "config", {}) or {})}
    if isinstance(source, (str, os.PathLike)):
        spec["path"] = os.path.abspath(os.fspath(source))
    elif isinstance(source, Mapping) and source.get("path"):
        spec["path"] = source["path"]
    return spec


def _name(f: Any) -> str:
    return os.fspath(getattr(f, "path", f))
