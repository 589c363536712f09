"""What a track offers to align: beats, bar lines where they can be heard, onsets and their strengths.

Everything is measured with librosa on a mono mix at 22.05 kHz with a 256-sample hop (11.6 ms):
the onset-strength envelope (spectral flux of a mel spectrogram), onsets from
``librosa.onset.onset_detect``, bar cues, chroma and energy. The beats come from one of two
trackers (``tracker=``): ``"sch"``, Scene Cut Hit's own (``librosa.beat.beat_track`` on the mix at
its own rate, a median over bands: the beats the metric hears, often the slower of two possible
tempi), or ``"mel"``, ``beat_track`` on the envelope above (often the faster one) — or they are
given (``beats=``: where a tracker heard them in a stretched rendering, mapped back; see
``pipeline.align_music``, which tries these readings in turn).

Bar lines (downbeats) have no tracker in librosa. We read them from two cues that mark the first
beat of a bar in most music: a low-frequency onset (the kick) and a harmonic change (chroma). For
each meter (4 and 3) and each phase, the mean cue of the beats at that phase is compared with the
others; a phase that stands out clearly (a t-statistic above :data:`DOWNBEAT_T`) gives the
downbeats, otherwise the track is marked as having none we can trust.

A track without a steady pulse (silence, noise, free-time audio) is refused with one clear line:
the pulse clarity (the normalised autocorrelation of the onset envelope at lags of 0.25–1.5 s,
40–240 BPM) must reach :func:`required_clarity`, and the onsets must be strong enough to be heard
as beats (:data:`MIN_ONSET_STRENGTH`): a sustained chord or a drone has a periodic but tiny
envelope (its partials beat against each other), which the clarity alone, a normalised measure,
takes for a pulse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import V2MError

ANALYSIS_SR = 22050
HOP = 256
FRAME_RATE = ANALYSIS_SR / HOP
#: Below this peak the music counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4
#: Pulse clarity a track needs to be aligned (music scores 0.5–1). White noise reaches about
#: 3/sqrt(frames) by chance, so short tracks need more: see :func:`required_clarity`.
MIN_PULSE_CLARITY = 0.15
#: The mel spectral-flux envelope is in dB per frame, so it does not depend on the level: its 95th
#: percentile is 2.2–4.6 on real music (the benchmark's five tracks, the quietest an acoustic ballad)
#: and 7–8 on the synthetic tracks, but 0.1–0.2 on sustained chords. Below this the track has no
#: onsets to put on cuts.
MIN_ONSET_STRENGTH = 0.6
#: t-statistic the downbeat phase needs over the other phases to be trusted.
DOWNBEAT_T = 3.0


class AlignError(V2MError):
    """Music that cannot be aligned (silent, no steady beat, too short) or impossible bounds."""


@dataclass(frozen=True)
class MusicAnalysis:
    """Beats, bars and onsets of one track (times in seconds from its first sample)."""

    duration: float
    tempo: float  # BPM of the beat grid (median beat period)
    beats: np.ndarray  # [B] beat times
    downbeat: np.ndarray  # [B] bool: the beat starts a bar (all False when bars are not detectable)
    meter: int | None  # beats per bar when detectable
    beat_strength: np.ndarray  # [B] onset strength at the beat, 0–1
    beat_chroma: np.ndarray  # [12, B] mean chroma from each beat to the next
    onsets: np.ndarray  # [O] onset times
    onset_strength: np.ndarray  # [O] 0–1
    rms: np.ndarray  # [F] RMS energy per frame (FRAME_RATE frames per second)
    pulse_clarity: float

    @property
    def bars_detected(self) -> bool:
        return self.meter is not None

    def rms_at(self, t) -> np.ndarray:
        """RMS energy at time(s) ``t`` (nearest frame)."""
        i = np.clip(np.round(np.asarray(t, dtype=np.float64) * FRAME_RATE).astype(int), 0, len(self.rms) - 1)
        return self.rms[i]

    def bar_starts(self) -> np.ndarray:
        """[B] bool: detected downbeats, or every 4th beat from the first when bars are not detectable."""
        if self.bars_detected:
            return self.downbeat
        return (np.arange(len(self.beats)) % 4) == 0


def mono_mix(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean of the channels, resampled to :data:`ANALYSIS_SR`."""
    from ..timing.media import resample_audio

    w = np.asarray(wave, dtype=np.float32)
    mono = w.mean(axis=0) if w.ndim == 2 else w.reshape(-1)
    return resample_audio(np.ascontiguousarray(mono), int(sample_rate), ANALYSIS_SR)


def pulse_clarity(envelope: np.ndarray, rate: float = FRAME_RATE) -> float:
    """Largest normalised autocorrelation of the onset envelope (``rate`` frames/s) at lags 0.25–1.5 s
    (0 = no pulse)."""
    o = np.asarray(envelope, dtype=np.float64)
    o = o - o.mean()
    lo, hi = int(0.25 * rate), int(1.5 * rate)
    if o.size <= hi or not np.any(o):
        return 0.0
    n = 1 << int(np.ceil(np.log2(2 * o.size)))
    spec = np.fft.rfft(o, n)
    ac = np.fft.irfft(spec * np.conj(spec), n)[: o.size]
    ac = ac / (ac[0] * (1.0 - np.arange(o.size) / o.size))  # unbiased, 1 at lag 0
    return float(np.max(ac[lo:hi + 1]))


def required_clarity(n_frames: int) -> float:
    """The pulse clarity a track of ``n_frames`` envelope frames needs: above what noise reaches by chance."""
    return max(MIN_PULSE_CLARITY, 4.0 / np.sqrt(max(n_frames, 1)))


def _norm01(x: np.ndarray) -> np.ndarray:
    ref = float(np.percentile(x, 95)) if x.size else 0.0
    return np.clip(x / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(x)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def find_downbeats(low_onset: np.ndarray, chroma_change: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Downbeat flags per beat and the meter, or all False and None when no phase stands out."""
    n = len(low_onset)
    cue = _zscore(np.asarray(low_onset, float)) + _zscore(np.asarray(chroma_change, float))
    best = (0.0, None, 0)
    for meter in (4, 3):
        if n < 4 * meter:
            continue
        idx = np.arange(n)
        for phase in range(meter):
            on = cue[idx % meter == phase]
            off = cue[idx % meter != phase]
            spread = float(np.sqrt(on.var() / len(on) + off.var() / len(off))) or 1e-9
            t = (on.mean() - off.mean()) / spread
            if meter == 3:
                t -= 1.0  # prefer 4/4 unless 3/4 is clearly better
            if t > best[0]:
                best = (t, meter, phase)
    t, meter, phase = best
    if meter is None or t < DOWNBEAT_T:
        return np.zeros(n, dtype=bool), None
    return (np.arange(n) % meter) == phase, meter


def _at(curve: np.ndarray, times: np.ndarray, rate: float) -> np.ndarray:
    """Largest value of a frame curve within ±2 frames of each time."""
    idx = np.round(np.asarray(times) * rate).astype(int)
    return np.array([curve[max(i - 2, 0):i + 3].max() if i - 2 < len(curve) else 0.0 for i in idx])


def _downbeats_and_chroma(front: "FrontEnd", beats: np.ndarray):
    """(downbeat flags, meter, beat-synchronous chroma [12, B]) of ``beats`` on the front end's frames."""
    chroma = front.chroma
    frames = np.clip(np.round(beats * FRAME_RATE).astype(int), 0, chroma.shape[1] - 1)
    bounds = np.concatenate([frames, [chroma.shape[1]]])
    beat_chroma = np.stack([chroma[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    unit = beat_chroma / np.maximum(np.linalg.norm(beat_chroma, axis=0, keepdims=True), 1e-9)
    change = np.concatenate([[0.0], 1.0 - np.sum(unit[:, 1:] * unit[:, :-1], axis=0)])
    downbeat, meter = find_downbeats(_at(front.low, beats, FRAME_RATE), change)
    return downbeat, meter, beat_chroma


def bpm_of(beats: np.ndarray) -> float:
    """The tempo (BPM) of beat times: 60 s over their median spacing."""
    return 60.0 / float(np.median(np.diff(beats)))


@dataclass(frozen=True)
class FrontEnd:
    """What a track offers before its beats are read (the beats depend on the tracker): computed once
    per track and shared by every reading (:func:`read_beats`)."""

    name: str
    duration: float  # of the whole track (s)
    mono: np.ndarray  # mono mix of the part analysed, at ``sample_rate`` (Scene Cut Hit's tracker reads this)
    sample_rate: int
    env: np.ndarray  # mel spectral-flux onset envelope (FRAME_RATE frames per second)
    low: np.ndarray  # low-band onset envelope: the kick cue of bar lines
    chroma: np.ndarray  # [12, F] chroma per frame
    rms: np.ndarray  # [F] RMS energy per frame
    onsets: np.ndarray  # onset times (s)
    clarity: float  # pulse clarity of ``env``


def front_end(wave: np.ndarray, sample_rate: int, *, name: str = "the music", until: float | None = None) -> FrontEnd:
    """The beat-independent analysis of ``wave`` ``[C, T]`` (or ``[T]``); AlignError when it has no pulse.

    ``until``: analyse only the first ``until`` seconds (the part that will be played), so that the
    beats follow that part's own tempo and a long track costs no more than the video needs. One
    STFT of the 22.05 kHz mono mix (93 ms window, 11.6 ms hop) gives the mel envelope, the bar cues,
    chroma; the pulse clarity check refuses silence, noise and free-time audio in one line.
    """
    import librosa

    w = np.asarray(wave, dtype=np.float32)
    full = float(w.shape[-1] / sample_rate)
    if until is not None and until < full:
        w = w[..., :max(1, int(round(until * sample_rate)))]
    if w.size == 0 or not np.all(np.isfinite(w)):
        raise AlignError(f"{name} has no samples or contains NaN/Inf: give a decodable music file")
    if float(np.max(np.abs(w))) < SILENCE_PEAK:
        raise AlignError(f"{name} is silent (peak below -80 dBFS): there are no beats to put on the cuts")
    if w.shape[-1] / sample_rate < 2.0:
        raise AlignError(f"{name} lasts {w.shape[-1] / sample_rate:.2f} s: "
                         "at least 2 s of music are needed to find a beat")
    mono = np.ascontiguousarray(w.mean(axis=0) if w.ndim == 2 else w.reshape(-1))
    y = mono_mix(mono, sample_rate)
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=ANALYSIS_SR, n_mels=128))
    env = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_SR, hop_length=HOP)
    strength = float(np.percentile(env, 95)) if env.size else 0.0
    if strength < MIN_ONSET_STRENGTH:
        raise AlignError(f"{name} has no beat to put on the cuts (onset strength {strength:.2f} dB < "
                         f"{MIN_ONSET_STRENGTH}: a sustained chord, drone or free-time pad); give music with a pulse")
    clarity, needed = pulse_clarity(env, FRAME_RATE), required_clarity(env.size)
    if clarity < needed:
        raise AlignError(f"{name} has no steady beat (pulse clarity {clarity:.2f} < {needed:.2f}): "
                         "noise, speech or free-time audio cannot be aligned to cuts; give music with a pulse")
    return FrontEnd(
        name=name, duration=full, mono=mono, sample_rate=int(sample_rate), env=env,
        low=librosa.onset.onset_strength_multi(S=mel_db, channels=[0, 12], sr=ANALYSIS_SR, hop_length=HOP)[0],
        chroma=librosa.feature.chroma_stft(S=S, sr=ANALYSIS_SR),
        rms=librosa.feature.rms(y=y, frame_length=1024, hop_length=HOP)[0],
        onsets=librosa.onset.onset_detect(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, units="time"),
        clarity=clarity,
    )


def read_beats(front: FrontEnd, *, tracker: str = "mel", bpm: float | None = None, beats=None) -> MusicAnalysis:
    """The :class:`MusicAnalysis` of one reading of the beats (see the module doc).

    ``tracker``: ``"mel"`` (``beat_track`` on the front end's envelope, at ``bpm`` when given) or
    ``"sch"`` (Scene Cut Hit's own tracker on the mix at its own rate: the beats a listener of the
    metric hears); ``beats``: beat times to use as they are, snapped to the envelope's frames (any
    other value of ``tracker`` is then only a label).
    """
    import librosa

    env = front.env
    if beats is not None:
        frames = np.round(np.asarray(beats, dtype=np.float64).reshape(-1) * FRAME_RATE).astype(int)
    elif tracker == "sch":
        from ..eval.sch import beat_times

        frames = np.round(beat_times(front.mono, front.sample_rate) * FRAME_RATE).astype(int)
    elif tracker == "mel":
        _tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, units="frames",
                                                 bpm=bpm)
    else:
        raise AlignError(f"unknown beat tracker {tracker!r}: use 'mel' or 'sch'")
    frames = np.unique(np.asarray(frames, dtype=int).reshape(-1))
    frames = frames[(frames >= 0) & (frames < env.size)]
    if frames.size < 4:
        raise AlignError(f"{front.name}: only {frames.size} beats found; at least 4 are needed to align it")
    times = librosa.frames_to_time(frames, sr=ANALYSIS_SR, hop_length=HOP)
    downbeat, meter, beat_chroma = _downbeats_and_chroma(front, times)
    onsets = front.onsets
    return MusicAnalysis(
        duration=front.duration, tempo=bpm_of(times), beats=times, downbeat=downbeat, meter=meter,
        beat_strength=_norm01(_at(env, times, FRAME_RATE)), beat_chroma=beat_chroma, onsets=onsets,
        onset_strength=_norm01(_at(env, onsets, FRAME_RATE)) if onsets.size else np.zeros(0),
        rms=front.rms, pulse_clarity=front.clarity,
    )


def analyse_music(wave: np.ndarray, sample_rate: int, *, name: str = "the music",
                  until: float | None = None, bpm: float | None = None, tracker: str = "mel",
                  beats=None) -> MusicAnalysis:
    """Beats, bars, onsets and energy of ``wave`` ``[C, T]`` (or ``[T]``): :func:`front_end`, then
    :func:`read_beats` (arguments as there); AlignError when it has no pulse."""
    return read_beats(front_end(wave, sample_rate, name=name, until=until), tracker=tracker, bpm=bpm, beats=beats)
