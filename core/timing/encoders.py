"""Frame encoders: frames [N, H, W, 3] uint8 → features [N, D], and video → Features / event curve (paper §3.2, §3.5).

An encoder is registered by id. Weightless ones (``pixels``, ``histogram``) need no download and
serve tests, the demo and quick previews; ``dinov2`` is the paper's default. Heavy libraries
(torch, transformers) are imported only when such an encoder is built.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import V2MError
from ..precision import precision_name, torch_device, torch_dtype
from ..registry import Registry
from . import curves, media
from .curves import Features


class FrameEncoder(ABC):
    """Turns RGB frames into one feature vector per frame."""

    id: str = ""
    # Shorter side the frames should be decoded at (None: native). Decoding straight to this
    # size is what keeps long videos cheap.
    decode_size: int | None = None
    # Frames per decoded batch, and how many batches a background thread decodes ahead while
    # this encoder works on the last one (0: decode and encode take turns).
    decode_batch: int = 32
    prefetch: int = 0

    @abstractmethod
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames uint8 [N, H, W, 3] → float32 [N, D]."""

    def close(self) -> None:  # noqa: B027  # an optional hook, a no-op by default: not every encoder holds weights
        """Release weights and device memory."""

    def describe(self) -> dict:
        return {"encoder": self.id}


_ENCODERS: Registry[FrameEncoder] = Registry("frame encoder")
register_encoder = _ENCODERS.register
encoder_ids = _ENCODERS.ids
get_encoder = _ENCODERS.get


def _area_resize(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Box-filter down-sampling of [N, H, W, C] to [N, out_h, out_w, C] (float32)."""
    n, h, w, c = frames.shape
    ys = np.linspace(0, h, out_h + 1).astype(np.int64)
    xs = np.linspace(0, w, out_w + 1).astype(np.int64)
    f = frames.astype(np.float32)
    # Sum over row bands, then column bands (reduceat keeps it vectorised). A band of width 0
    # (a frame smaller than the grid) makes reduceat take the single element at its start.
    rows = np.add.reduceat(f, ys[:-1], axis=1) / np.maximum(np.diff(ys), 1)[None, :, None, None]
    return np.add.reduceat(rows, xs[:-1], axis=2) / np.maximum(np.diff(xs), 1)[None, None, :, None]


@register_encoder("pixels")
class PixelEncoder(FrameEncoder):
    """Weightless: the frame box-filtered to ``grid``×``grid`` and scaled to [−1, 1].

    Centring the values makes the cosine respond to changes of brightness and colour, not just
    of pattern; a cut between two different shots gives a large dissimilarity.
    """

    id = "pixels"

    def __init__(self, grid: int = 16, **_ignored):
        if grid < 1:
            raise V2MError(f"pixels encoder grid must be ≥ 1, got {grid}")
        self.grid = int(grid)
        self.decode_size = max(32, 2 * self.grid)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        small = _area_resize(np.asarray(frames), self.grid, self.grid)
        return (small.reshape(len(small), -1) / 127.5 - 1.0).astype(np.float32)

    def describe(self) -> dict:
        return {"encoder": self.id, "grid": self.grid}


@register_encoder("histogram")
class HistogramEncoder(FrameEncoder):
    """Weightless: a joint RGB colour histogram (``bins``³), square-rooted.

    The cosine of square-rooted normalised histograms is their Bhattacharyya coefficient, so
    a_k is one minus the histogram overlap of consecutive frames: blind to motion inside a
    shot, sharp at cuts.
    """

    id = "histogram"

    def __init__(self, bins: int = 8, **_ignored):
        if not 2 <= bins <= 32:
            raise V2MError(f"histogram bins must be in 2…32, got {bins}")
        self.bins = int(bins)
        self.decode_size = 64

    def encode(self, frames: np.ndarray) -> np.ndarray:
        f = np.asarray(frames)
        n = f.shape[0]
        q = (f.astype(np.int64) * self.bins) >> 8  # 0 … bins−1 per channel
        idx = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        idx = idx.reshape(n, -1) + (np.arange(n)[:, None] * self.bins**3)
        counts = np.bincount(idx.ravel(), minlength=n * self.bins**3).reshape(n, -1)
        hist = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        return np.sqrt(hist).astype(np.float32)

    def describe(self) -> dict:
        return {"encoder": self.id, "bins": self.bins}


DINOV2_SIZES = {"dinov2-s": "dinov2-small", "dinov2-b": "dinov2-base", "dinov2": "dinov2-large",
                "dinov2-l": "dinov2-large", "dinov2-g": "dinov2-giant"}


@register_encoder("dinov2")
class Dinov2Encoder(FrameEncoder):
    """DINOv2 (transformers ``Dinov2Model``) from a local folder; paper default DINOv2-L.

    ``pooling``: ``mean_patch`` (the paper's spatial pooling: mean of the patch tokens of the
    final layer-normed sequence) or ``cls``. Frames are preprocessed by the folder's own image
    processor (resize, centre crop, normalise), so every checkpoint sees what it was trained on.
    """

    id = "dinov2"
    prefetch = 2

    def __init__(
        self,
        model: str = "dinov2-large",
        *,
        pooling: str = "mean_patch",
        device: str | None = None,
        precision: str = "fp32",
        batch_size: int | None = None,
        **_ignored,
    ):
        if pooling not in ("mean_patch", "cls"):
            raise V2MError(f"pooling must be 'mean_patch' or 'cls', got {pooling!r}")

        from ...model_io.hf import load_dinov2
        from .preprocess import ImageTransform

        self.pooling = pooling
        self.device = torch_device(device)
        self.batch_size = max(1, int(batch_size or (64 if self.device.type == "cuda" else 16)))
        self.decode_batch = self.batch_size
        self.dtype = torch_dtype(precision)
        self.path, self.processor, self.model = load_dinov2(model, dtype=self.dtype)
        self.model.eval().to(self.device)
        # The processor's resize / crop / normalise as batched tensor operations (on the model's
        # device); None for a processor configuration we do not reproduce: then it runs itself.
        self.transform = ImageTransform.from_processor(self.processor)
        size = getattr(self.processor, "size", None) or {}
        get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        self.decode_size = int(get("shortest_edge") or get("height") or 256)

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def pixel_values(self, frames: np.ndarray):
        """uint8 [N, H, W, 3] → the model's ``pixel_values`` on its device, in its dtype."""
        import torch

        if self.transform is None:
            px = self.processor(images=list(frames), return_tensors="pt")["pixel_values"]
            return px.to(self.device, self.dtype)
        # Crop on the CPU first when no resize is due (the decoder already scaled the frames):
        # then only the crop is copied, as uint8, through pinned memory to the GPU.
        x, cropped = self.transform.crop_first(torch.from_numpy(np.asarray(frames)))
        if self.device.type == "cuda":
            staged = torch.empty(x.shape, dtype=torch.uint8, pin_memory=True)
            staged.copy_(x)
            x = staged.to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            x = x.to(self.device)
        return self.transform(x, self.dtype, cropped=cropped)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = np.asarray(frames)
        out = []
        for i in range(0, len(frames), self.batch_size):
            px = self.pixel_values(frames[i : i + self.batch_size])
            with torch.inference_mode():
                hidden = self.model(pixel_values=px).last_hidden_state
            pooled = hidden[:, 1:].mean(dim=1) if self.pooling == "mean_patch" else hidden[:, 0]
            out.append(pooled.float().cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.model.config.hidden_size), np.float32)

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def describe(self) -> dict:
        return {"encoder": self.id, "model": os.path.basename(os.path.normpath(self.path)), "pooling": self.pooling}


# Short ids (dinov2-s/b/l/g) and the folder names (dinov2-small/base/large/giant, as checkpoints'
# curve specs record them) both select DINOv2 with that model folder by default.
for _alias, _name in DINOV2_SIZES.items():
    for _id in {_alias, _name} - {"dinov2"}:
        register_encoder(_id)(lambda _n=_name, **kw: Dinov2Encoder(kw.pop("model", _n), **kw))


ProgressFn = Callable[[int, int | None], None]


def _decoded(src, encoder: FrameEncoder, *, size, sample_fps, batch, stats=None):
    """The video's frame batches at the encoder's size, decoded ahead in a thread if it asks."""
    stream = media.iter_frames(src, size=size or encoder.decode_size, sample_fps=sample_fps,
                               batch=batch or encoder.decode_batch, stats=stats)
    return media.prefetch(stream, encoder.prefetch) if encoder.prefetch else stream


def encode_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    encoder: FrameEncoder,
    *,
    duration: float,
    total: int | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Features:
    """Encode a stream of (frames, times) batches into Features; progress/interrupt per batch."""
    vals, times, done = [], [], 0
    for frames, t in batches:
        if check_interrupt is not None:
            check_interrupt()
        if len(frames) == 0:
            continue
        vals.append(np.asarray(encoder.encode(frames), dtype=np.float32))
        times.append(np.asarray(t, dtype=np.float64))
        done += len(frames)
        if progress is not None:
            progress(done, total)
    if not vals:
        raise V2MError("no frames were decoded: the video is empty")
    return Features(
        values=np.concatenate(vals),
        times=np.concatenate(times),
        duration=float(duration),
        encoder=encoder.id,
        meta=encoder.describe(),
    )


def encode_video(
    src,
    encoder: FrameEncoder,
    *,
    sample_fps: float | None = None,
    size: int | None = None,
    batch: int | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: Callable[[], None] | None = None,
    info=None,
) -> Features:
    """Stream-decode a video (path or file object) straight to the encoder's size and encode it.

    ``info`` (a ``media.VideoInfo`` the caller already has) saves a probe of the file.
    """
    info = info or media.probe_video(src)
    if hasattr(src, "seek"):
        src.seek(0)
    total = info.frame_count if not sample_fps else int(info.duration * sample_fps) + 1
    with contextlib.closing(_decoded(src, encoder, size=size, sample_fps=sample_fps, batch=batch)) as stream:
        feats = encode_batches(
            ((b.frames, b.times) for b in stream),
            encoder,
            duration=info.duration,
            total=total,
            progress=progress,
            check_interrupt=check_interrupt,
        )
    return Features(feats.values, feats.times, feats.duration, feats.encoder,
                    dict(feats.meta, fps=info.fps, source=str(getattr(info, "path", ""))))


def encode_video_curve(
    src,
    encoder: FrameEncoder,
    *,
    sample_fps: float | None = None,
    size: int | None = None,
    batch: int | None = None,
    min_std: float | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: Callable[[], None] | None = None,
):
    """The event curve of a video in constant memory: features are never kept.

    Same result as ``curves.event_curve(encode_video(...))``, but only the last feature vector
    of each batch is carried over, so memory does not grow with the video's length.
    """
    # One pass over the file: the decoder also measures the exact duration (no probe first).
    stats: dict = {}
    total = None
    prev = None
    parts, times, done = [], [], 0
    # closed at once on an error or an interrupt: a decode-ahead thread stops and the file closes
    with contextlib.closing(_decoded(src, encoder, size=size, sample_fps=sample_fps, batch=batch,
                                     stats=stats)) as stream:
        for b in stream:
            if check_interrupt is not None:
                check_interrupt()
            f = np.asarray(encoder.encode(b.frames), dtype=np.float32)
            t = np.asarray(b.times, dtype=np.float64)
            if prev is not None:
                f, t = np.concatenate([prev[0][None], f]), np.concatenate([[prev[1]], t])
            if len(f) > 1:
                parts.append(curves.cosine_dissimilarity(f))
                times.append(t[1:])
            prev = (f[-1], t[-1])
            done += len(b)
            if progress is not None:
                progress(done, total)
    if prev is None:
        raise V2MError("no frames were decoded: the video is empty")
    kw = {} if min_std is None else {"min_std": min_std}
    a = np.concatenate(parts) if parts else np.zeros(0)
    return curves.curve_from_dissimilarity(a, np.concatenate(times) if times else np.zeros(0), stats["duration"],
                                           encoder=encoder.id, **kw)


def encode_frames(
    frames,
    fps: float,
    encoder: FrameEncoder,
    *,
    sample_fps: float | None = None,
    batch: int = 32,
    convert: Callable[[Any], np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Features:
    """Encode in-memory frames played at ``fps`` (frame k at k/fps).

    ``frames`` is anything indexable by an index array with ``len`` (a uint8 [N, H, W, 3] array,
    or a torch IMAGE batch with ``convert`` turning each chunk into uint8 RGB). ``sample_fps``
    keeps, for every tick k/sample_fps, the first frame at or after it (as ``media.iter_frames``).
    """
    if fps is None or not fps > 0:
        raise V2MError(f"fps must be positive for image frames, got {fps}: connect the frame rate of the video")
    n = len(frames)
    t = np.arange(n, dtype=np.float64) / float(fps)
    keep = np.arange(n)
    if sample_fps:
        ticks = np.arange(0.0, n / float(fps), 1.0 / sample_fps)
        keep = np.unique(np.searchsorted(t, ticks - 1e-9))
        keep = keep[keep < n]
    convert = convert or np.asarray
    batches = ((convert(frames[keep[i : i + batch]]), t[keep[i : i + batch]]) for i in range(0, len(keep), batch))
    if encoder.prefetch:  # convert the next chunk while this one is encoded
        batches = media.prefetch(batches, encoder.prefetch)
    with contextlib.closing(batches):
        return encode_batches(batches, encoder, duration=n / float(fps), total=len(keep), progress=progress,
                              check_interrupt=check_interrupt)
