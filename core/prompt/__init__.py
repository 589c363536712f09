"""Music prompts from a video (paper Appendix B, Algorithm 2): transcript + frame captions → LLM.

``pipeline`` runs the stages with caching; ``asr`` (Whisper), ``writing`` (captions, summary,
prompt), ``video`` (frames and audio the models see), ``pacing`` (cut rate → tempo hint, the
prompt without models), ``models`` (offline loading), ``templates`` (the instructions).
"""

from .asr import transcribe
from .models import LoadedModel, load_model, resolve_dtype
from .pacing import Pacing, fallback_prompt, measure_pacing, pacing_from_cuts
from .pipeline import MusicPromptPipeline, PromptResult, file_sha256
from .templates import ASR_SAMPLE_RATE, CAPTION_PROMPT, MUSIC_PROMPT_TEMPLATE, SUMMARY_TEMPLATE
from .video import sample_frames
from .writing import caption_frames, music_prompt, summarise_captions

__all__ = [
    "ASR_SAMPLE_RATE",
    "CAPTION_PROMPT",
    "LoadedModel",
    "MUSIC_PROMPT_TEMPLATE",
    "MusicPromptPipeline",
    "Pacing",
    "PromptResult",
    "SUMMARY_TEMPLATE",
    "caption_frames",
    "fallback_prompt",
    "file_sha256",
    "load_model",
    "measure_pacing",
    "music_prompt",
    "pacing_from_cuts",
    "resolve_dtype",
    "sample_frames",
    "summarise_captions",
    "transcribe",
]
