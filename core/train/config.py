"""Training configuration: the example TOML, defaults, validation, and the learning-rate schedule.

Paths in a config are relative to ``base_dir`` (the TOML file's folder).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import V2MError
from .presets import LORA_TARGETS, PRESETS, example_toml


EXAMPLE_TOML = example_toml("toy")

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "run_dir": "runs/v2m",
    "base": None,  # a preset name ("toy", "sao1"): what the consistency checks expect
    "resume": True,
    "data": {"cache": None, "val_clips": 2},
    "model": {"from_checkpoint": None, "from_config": None, "objective": "rectified_flow"},
    "text": {"encoder": "none", "max_length": 128, "allow_none": False},
    "optim": {"lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 1e-3, "eps": 1e-8, "warmup_steps": 100,
              "schedule": "constant", "min_lr_ratio": 0.0, "grad_clip": 1.0, "fused": "auto"},
    "train": {"batch_size": 4, "grad_accum": 1, "max_steps": 1000, "precision": "bf16",
              "gradient_checkpointing": False, "t_sampling": "logit_normal", "p_drop_text": 0.1,
              "p_drop_curve": 0.1, "accelerate": "auto", "device": "auto", "compile": False, "attention": "auto"},
    "ema": {"enabled": True, "decay": 0.999},
    "checkpoint": {"every": 500, "keep_last": 3, "export": "ema"},
    "validation": {"every": 500, "steps": 10, "cfg_scale": 1.0, "curve_metric": True, "music_encoder_path": None},
    "log": {"every": 10, "tensorboard": True},
    # what the cache's curves must be (None: whatever the cache holds); checked before training
    "curve": {"video_encoder": None, "music_encoder": None, "music_encoder_fallback": None, "smoothing_seconds": None},
    "lora": {"enabled": False, "rank": 16, "alpha": 16.0, "dropout": 0.0, "targets": list(LORA_TARGETS),
             "train_curve_weights": True, "export_merged": False},
}


def merge_config(base: Mapping, over: Mapping, where: str = "") -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if k not in base:
            raise V2MError(f"unknown training config key {where + str(k)!r}; known: {', '.join(sorted(base))}")
        if isinstance(base[k], Mapping) and isinstance(v, Mapping):
            out[k] = merge_config(base[k], v, f"{where}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_config(config: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> dict:
    """Defaults merged in, keys checked, relative paths made absolute against ``base_dir``."""
    model_over = dict(config.get("model") or {})
    cfg = merge_config(DEFAULT_CONFIG, {k: v for k, v in config.items() if k != "model"})
    cfg["model"] = merge_config({k: v for k, v in DEFAULT_CONFIG["model"].items()}, model_over, "model.")
    base = Path(base_dir) if base_dir else Path.cwd()

    def absolute(p):
        return None if p in (None, "") else str(p if os.path.isabs(str(p)) else (base / str(p)))

    cfg["run_dir"] = absolute(cfg["run_dir"])
    cfg["data"]["cache"] = absolute(cfg["data"]["cache"])
    cfg["model"]["from_checkpoint"] = absolute(cfg["model"]["from_checkpoint"])
    enc = cfg["text"]["encoder"]
    if enc not in (None, "none", "") and (os.sep in str(enc) or "/" in str(enc) or (base / str(enc)).exists()):
        cfg["text"]["encoder"] = absolute(enc)  # a bare name (e.g. "t5-base") is looked up in the models folders
    if cfg["validation"].get("music_encoder_path"):
        cfg["validation"]["music_encoder_path"] = absolute(cfg["validation"]["music_encoder_path"])
    if not cfg["data"]["cache"]:
        raise V2MError("training config: set data.cache to a folder made by `v2m-zero prepare`")
    if bool(cfg["model"]["from_checkpoint"]) == bool(cfg["model"]["from_config"]):
        raise V2MError("training config: give exactly one of model.from_checkpoint (a V2M checkpoint) or "
                       "[model.from_config] (make_model_config fields)")
    if isinstance(cfg["model"]["from_config"], Mapping):  # the DiT's sizes, bounded like a checkpoint's
        from ..model.bounds import DIT_CONFIG_BOUNDS, check_numbers

        try:
            check_numbers(cfg["model"]["from_config"], DIT_CONFIG_BOUNDS, source="training config",
                          prefix="model.from_config.", fix="fix the config")
        except V2MError as exc:
            raise V2MError(str(exc)) from None
    for key, val, lo, hi in (("text.max_length", cfg["text"]["max_length"], 1, 4096),):
        if isinstance(val, bool) or not isinstance(val, int) or not lo <= val <= hi:
            raise V2MError(f"training config: {key} must be a whole number in {lo}…{hi}, got {val!r}")
    t, o = cfg["train"], cfg["optim"]
    v = cfg["validation"]
    for key, val, hi in (("train.batch_size", t["batch_size"], 65_536), ("train.grad_accum", t["grad_accum"], 4096),
                         ("train.max_steps", t["max_steps"], 10**9),
                         ("data.val_clips", cfg["data"]["val_clips"], 100_000),
                         ("validation.steps", v["steps"], 1000)):
        if isinstance(val, bool) or not isinstance(val, int) or not (0 if key == "data.val_clips" else 1) <= val <= hi:
            raise V2MError(f"training config: {key} must be a whole number in "
                           f"{0 if key == 'data.val_clips' else 1}…{hi}, got {val!r}")
    for key, val in (("optim.lr", o["lr"]), ("train.p_drop_text", t["p_drop_text"]),
                     ("train.p_drop_curve", t["p_drop_curve"])):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val < 0 or \
                (key.startswith("train.p_") and val > 1):
            raise V2MError(f"training config: {key} must be a finite "
                           f"number{' in 0…1' if key.startswith('train.p_') else ' >= 0'}, got {val!r}")
    if o["schedule"] not in ("constant", "cosine"):
        raise V2MError(f"training config: optim.schedule must be 'constant' or 'cosine', got {o['schedule']!r}")
    if t["precision"] not in ("bf16", "fp32"):
        raise V2MError(f"training config: train.precision must be 'bf16' or 'fp32', got {t['precision']!r}")
    _check_speed(t, o)
    if cfg["checkpoint"]["export"] not in ("ema", "model"):
        raise V2MError("training config: checkpoint.export must be 'ema' or 'model'")
    if cfg["base"] is not None and cfg["base"] not in PRESETS:
        raise V2MError(f"training config: base must be one of {', '.join(PRESETS)}, got {cfg['base']!r}")
    _check_lora(cfg["lora"])
    return cfg


def _check_lora(lora: Mapping[str, Any]) -> None:
    r, a, d, targets = lora["rank"], lora["alpha"], lora["dropout"], lora["targets"]
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= 4096:
        raise V2MError(f"training config: lora.rank must be a whole number in 1…4096, got {r!r}")
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a <= 0:
        raise V2MError(f"training config: lora.alpha must be a finite number > 0, got {a!r}")
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise V2MError(f"training config: lora.dropout must be a number in 0…1 (1 excluded), got {d!r}")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t.strip() for t in targets):
        raise V2MError("training config: lora.targets must be a non-empty "
                       "list of module names, e.g. [\"self_attn.to_qkv\"]")
    for key in ("enabled", "train_curve_weights", "export_merged"):
        if not isinstance(lora[key], bool):
            raise V2MError(f"training config: lora.{key} must be true or false, got {lora[key]!r}")


def _check_speed(t: Mapping[str, Any], o: Mapping[str, Any]) -> None:
    """The speed switches: checkpointing policy, compile, attention kernel, fused optimiser."""
    from ..model.fast import ATTENTION_KERNELS

    gc = t["gradient_checkpointing"]
    if not (isinstance(gc, bool) or gc in ("full", "selective")):
        raise V2MError("training config: train.gradient_checkpointing must be "
                       f"false, true, \"full\" or \"selective\", got {gc!r}")
    if not isinstance(t["compile"], bool):
        raise V2MError(f"training config: train.compile must be true or false, got {t['compile']!r}")
    if t["attention"] not in ATTENTION_KERNELS:
        raise V2MError("training config: train.attention must be one of "
                       f"{', '.join(ATTENTION_KERNELS)}, got {t['attention']!r}")
    if not (isinstance(o["fused"], bool) or o["fused"] == "auto"):
        raise V2MError(f"training config: optim.fused must be \"auto\", true or false, got {o['fused']!r}")


def load_config(path: str | os.PathLike) -> dict:
    """Read a TOML training config and resolve it (paths relative to the file's folder)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise V2MError(f"{p}: training config not found")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise V2MError(f"{p}: not valid TOML ({exc})") from None
    return resolve_config(raw, base_dir=p.parent)


def lr_at(step: int, optim: Mapping[str, Any], max_steps: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then constant or cosine."""
    lr, warm = float(optim["lr"]), int(optim.get("warmup_steps", 0))
    if warm > 0 and step < warm:
        return lr * (step + 1) / warm
    if optim.get("schedule") == "cosine":
        span = max(1, max_steps - warm)
        p = min(1.0, max(0.0, (step - warm) / span))
        lo = float(optim.get("min_lr_ratio", 0.0))
        return lr * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p)))
    return lr
