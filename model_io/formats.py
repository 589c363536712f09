"""What a weights file is — the one registry — and how to read the DiT of the files that carry one.

Users hand us ``.safetensors`` files by path or from ComfyUI's folders, and a file's name says
nothing reliable. What it is follows from its safetensors header alone (tensor names and shapes,
plus the string metadata), read once through :class:`.weights.SafetensorsFile`, so deciding costs no
tensor reads. Every place that asks "what is this file?" — the loaders, the node dropdowns, the
trainer — asks here, so a new layout is taught to the pack in one place.

Formats are tried in :data:`FORMATS` order; the first that fits wins (a V2M checkpoint made from a
Stable Audio 3 file still has SA3's keys, so V2M comes first).

The readers of each layout (:mod:`.checkpoint`, :mod:`.sao`, :mod:`.sa3`) sit below this module and
never import it: they are handed files this registry has already recognised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import ModelError
from .codec import DIFFUSERS_ANCHORS, SAT_ANCHORS, find_prefix
from .sa3 import SIGNATURE as SA3_SIGNATURE
from .sao import SAO_ANCHORS
from .same import find_same_prefix
from .weights import SafetensorsFile

#: a T5 encoder in the Hugging Face key layout (ComfyUI's ``t5_base.safetensors``)
T5_ANCHOR = "encoder.block.0.layer.0.SelfAttention.q.weight"
T5_BIAS = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
#: ComfyUI's single-file T5Gemma encoder (``t5gemma_b_b_ul2.safetensors``)
T5GEMMA_PREFIX = "model.encoder.layers.0.pre_self_attn_layernorm"


@dataclass(frozen=True)
class Format:
    """One kind of weights file: its id, the name users know it by, and whether it carries a DiT."""

    id: str
    title: str
    carries_dit: bool
    fits: Callable[[SafetensorsFile], bool]

    def __str__(self) -> str:
        return self.title


def _is_lora(f: SafetensorsFile) -> bool:
    return "v2m_lora" in f.metadata


def _is_v2m(f: SafetensorsFile) -> bool:
    return "v2m_format" in f.metadata


def _is_sa3(f: SafetensorsFile) -> bool:
    return all(k in f.header for k in SA3_SIGNATURE)


def _is_sao1(f: SafetensorsFile) -> bool:
    h = f.header
    conv_key, proj_key, qkv_key, seconds = SAO_ANCHORS
    if not (conv_key in h and proj_key in h and qkv_key in h and any(k.startswith(seconds) for k in h)):
        return False
    return h[conv_key]["shape"][0] == h[proj_key]["shape"][1]  # not widened by a curve channel yet (patch size 1)


def _is_t5gemma(f: SafetensorsFile) -> bool:
    return any(k.startswith(T5GEMMA_PREFIX) for k in f.header)


def _is_t5(f: SafetensorsFile) -> bool:
    return T5_ANCHOR in f.header and T5_BIAS in f.header


def _is_same(f: SafetensorsFile) -> bool:
    return find_same_prefix(f.keys()) is not None


def _is_oobleck(f: SafetensorsFile) -> bool:
    return find_prefix(f.keys(), SAT_ANCHORS + DIFFUSERS_ANCHORS) is not None


LORA = Format("v2m_lora", "V2M LoRA adapter", False, _is_lora)
V2M = Format("v2m", "V2M checkpoint", True, _is_v2m)
SA3 = Format("sa3", "Stable Audio 3 single file", True, _is_sa3)
SAO1 = Format("sao1", "Stable Audio Open 1.0 single file", True, _is_sao1)
T5GEMMA = Format("t5gemma", "T5Gemma text encoder file (ComfyUI's t5gemma_b_b_ul2.safetensors)", False, _is_t5gemma)
T5 = Format("t5", "T5 text encoder file (ComfyUI's t5_base.safetensors)", False, _is_t5)
SAME = Format("same", "SAME autoencoder file (Stable Audio 3's codec)", False, _is_same)
OOBLECK = Format("oobleck", "Oobleck VAE file (Stable Audio Open's codec)", False, _is_oobleck)

#: every format, in the order they are tried (the first that fits wins)
FORMATS: tuple[Format, ...] = (LORA, V2M, SA3, SAO1, T5GEMMA, T5, SAME, OOBLECK)
BY_ID = {f.id: f for f in FORMATS}


def open_file(file: "str | os.PathLike | SafetensorsFile") -> SafetensorsFile:
    """``file`` with its header parsed (a :class:`SafetensorsFile` is passed through, not parsed again)."""
    return file if isinstance(file, SafetensorsFile) else SafetensorsFile(file)


def detect(file: "str | os.PathLike | SafetensorsFile") -> Format | None:
    """The format of ``file`` (reads the header only), or None when no format fits.

    A file that is not a readable safetensors file raises :class:`ModelError` (from :mod:`.weights`),
    naming it and the fix."""
    f = open_file(file)
    return next((fmt for fmt in FORMATS if fmt.fits(f)), None)


def identify(file: "str | os.PathLike | SafetensorsFile") -> Format:
    """The format of ``file``; a ``ModelError`` naming the file and the known formats when none fits."""
    f = open_file(file)
    fmt = detect(f)
    if fmt is None:
        first = ", ".join(f.keys()[:4]) or "no tensors"
        known = "; ".join(x.title for x in FORMATS)
        raise ModelError(f"{f.path}: not a weights file this pack knows (first keys: {first}). "
                         f"Fix: give one of: {known}.")
    return fmt


def is_format(file: Any, *ids: str) -> bool:
    """Whether ``file`` is one of the formats ``ids`` (e.g. ``"sa3"``); False for an unreadable file."""
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        raise ValueError(f"unknown format id(s) {unknown}: known are {', '.join(BY_ID)}")
    try:
        fmt = detect(file)
    except (ModelError, OSError, ValueError):
        return False
    return fmt is not None and fmt.id in ids


def read_dit(file: "str | os.PathLike | SafetensorsFile", *, device: Any = "cpu", dtype=None):
    """The DiT of any file that carries one, with the event-curve input channel, in eval mode.

    A V2M checkpoint is read as written; a Stable Audio 3 or Stable Audio Open 1.0 single file is
    initialised in memory as ``init-checkpoint`` would write it (the curve channel with zero weights;
    ``meta`` says so). The model carries ``.objective`` and ``.meta``. ``dtype`` casts the floating
    weights (rotary frequencies stay float32).
    """
    f = open_file(file)
    fmt = detect(f)
    if fmt is None:
        first = ", ".join(f.keys()[:4]) or "no tensors"
        raise ModelError(f"{f.path}: holds no music DiT this pack knows: not a V2M checkpoint (no 'v2m_format' in its "
                         f"metadata), nor a Stable Audio Open 1.0 or Stable Audio 3 single file (first keys: {first}). "
                         "Fix: choose one of those, or make a V2M checkpoint with `v2m-zero init-checkpoint`.")
    if fmt is V2M:
        from .checkpoint import build_dit_from_checkpoint

        return build_dit_from_checkpoint(f, device=device, dtype=dtype)
    if fmt is SA3:
        from .checkpoint import dit_from_parts
        from .sa3 import sa3_v2m_parts

        state, meta = sa3_v2m_parts(f, include_pretransform=False)
        return dit_from_parts(state, meta, source=str(f.path), device=device, dtype=dtype)
    if fmt is SAO1:
        from .sao import load_sao_as_v2m

        return load_sao_as_v2m(f, device=device, dtype=dtype)
    raise ModelError(f"{f.path} is a {fmt.title}, which holds no music DiT. Fix: choose a V2M checkpoint, "
                     "a Stable Audio Open 1.0 or a Stable Audio 3 single file.")
