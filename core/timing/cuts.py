"""Cut detection: one interface, ``detector.detect(video) -> cut times in seconds``.

Three detectors, registered by id:

``scenedetect``  PySceneDetect's ``AdaptiveDetector``, exactly as the paper's Algorithm 1 (Scene
                 Cut Hit): the end of every scene but the last. Needs PySceneDetect + OpenCV.
``histogram``    hard cuts by colour-histogram difference of small frames: cheap, blind to
                 gradual transitions; the music prompt's tempo hint uses it.
``curve_peaks``  hit points of the event curve (a weightless frame encoder by default): every
                 salient change, cuts and sharp motion alike.

Every detector returns a :class:`CutTimes`: a list of seconds (from the first frame) that also
knows the video's duration when the detector measured it, so callers need no second pass.
``import core.timing.cuts`` loads neither numpy nor PyAV: each detector imports what it needs.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod

from ..errors import MediaError, V2MError
from ..registry import Registry

#: PySceneDetect backend used by Algorithm 1 (``detect()``'s default in 0.6 and 0.7).
DEFAULT_SCENE_BACKEND = "opencv"


class CutTimes(list):
    """Cut times in seconds, ascending; ``duration`` is the video's length when the detector measured it."""

    def __init__(self, times=(), duration: float | None = None):
        super().__init__(float(t) for t in times)
        self.duration = None if duration is None else float(duration)


class CutDetector(ABC):
    """Finds the cuts of a video file."""

    id: str = ""

    @abstractmethod
    def detect(self, video: str | os.PathLike) -> CutTimes:
        """Cut times (s) of ``video``, measured from its first frame."""


_DETECTORS: Registry[CutDetector] = Registry("cut detector")
register_detector = _DETECTORS.register
detector_ids = _DETECTORS.ids
get_detector = _DETECTORS.get


def detect_cuts(video: str | os.PathLike, detector: str = "scenedetect", **options) -> CutTimes:
    """Cut times of ``video`` with the detector ``detector`` (default: Algorithm 1's)."""
    return get_detector(detector, **options).detect(video)


def _require_file(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path!r}")
    return path


# --------------------------------------------------------------------------------------------
# PySceneDetect (Algorithm 1)


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


@register_detector("scenedetect")
class SceneDetectCuts(CutDetector):
    """Algorithm 1's cuts: ``detect(path, AdaptiveDetector())`` and the end of every scene but the last.

    Works with PySceneDetect 0.6 and 0.7. ``backend`` other than ``"opencv"`` (e.g. ``"pyav"``)
    goes through ``detect(..., backend=)`` on 0.7 and ``open_video(..., backend=)`` +
    ``SceneManager`` on 0.6. Note 0.6 computes times from frame numbers assuming a constant
    frame rate (wrong for VFR); 0.7 uses the stream's timestamps.
    """

    id = "scenedetect"

    def __init__(self, backend: str = DEFAULT_SCENE_BACKEND):
        self.backend = backend

    def detect(self, video) -> CutTimes:
        scenes = list(_scene_list(_require_file(video), self.backend))
        duration = _seconds(scenes[-1][1]) if scenes else None
        return CutTimes((_seconds(end) for _start, end in scenes[:-1]), duration)


# --------------------------------------------------------------------------------------------
# colour histograms


@register_detector("histogram")
class HistogramCuts(CutDetector):
    """Hard cuts by colour-histogram difference.

    Frames are decoded small (``size``², ``sample_fps``). For consecutive frames we take half the
    L1 distance of their normalised per-channel histograms (0 = same colours, 1 = disjoint). A cut
    is a jump that is a strong outlier: above ``median + k·MAD`` of all jumps and above
    ``min_jump``. Gradual transitions and fast motion inside a shot are not counted; that is fine
    for a tempo hint, not for evaluation (use ``scenedetect`` there). The duration is measured in
    the same decode pass.
    """

    id = "histogram"

    def __init__(self, size: int = 32, sample_fps: float = 8.0, bins: int = 16, min_jump: float = 0.3, k: float = 8.0):
        self.size, self.sample_fps, self.bins, self.min_jump, self.k = size, sample_fps, bins, min_jump, k

    def detect(self, video) -> CutTimes:
        import numpy as np

        from . import media

        bins = self.bins
        hists, times = [], []
        stats: dict = {}
        for batch in media.iter_frames(video, size=self.size, sample_fps=self.sample_fps, stats=stats):
            frames, ts = np.asarray(batch.frames), np.asarray(batch.times, dtype=np.float64)
            n = frames.shape[0]
            q = (frames.reshape(n, -1, 3).astype(np.int64) * bins) // 256 + np.arange(3) * bins
            q += np.arange(n)[:, None, None] * (3 * bins)  # one histogram row per frame
            h = np.bincount(q.ravel(), minlength=n * 3 * bins).reshape(n, 3 * bins).astype(np.float64)
            hists.append(h / h.sum(axis=1, keepdims=True))  # each channel sums to 1/3
            times.append(ts)
        duration = float(stats["duration"])
        if sum(len(h) for h in hists) < 2:
            return CutTimes((), duration)
        hist = np.concatenate(hists)
        t = np.concatenate(times)
        d = np.abs(np.diff(hist, axis=0)).sum(axis=1) / 2.0  # half-L1 of channel-averaged hists ∈ [0,1]
        med = float(np.median(d))
        mad = float(np.median(np.abs(d - med))) * 1.4826
        thr = max(self.min_jump, med + self.k * mad)
        return CutTimes((float(t[i + 1]) for i in np.nonzero(d > thr)[0]), duration)


# --------------------------------------------------------------------------------------------
# event-curve peaks


@register_detector("curve_peaks")
class CurvePeakCuts(CutDetector):
    """Hit points of the video's event curve (``curves.find_peaks``), from the frame encoder ``encoder``."""

    id = "curve_peaks"

    def __init__(self, encoder: str = "pixels", threshold: float | None = None, min_gap: float = 0.25,
                 **encoder_options):
        self.encoder, self.threshold, self.min_gap, self.encoder_options = encoder, threshold, min_gap, encoder_options

    def detect(self, video) -> CutTimes:
        from . import curves, encoders

        enc = encoders.get_encoder(self.encoder, **self.encoder_options)
        try:
            raw = encoders.encode_video_curve(video, enc)
        finally:
            enc.close()
        return CutTimes(curves.find_peaks(raw, threshold=self.threshold, min_gap=self.min_gap), raw.duration)
