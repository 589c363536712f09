"""Music prompts from a video (paper, Appendix B, Algorithm 2): transcript + frame captions → LLM.

    transcript  T = ASR(video audio)                       Whisper (WhisperForConditionalGeneration)
    captions    C_i = VLM(frame_i) for sampled frames      AutoModelForImageTextToText + AutoProcessor
    summary     S = LLM(C)                                 AutoModelForCausalLM (or the VLM, text only)
    prompt      P = LLM(T, S)                              same text model

Default models (users supply the weights; everything is loaded offline, ``local_files_only``):

- ASR: Whisper, e.g. ``openai/whisper-small`` / ``openai/whisper-large-v3-turbo``
  in ``models/v2m/prompt/whisper-*``.
- VLM: Gemma 3 4B-it as in the paper (``models/v2m/prompt/gemma-3-4b-it``). Light option for CPUs
  and small GPUs: SmolVLM2 (``HuggingFaceTB/SmolVLM2-256M-Video-Instruct`` or ``-2.2B-Instruct``).
  With ``use_vlm_for_text=True`` (default) and no LLM, the VLM also writes the summary and the
  prompt, so one Gemma 3 folder does all three steps as in the paper.
- LLM: any chat model with a chat template (``AutoModelForCausalLM``), e.g. Qwen2.5-1.5B-Instruct.

With no model configured the prompt is built from the user's text and the video's measured pacing
(cut rate → tempo hint), and ``PromptResult.fallback_reason`` says so. A configured folder that
does not exist is an error, never a silent fallback.

Every model is loaded for its stage and released after it. Results can be cached as JSON, keyed
by the video's bytes, the models and the settings, so a second run loads nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..atomic import write_json
from ..errors import V2MError
from .asr import transcribe
from ...model_io.hf import check_model_dir
from .models import LoadedModel, load_model
from .pacing import Pacing, fallback_prompt, measure_pacing
from .templates import ASR_SAMPLE_RATE, CAPTION_PROMPT, MUSIC_PROMPT_TEMPLATE, PLAIN_TEMPLATE, SUMMARY_TEMPLATE
from .video import check_video, decode_audio_mono, sample_frames
from .writing import caption_frames, music_prompt, summarise_captions

Progress = Callable[[int, int, str], None]  # (step, total, message); may raise to stop the run


@dataclass
class PromptResult:
    prompt: str
    transcript: str = ""
    captions: list[str] = field(default_factory=list)
    summary: str = ""
    used_models: dict[str, str] = field(default_factory=dict)
    fallback_reason: str | None = None
    cached: bool = False
    language: str | None = None
    frame_times: list[float] = field(default_factory=list)
    cuts_per_minute: float | None = None
    bpm_hint: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PromptResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------------------------
# pipeline + cache


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _model_fingerprint(path: str | None) -> Any:
    """Folder path + (name, size, mtime) of its files: a replaced checkpoint changes the key."""
    if path is None:
        return None
    files = []
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if os.path.isfile(p):
            st = os.stat(p)
            files.append([name, st.st_size, st.st_mtime_ns])
    return {"path": path, "files": files}


class MusicPromptPipeline:
    """Algorithm 2: Whisper transcript + VLM frame captions → LLM summary → LLM music prompt.

    Each ``*_dir`` is a local transformers folder or None (that step is skipped). With no text
    model (``llm_dir``, or ``vlm_dir`` when ``use_vlm_for_text``) the prompt falls back to the
    user's text + the video's pacing, and ``fallback_reason`` says why. Missing folders raise
    ``ModelError`` at construction.

    ``progress(step, total, message)`` is called between steps; raising from it stops the run
    (ComfyUI nodes check interrupts there).
    """

    def __init__(
        self, asr_dir: str | None = None, vlm_dir: str | None = None, llm_dir: str | None = None, *,
        device: str = "cpu", dtype: Any = None, cache_dir: str | None = None, n_frames: int = 8,
        frame_mode: str = "even", language: str | None = None, use_vlm_for_text: bool = True,
        caption_prompt: str = CAPTION_PROMPT, caption_tokens: int = 64, summary_tokens: int = 160,
        prompt_tokens: int = 128, asr_tokens: int = 224, pacing_hint: bool = True,
    ):
        self.asr_dir = check_model_dir(asr_dir, "ASR") if asr_dir else None
        self.vlm_dir = check_model_dir(vlm_dir, "VLM") if vlm_dir else None
        self.llm_dir = check_model_dir(llm_dir, "LLM") if llm_dir else None
        if frame_mode not in ("even", "scenes"):
            raise V2MError(f"frame_mode must be 'even' or 'scenes', got {frame_mode!r}")
        if int(n_frames) < 1:
            raise V2MError(f"n_frames must be at least 1, got {n_frames}")
        self.device = str(device)
        self.dtype = dtype
        self.cache_dir = os.fspath(cache_dir) if cache_dir else None
        self.n_frames = int(n_frames)
        self.frame_mode = frame_mode
        self.language = language
        self.use_vlm_for_text = bool(use_vlm_for_text)
        self.caption_prompt = caption_prompt
        self.caption_tokens = int(caption_tokens)
        self.summary_tokens = int(summary_tokens)
        self.prompt_tokens = int(prompt_tokens)
        self.asr_tokens = int(asr_tokens)
        self.pacing_hint = bool(pacing_hint)

    # which folder writes text, and as what kind of model
    def _text_source(self) -> tuple[str | None, str]:
        if self.llm_dir:
            return self.llm_dir, "llm"
        if self.vlm_dir and self.use_vlm_for_text:
            return self.vlm_dir, "vlm"
        return None, "llm"

    def cache_key(self, video_sha: str, audio_sha: str | None, user_text: str) -> str:
        text_dir, text_kind = self._text_source()
        spec = {
            "v": 1, "video": video_sha, "audio": audio_sha, "user_text": user_text,
            "asr": _model_fingerprint(self.asr_dir), "vlm": _model_fingerprint(self.vlm_dir),
            "text": [_model_fingerprint(text_dir), text_kind],
            "device": self.device, "dtype": str(self.dtype), "n_frames": self.n_frames,
            "frame_mode": self.frame_mode, "language": self.language,
            "tokens": [self.caption_tokens, self.summary_tokens, self.prompt_tokens, self.asr_tokens],
            "pacing_hint": self.pacing_hint,
            "templates": [self.caption_prompt, SUMMARY_TEMPLATE, MUSIC_PROMPT_TEMPLATE, PLAIN_TEMPLATE],
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def _cache_path(self, key: str) -> str | None:
        return os.path.join(self.cache_dir, f"prompt-{key[:32]}.json") if self.cache_dir else None

    def _cache_read(self, key: str) -> PromptResult | None:
        path = self._cache_path(key)
        if path is None or not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            if d.get("key") != key:
                return None
            res = PromptResult.from_dict(d["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a broken cache entry is recomputed and overwritten
        res.cached = True
        return res

    def _cache_write(self, key: str, res: PromptResult) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        os.makedirs(self.cache_dir, exist_ok=True)
        write_json(path, {"key": key, "result": {**res.to_dict(), "cached": False}}, ensure_ascii=False)

    def run(
        self, video_path: str, *, audio: tuple[np.ndarray, int] | None = None, user_text: str = "",
        progress: Progress | None = None,
    ) -> PromptResult:
        """Write a music prompt for ``video_path``. ``audio=(wave [C,T] or [T], sr)`` replaces the
        video's own sound track for the transcript."""
        path = check_video(video_path)
        user_text = " ".join((user_text or "").split())
        audio_sha = None
        if audio is not None:
            wave, sr = audio
            wave = np.ascontiguousarray(np.asarray(wave, dtype=np.float32))
            audio_sha = hashlib.sha256(wave.tobytes() + str((wave.shape, int(sr))).encode()).hexdigest()
        key = self.cache_key(file_sha256(path), audio_sha, user_text)
        hit = self._cache_read(key)
        if hit is not None:
            return hit

        text_dir, text_kind = self._text_source()
        steps = [s for s, on in (("asr", self.asr_dir), ("captions", self.vlm_dir),
                                 ("summary", text_dir and self.vlm_dir), ("prompt", text_dir)) if on]
        total = max(1, len(steps))

        def report(step: str, msg: str) -> None:
            if progress is not None:
                progress(steps.index(step) + 1 if step in steps else total, total, msg)

        res = PromptResult(prompt="")
        pacing = None
        if self.pacing_hint or text_dir is None:
            pacing = measure_pacing(path)
            res.cuts_per_minute, res.bpm_hint = round(pacing.cuts_per_minute, 2), pacing.bpm
        if self.asr_dir:
            self._transcribe(res, path, audio)
            report("asr", "transcribed the speech")
        keep: LoadedModel | None = None  # the VLM stays loaded when it also writes the text
        try:
            if self.vlm_dir:
                keep = self._caption(res, path, pacing, keep_model=text_kind == "vlm")
                report("captions", f"captioned {len(res.captions)} frames")
            if text_dir is None:
                missing = [r for r, d in (("ASR", self.asr_dir), ("VLM", self.vlm_dir), ("LLM", self.llm_dir)) if not d]
                what = "no ASR/VLM/LLM configured" if len(missing) == 3 else (
                    "no LLM configured" + (" (and the VLM is not used for text)" if self.vlm_dir else ""))
                _fallback(res, user_text, pacing, what)
            else:
                keep = keep or load_model(text_kind, text_dir, device=self.device, dtype=self.dtype)
                self._write(res, keep, user_text, pacing, report)
                res.used_models["text"] = text_dir
                if not res.prompt:
                    _fallback(res, user_text, pacing or measure_pacing(path), "the text model returned an empty prompt")
        finally:
            if keep is not None:
                keep.release()
        self._cache_write(key, res)
        return res

    def _transcribe(self, res: PromptResult, path: str, audio: tuple[np.ndarray, int] | None) -> None:
        wave, sr = audio if audio is not None else (decode_audio_mono(path, ASR_SAMPLE_RATE), ASR_SAMPLE_RATE)
        if wave is not None:
            tr = transcribe(wave, sr, model_dir=self.asr_dir, device=self.device, dtype=self.dtype,
                            language=self.language, max_new_tokens=self.asr_tokens)
            res.transcript, res.language = tr["text"], tr["language"]
        res.used_models["asr"] = self.asr_dir

    def _caption(self, res: PromptResult, path: str, pacing: Pacing | None, *, keep_model: bool) -> LoadedModel | None:
        """Captions of the sampled frames; returns the VLM when it also writes the text (else releases it)."""
        frames = sample_frames(path, n=self.n_frames, mode=self.frame_mode,
                               cut_times=pacing.cut_times if pacing and self.frame_mode == "scenes" else None)
        res.frame_times = [round(float(t), 3) for t, _ in frames]
        vlm = load_model("vlm", self.vlm_dir, device=self.device, dtype=self.dtype)
        try:
            res.captions = caption_frames(frames, model=vlm, prompt=self.caption_prompt,
                                          max_new_tokens=self.caption_tokens)
        except BaseException:
            vlm.release()
            raise
        res.used_models["vlm"] = self.vlm_dir
        if keep_model:
            return vlm
        vlm.release()
        return None

    def _write(self, res: PromptResult, text_model: LoadedModel, user_text: str, pacing: Pacing | None, report) -> None:
        """The summary of the captions (when there are any) and the music prompt, with one text model."""
        if res.captions:
            res.summary = summarise_captions(res.captions, model=text_model, template=SUMMARY_TEMPLATE,
                                             max_new_tokens=self.summary_tokens)
            report("summary", "summarised the frames")
        res.prompt = music_prompt(res.transcript, res.summary, model=text_model, user_text=user_text,
                                  pacing=pacing if self.pacing_hint else None, max_new_tokens=self.prompt_tokens)
        report("prompt", "wrote the music prompt")


def _fallback(res: PromptResult, user_text: str, pacing: Pacing, why: str) -> None:
    res.prompt = fallback_prompt(user_text, pacing)
    res.fallback_reason = (f"{why}: prompt built from your text and the video's pacing "
                           f"({pacing.cuts_per_minute:.1f} cuts/min → ~{pacing.bpm} BPM)")
