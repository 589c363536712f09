"""Video/audio I/O with PyAV: exact probing, streaming frame decode, audio decode, mux and encode.

Time is measured from the first video frame's presentation timestamp and taken from the stream's
own timestamps (never from frame indices), so variable-frame-rate files work everywhere.

Length contract (used by `probe_video`, `mux_audio`, `write_video`): a video lasts
``pts(last frame) + duration(last frame) - pts(first frame)``; for N constant-rate frames at fps
that is exactly N / fps.
"""

from .audio import decode_audio, fit_length, iter_audio, resample_audio
from .frames import FrameBatch, iter_frames, prefetch
from .probe import VideoInfo, probe_video
from .mux import MuxPlan, mux_audio, plan_mux
from .write import as_rate, atomic_output, write_audio, write_video

__all__ = [
    "VideoInfo",
    "FrameBatch",
    "probe_video",
    "iter_frames",
    "prefetch",
    "decode_audio",
    "iter_audio",
    "resample_audio",
    "fit_length",
    "mux_audio",
    "plan_mux",
    "MuxPlan",
    "write_video",
    "write_audio",
    "as_rate",
    "atomic_output",
]
