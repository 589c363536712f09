"""Scene Cut Hit (paper Algorithm 1) and its chance level.

A cut is *hit* when a beat of the music lies within ±tolerance (0.1 s) of it. Cuts come from
``timing.cuts`` (PySceneDetect's ``AdaptiveDetector`` for Algorithm 1), beats from librosa.
numpy and librosa are imported inside the functions, so this module imports on a bare Python.
"""

from __future__ import annotations

from ..errors import V2MError


#: librosa's onset-strength FFT size (beat_track's default): no beat in a shorter signal
BEAT_N_FFT = 2048


def beat_times(wave_mono, sr: int):
    """Beat times (s) of a mono signal: ``librosa.beat.beat_track`` + ``frames_to_time``.

    Keyword arguments only (librosa ≥0.10 made them keyword-only); the tempo (a scalar before
    0.10, an array after) is not used. A silent or empty signal gives an empty array, and so does one
    shorter than the onset envelope's analysis window (2048 samples: a 2-frame video's music), where
    librosa would only warn that its FFT is too large and find nothing.
    """
    import numpy as np

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    if y.size < BEAT_N_FFT or not np.any(y):
        return np.zeros(0, dtype=np.float64)
    import librosa

    # units="frames" pinned: Algorithm 1 converts frames with frames_to_time itself.
    _tempo, frames = librosa.beat.beat_track(y=y, sr=int(sr), units="frames")
    frames = np.asarray(frames).reshape(-1)
    if frames.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(librosa.frames_to_time(frames, sr=int(sr)), dtype=np.float64)


def onset_envelope_stream(chunks, sr: int, *, n_fft: int = 2048, hop_length: int = 512, block: int = 512):
    """``librosa.onset.onset_strength(y=y, sr=sr, aggregate=np.median)`` (what ``beat_track``
    computes from ``y``) for a signal given as a stream: ``chunks()`` yields mono float32 pieces
    of it (called twice: once for the loudest mel bin, which the dB floor of ``power_to_db``
    needs, then for the envelope). Memory holds ``block`` frames of mel, whatever the length;
    ``tests/test_audio_stream.py`` checks it equals librosa's on the whole signal."""
    import numpy as np
    import librosa

    half = n_fft // 2

    def mel_blocks():
        buf = [np.zeros(half, np.float32)]  # center=True, pad_mode="constant": n_fft // 2 zeros each side
        held, total, done = half, 0, 0
        step = (block - 1) * hop_length + n_fft  # samples that make one block of frames

        def mel(seg, frames):
            need = (frames - 1) * hop_length + n_fft
            if seg.size < need:
                seg = np.concatenate([seg, np.zeros(need - seg.size, np.float32)])
            return librosa.feature.melspectrogram(y=seg[:need], sr=sr, n_fft=n_fft, hop_length=hop_length,
                                                  center=False, fmax=0.5 * sr)

        for c in chunks():
            c = np.asarray(c, np.float32).reshape(-1)
            total += c.size
            buf.append(c)
            held += c.size
            if held >= step:  # joined only when a block is due: no copying per small chunk
                seg = np.concatenate(buf)
                ready = (seg.size - n_fft) // hop_length + 1
                yield mel(seg, ready)
                rest = seg[ready * hop_length:]
                buf, held, done = [rest], rest.size, done + ready
        n_frames = 1 + total // hop_length
        if n_frames > done:
            yield mel(np.concatenate(buf + [np.zeros(half, np.float32)]), n_frames - done)

    top = -np.inf
    for m in mel_blocks():
        top = max(top, float(np.max(m)) if m.size else -np.inf)
    floor = 10.0 * np.log10(max(top, 1e-10)) - 80.0  # power_to_db(ref=1.0, amin=1e-10, top_db=80)
    env, prev = [np.zeros(1 + n_fft // (2 * hop_length))], None
    for m in mel_blocks():
        s_db = np.maximum(10.0 * np.log10(np.maximum(1e-10, m)), floor)
        both = s_db if prev is None else np.concatenate([prev, s_db], axis=1)
        if both.shape[1] > 1:
            env.append(np.median(np.maximum(0.0, both[:, 1:] - both[:, :-1]), axis=0))
        prev = s_db[:, -1:]
    return np.concatenate(env)


def beat_times_stream(chunks, sr: int, n_samples: int, *, block: int = 2048):
    """:func:`beat_times` of a signal of ``n_samples`` given as a stream (``chunks()`` yields mono
    float32 pieces; see :func:`onset_envelope_stream`): the same beats, in flat memory (the tempo
    estimate's tempogram averaged block by block; ``tests/test_audio_stream.py`` checks the beats
    equal librosa's on the whole signal)."""
    import numpy as np

    if n_samples <= 0:
        return np.zeros(0, dtype=np.float64)
    import librosa

    env = onset_envelope_stream(chunks, sr)[:1 + n_samples // 512]
    if not np.any(env):
        return np.zeros(0, dtype=np.float64)
    # beat_track's own tempo estimate holds a [384, frames] tempogram of the whole track (GBs for an
    # hour): its mean over time is summed block by block instead and handed to librosa's tempo()
    win = int(librosa.time_to_frames(8.0, sr=int(sr), hop_length=512))  # tempo()'s ac_size = 8 s
    padded = np.pad(env, (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
    total = np.zeros(win)
    for a in range(0, env.size, block):
        b = min(env.size, a + block)
        total += librosa.feature.tempogram(onset_envelope=padded[a:b + win - 1], sr=int(sr), hop_length=512,
                                           win_length=win, center=False).sum(axis=-1)
    bpm = librosa.feature.tempo(tg=(total / env.size)[:, None], sr=int(sr), hop_length=512, aggregate=None)
    _tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=int(sr), units="frames", bpm=float(bpm[0]))
    frames = np.asarray(frames).reshape(-1)
    if frames.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(librosa.frames_to_time(frames, sr=int(sr)), dtype=np.float64)


def scene_cut_hit(cut_times, beat_times, tolerance: float = 0.1, weights=None) -> float | None:
    """Scene Cut Hit: the fraction of cuts with at least one beat within ±``tolerance`` s.

    None when there are no cuts (Algorithm 1 returns None); 0.0 when there are cuts but no beats.
    ``weights`` (one per cut, e.g. hit-point strengths) make it the weighted share; None = the
    paper's plain fraction.
    """
    import numpy as np

    cuts = np.asarray(cut_times, dtype=np.float64).reshape(-1)
    if cuts.size == 0:
        return None
    beats = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if beats.size == 0:
        return 0.0
    hit = np.abs(cuts[:, None] - beats[None, :]).min(axis=1) <= tolerance + 1e-9
    if weights is None:
        return float(hit.mean())
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    return float(np.sum(w * hit) / max(float(np.sum(w)), 1e-12))


def sch_null(
    cut_times,
    beat_times,
    duration: float,
    tolerance: float = 0.1,
    n_shifts: int = 200,
    seed: int = 0,
) -> float | None:
    """Chance level of SCH for this video's cuts and this music's beat pattern.

    The beat times are shifted circularly (``(b + s) mod duration``) and SCH is averaged over
    ``n_shifts`` shifts. The shifts are stratified over ``[0, duration)``:
    ``s_k = (k + u) · duration / n_shifts`` with one ``u ~ U[0, 1)`` drawn from ``seed``, so the
    estimate is unbiased and almost deterministic. For a steady beat grid of period P and cuts
    that fall independently of it, the expected value is ``min(1, 2·tolerance / P)``.
    None when there are no cuts; 0.0 when there are no beats.
    """
    import numpy as np

    degenerate = scene_cut_hit(cut_times, beat_times, tolerance)  # None without cuts, 0.0 without beats
    beats = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if degenerate is None or beats.size == 0:
        return degenerate
    cuts = np.asarray(cut_times, dtype=np.float64).reshape(-1)
    duration = float(duration)
    if not duration > 0:
        raise V2MError(f"sch_null needs a positive duration, got {duration}")
    n_shifts = max(1, int(n_shifts))
    u = np.random.default_rng(seed).random()
    shifts = (np.arange(n_shifts) + u) * (duration / n_shifts)
    hits = 0
    for s in shifts:  # nearest shifted beat per cut by binary search: O(C) memory, any length
        b = np.sort(np.mod(beats + s, duration))
        i = np.clip(np.searchsorted(b, cuts), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(cuts), dtype=int)
        nearest = np.minimum(np.abs(b[i] - cuts), np.abs(b[i - 1] - cuts)) if len(b) > 1 else np.abs(b[0] - cuts)
        hits += int((nearest <= tolerance + 1e-9).sum())
    return hits / (n_shifts * cuts.size)
