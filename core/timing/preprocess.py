"""A Hugging Face image processor's resize / centre crop / normalise as batched torch operations.

``ImageTransform.from_processor`` reads the settings of a (BiT/ViT-style) image processor —
DINOv2's: shortest edge 256, bicubic, centre crop 224, rescale 1/255, ImageNet mean/std — and
applies them to a whole uint8 batch at once, on the CPU or the GPU, instead of one PIL round trip
per frame. The resize reproduces Pillow's (which the processor calls) bit for bit: Pillow's
separable filters with its 22-bit fixed-point coefficients, the horizontal pass first, each pass
rounded to uint8. So the pixel values equal the processor's up to float rounding (≈1e-7).
Processors with settings we do not reproduce (padding, longest-edge limits, other resamplers)
give ``None`` and the caller keeps the processor itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# Pillow's resampling filters (libImaging/Resample.c): (support, kernel) by PIL.Image.Resampling value.
_PRECISION_BITS = 32 - 8 - 2


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


_F054, _F046 = float(np.float32(0.54)), float(np.float32(0.46))


def _hamming(x: float) -> float:
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x *= math.pi
    return math.sin(x) / x * (_F054 + _F046 * math.cos(x))  # Pillow writes 0.54f, 0.46f


_FILTERS = {
    1: (3.0, lambda x: _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0),  # LANCZOS
    2: (1.0, lambda x: max(0.0, 1.0 - abs(x))),  # BILINEAR
    3: (2.0, _bicubic),  # BICUBIC
    4: (0.5, lambda x: 1.0 if -0.5 < x <= 0.5 else 0.0),  # BOX
    5: (1.0, _hamming),  # HAMMING
}


@lru_cache(maxsize=64)
def _coefficients(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc``: source indices and int32 weights [out, k]."""
    support0, kernel = _FILTERS[resample]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    idx = np.zeros((out_size, ksize), np.int64)
    w = np.zeros((out_size, ksize), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(0, int(center - support + 0.5))
        xmax = min(in_size, int(center + support + 0.5)) - xmin
        k = np.array([kernel((x + xmin - center + 0.5) / filterscale) for x in range(xmax)], np.float64)
        total = k.sum()
        if total != 0.0:
            k = k / total
        idx[xx, :xmax] = np.arange(xmin, xmin + xmax)
        idx[xx, xmax:] = xmin  # weight 0: any valid index
        w[xx, :xmax] = k
    fixed = np.trunc(w * (1 << _PRECISION_BITS) + np.where(w < 0, -0.5, 0.5)).astype(np.int32)
    return idx, fixed


def _resample_axis(x: torch.Tensor, dim: int, out_size: int, resample: int) -> torch.Tensor:
    """One of Pillow's 8-bit passes along ``dim`` of a uint8 tensor (exact integer arithmetic)."""
    idx, w = _coefficients(int(x.shape[dim]), int(out_size), int(resample))
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(w).to(x.device)
    k = idx.shape[1]
    moved = x.movedim(dim, -1)  # [..., in]
    rows = moved.reshape(-1, moved.shape[-1])
    # One tap at a time ([rows, out] gathers). Exact in int32: |weights| sum to < 1.3 · 2^22 for
    # every filter, so no partial sum of 8-bit pixels times weights reaches 2^31.
    acc = torch.full((rows.shape[0], out_size), 1 << (_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    for j in range(k):
        acc += rows[:, idx_t[:, j]].to(torch.int32) * w_t[:, j]
    out = (acc >> _PRECISION_BITS).clamp_(0, 255).to(torch.uint8)
    return out.reshape(*moved.shape[:-1], out_size).movedim(-1, dim)


def pil_resize(x: torch.Tensor, height: int, width: int, resample: int = 3) -> torch.Tensor:
    """Resize uint8 ``[..., H, W]`` images as ``PIL.Image.resize((width, height), resample)`` does, exactly.

    Meant for GPUs (a few hundred µs per 1080p frame); on the CPU Pillow's SIMD code is faster,
    and :class:`ImageTransform` calls Pillow itself there.
    """
    if x.dtype != torch.uint8:
        raise TypeError(f"pil_resize takes uint8 images, got {x.dtype}")
    if resample not in _FILTERS:
        raise ValueError(f"resample {resample} is not one of Pillow's separable filters {sorted(_FILTERS)}")
    in_h, in_w = x.shape[-2:]
    if _vertical_first(in_h, in_w, height, width):
        x = _resample_axis(x, x.ndim - 2, height, resample) if in_h != height else x
        return _resample_axis(x, x.ndim - 1, width, resample) if in_w != width else x
    x = _resample_axis(x, x.ndim - 1, width, resample) if in_w != width else x
    return _resample_axis(x, x.ndim - 2, height, resample) if in_h != height else x


def _vertical_first(in_h: int, in_w: int, height: int, width: int) -> bool:
    """The pass order of the installed Pillow: horizontal first, except that Pillow 11.1+ runs the
    vertical pass first when the height shrinks by more than twice as many pixels as the width."""
    return (in_h - height) > 0 and (in_h - height) > (in_w - width) * 2 and _pillow_orders_passes()


@lru_cache(maxsize=1)
def _pillow_orders_passes() -> bool:
    """Whether this Pillow picks the pass order (probed once on a case where the orders differ)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with transformers' image processors
        return True
    img = np.random.default_rng(0).integers(0, 256, (151, 192, 3), dtype=np.uint8)
    want = torch.from_numpy(np.array(Image.fromarray(img).resize((147, 25), 3))).permute(2, 0, 1)
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    vertical = _resample_axis(_resample_axis(x, 1, 25, 3), 2, 147, 3)
    return bool(torch.equal(vertical, want))


def _pillow_resize(frames: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """uint8 [N, H, W, C] through Pillow, frame by frame (what the processor does, minus its float round trips)."""
    from PIL import Image

    out = np.empty((len(frames), height, width, frames.shape[-1]), np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((width, height), resample))
    return out


def _get(size, key):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


@dataclass(frozen=True)
class ImageTransform:
    """resize (shortest edge, or a fixed height × width) → centre crop → rescale → normalise."""

    shortest_edge: int | None = None
    fixed_size: tuple[int, int] | None = None  # (height, width)
    resample: int = 3
    crop: tuple[int, int] | None = None  # (height, width)
    rescale: float | None = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_processor(cls, proc) -> "ImageTransform | None":
        """The processor's settings, or None where it does something this class does not reproduce."""
        g = lambda name, default=None: getattr(proc, name, default)  # noqa: E731
        if g("do_pad") or g("do_reduce_labels"):
            return None
        shortest = fixed = None
        if g("do_resize", False):
            size = g("size") or {}
            if _get(size, "longest_edge") or _get(size, "max_height") or _get(size, "max_pixels"):
                return None
            if _get(size, "shortest_edge"):
                shortest = int(_get(size, "shortest_edge"))
            elif _get(size, "height") and _get(size, "width"):
                fixed = (int(_get(size, "height")), int(_get(size, "width")))
            else:
                return None
        if g("crop_pct") is not None:
            return None
        resample = int(g("resample", 2) if g("resample") is not None else 2)
        if (shortest or fixed) and resample not in _FILTERS:
            return None
        crop = None
        if g("do_center_crop", False):
            cs = g("crop_size") or {}
            if not (_get(cs, "height") and _get(cs, "width")):
                return None
            crop = (int(_get(cs, "height")), int(_get(cs, "width")))
        smallest = shortest or (min(fixed) if fixed else None)
        if crop is not None and (smallest is None or max(crop) > smallest):
            return None  # the crop could need padding (or frames of any size are cropped)
        rescale = float(g("rescale_factor")) if g("do_rescale", False) else None
        mean = std = None
        if g("do_normalize", False):
            mean, std = tuple(float(v) for v in g("image_mean")), tuple(float(v) for v in g("image_std"))
        return cls(shortest, fixed, resample, crop, rescale, mean, std)

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize (transformers' ``get_resize_output_image_size``)."""
        if self.fixed_size:
            return self.fixed_size
        if not self.shortest_edge:
            return height, width
        s = self.shortest_edge
        if width <= height:
            return int(s * height / width), s
        return s, int(s * width / height)

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) of the centre crop of an image of this size; None: no crop (or it would pad)."""
        if self.crop is None:
            return None
        ch, cw = self.crop
        top, left = (height - ch) // 2, (width - cw) // 2
        if top < 0 or left < 0:
            return None
        return top, left, ch, cw

    def needs_resize(self, height: int, width: int) -> bool:
        return self.resized(height, width) != (height, width)

    def crop_first(self, frames: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Centre-crop uint8 ``[N, H, W, C]`` frames already at the resize size (less to copy to a
        device). Returns (frames, cropped); pass ``cropped`` on to :meth:`__call__`."""
        h, w = frames.shape[1:3]
        box = None if self.needs_resize(h, w) else self.crop_box(h, w)
        if box is None:
            return frames, False
        top, left, ch, cw = box
        return frames[:, top : top + ch, left : left + cw], True

    def __call__(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32, *,
                 cropped: bool = False) -> torch.Tensor:
        """uint8 ``[N, H, W, C]`` (any device) → ``pixel_values`` ``[N, C, h, w]`` in ``dtype``.

        ``cropped``: the frames come from :meth:`crop_first` (resize and crop are done).
        """
        if cropped:
            x = frames.permute(0, 3, 1, 2)
        else:
            x = self._geometry(frames)
        y = x.to(torch.float32, memory_format=torch.contiguous_format)  # the one copy; the rest in place
        if self.rescale is not None:
            y.mul_(self.rescale)
        if self.mean is not None:
            y.sub_(torch.tensor(self.mean, dtype=torch.float32, device=y.device).view(1, -1, 1, 1))
            y.div_(torch.tensor(self.std, dtype=torch.float32, device=y.device).view(1, -1, 1, 1))
        return y.to(dtype)

    def _geometry(self, frames: torch.Tensor) -> torch.Tensor:
        """Resize (Pillow's arithmetic: Pillow itself on the CPU) and centre crop → uint8 [N, C, h, w]."""
        h, w = frames.shape[1:3]
        if self.needs_resize(h, w) and frames.device.type == "cpu":
            h, w = self.resized(h, w)
            frames = torch.from_numpy(_pillow_resize(frames.numpy(), h, w, self.resample))
        x = frames.permute(0, 3, 1, 2)
        if self.needs_resize(h, w):
            h, w = self.resized(h, w)
            x = pil_resize(x.contiguous(), h, w, self.resample)
        box = self.crop_box(h, w)
        if box is not None:
            top, left, ch, cw = box
            return x[..., top : top + ch, left : left + cw]
        return x  # from_processor made sure that the crop never needs padding
