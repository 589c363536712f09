"""Evaluation metrics of the paper (sec. 4.2, Appendix B): Scene Cut Hit, beat scores, tempo
deviation, curve/cut correlation, CLAP and FAD.

numpy, librosa, scenedetect (and, for CLAP, transformers/torch) are imported inside the
functions that need them, so this module imports on a bare Python and ``v2m-zero --help``
stays fast.
"""

from __future__ import annotations

import inspect
import math
import os

from .errors import MediaError, ModelError, V2MError

#: PySceneDetect backend used by Algorithm 1 (``detect()``'s default in 0.6 and 0.7).
DEFAULT_SCENE_BACKEND = "opencv"
#: LORIS evaluates onsets of music loaded with ``librosa.load`` (22.05 kHz mono).
LORIS_SAMPLE_RATE = 22050
#: Audio extensions ``fad`` picks up when given a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".mp4", ".mkv", ".mov", ".webm")


# ----------------------------------------------------------------------------------------
# media helpers


def _check_file(path, what: str = "video") -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"{what} file not found: {path!r}")
    return path


def load_audio(path) -> tuple:
    """Decode every channel at the file's own rate: ``(float32 [C, T], sr)``.

    Raises ``MediaError`` when the file has no audio stream.
    """
    from .timing import media

    return media.decode_audio(_check_file(path, "audio"))


def load_mono(path) -> tuple:
    """``(mono float32 [T], sr)``: the channel mean at the native rate, as Algorithm 1's
    ``torchaudio.load(path)`` followed by ``x.mean(0)``.

    We average the decoded channels ourselves instead of asking the decoder for one channel:
    FFmpeg's stereo→mono downmix weights each side by 1/√2 (not 1/2), which is not the mean.
    """
    import numpy as np

    wave, sr = load_audio(path)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)


# ----------------------------------------------------------------------------------------
# Scene Cut Hit (Algorithm 1)


def _seconds(timecode) -> float:
    """Seconds of a PySceneDetect ``FrameTimecode``.

    0.7 has the ``seconds`` property and deprecates ``get_seconds()`` (DeprecationWarning);
    0.6 only has ``get_seconds()``.
    """
    if isinstance(getattr(type(timecode), "seconds", None), property):
        return float(timecode.seconds)
    if hasattr(timecode, "get_seconds"):
        return float(timecode.get_seconds())
    return float(timecode)


def _scene_list(video_path: str, backend: str):
    try:
        import scenedetect
        from scenedetect import AdaptiveDetector
    except ImportError as exc:
        raise V2MError(
            "Scene Cut Hit needs PySceneDetect: pip install 'scenedetect>=0.6' plus OpenCV "
            "(scenedetect 0.7 requires opencv-python; on a host with opencv-python-headless, "
            f"install scenedetect with --no-deps). Import failed: {exc}"
        ) from exc
    detector = AdaptiveDetector()
    try:
        params = inspect.signature(scenedetect.detect).parameters
    except (TypeError, ValueError):  # pragma: no cover
        params = {}
    try:
        if backend == DEFAULT_SCENE_BACKEND:
            # Algorithm 1 verbatim: detect(path, AdaptiveDetector()).
            return scenedetect.detect(video_path, detector)
        if "backend" in params:  # 0.7
            return scenedetect.detect(video_path, detector, backend=backend)
        # 0.6: detect() has no backend argument; open_video() does.
        video = scenedetect.open_video(video_path, backend=backend)
        manager = scenedetect.SceneManager()
        manager.add_detector(detector)
        manager.detect_scenes(video=video)
        return manager.get_scene_list()
    except (getattr(scenedetect, "VideoOpenFailure", OSError), OSError) as exc:
        raise MediaError(f"PySceneDetect cannot open {video_path!r}: {exc}") from exc


def detect_cuts(video_path, *, backend: str = DEFAULT_SCENE_BACKEND) -> list[float]:
    """Scene-cut times (s), as Algorithm 1: ``detect(path, AdaptiveDetector())`` and the end
    of every scene except the last.

    Works with PySceneDetect 0.6 and 0.7. ``backend`` other than ``"opencv"`` (e.g. ``"pyav"``)
    goes through ``detect(..., backend=)`` on 0.7 and ``open_video(..., backend=)`` +
    ``SceneManager`` on 0.6. Note 0.6 computes times from frame numbers assuming a constant
    frame rate (wrong for VFR); 0.7 uses the stream's timestamps.
    """
    scenes = _scene_list(_check_file(video_path), backend)
    return [_seconds(end) for _start, end in list(scenes)[:-1]]


def beat_times(wave_mono, sr: int):
    """Beat times (s) of a mono signal: ``librosa.beat.beat_track`` + ``frames_to_time``.

    Keyword arguments only (librosa ≥0.10 made them keyword-only); the tempo (a scalar before
    0.10, an array after) is not used. A silent or empty signal gives an empty array.
    """
    import numpy as np

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    if y.size == 0 or not np.any(y):
        return np.zeros(0, dtype=np.float64)
    import librosa

    # units="frames" pinned: Algorithm 1 converts frames with frames_to_time itself.
    _tempo, frames = librosa.beat.beat_track(y=y, sr=int(sr), units="frames")
    frames = np.asarray(frames).reshape(-1)
    if frames.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(librosa.frames_to_time(frames, sr=int(sr)), dtype=np.float64)


def scene_cut_hit(cut_times, beat_times, tolerance: float = 0.1) -> float | None:
    """Scene Cut Hit: the fraction of cuts with at least one beat within ±``tolerance`` s.

    None when there are no cuts (Algorithm 1 returns None); 0.0 when there are cuts but no beats.
    """
    import numpy as np

    cuts = np.asarray(cut_times, dtype=np.float64).reshape(-1)
    if cuts.size == 0:
        return None
    beats = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if beats.size == 0:
        return 0.0
    hit = np.abs(cuts[:, None] - beats[None, :]).min(axis=1) <= tolerance + 1e-9
    return float(hit.mean())


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


# ----------------------------------------------------------------------------------------
# Beat scores (LORIS) and tempo deviation


def onset_times(wave_mono, sr: int):
    """Onset times (s) with LORIS's detector settings:
    ``onset_detect(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3)``."""
    import numpy as np

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    if y.size == 0 or not np.any(y):
        return np.zeros(0, dtype=np.float64)
    import librosa

    onsets = librosa.onset.onset_detect(
        y=y, sr=int(sr), wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3, units="time"
    )
    return np.asarray(onsets, dtype=np.float64).reshape(-1)


def _onset_bins(onsets, bin_size: float, n_bins: int):
    import numpy as np

    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    # The epsilon keeps 0.6 s in bin 3 (0.6 / 0.2 = 2.9999…); LORIS's trunc(t · 5) does too.
    idx = np.trunc(onsets / bin_size + 1e-9).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n_bins)]
    occupied = np.zeros(n_bins, dtype=bool)
    occupied[idx] = True
    return occupied


def beat_scores(gen_onsets, ref_onsets, bin_size: float = 0.2, duration: float | None = None) -> dict:
    """Beat Coverage Score and Beat Hit Score, LORIS convention (``beats_scores.py``).

    Time is cut into ``bin_size`` bins (LORIS's released script uses 1 s; the paper uses 0.2 s).
    Each onset marks the bin ``trunc(t / bin_size)``; a bin with several onsets counts once.
    The bins cover the generated music (``ceil(duration / bin_size)`` bins, where ``duration``
    is the generated length; LORIS truncates the reference to it); ``duration=None`` covers the
    latest onset of either list. A *hit* is a bin marked in both.

    - ``bhs = hits / reference-marked bins`` (LORIS ``hit_rate``: recall of the reference beats)
    - ``bcs = hits / generated-marked bins`` (LORIS ``cover_rate``)

    A zero denominator gives 0.0, as in LORIS. The dataset-level F1 is ``f1_of_means``.
    """
    import numpy as np

    if not bin_size > 0:
        raise V2MError(f"bin_size must be positive, got {bin_size}")
    gen = np.asarray(gen_onsets, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref_onsets, dtype=np.float64).reshape(-1)
    if duration is None:
        latest = max([0.0] + gen.tolist() + ref.tolist())
        n_bins = int(math.trunc(latest / bin_size + 1e-9)) + 1
    else:
        n_bins = int(math.ceil(float(duration) / bin_size - 1e-9))
    gen_bins = _onset_bins(gen, bin_size, n_bins)
    ref_bins = _onset_bins(ref, bin_size, n_bins)
    hits = int(np.sum(gen_bins & ref_bins))
    n_gen, n_ref = int(gen_bins.sum()), int(ref_bins.sum())
    return {
        "bcs": hits / n_gen if n_gen else 0.0,
        "bhs": hits / n_ref if n_ref else 0.0,
        "hits": hits,
        "gen_bins": n_gen,
        "ref_bins": n_ref,
    }


def f1_of_means(bcs_list, bhs_list) -> float | None:
    """F1 of the dataset means of BCS and BHS (as reported in the paper's Table 3a);
    None for empty lists, 0.0 when both means are 0."""
    bcs = [float(v) for v in bcs_list if v is not None]
    bhs = [float(v) for v in bhs_list if v is not None]
    if not bcs or not bhs:
        return None
    c, h = sum(bcs) / len(bcs), sum(bhs) / len(bhs)
    return 0.0 if c + h == 0 else 2.0 * c * h / (c + h)


def tempo_bpm(wave_mono, sr: int) -> float:
    """Global tempo (BPM) with ``librosa.feature.tempo`` (librosa ≥0.10; ``librosa.beat.tempo``
    before). The array it returns in ≥0.10 is reduced to a float."""
    import numpy as np
    import librosa

    y = np.ascontiguousarray(np.asarray(wave_mono, dtype=np.float32).reshape(-1))
    feature = getattr(librosa, "feature", None)
    tempo_fn = getattr(feature, "tempo", None) or librosa.beat.tempo
    return float(np.asarray(tempo_fn(y=y, sr=int(sr))).reshape(-1)[0])


def tempo_deviation(gen_wave, ref_wave, sr: int, ref_sr: int | None = None) -> float:
    """Temporal deviation (TD): ``|tempo(gen) − tempo(ref)|`` in BPM."""
    return abs(tempo_bpm(gen_wave, sr) - tempo_bpm(ref_wave, sr if ref_sr is None else ref_sr))


# ----------------------------------------------------------------------------------------
# Curve correlation around cuts (paper Fig. 2)


def _pearson(a, b) -> float | None:
    import numpy as np

    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if den <= 1e-12:
        return None
    return float(np.dot(a, b) / den)


def cut_window_correlation(
    video_curve_values,
    video_curve_times,
    music_curve_values,
    music_curve_times,
    cut_times,
    window: float = 0.5,
    n_random: int = 200,
    seed: int = 0,
) -> dict:
    """Pearson r between a video and a music event curve in ±``window`` s around each cut,
    and around random centres (the chance baseline of Fig. 2).

    Both curves are linearly interpolated by time onto one grid (step: the finer of the two
    median sample spacings, at most ``window / 10``) over the span both cover. Windows that
    leave that span, hold fewer than 3 samples, or where either curve is constant are skipped.
    Returns ``at_cuts`` / ``random`` (mean r, None when no window was usable) and the counts.
    """
    import numpy as np

    vv = np.asarray(video_curve_values, dtype=np.float64).reshape(-1)
    vt = np.asarray(video_curve_times, dtype=np.float64).reshape(-1)
    mv = np.asarray(music_curve_values, dtype=np.float64).reshape(-1)
    mt = np.asarray(music_curve_times, dtype=np.float64).reshape(-1)
    if vv.shape != vt.shape or mv.shape != mt.shape:
        raise V2MError("curve values and times must have the same length")
    empty = {"at_cuts": None, "random": None, "n_cuts": 0, "n_random": 0}
    if vt.size < 2 or mt.size < 2:
        return empty
    ov, om = np.argsort(vt, kind="stable"), np.argsort(mt, kind="stable")
    vt, vv, mt, mv = vt[ov], vv[ov], mt[om], mv[om]
    t0, t1 = max(vt[0], mt[0]), min(vt[-1], mt[-1])
    if t1 - t0 < 2 * window:
        return empty
    step = min(float(np.median(np.diff(vt))), float(np.median(np.diff(mt))), window / 10.0)
    step = max(step, 1e-4)
    grid = np.arange(t0, t1 + step / 2, step)
    gv, gm = np.interp(grid, vt, vv), np.interp(grid, mt, mv)
    eps = step * 1e-6

    def window_r(centre: float):
        if centre - window < t0 - eps or centre + window > t1 + eps:
            return None
        sel = (grid >= centre - window - eps) & (grid <= centre + window + eps)
        if sel.sum() < 3:
            return None
        return _pearson(gv[sel], gm[sel])

    cuts = np.asarray(cut_times, dtype=np.float64).reshape(-1)
    at_cuts = [r for r in (window_r(float(c)) for c in cuts) if r is not None]
    rng = np.random.default_rng(seed)
    centres = rng.uniform(t0 + window, t1 - window, size=max(0, int(n_random)))
    rand = [r for r in (window_r(float(c)) for c in centres) if r is not None]
    return {
        "at_cuts": float(np.mean(at_cuts)) if at_cuts else None,
        "random": float(np.mean(rand)) if rand else None,
        "n_cuts": len(at_cuts),
        "n_random": len(rand),
    }


# ----------------------------------------------------------------------------------------
# Fréchet distance, FAD and CLAP (local weights only)


def _sqrtm_psd(mat):
    """Square root of a symmetric PSD matrix by eigen-decomposition (tiny negative eigenvalues
    from round-off are clipped to 0)."""
    import numpy as np

    sym = (mat + mat.T) / 2.0
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_fit(embeddings) -> tuple:
    """Mean and (unbiased) covariance of embeddings ``[N, D]``."""
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise V2MError(f"need at least 2 embeddings of shape [N, D] for a Gaussian fit, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 − mu2|² + tr(S1 + S2 − 2 (S1^½ S2 S1^½)^½)``.

    ``tr((S1 S2)^½)`` is computed as the trace of the square root of the symmetric PSD matrix
    ``S1^½ S2 S1^½`` (same eigenvalues as ``S1 S2``), so only symmetric eigen-decompositions
    are needed (no scipy ``sqrtm``, no complex round-off).
    """
    import numpy as np

    mu1, mu2 = np.asarray(mu1, dtype=np.float64).reshape(-1), np.asarray(mu2, dtype=np.float64).reshape(-1)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if not (mu1.shape == mu2.shape and s1.shape == s2.shape == (mu1.size, mu1.size)):
        raise V2MError(f"Fréchet distance: mismatched shapes {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    root1 = _sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    w = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    diff = mu1 - mu2
    return float(max(0.0, float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_covmean))


def fad_from_embeddings(gen_embeddings, ref_embeddings) -> float:
    """Fréchet Audio Distance between two sets of embeddings ``[N, D]``."""
    return frechet_distance(*gaussian_fit(gen_embeddings), *gaussian_fit(ref_embeddings))


def _weights_missing(weights_dir) -> str | None:
    if weights_dir is None:
        return "no weights folder given (weights are never downloaded)"
    path = os.fspath(weights_dir)
    if not os.path.isdir(path):
        return f"weights folder not found: {path!r}"
    if not any(os.scandir(path)):
        return f"weights folder is empty: {path!r}"
    return None


def _audio_files(dir_or_paths) -> list[str]:
    if isinstance(dir_or_paths, (str, os.PathLike)):
        path = os.fspath(dir_or_paths)
        if os.path.isdir(path):
            return sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(AUDIO_EXTENSIONS)
            )
        return [_check_file(path, "audio")]
    return [_check_file(p, "audio") for p in dir_or_paths]


def clap_score(audio_paths, texts, weights_dir=None) -> dict:
    """CLAP score: mean cosine similarity between each audio's and its text's CLAP embedding.

    Weights come only from ``weights_dir``, a local transformers folder (``ClapModel`` +
    ``ClapProcessor``, e.g. a copy of ``laion/larger_clap_music``), loaded with
    ``local_files_only=True``; nothing is downloaded. Without weights the result is
    ``{"value": None, "skipped": reason}``. Audio is decoded at the processor's rate (48 kHz for
    LAION CLAP) and averaged to mono. Imports transformers and torch only when weights are present.
    """
    reason = _weights_missing(weights_dir)
    if reason:
        return {"value": None, "skipped": f"CLAP: {reason}"}
    paths = [_check_file(p, "audio") for p in audio_paths]
    texts = list(texts)
    if len(paths) != len(texts):
        raise V2MError(f"CLAP needs one text per audio file: {len(paths)} files, {len(texts)} texts")
    if not paths:
        return {"value": None, "skipped": "CLAP: no audio files"}
    import numpy as np

    try:
        import torch
        from transformers import ClapModel, ClapProcessor

        folder = os.fspath(weights_dir)
        model = ClapModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
        processor = ClapProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(f"cannot load CLAP from {os.fspath(weights_dir)!r}: {exc}") from exc
    from .timing import media

    sr = int(getattr(processor.feature_extractor, "sampling_rate", 48000))
    # transformers < 4.5x names the processor argument ``audios``; later releases ``audio``.
    audio_kw = "audios" if "audios" in inspect.signature(type(processor).__call__).parameters else "audio"
    scores = []
    with torch.no_grad():
        for path, text in zip(paths, texts):
            wave, _ = media.decode_audio(path, sample_rate=sr)
            wave = np.asarray(wave, dtype=np.float32).mean(axis=0)  # channel mean, as librosa.load
            audio_in = processor(**{audio_kw: [wave]}, sampling_rate=sr, return_tensors="pt")
            text_in = processor(text=[text], return_tensors="pt", padding=True)
            a = model.get_audio_features(**{k: v for k, v in audio_in.items() if k in ("input_features", "is_longer")})
            t = model.get_text_features(**{k: v for k, v in text_in.items() if k in ("input_ids", "attention_mask")})
            # transformers 5 returns an output whose pooler_output is the projected embedding.
            a = getattr(a, "pooler_output", a)
            t = getattr(t, "pooler_output", t)
            scores.append(float(torch.nn.functional.cosine_similarity(a, t, dim=-1).mean()))
    return {"value": float(np.mean(scores)), "per_item": scores, "skipped": None}


def fad(gen_dir_or_paths, ref_dir_or_paths, weights_dir=None, *, embed_fn=None, device="cpu") -> dict:
    """Fréchet Audio Distance (Kilgour et al.) between generated and reference audio.

    ``gen_dir_or_paths`` / ``ref_dir_or_paths``: a folder (its audio files, sorted) or a list of
    files. ``embed_fn(path) -> array [N, D]`` gives the embedding frames of one file; all frames
    of a set are pooled into one Gaussian fit, as in the VGGish FAD.

    Without ``embed_fn`` the paper's VGGish embeddings are used (``core.vggish``: one raw 128-d
    embedding per 0.96 s of 16 kHz mono audio, no PCA/quantisation and no final ReLU, the
    defaults of ``frechet_audio_distance``), loaded from local weights only: ``weights_dir`` is a
    folder holding ``vggish.safetensors`` (preferred) or torchvggish's ``vggish-10086976.pth``
    (read with ``torch.load(weights_only=True)``), or that file itself. Nothing is ever
    downloaded: with no weights (``weights_dir`` None, missing, empty, or without a VGGish file)
    or unusable ones (damaged file, wrong keys/shapes, a pickle holding more than tensors) the
    result is ``{"value": None, "skipped": reason}``; the reason names the folder and the file
    to put there. Files shorter than 0.975 s give no VGGish frame.

    Checking against the reference when weights are present: compute FAD between the same two
    folders of 16 kHz WAV files (e.g. a Song Describer subset and the generated clips) with this
    function and with ``frechet_audio_distance.FrechetAudioDistance(model_name="vggish",
    sample_rate=16000, use_pca=False, use_activation=False).score(ref_dir, gen_dir)`` with the
    torch hub cache holding the same ``vggish-10086976.pth``; they should agree to ~1e-3
    relative. (The frontend and network match torchvggish bit for bit; what differs is
    the Fréchet square root, scipy ``sqrtm`` there vs a symmetric eigen-decomposition here, and,
    for files not at 16 kHz, the resampler: resampy there, libswresample here, so compare on
    16 kHz files.) The distance itself is ``frechet_distance``, unit-tested against the closed
    form for diagonal covariances.
    """
    if embed_fn is None:
        is_file = weights_dir is not None and os.path.isfile(os.fspath(weights_dir))
        reason = None if is_file else _weights_missing(weights_dir)
        if reason:
            return {"value": None, "skipped": f"FAD: {reason}"}
        from . import vggish

        try:
            model = vggish.load_vggish(weights_dir, device)
        except ModelError as exc:
            return {"value": None, "skipped": f"FAD: {'' if 'VGGish' in str(exc) else 'VGGish weights: '}{exc}"}

        def embed_fn(path):
            return vggish.embed_file(path, model)

    import numpy as np

    gen, ref = _audio_files(gen_dir_or_paths), _audio_files(ref_dir_or_paths)
    if not gen or not ref:
        return {"value": None, "skipped": "FAD: no generated or no reference audio files"}

    def embed(paths):
        frames = [np.asarray(embed_fn(p), dtype=np.float64) for p in paths]
        return np.concatenate([f.reshape(-1, f.shape[-1]) for f in frames], axis=0)

    gen_emb, ref_emb = embed(gen), embed(ref)
    if min(len(gen_emb), len(ref_emb)) < 2:
        return {
            "value": None,
            "skipped": f"FAD: {len(gen_emb)} generated and {len(ref_emb)} reference embedding frames; "
            "need at least 2 of each (VGGish gives one per 0.96 s, none for files under 0.975 s)",
        }
    return {
        "value": fad_from_embeddings(gen_emb, ref_emb),
        "skipped": None,
        "n_gen": len(gen),
        "n_ref": len(ref),
    }


# ----------------------------------------------------------------------------------------
# Whole-video evaluation


def evaluate_video(
    video_path,
    *,
    reference_music=None,
    tolerance: float = 0.1,
    n_shifts: int = 200,
    backend: str = DEFAULT_SCENE_BACKEND,
    seed: int = 0,
) -> dict:
    """Evaluate the music track of one video.

    Keys: ``video``, ``duration``, ``cuts``, ``beats``, ``n_cuts``, ``n_beats``, ``sch`` (None
    without cuts or audio), ``sch_null`` (see ``sch_null``), ``sch_minus_null``, ``tolerance``,
    ``note`` (None, or why a score is missing or degenerate); with ``reference_music`` (an audio
    or video file holding the ground-truth music) also ``reference_music``, ``bcs``, ``bhs``
    (``beat_scores`` at 0.2 s on 22.05 kHz audio, as LORIS) and ``td`` (BPM).
    An audio-less video gives ``sch=None`` and a note, not an exception.
    """
    import numpy as np

    path = _check_file(video_path)
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
        reference_music = _check_file(reference_music, "reference music")
        result.update({"reference_music": reference_music, "bcs": None, "bhs": None, "td": None})

    from .timing import media

    info = media.probe_video(path)
    result["duration"] = round(float(info.duration), 6)
    cuts = detect_cuts(path, backend=backend)
    result["cuts"] = [round(c, 6) for c in cuts]
    result["n_cuts"] = len(cuts)
    if not info.has_audio:
        result["note"] = "no audio track: nothing to score"
        return result
    wave, sr = load_mono(path)
    # Beats live on the audio's clock: the circular shifts of sch_null wrap at its length.
    duration = wave.size / sr if sr else 0.0
    silent = wave.size == 0 or float(np.max(np.abs(wave))) < 1e-6
    beats = beat_times(wave, sr)
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
        ref_wave, ref_sr = load_mono(reference_music)
        # LORIS loads both with librosa.load: 22.05 kHz (soxr_hq) mono.
        gen22 = media.resample_audio(wave, sr, LORIS_SAMPLE_RATE)
        ref22 = media.resample_audio(ref_wave, ref_sr, LORIS_SAMPLE_RATE)
        scores = beat_scores(
            onset_times(gen22, LORIS_SAMPLE_RATE),
            onset_times(ref22, LORIS_SAMPLE_RATE),
            bin_size=0.2,
            duration=gen22.size / LORIS_SAMPLE_RATE,
        )
        result.update(bcs=scores["bcs"], bhs=scores["bhs"])
        result["td"] = tempo_deviation(gen22, ref22, LORIS_SAMPLE_RATE) if not silent else None
        if silent:
            notes.append("tempo deviation undefined for a silent track")
    result["note"] = "; ".join(notes) or None
    return result


_MEAN_KEYS = ("sch", "sch_null", "sch_minus_null", "bcs", "bhs", "td")


def summarise(results) -> dict:
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


def format_table(results) -> str:
    """A plain-text table, one row per video and a last row of means."""
    results = list(results)
    has_ref = any("bcs" in r for r in results)
    header = ["video", "dur", "cuts", "beats", "SCH", "null", "SCH-null"]
    if has_ref:
        header += ["BCS", "BHS", "TD"]
    header.append("note")
    rows = []
    for r in results:
        row = [
            os.path.basename(str(r.get("video", ""))),
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
    mean = summarise(results)
    last = ["mean", "", "", "", _fmt(mean["sch"]), _fmt(mean["sch_null"]), _fmt(mean["sch_minus_null"])]
    if has_ref:
        last += [_fmt(mean["bcs"]), _fmt(mean["bhs"]), _fmt(mean["td"], 2)]
    last.append(f"F1 {_fmt(mean['f1'])}" if has_ref and mean["f1"] is not None else "")
    rows.append(last)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
