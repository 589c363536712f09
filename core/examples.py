"""Media the pack makes itself, with known truth: clips with cuts at chosen times, click tracks,
music with known beats and bars.

The demo clip of the main job and the templates, the synthetic data of the zero-pair experiment,
and (through :mod:`core.eval.synth`) the tests' media. Deterministic for a given seed; no weights,
no network, no third-party footage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import MediaError
from .timing.media import as_rate, write_audio, write_video


_VFR_TICKS = 90000  # write_video's VFR time base


@dataclass
class SynthClip:
    """A generated clip and its truth: frame times (s) and the time of each shot's first frame."""

    path: str
    fps: float
    duration: float
    frame_times: np.ndarray
    cut_times: list[float] = field(default_factory=list)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 5) -> np.ndarray:
    """Low-frequency noise [h, w, 3] in [0, 1]: a coarse random grid, bilinearly upsampled."""
    gh, gw = cells + 1, max(2, int(round(cells * w / max(h, 1)))) + 1
    grid = rng.random((gh, gw, 3))
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0 = np.clip(np.floor(ys).astype(int), 0, gh - 2)
    x0 = np.clip(np.floor(xs).astype(int), 0, gw - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bot = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _shot_canvas(rng: np.random.Generator, index: int, h: int, w: int) -> np.ndarray:
    """A distinct smooth colour texture [h, w, 3] float in [0, 255] for shot `index`."""
    hue = (index * 0.618034 + rng.random() * 0.15) % 1.0
    base = _hsv_to_rgb(hue, 0.55 + 0.35 * rng.random(), 0.45 + 0.45 * rng.random())
    angle = rng.random() * 2 * math.pi
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    grad = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1))[..., None]
    tex = 0.55 * base + 0.25 * _smooth_noise(rng, h, w) + 0.2 * grad * base
    return np.clip(tex, 0.0, 1.0) * 255.0


def _frame_times(duration: float, rate: Fraction, vfr: bool, rng: np.random.Generator) -> np.ndarray:
    if not vfr:
        n = max(1, int(round(duration * rate)))
        return np.arange(n, dtype=np.float64) * rate.denominator / rate.numerator  # i*den/num: 36/24 == 1.5 exactly
    ticks = [0]
    while True:
        step = int(round(rng.uniform(1 / 60, 1 / 20) * _VFR_TICKS))
        nxt = ticks[-1] + step
        if nxt >= duration * _VFR_TICKS:
            break
        ticks.append(nxt)
    return np.asarray(ticks, dtype=np.float64) / _VFR_TICKS


def _bounce(x: float, limit: int) -> int:
    """x folded into [0, limit] like a ball between two walls (continuous in x)."""
    if limit <= 0:
        return 0
    period = 2 * limit
    r = x % period
    return int(round(r if r <= limit else period - r))


def _render(size, frame_times, starts, seed, motion):
    """Yield frames: shot k (from starts[k]) with a slow pan across its own texture."""
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise MediaError(f"size must be (width, height) >= 1, got {size}")
    rng = np.random.default_rng(seed)
    pan = max(8, w // 4)  # pixels available for panning
    speeds = [(rng.uniform(4, 10) * rng.choice([-1, 1]), rng.uniform(2, 6) * rng.choice([-1, 1])) for _ in starts]
    # One canvas at a time (uint8): long 1080p clips with many shots stay small in memory.
    shot_seeds = rng.integers(0, 2**32, size=len(starts))
    current, canvas = -1, None
    for t in frame_times:
        k = int(np.searchsorted(starts, t + 1e-9, side="right") - 1)
        if k != current:
            current = k
            canvas = _shot_canvas(np.random.default_rng(shot_seeds[k]), k, h + pan, w + pan).astype(np.uint8)
        vx, vy = speeds[k] if motion else (0.0, 0.0)
        dt = t - starts[k]
        # The pan bounces between the canvas edges (a wrap-around would be a jump, i.e. a cut).
        ox = _bounce(pan / 2 + vx * dt, pan - 1)
        oy = _bounce(pan / 2 + vy * dt, pan - 1)
        yield canvas[oy : oy + h, ox : ox + w]


def make_cut_clip(
    path,
    *,
    cut_times: list[float],
    duration: float,
    fps: float | Fraction = 24,
    size=(160, 90),
    vfr: bool = False,
    seed: int = 0,
    motion: bool = True,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
) -> SynthClip:
    """Write a clip of distinct shots; a cut at c shows the new shot from the first frame with t >= c.

    CFR: round(duration * fps) frames at i / fps. vfr=True: intervals random in [1/60, 1/20] s
    (at 1/90000 s resolution), the last frame lasting 1 / fps. Within a shot the texture pans
    slowly, so neighbouring frames differ a little, far less than across a cut.
    Returned cut_times are the first-frame times of each new shot (frame-aligned truth).
    """
    if not duration > 0:
        raise MediaError(f"duration must be positive, got {duration}")
    rate = as_rate(fps)
    rng = np.random.default_rng(seed + 7919)
    times = _frame_times(float(duration), rate, vfr, rng)
    aligned: list[float] = []
    for c in sorted(float(c) for c in cut_times):
        idx = int(np.searchsorted(times, c - 1e-9, side="left"))
        if c <= 0 or idx >= len(times) or idx == 0:
            continue
        if not aligned or times[idx] > aligned[-1]:
            aligned.append(float(times[idx]))
    starts = np.asarray([0.0] + aligned)
    frames = _render(size, times, starts, seed, motion)
    out = write_video(
        frames,
        rate,
        path,
        times=times if vfr else None,
        audio=audio,
        sample_rate=sample_rate if audio is not None else None,
    )
    last = float(rate.denominator / rate.numerator)
    dur = float(times[-1] + last) if vfr else len(times) * last
    return SynthClip(path=out, fps=float(rate), duration=dur, frame_times=times, cut_times=aligned)


def click_track(
    onset_times,
    duration: float,
    *,
    sample_rate: int = 44100,
    channels: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Percussive hits (decaying noise burst + short decaying tone) at onset_times; float32 [C, T].

    T = round(duration * sample_rate); the peak is at most 0.9.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    n = int(round(duration * sample_rate))
    rng = np.random.default_rng(seed)
    out = np.zeros((channels, n), dtype=np.float64)
    hit_len = int(0.3 * sample_rate)
    t = np.arange(hit_len) / sample_rate
    tones = (110.0, 146.83, 196.0, 220.0, 293.66, 329.63, 440.0)
    for onset in onset_times:
        start = int(round(float(onset) * sample_rate))
        if start < 0 or start >= n:
            continue
        freq = tones[rng.integers(len(tones))]
        noise = rng.standard_normal(hit_len) * np.exp(-t / 0.025)
        tone = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.08)
        hit = 0.6 * noise / max(1e-9, np.abs(noise).max()) + 0.5 * tone
        end = min(n, start + hit_len)
        for c in range(channels):
            gain = 1.0 if channels == 1 else 0.75 + 0.25 * rng.random()
            out[c, start:end] += gain * hit[: end - start]
    peak = np.abs(out).max() if out.size else 0.0
    if peak > 0.9:
        out *= 0.9 / peak
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The pack's example clip: what the templates load on a fresh install

#: Its name in ComfyUI's input folder, and its cuts (s): shots of 1.25–2 s with one 0.5 s shot.
def music_track(
    duration: float,
    *,
    bpm: float = 120.0,
    sample_rate: int = 44100,
    channels: int = 2,
    meter: int = 4,
    first_beat: float = 0.0,
    seed: int = 0,
):
    """Music-like audio with known beats: ``(wave float32 [C, T], beat times, downbeat times)``.

    A steady ``bpm`` groove in ``meter``: a kick on every bar's first beat (loudest) and on the
    middle beat, a snare on the others, hi-hats on every eighth note, a bass note per beat and a
    chord pad that changes every bar (I–vi–IV–V), so both the beats and the bar lines can be
    found. Beat k is at ``first_beat + k·60/bpm``; the peak is at most 0.9.
    """
    sr = int(sample_rate)
    n = int(round(duration * sr))
    rng = np.random.default_rng(seed)
    period = 60.0 / float(bpm)
    beats = np.arange(first_beat, duration - 1e-9, period)
    out = np.zeros((2, n), dtype=np.float64)

    def add(sig, start: float, pan: float = 0.0):
        a = int(round(start * sr))
        if a >= n or a + len(sig) <= 0:
            return
        lo, hi = max(a, 0), min(a + len(sig), n)
        seg = sig[lo - a:hi - a]
        out[0, lo:hi] += seg * (1.0 - pan) / 2 * 2 ** 0.5
        out[1, lo:hi] += seg * (1.0 + pan) / 2 * 2 ** 0.5

    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 70 * 0.04 * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.12)
    noise = rng.standard_normal(len(t))
    snare = (0.6 * noise * np.exp(-t / 0.05) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.06))
    hat = np.diff(rng.standard_normal(int(0.05 * sr) + 1)) * np.exp(-np.arange(int(0.05 * sr)) / sr / 0.012)
    roots = (130.81, 110.0, 174.61, 196.0)  # C, A, F, G (I–vi–IV–V)
    bar_len = meter * period
    for i, b in enumerate(beats):
        pos = i % meter
        if pos == 0:
            add(1.0 * kick, b)
        elif meter % 2 == 0 and pos == meter // 2:
            add(0.7 * kick, b)
        else:
            add(0.55 * snare, b)
        for half in (0.0, 0.5):
            add(0.18 * hat, b + half * period, pan=-0.4 if half else 0.4)
        root = roots[(i // meter) % len(roots)]
        tb = np.arange(int(period * sr)) / sr
        add(0.22 * np.sin(2 * np.pi * root / 2 * tb) * np.exp(-tb / (period * 0.8)), b)
    for j, b in enumerate(beats[::meter]):
        root = roots[j % len(roots)]
        tp = np.arange(int(bar_len * sr)) / sr
        env = np.minimum(1.0, tp / 0.08) * np.exp(-tp / (bar_len * 1.5))
        chord = sum(np.sin(2 * np.pi * root * 2 * ratio * tp) for ratio in (1.0, 1.26, 1.5)) / 3
        add(0.2 * chord * env, b)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0.9:
        out *= 0.9 / peak
    wave = out.mean(axis=0, keepdims=True) if channels == 1 else out
    return wave.astype(np.float32), beats, beats[::meter]


DEMO_CLIP_NAME = "v2m_demo_clip.mp4"
DEMO_CUTS = (1.5, 3.0, 4.25, 6.0, 7.5, 8.0, 10.0)
DEMO_CLIP = {"duration": 12.0, "fps": 24, "size": (320, 180), "seed": 0}


def make_demo_clip(path) -> SynthClip:
    """The example clip (12 s, 24 fps, 320×180, seven cuts; our own synthetic textures, no audio).

    The same bytes for the same PyAV/FFmpeg build; a few hundred kB.
    """
    return make_cut_clip(path, cut_times=list(DEMO_CUTS), **DEMO_CLIP)


DEMO_SONG_NAME = "v2m_demo_song.wav"
DEMO_SONG = {"duration": 16.0, "bpm": 96.0, "sample_rate": 44100, "seed": 0}


def make_demo_song(path) -> str:
    """The example music of the align template: 16 s of a steady 96 BPM groove in 4/4 (kick, snare,
    hi-hats, bass, a I–vi–IV–V pad) made by :func:`music_track`, as a stereo WAV (written atomically).
    Its beats fall where the demo clip's cuts do not, so aligning it is visible."""
    wave, _beats, _bars = music_track(DEMO_SONG["duration"], bpm=DEMO_SONG["bpm"], sample_rate=DEMO_SONG["sample_rate"],
                                      first_beat=0.2, seed=DEMO_SONG["seed"])
    return write_audio(path, wave, DEMO_SONG["sample_rate"])


# --------------------------------------------------------------------------------------------
# Synthetic music with event patterns: the zero-pair toy's training data and the demo dataset

#: pattern → (caption, probability)
MUSIC_PATTERNS = {
    "sparse": ("sparse percussive hits", 0.5),
    "pulse": ("steady percussive pulse", 0.2),
    "pulse+accents": ("percussive loop with accents", 0.3),
}


def _sparse(rng: np.random.Generator, dur: float) -> list[float]:
    """Aperiodic accents, gaps uniform in [0.3, 2.2] s."""
    out, t = [], rng.uniform(0.05, 1.2)
    while t < dur - 0.05:
        out.append(t)
        t += rng.uniform(0.3, 2.2)
    return out


def _pulse(rng: np.random.Generator, dur: float, keep: float) -> list[float]:
    """A steady pulse at 60–150 BPM, each beat kept with probability ``keep``."""
    period = 60.0 / rng.uniform(60, 150)
    beats = np.arange(rng.uniform(0, period), dur - 0.05, period)
    return [float(b) for b in beats if rng.random() < keep]


def segment_onsets(rng: np.random.Generator, dur: float) -> tuple[str, list[float]]:
    """One segment's pattern name and onset times (s): sparse accents, a pulse, or both."""
    names = list(MUSIC_PATTERNS)
    kind = names[rng.choice(len(names), p=[MUSIC_PATTERNS[k][1] for k in names])]
    if kind == "sparse":
        on = _sparse(rng, dur)
    elif kind == "pulse":
        on = _pulse(rng, dur, rng.uniform(0.6, 1.0))
    else:
        on = sorted(set(np.round(_pulse(rng, dur, rng.uniform(0.3, 0.8)) + _sparse(rng, dur), 3)))
    return kind, [float(x) for x in on]


def make_pattern_music(folder, n_files: int, *, seed: int = 0, file_seconds: float = 64.0, clip_seconds: float = 8.0,
                       sample_rate: int = 8000) -> dict:
    """``n_files`` mono FLAC files of percussive hits, each made of clip-aligned segments with their
    own event pattern, and a ``captions.csv`` (the file's main pattern). Returns pattern counts."""
    import csv
    import os

    from .timing.media import write_audio

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {k: 0 for k in MUSIC_PATTERNS}
    rows = []
    n_seg = int(round(file_seconds / clip_seconds))
    for i in range(n_files):
        onsets, kinds = [], []
        for s in range(n_seg):
            kind, on = segment_onsets(rng, clip_seconds)
            counts[kind] += 1
            kinds.append(kind)
            onsets += [s * clip_seconds + t for t in on]
        wave = click_track(onsets, file_seconds, sample_rate=sample_rate, channels=1, seed=seed * 100003 + i)
        name = f"music-{i:04d}.flac"
        write_audio(os.path.join(folder, name), wave, sample_rate, layout="mono")
        rows.append((name, MUSIC_PATTERNS[max(set(kinds), key=kinds.count)][0]))
    with open(os.path.join(folder, "captions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        w.writerows(rows)
    return counts


#: The built-in demo dataset of the train template: small enough to prepare and train in minutes on a CPU.
DEMO_DATASET = {"n_files": 12, "file_seconds": 32.0, "clip_seconds": 8.0, "sample_rate": 8000, "seed": 0}
DEMO_DATASET_README = (
    "DEMO dataset made by V2M-Zero: synthetic percussive click tracks with random event patterns\n"
    "(sparse accents, steady pulses), not music. It lets the train template run on a fresh install\n"
    "and shows the paper's training on music event curves; a model trained on it is a toy.\n"
    "Put your own music files + captions in another folder of the input folder to train for real.\n"
)


def make_demo_dataset(folder) -> str:
    """Write the demo dataset into ``folder`` (made if missing; complete files are kept); returns it.

    Written into a sibling temporary folder and renamed, so a half-made dataset is never left
    under the final name.
    """
    import os
    import shutil
    import tempfile

    folder = os.path.abspath(os.fspath(folder))
    if os.path.isdir(folder) and os.listdir(folder):  # made before (it is only ever renamed into place whole)
        return folder
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".v2m-demo-music-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # a normal folder once renamed (mkdtemp makes it private)
    try:
        make_pattern_music(tmp, **DEMO_DATASET)
        with open(os.path.join(tmp, "README.txt"), "w") as f:
            f.write(DEMO_DATASET_README)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
