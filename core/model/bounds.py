"""Bounds of the numbers a checkpoint or a config gives: sizes, rates, dimensions, iterations, seconds.

A checkpoint (or a training config) is untrusted input: a shared ``.safetensors`` whose metadata says
``griffin_lim_iters = 1e9`` or ``embed_dim = 1e9`` must fail at once, in one line naming the file, the
key, the value and the bound, never after hours of work or an out-of-memory kill. Each bound is the one
of the argument the number stands for (``--smoothing-seconds``, ``prepare --clip-seconds``, ``--steps``…)
where there is one, else a generous limit no real model comes near (SAO 1.0: embed_dim 1536, depth 24).

:func:`check_numbers` walks a nested mapping with a table of dotted keys (``*`` matches any list item or
key); :data:`OTHER_NUMBER_LIMIT` bounds every other number it meets (finite, at most 1e8 in size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ModelError


@dataclass(frozen=True)
class Bound:
    """A number's kind, inclusive bounds, and what it stands for (the argument whose bounds these are)."""

    kind: type
    lo: float
    hi: float
    stands_for: str = ""
    lo_open: bool = False

    def text(self) -> str:
        left = "(" if self.lo_open else "["
        return f"{left}{self.lo:g}, {self.hi:g}]" + (f" ({self.stands_for})" if self.stands_for else "")


#: Any number a table does not name: finite and at most this large (SAO 1.0's sample_size is 2097152).
OTHER_NUMBER_LIMIT = 1e8

#: Audio sample rates a model may record (a telephone-band 1 kHz test model … 384 kHz studio audio).
SAMPLE_RATE = Bound(int, 1000, 384_000, "an audio sample rate")

#: The DiT's sizes (core/model/dit.py DiTConfig; training configs' [model.from_config] use the same).
DIT_CONFIG_BOUNDS: dict[str, Bound] = {
    "embed_dim": Bound(int, 1, 16_384, "transformer width"),
    "depth": Bound(int, 1, 512, "transformer blocks"),
    "num_heads": Bound(int, 1, 512, "attention heads"),
    "io_channels": Bound(int, 1, 4096, "latent channels"),
    "cond_token_dim": Bound(int, 0, 16_384, "conditioning token width"),
    "global_cond_dim": Bound(int, 0, 16_384, "global conditioning width"),
    "prepend_cond_dim": Bound(int, 0, 16_384, "prepend conditioning width"),
    "input_concat_dim": Bound(int, 0, 64, "input-concat (curve) channels"),
    "timestep_features_dim": Bound(int, 1, 16_384, "timestep features"),
    "patch_size": Bound(int, 1, 1024, "latent frames per token"),
    "ff_mult": Bound(float, 0.25, 64, "feed-forward width multiple"),
}

#: Conditioner configs (model_config.conditioning.configs[*].config).
CONDITIONER_BOUNDS: dict[str, Bound] = {
    "max_length": Bound(int, 1, 4096, "text tokens"),
    "text_dim": Bound(int, 1, 16_384, "text width"),
    "channels": Bound(int, 1, 64, "curve channels"),
    "min_val": Bound(float, -1e6, 1e6, "number conditioner range"),
    "max_val": Bound(float, -1e6, 1e6, "number conditioner range"),
}

#: Codec configs (codec.config): the weightless mel and patch codecs, and the sizes of any other.
CODEC_BOUNDS: dict[str, Bound] = {
    "sample_rate": SAMPLE_RATE,
    "audio_channels": Bound(int, 1, 8, "audio channels"),
    "n_mels": Bound(int, 1, 1024, "mel bands, as in a mel:N_MELS codec spec"),
    "n_fft": Bound(int, 2, 65_536, "FFT size"),
    "hop_length": Bound(int, 1, 65_536, "samples per latent frame"),
    "patch_size": Bound(int, 1, 65_536, "samples per latent frame"),
    "griffin_lim_iters": Bound(int, 1, 256, "Griffin-Lim iterations; librosa's default is 32"),
    "fmin": Bound(float, 0, 192_000, "Hz"),
    "fmax": Bound(float, 0, 192_000, "Hz"),
    "offset": Bound(float, -1000, 1000, "log-mel offset"),
    "scale": Bound(float, 1e-6, 1000, "log-mel scale"),
    "amin": Bound(float, 1e-20, 1, "log floor"),
}


#: what a refused number's line ends with, by default
FIX_FILE = "the file is damaged or not made for this version: fix or re-export it"


def _bad(source: str, key: str, value: Any, bound: Bound | None, fix: str) -> ModelError:
    limit = bound.text() if bound else f"a finite number no larger than {OTHER_NUMBER_LIMIT:g}"
    return ModelError(f"{source}: {key} = {value!r} is outside {limit}; {fix}")


def check_value(value: Any, bound: Bound | None, *, source: str, key: str, fix: str = FIX_FILE) -> None:
    """One number against its bound (None: :data:`OTHER_NUMBER_LIMIT`); a ModelError naming file, key, value
    and bound. Booleans and non-numbers for a bounded key are refused too."""
    if bound is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value) or abs(value) > OTHER_NUMBER_LIMIT:
            raise _bad(source, key, value, None, fix)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(source, key, value, bound, fix)
    if bound.kind is int and float(value) != int(value):
        raise _bad(source, key, value, bound, fix)
    low_ok = value > bound.lo if bound.lo_open else value >= bound.lo
    if not low_ok or value > bound.hi:
        raise _bad(source, key, value, bound, fix)


def check_numbers(tree: Any, table: Mapping[str, Bound], *, source: str, prefix: str = "", fix: str = FIX_FILE) -> None:
    """Every number in ``tree`` (nested dicts/lists) checked: keys the ``table`` names (dotted, ``*`` for any
    list item or key, relative to ``prefix``) against their bound, the rest against :data:`OTHER_NUMBER_LIMIT`."""

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, Mapping):
            items = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(node)]
        else:
            key = ".".join(path)
            check_value(node, _lookup(table, path), source=source, key=prefix + key, fix=fix)
            return
        for k, v in items:
            walk(v, path + (k,))

    walk(tree, ())


def _lookup(table: Mapping[str, Bound], path: tuple[str, ...]) -> Bound | None:
    for pattern, bound in table.items():
        parts = pattern.split(".")
        if len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path)):
            return bound
    return None
