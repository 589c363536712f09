"""Videos of any length: music generated in windows of the checkpoint's training length.

A DiT is trained on clips of one length (SAO 1.0: up to 47 s; our fine-tunes: 32 s): one pass
over a long video would be far outside that, and attention memory grows with the square of the
length. So a video longer than one window is generated window by window, each of exactly the
training length, and the music keeps going across windows:

* **Joins at cuts.** Window k+1 takes over from window k at a *join* frame J chosen in the
  last part of window k: ``guard`` before a hit point (a cut) when one lies there, so the
  music changes where the picture does and the new window makes the cut's accent; else where
  the conditioning curve is lowest, never within ``guard`` of a hit point. Window k+1 starts
  ``overlap`` frames before J.
* **Continuity by inpainting.** Window k+1's first frames (the overlap) are window k's music:
  at every Euler step they are replaced by window k's latents re-noised to the current t
  (``x_t = t·ε + (1 − t)·x0``, with the window's own ε), so the model writes what follows them.
  The last ``fade`` frames of the overlap ramp from known to free: a latent crossfade that
  ends at J. Where the mask is 1 the result equals window k's latents exactly.
* **One prompt, one seed stream.** Window 0 draws its noise from ``seed`` (so a video of one
  window gives exactly the single-pass result), window k from :func:`window_seed`.
* **Exact length.** The last window is aligned to the end of the video (it overlaps its
  predecessor by more); decode trims to the video's duration.
* **Flat memory.** Sampling holds one window; the whole video's latents (1/64 of its audio
  for SAO 1.0) are the only buffer that grows with length; :func:`iter_decode` decodes them in
  chunks for streaming writers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .errors import V2MError
from .sampling import MAX_WINDOW_SECONDS, MIN_WINDOW_SECONDS

#: Window length for checkpoints that record none (no ``curve.clip_seconds``, no
#: ``sample_size``): the paper's training clip length (§3.5).
DEFAULT_WINDOW_SECONDS = 32.0
#: Automatic overlap: a quarter of the window, at most this many seconds.
MAX_AUTO_OVERLAP_SECONDS = 5.0
#: Crossfade at a join: half the overlap, at most this many seconds.
MAX_FADE_SECONDS = 0.5
#: No hit point within this many seconds of a crossfade.
HIT_GUARD_SECONDS = 0.25
#: Cost per search range of choosing an earlier join (in z-score units of the curve).
LATENESS_COST = 0.2


# --------------------------------------------------------------------------------------------
# window length of a checkpoint


def training_window_seconds(meta: Mapping[str, Any] | None) -> float:
    """The checkpoint's training clip length in seconds: ``meta["curve"]["clip_seconds"]`` (written by
    ``train``), else stable-audio-tools' ``model_config["sample_size"] / sample_rate`` (SAO 1.0:
    2097152 / 44100 = 47.55 s), else :data:`DEFAULT_WINDOW_SECONDS`. Values from a checkpoint are
    bounded like the user's window: outside [1, 512] s they are not a clip length and the next source is used."""
    meta = dict(meta or {})
    candidates = [(meta.get("curve") or {}).get("clip_seconds")]
    cfg = meta.get("model_config") or {}
    size, rate = cfg.get("sample_size"), cfg.get("sample_rate") or meta.get("sample_rate")
    if isinstance(size, (int, float)) and isinstance(rate, (int, float)) and rate:
        candidates.append(float(size) / float(rate))
    for c in candidates:
        if isinstance(c, (int, float)) and not isinstance(c, bool) and MIN_WINDOW_SECONDS <= c <= MAX_WINDOW_SECONDS:
            return float(c)
    return DEFAULT_WINDOW_SECONDS


def auto_overlap_seconds(window_seconds: float) -> float:
    """A quarter of the window, at most :data:`MAX_AUTO_OVERLAP_SECONDS`."""
    return min(float(window_seconds) / 4.0, MAX_AUTO_OVERLAP_SECONDS)


# --------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class Window:
    """Latent frames ``[start, stop)``; the first ``known`` come from the previous window, of
    which the last ``fade`` crossfade into this window's own music (``join = start + known``)."""

    start: int
    stop: int
    known: int = 0
    fade: int = 0

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def join(self) -> int:
        return self.start + self.known

    def mask(self) -> np.ndarray:
        """Per-frame weight of the known latents: 1 on the held overlap, a linear ramp over the
        fade, 0 on the window's own music."""
        m = np.zeros(self.length, np.float32)
        hold = self.known - self.fade
        m[:hold] = 1.0
        m[hold:self.known] = 1.0 - np.arange(1, self.fade + 1, dtype=np.float32) / (self.fade + 1)
        return m


@dataclass(frozen=True)
class WindowPlan:
    """How a video of ``total`` latent frames at ``rate`` is cut into windows."""

    windows: tuple[Window, ...]
    total: int
    rate: float
    overlap: int = 0
    fade: int = 0

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def joins(self) -> list[float]:
        """Join times in seconds (where each window after the first takes over)."""
        return [w.join / self.rate for w in self.windows[1:]]

    @property
    def starts(self) -> list[float]:
        return [w.start / self.rate for w in self.windows]

    def describe(self) -> str:
        if len(self) == 1:
            return f"one pass of {self.total / self.rate:.2f} s"
        w = self.windows[0].length / self.rate
        return (f"{len(self)} windows of {w:.2f} s, overlap {self.overlap / self.rate:.2f} s, crossfade "
                f"{self.fade / self.rate:.2f} s; joins at " + ", ".join(f"{t:.2f}" for t in self.joins) + " s")

    def to_dict(self) -> dict:
        return {"rate": self.rate, "total": self.total, "overlap": self.overlap, "fade": self.fade,
                "windows": [[w.start, w.stop, w.known, w.fade] for w in self.windows], "joins": self.joins}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WindowPlan":
        """The plan :meth:`to_dict` wrote (e.g. read back from a redo sidecar): every number checked,
        windows contiguous and covering ``[0, total)``, so a damaged file fails here in one line."""
        try:
            total, rate = int(d["total"]), float(d["rate"])
            overlap, fade = int(d.get("overlap", 0)), int(d.get("fade", 0))
            ws = tuple(Window(*(int(x) for x in w)) for w in d["windows"])
        except (KeyError, TypeError, ValueError) as e:
            raise V2MError(f"not a window plan ({type(e).__name__}: {e})") from None
        ok = (0 < total <= 1 << 31 and math.isfinite(rate) and rate > 0 and ws and ws[0].start == 0
              and ws[0].known == 0 and ws[-1].stop == total)
        for a, b in zip(ws, ws[1:]):
            ok = ok and a.start < b.start < a.stop and 0 < b.fade <= b.known <= b.length and b.join <= a.stop
        if not ok or any(not (0 <= w.start < w.stop <= total) for w in ws):
            raise V2MError("the window plan is inconsistent (windows must be ordered, overlapping and cover the "
                           "whole length)")
        return cls(ws, total, rate, overlap, fade)

    def own(self, k: int) -> tuple[int, int]:
        """Latent frames ``[a, b)`` that window ``k`` itself decides in the result: after its held
        overlap with window k − 1 (the crossfade included), up to where window k + 1 starts (which
        holds window k's frames from there as its own overlap)."""
        w = self.windows[k]
        b = self.windows[k + 1].start if k + 1 < len(self) else w.stop
        return w.start + w.known - w.fade, max(w.start + w.known - w.fade, b)

    def redo_mask(self, k: int) -> np.ndarray:
        """Per-frame weight of the known latents when window ``k`` alone is sampled again: its own
        held overlap with window k − 1 (:meth:`Window.mask`), and, mirrored on the right, the frames
        window k + 1 holds (weight 1 from where it starts) with a ramp of ``fade`` frames before
        them, so the new music flows into the kept music at both ends."""
        w = self.windows[k]
        m = w.mask()
        if k + 1 < len(self):
            r0 = self.windows[k + 1].start - w.start
            fade = max(1, self.fade or w.fade or 1)
            right = np.zeros(w.length, np.float32)
            right[r0:] = 1.0
            lo = max(0, r0 - fade)
            right[lo:r0] = (np.arange(lo, r0, dtype=np.float32) - (r0 - fade) + 1) / (fade + 1)
            m = np.maximum(m, right)
        return m


#: Where joins go: ``"cuts"``: just before a hit point (a cut; :func:`cut_join`) when one lies in
#: the join's search range, else as ``"calm"``: where the curve is lowest, away from hit points.
JOIN_MODES = ("cuts", "calm")
DEFAULT_JOINS = "cuts"


def cut_join(f: int, guard: int) -> int:
    """The join frame J for a cut in latent frame ``f``: ``guard`` frames before it, so the new window's
    own music starts just before the cut and makes the cut's accent itself, and the crossfade
    ``[J − fade, J)`` ends before it. (Measured on real footage, ``benchmarks/long_video.py
    --compare-joins``: a crossfade centred on the cut blends two windows' music over the accent and
    lowered Scene Cut Hit; one ending at the cut put the cut's hit inside the seam.)"""
    return int(f) - int(guard)


def plan_windows(total: int, window: int, overlap: int, *, rate: float, curve: Sequence[float] | None = None,
                 hits: Sequence[float] = (), fade: int | None = None,
                 guard: float = HIT_GUARD_SECONDS, joins: str = DEFAULT_JOINS) -> WindowPlan:
    """Windows of ``window`` latent frames covering ``total`` frames, joined at cuts or where ``curve`` is low.

    ``curve`` is the conditioning curve on the latent grid (``total`` values; None = flat),
    ``hits`` the hit-point times in seconds. ``total <= window`` gives one window of ``total``
    frames (one pass, exactly as without windowing). Otherwise every window is ``window`` frames
    long; the join after window k is searched in the last half of its own music
    (``[stop − (stop − join)/2, stop]``, the slack the window length and overlap allow).
    ``joins="cuts"``: the latest hit point whose join (:func:`cut_join`: ``guard`` seconds before
    it) fits that range takes the join, so the music changes where the picture does; ``"calm"``, or no hit
    point in range: the crossfade with the lowest mean curve, no hit point within ``guard``
    seconds of it, and a slight preference for later joins. Deterministic: the same inputs give
    the same plan.
    """
    if joins not in JOIN_MODES:
        raise V2MError(f"joins must be one of {', '.join(JOIN_MODES)}, got {joins!r}")
    total, window, overlap = int(total), int(window), int(overlap)
    if total < 1 or window < 2:
        raise V2MError(f"a window plan needs total >= 1 and window >= 2 latent frames, got {total} and {window}")
    if total <= window:
        return WindowPlan((Window(0, total),), total, float(rate))
    if not 1 <= overlap <= window // 2:
        raise V2MError(f"the overlap ({overlap / rate:.2f} s) must be more than 0 and at most half the window "
                       f"({window / rate:.2f} s)")
    fade = max(1, min(overlap // 2, int(round(MAX_FADE_SECONDS * rate)))) if fade is None else int(fade)
    if not 1 <= fade <= overlap:
        raise V2MError(f"the crossfade ({fade} frames) must be within the overlap ({overlap} frames)")
    cost = _join_costs(total, fade, rate, curve, hits, guard)
    cut_joins = np.zeros(0, np.int64)
    if joins == "cuts":
        frames = np.floor(np.asarray(hits, np.float64).reshape(-1) * rate)
        frames = frames[np.isfinite(frames)].astype(np.int64)
        cut_joins = np.unique(cut_join(0, int(math.ceil(guard * rate))) + frames)  # sorted, one per cut
    windows = [Window(0, window)]
    while windows[-1].stop < total:
        prev = windows[-1]
        hi = prev.stop
        lo = max(hi - max(1, (prev.stop - prev.join) // 2), prev.start + overlap + 1, prev.join + fade)
        lo = min(lo, hi)
        fits = cut_joins[(cut_joins >= lo) & (cut_joins <= min(hi, total))]
        if fits.size:
            join = int(fits[-1])
        else:
            span = np.arange(lo, hi + 1)
            late = LATENESS_COST * (hi - span) / max(1, hi - lo)
            join = int(span[np.argmin(cost[span] + late)])
        start = join - overlap
        if start + window >= total:  # the last window ends at the video's end
            start = total - window
        windows.append(Window(start, start + window, join - start, fade))
    return WindowPlan(tuple(windows), total, float(rate), overlap, fade)


def _join_costs(total: int, fade: int, rate: float, curve, hits, guard: float) -> np.ndarray:
    """cost[J] for a join at frame J: mean curve over the crossfade [J − fade, J), +1000 per
    hit point within ``guard`` seconds of it (so a join lands on a hit only when nothing else can)."""
    c = np.zeros(total, np.float64) if curve is None else np.asarray(curve, np.float64).reshape(-1)
    if c.shape[0] != total:
        raise V2MError(f"the curve has {c.shape[0]} values for {total} latent frames")
    cum = np.concatenate([[0.0], np.cumsum(c)])
    j = np.arange(total + 1)
    a = np.clip(j - fade, 0, total)
    cost = (cum[j] - cum[a]) / np.maximum(j - a, 1)
    g = int(math.ceil(guard * rate))
    for h in np.asarray(hits, np.float64).reshape(-1):
        f = int(math.floor(h * rate))  # the latent frame the hit falls in
        # the crossfade [J − fade, J) is within g frames of f when J − fade − g <= f < J + g
        lo, hi = max(0, f - g + 1), min(total, f + fade + g)
        cost[lo:hi + 1] += 1000.0
    return cost


def window_seed(seed: int, index: int) -> int:
    """The noise seed of window ``index``: ``seed`` itself for the first, then a hash of
    (seed, index) (numpy's SeedSequence), so windows draw independent noise from one seed."""
    if index == 0:
        return int(seed)
    a, b = np.random.SeedSequence([int(seed) & (2**64 - 1), int(index)]).generate_state(2, np.uint32)
    return (int(a) << 31 | int(b) >> 1)  # < 2**63: any torch.Generator seed


# --------------------------------------------------------------------------------------------
# sampling


def window_norms(plan: WindowPlan, raw_times: np.ndarray, raw_values: np.ndarray, *,
                 min_std: float = 1e-6) -> np.ndarray:
    """Per-window standardisation of the curve, as each training clip was standardised on its own:
    ``[n, 2]`` (mean, std) of the raw event curve's samples inside each window (by time), to be
    applied to that window's slice of the conditioning curve: ``(c − mean) / std`` (smoothing and
    resampling are linear, so this equals standardising the window's raw curve first). A window
    whose raw curve is flat (std < ``min_std``) gets std 0: the zero curve, as training gives it."""
    t = np.asarray(raw_times, np.float64).reshape(-1)
    v = np.asarray(raw_values, np.float64).reshape(-1)
    out = np.zeros((len(plan), 2), np.float64)
    for k, w in enumerate(plan.windows):
        sel = v[(t >= w.start / plan.rate) & (t < w.stop / plan.rate)]
        if sel.size >= 2 and math.isfinite(float(sel.std())) and float(sel.std()) >= min_std:
            out[k] = float(sel.mean()), float(sel.std())
    return out


def window_curve(values: np.ndarray | None, w: Window, norm: Sequence[float] | None = None) -> torch.Tensor:
    """The conditioning curve of window ``w`` ``[1, 1, length]``: its slice of ``values`` (None: the
    zero curve), standardised by ``norm`` = (mean, std) when given (std 0: the zero curve)."""
    if values is None or (norm is not None and not norm[1]):
        return torch.zeros(1, 1, w.length)
    c = np.asarray(values[w.start:w.stop], np.float64)
    if norm is not None:
        c = (c - norm[0]) / norm[1]
    return torch.from_numpy(c.astype(np.float32))[None, None]


def sample_windows(
    model,
    curve: np.ndarray | None,
    plan: WindowPlan,
    timesteps: Sequence[float] | torch.Tensor,
    *,
    text_cond: Mapping[str, Any],
    negative: Mapping[str, Any] | None,
    cfg_scale: float,
    seed: int,
    uncond: str,
    callback: Callable[[dict], None] | None = None,
    net: Callable[..., torch.Tensor] | None = None,
    norms: np.ndarray | None = None,
    only: int | None = None,
    previous: torch.Tensor | None = None,
    side: Any = None,
) -> torch.Tensor:
    """Latents ``[1, D, plan.total]`` (float32, CPU) sampled window by window (see the module doc).

    ``model`` is the :class:`~core.model.bundle.MusicModel`; ``curve`` the conditioning curve on
    the latent grid (None = the zero curve); ``norms`` its per-window standardisation
    (:func:`window_norms`; None: the slices as they are); ``timesteps`` the schedule of every window;
    ``text_cond`` and ``negative`` the DiT's text conditioning for one window (built once).
    ``callback`` gets the sampler's state plus ``window``, ``windows``, ``step`` (over the whole
    job, from 0) and ``total`` (steps of the whole job); raise in it to stop between steps.
    ``net`` is the network to evaluate (default ``model.dit``; e.g. its compiled form); ``side``
    the job's :class:`~core.model.flow.SideBySide` (guidance's branches on two threads), if any.

    ``only=k`` with ``previous`` (the latents of an earlier run of this plan) samples window k
    alone again, inpainted against its neighbours at both ends (:meth:`WindowPlan.redo_mask`),
    with the noise of ``window_seed(seed, k)``: the result is ``previous`` with only
    :meth:`WindowPlan.own` of window k replaced; every other frame is bit-identical.
    """
    from .model import flow

    dit, dev, dt = model.dit, model.device, model.dtype
    channels = dit.config.io_channels
    values = None if curve is None else np.asarray(curve, np.float32).reshape(-1)
    n, steps = len(plan), len(timesteps) - 1
    if only is not None:
        if previous is None or tuple(previous.shape) != (1, channels, plan.total):
            raise V2MError(f"redoing window {only} needs the earlier run's latents [1, {channels}, {plan.total}], "
                           f"got {None if previous is None else tuple(previous.shape)}")
        if not 0 <= int(only) < n:
            raise V2MError(f"window {only} does not exist: this job has windows 0–{n - 1}")
        a, b = plan.own(int(only))
        if b <= a:
            raise V2MError(f"window {only} has no music of its own to redo (its neighbours hold all its frames)")
        out = previous.detach().to("cpu", torch.float32).clone()
        todo = [int(only)]
    else:
        out = torch.zeros(1, channels, plan.total)
        todo = list(range(n))
    for i, k in enumerate(todo):
        w = plan.windows[k]
        c = window_curve(values, w, None if norms is None else norms[k])
        sampler = None
        mask = plan.redo_mask(k) if only is not None else (w.mask() if w.known else None)
        if mask is not None:
            sampler = functools.partial(flow.sample_euler_inpaint, known=out[..., w.start:w.stop].clone(),
                                        mask=torch.from_numpy(mask)[None, None])
        cb = None
        if callback is not None:
            def cb(state, k=k, i=i):
                callback(dict(state, window=k, windows=n, step=i * steps + state["i"], total=len(todo) * steps))
        x = flow.sample(net or dit, (1, channels, w.length), timesteps, seed=window_seed(seed, k), cfg_scale=cfg_scale,
                        uncond=uncond, cond=text_cond, curve=c.to(dev, dt), negative=negative, sampler=sampler,
                        callback=cb, device=dev, dtype=dt, side=side)
        x = x.float().cpu()
        if only is None:
            out[..., w.start:w.stop] = x
        else:
            out[..., a:b] = x[..., a - w.start:b - w.start]
    return out


# --------------------------------------------------------------------------------------------
# decoding in chunks


def decode_context_frames(codec) -> int:
    """Latent frames of context a chunked decode needs on each side (0 for frame-local codecs)."""
    from .model.codec import PatchCodec

    return 0 if isinstance(codec, PatchCodec) else int(getattr(codec, "decode_context_frames", 16))


@torch.no_grad()
def iter_decode(codec, latents: torch.Tensor, n_samples: int, *, chunk: int = 256,
                device=None) -> Iterator[np.ndarray]:
    """Decode ``[1, D, L]`` latents in chunks of ``chunk`` frames: float32 ``[C, n]`` pieces that
    add up to exactly ``n_samples`` (zero-padded or trimmed at the end).

    Each chunk is decoded with :func:`decode_context_frames` of context on both sides, which
    is cut away, as ``OobleckVAE.decode_chunked`` does; memory holds one chunk of audio.
    """
    total = latents.shape[-1]
    ctx = decode_context_frames(codec)
    r = int(codec.downsampling_ratio)
    sent = 0
    for s in range(0, total, chunk):
        e = min(total, s + chunk)
        a, b = max(0, s - ctx), min(total, e + ctx)
        lat = latents[..., a:b].to(device or "cpu", torch.float32)
        y = codec.decode(lat).float().cpu().numpy()[0]
        piece = y[:, (s - a) * r:(s - a) * r + (e - s) * r]
        piece = piece[:, :max(0, n_samples - sent)]
        if piece.shape[-1]:
            yield np.ascontiguousarray(piece, dtype=np.float32)
        sent += piece.shape[-1]
    if sent < n_samples:
        yield np.zeros((int(codec.audio_channels), n_samples - sent), np.float32)
