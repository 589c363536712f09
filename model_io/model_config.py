"""The ``model_config.json`` a Stability model ships with (stable_audio_3 / stable-audio-tools layout):
where it sits beside a weights file, reading it (bounded), and the values read from it.

Layouts: the Hugging Face repository's (``model.safetensors`` + ``model_config.json`` +
``t5gemma-b-b-ul2/``) and what ``models download`` writes into ComfyUI's checkpoints folder
(``<stem>.safetensors`` + ``<stem>/model_config.json`` + ``<stem>/t5gemma-b-b-ul2/``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ModelError

#: the most a model_config.json may weigh (the published ones are ~10 KB)
MAX_CONFIG_BYTES = 1 << 20


def reference_config_path(path: str | os.PathLike) -> Path | None:
    """Where the ``model_config.json`` of an SA3 (or SAME) file is: in the folder named like the file
    beside it (``models download`` puts the repository's small files there, e.g.
    ``checkpoints/stable_audio_3_small_music_base/model_config.json``), else beside the file (the
    Hugging Face repository layout); None when neither exists."""
    p = Path(path)
    for side in (p.with_suffix("") / "model_config.json", p.with_name("model_config.json")):
        if side.is_file():
            return side
    return None


def bundled_text_encoder_dir(path: str | os.PathLike) -> Path | None:
    """The ``t5gemma-b-b-ul2/`` folder an SA3 repository bundles (its tokenizer is the one SA3 was trained
    with), where ``models download`` puts it (``<stem>/t5gemma-b-b-ul2/`` beside the weights) or in the
    Hugging Face layout (beside the file); None when neither exists."""
    p = Path(path)
    for d in (p.with_suffix("") / "t5gemma-b-b-ul2", p.with_name("t5gemma-b-b-ul2")):
        if d.is_dir():
            return d
    return None


def number_range(c: Mapping[str, Any], name: str = "model_config.json") -> tuple[float, float]:
    """A ``number`` conditioner's ``(min_val, max_val)`` (absent: the reference defaults 0 and 1), bounded."""
    lo, hi = c.get("min_val", 0), c.get("max_val", 1)
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e6
             for v in (lo, hi))
    if not ok or not lo < hi:
        raise ModelError(f"{name}: number conditioner range min_val {lo!r}, max_val {hi!r} is not two finite "
                         "numbers with min < max (|v| <= 1e6). Fix: use the model's own model_config.json.")
    return float(lo), float(hi)


def read_reference_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``model_config.json`` of an SA3 file (see :func:`reference_config_path`), if any."""
    side = reference_config_path(path)
    if side is None:
        return None
    if side.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelError(f"{side}: {side.stat().st_size} bytes is too big for a model config (at most "
                         f"{MAX_CONFIG_BYTES}). Fix: fetch the model's model_config.json again.")
    try:
        cfg = json.loads(side.read_text())
    except ValueError as exc:
        raise ModelError(f"{side}: not valid JSON ({exc}). Fix: fetch the file again or remove it.") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{side}: not a JSON object. Fix: fetch the model's model_config.json again.")
    return cfg
