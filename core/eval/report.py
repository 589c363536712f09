"""Whole-video evaluation: Scene Cut Hit with its chance level (and beat scores against reference
music) for the music track of a video, means over videos, and a plain-text table.

numpy, librosa and scenedetect are imported inside the functions that need them.
"""

from __future__ import annotations


from ..timing.cuts import DEFAULT_SCENE_BACKEND, detect_cuts
from .beats import LORIS_SAMPLE_RATE, beat_scores, f1_of_means, onset_times, tempo_deviation
from .files import require_file
from .sch import beat_times, scene_cut_hit, sch_null


def load_audio(path, track: int = 0) -> tuple:
    """Decode every channel of one audio track (default the first) at the file's own rate: ``(float32 [C, T], sr)``.

    Raises ``MediaError`` when the file has no audio stream.
    """
    from ..timing import media

    return media.decode_audio(require_file(path, "audio"), track=track)


def load_mono(path, track: int = 0) -> tuple:
    """``(mono float32 [T], sr)``: the channel mean at the native rate, as Algorithm 1's
    ``torchaudio.load(path)`` followed by ``x.mean(0)``.

    We average the decoded channels ourselves instead of asking the decoder for one channel:
    FFmpeg's stereo→mono downmix weights each side by 1/√2 (not 1/2), which is not the mean.
    """
    import numpy as np

    wave, sr = load_audio(path, track)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)


def _reference_scores(wave, sr: int, reference_music: str, silent: bool, notes: list[str]) -> dict:
    """BCS/BHS (0.2 s bins) and TD of the generated music against reference music, as LORIS."""
    from ..timing import media

    ref_wave, ref_sr = load_mono(reference_music)
    # LORIS loads both with librosa.load: 22.05 kHz (soxr_hq) mono.
    gen22 = media.resample_audio(wave, sr, LORIS_SAMPLE_RATE)
    ref22 = media.resample_audio(ref_wave, ref_sr, LORIS_SAMPLE_RATE)
    scores = beat_scores(onset_times(gen22, LORIS_SAMPLE_RATE), onset_times(ref22, LORIS_SAMPLE_RATE),
                         bin_size=0.2, duration=gen22.size / LORIS_SAMPLE_RATE)
    if silent:
        notes.append("tempo deviation undefined for a silent track")
    return {"bcs": scores["bcs"], "bhs": scores["bhs"],
            "td": None if silent else tempo_deviation(gen22, ref22, LORIS_SAMPLE_RATE)}


def evaluate_video(
    video_path,
    *,
    reference_music=None,
    tolerance: float = 0.1,
    n_shifts: int = 200,
    backend: str = DEFAULT_SCENE_BACKEND,
    seed: int = 0,
    cut_detector: str = "scenedetect",
    detector_options: dict | None = None,
    audio_track: int = 0,
    cuts: list | None = None,
    second_tracker="auto",
    beat_tracker: str = "librosa",
    check_interrupt=None,
) -> dict:
    """Evaluate the music track of one video.

    Keys: ``video``, ``duration``, ``cuts``, ``beats``, ``n_cuts``, ``n_beats``, ``sch`` (None
    without cuts or audio), ``sch_null`` (see ``sch_null``), ``sch_minus_null``, ``tolerance``,
    ``note`` (None, or why a score is missing or degenerate); with ``reference_music`` (an audio
    or video file holding the ground-truth music) also ``reference_music``, ``bcs``, ``bhs``
    (``beat_scores`` at 0.2 s on 22.05 kHz audio, as LORIS) and ``td`` (BPM).
    An audio-less video gives ``sch=None`` and a note, not an exception. ``cut_detector`` other
    than ``"scenedetect"`` (Algorithm 1's) names another detector of ``core.timing.cuts``.
    ``audio_track``: which audio stream is the music (its index; default the first); ``cuts``: the
    video's cuts when already detected (scoring another track of the same file).
    ``second_tracker``: ``"auto"`` (Beat This! when installed with its weights in the models folder; never
    downloaded), None (librosa alone) or a tracker of :mod:`.beats`; when there is one the result also holds
    ``trackers`` (:func:`.beats.tracker_agreement`: how it agrees with librosa's beats). ``beat_tracker``: whose
    beats SCH uses: ``"librosa"`` (the default, Algorithm 1's) or ``"beat-this"`` (one-line error when it is not
    there; the result then says so in ``beat_tracker`` and its note, and ``trackers`` still compares with librosa).
    ``check_interrupt``: called between the second tracker's chunks (a node's interrupt check).
    """
    import numpy as np

    path = require_file(video_path)
    from .beats import get_tracker

    tracker_for_sch = get_tracker(beat_tracker)  # before any work: one line when it is not there
    notes: list[str] = []
    result: dict = {
        "video": path,
        "duration": None,
        "cuts": [],
        "beats": [],
        "n_cuts": 0,
        "n_beats": 0,
        "sch": None,
        "sch_null": None,
        "sch_minus_null": None,
        "tolerance": float(tolerance),
        "note": None,
    }
    if reference_music is not None:
        reference_music = require_file(reference_music, "reference music")
        result.update({"reference_music": reference_music, "bcs": None, "bhs": None, "td": None})

    from ..timing import media

    info = media.probe_video(path)
    result["duration"] = round(float(info.duration), 6)
    if cuts is not None:
        cuts = list(cuts)
    elif cut_detector == "scenedetect":
        cuts = detect_cuts(path, "scenedetect", backend=backend)
    else:
        cuts = detect_cuts(path, cut_detector, **dict(detector_options or {}))
    result["cuts"] = [round(c, 6) for c in cuts]
    result["n_cuts"] = len(cuts)
    if not info.has_audio:
        result["note"] = "no audio track: nothing to score"
        return result
    librosa_sch = beat_tracker == "librosa"
    if reference_music is None and librosa_sch:  # streamed: never in memory whole (an hour-long video scores flat)
        n, peak, sr, beats = _stream_beats(path, audio_track)
        wave = None
    else:
        wave, sr = load_mono(path, audio_track)
        n, peak = wave.size, float(np.max(np.abs(wave))) if wave.size else 0.0
        beats = beat_times(wave, sr) if librosa_sch else np.asarray(tracker_for_sch.beats(wave, sr), np.float64)
    if not librosa_sch:
        result["beat_tracker"] = tracker_for_sch.name
        notes.append(f"beats from {tracker_for_sch.name}, not librosa (Algorithm 1's)")
    # Beats live on the audio's clock: the circular shifts of sch_null wrap at its length.
    duration = n / sr if sr else 0.0
    silent = n == 0 or peak < 1e-6
    result["beats"] = [round(float(b), 6) for b in beats]
    result["n_beats"] = int(beats.size)
    if not cuts:
        notes.append("no scene cuts detected: SCH undefined")
    else:
        sch = scene_cut_hit(cuts, beats, tolerance)
        null = sch_null(cuts, beats, duration, tolerance, n_shifts=n_shifts, seed=seed) if duration > 0 else 0.0
        result.update(sch=sch, sch_null=null, sch_minus_null=sch - null)
    if silent:
        notes.append("silent audio track: no beats")
    elif beats.size == 0:
        notes.append("no beats found in the audio track")

    if reference_music is not None:
        result.update(_reference_scores(wave, sr, reference_music, silent, notes))
    if not silent:
        from .beats import second_tracker as find_second, tracker_agreement

        tracker = find_second() if second_tracker == "auto" else second_tracker
        if tracker is not None:
            mono, rate = (wave, sr) if wave is not None else first_seconds(path, audio_track)
            result["trackers"] = tracker_agreement(mono, rate, beats if librosa_sch else None, tracker=tracker,
                                                   check_interrupt=check_interrupt)
    result["note"] = "; ".join(notes) or None
    return result


def first_seconds(path, track: int = 0) -> tuple:
    """The mono mix (channel mean) of the first :data:`.beats.AGREEMENT_SECONDS` of a file's track and one second
    more (so a longer track is seen to be cut), read as a stream: what the second beat tracker compares.
    ``(mono float32 [T], sr)``."""
    import numpy as np

    from ..timing import media
    from .beats import AGREEMENT_SECONDS

    sr, _channels, chunks = media.iter_audio(require_file(path, "audio"), track=track)
    want, got, parts = int((AGREEMENT_SECONDS + 1) * sr), 0, []
    for c in chunks():
        parts.append(np.ascontiguousarray(c.mean(axis=0), np.float32))
        got += c.shape[1]
        if got >= want:
            break
    return (np.concatenate(parts)[:want] if parts else np.zeros(0, np.float32)), int(sr)


def _stream_beats(path, track: int = 0) -> tuple:
    """(samples, peak, sr, beat times) of a file's mono mix (the channel mean, as :func:`load_mono`),
    read twice as a stream by :func:`.sch.beat_times_stream`."""
    import numpy as np

    from ..timing import media
    from .sch import beat_times_stream

    sr, _channels, chunks = media.iter_audio(require_file(path, "audio"), track=track)
    n, peak = 0, 0.0
    for c in chunks():
        n += c.shape[1]
        peak = max(peak, float(np.max(np.abs(c))) if c.size else 0.0)
    mono = lambda: (np.ascontiguousarray(c.mean(axis=0), np.float32) for c in chunks())  # noqa: E731
    return n, peak, int(sr), beat_times_stream(mono, int(sr), n)


_MEAN_KEYS = ("sch", "sch_null", "sch_minus_null", "bcs", "bhs", "td")


def summarise_results(results) -> dict:
    """Means over videos (None values ignored) plus counts; ``f1`` is ``f1_of_means``."""
    results = list(results)
    summary: dict = {"n_videos": len(results)}
    for key in _MEAN_KEYS:
        values = [float(r[key]) for r in results if r.get(key) is not None]
        summary[key] = sum(values) / len(values) if values else None
        summary[f"n_{key}"] = len(values)
    summary["f1"] = f1_of_means([r.get("bcs") for r in results], [r.get("bhs") for r in results])
    summary["n_no_cuts"] = sum(1 for r in results if not r.get("n_cuts"))
    summary["n_notes"] = sum(1 for r in results if r.get("note"))
    return summary


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def result_label(r: dict) -> str:
    """How a table names a result: the video's path as given (relative stays relative, so files of one name in
    different folders differ), with its audio track when the file holds several."""
    label = str(r.get("video", ""))
    return f"{label} [audio {r['audio_track']}]" if r.get("audio_track") else label


def format_table(results) -> str:
    """A plain-text table, one row per video (per audio track when a file has several) and a last row of means."""
    results = list(results)
    has_ref = any("bcs" in r for r in results)
    header = ["video", "dur", "cuts", "beats", "SCH", "null", "SCH-null"]
    if has_ref:
        header += ["BCS", "BHS", "TD"]
    header.append("note")
    rows = []
    for r in results:
        row = [
            result_label(r),
            _fmt(r.get("duration"), 2),
            _fmt(r.get("n_cuts")),
            _fmt(r.get("n_beats")),
            _fmt(r.get("sch")),
            _fmt(r.get("sch_null")),
            _fmt(r.get("sch_minus_null")),
        ]
        if has_ref:
            row += [_fmt(r.get("bcs")), _fmt(r.get("bhs")), _fmt(r.get("td"), 2)]
        row.append(r.get("note") or "")
        rows.append(row)
    mean = summarise_results(results)
    last = ["mean", "", "", "", _fmt(mean["sch"]), _fmt(mean["sch_null"]), _fmt(mean["sch_minus_null"])]
    if has_ref:
        last += [_fmt(mean["bcs"]), _fmt(mean["bhs"]), _fmt(mean["td"], 2)]
    last.append(f"F1 {_fmt(mean['f1'])}" if has_ref and mean["f1"] is not None else "")
    rows.append(last)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    from .beats import agreement_line

    lines += [f"{result_label(r)}: {agreement_line(r['trackers'])}" for r in results if r.get("trackers")]
    return "\n".join(lines)
