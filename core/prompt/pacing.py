"""A video's pacing (its cut rate) and the tempo it suggests; the prompt written without models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class Pacing:
    """Cut rate of a video and the tempo it suggests (see ``pacing_from_cuts``)."""

    cut_times: list[float]
    duration: float
    cuts_per_minute: float
    bpm: int
    tempo: str  # slow | moderate | upbeat | fast

    def describe(self) -> str:
        return (
            f"{self.cuts_per_minute:.1f} cuts per minute, which suggests a {self.tempo} tempo "
            f"around {self.bpm} BPM"
        )


def pacing_from_cuts(cut_times: Sequence[float], duration: float) -> Pacing:
    """Cut rate → tempo hint: ``bpm = clip(60 + 2.5 · cuts/min, 60, 150)``.

    A still shot (0 cuts/min) gets 60 BPM, a cut every 4 s (15/min) ~98 BPM, a cut every 2 s
    (30/min) 135 BPM; words: < 80 slow, < 110 moderate, < 130 upbeat, else fast.
    """
    cpm = 60.0 * len(cut_times) / duration if duration > 0 else 0.0
    bpm = int(round(min(150.0, max(60.0, 60.0 + 2.5 * cpm))))
    tempo = "slow" if bpm < 80 else "moderate" if bpm < 110 else "upbeat" if bpm < 130 else "fast"
    return Pacing(list(cut_times), float(duration), float(cpm), bpm, tempo)


def measure_pacing(video_path: str) -> Pacing:
    """The pacing of a video from its hard cuts (the ``histogram`` detector: cheap, one decode pass)."""
    from ..timing.cuts import HistogramCuts

    cuts = HistogramCuts().detect(video_path)
    return pacing_from_cuts(cuts, cuts.duration)


_ENERGY = {"slow": "calm, gentle energy", "moderate": "steady, moderate energy",
           "upbeat": "lively, driving energy", "fast": "high energy with a strong pulse"}


def fallback_prompt(user_text: str, pacing: Pacing | None) -> str:
    """A prompt without models: the user's text plus a tempo/energy hint from the video's cuts."""
    parts = []
    text = " ".join((user_text or "").split()).rstrip(".")
    parts.append(text if text else "Instrumental background music for a video")
    if pacing is not None:
        parts.append(f"{pacing.tempo} tempo around {pacing.bpm} BPM, {_ENERGY[pacing.tempo]}")
    parts.append("no vocals")
    return ". ".join(p[0].upper() + p[1:] for p in parts) + "."
