"""Measuring sync (paper §4.2, Appendix B): Scene Cut Hit and its chance level, beat scores and
tempo deviation against reference music, FAD (VGGish) and CLAP from local weights, and test media.

Importing this package loads neither numpy nor torch: each metric imports what it needs.
"""

from .beats import LORIS_SAMPLE_RATE, beat_scores, f1_of_means, onset_times, tempo_bpm, tempo_deviation
from .clap import clap_score
from .fad import fad, fad_from_embeddings, frechet_distance, gaussian_fit
from .report import evaluate_video, format_table, load_audio, load_mono, summarise_results
from .sch import beat_times, scene_cut_hit, sch_null

__all__ = [
    "LORIS_SAMPLE_RATE",
    "beat_scores",
    "beat_times",
    "clap_score",
    "evaluate_video",
    "f1_of_means",
    "fad",
    "fad_from_embeddings",
    "format_table",
    "frechet_distance",
    "gaussian_fit",
    "load_audio",
    "load_mono",
    "onset_times",
    "sch_null",
    "scene_cut_hit",
    "summarise_results",
    "tempo_bpm",
    "tempo_deviation",
]
