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
import gc
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import write_json
from .errors import MediaError, ModelError, V2MError

ASR_SAMPLE_RATE = 16000

CAPTION_PROMPT = (
    "Describe this video frame in one or two sentences: the setting, the people or objects, "
    "what is happening, and the mood (lighting, colours, atmosphere)."
)

SUMMARY_TEMPLATE = (
    "Here are descriptions of frames sampled in order from one video:\n"
    "{captions}\n\n"
    "Summarise them in two or three sentences as one coherent description of the whole video: "
    "setting, subjects, actions and mood. Do not describe the frames one by one."
)

MUSIC_PROMPT_TEMPLATE = (
    "You write prompts for a text-to-music model that scores videos.\n"
    "Video summary: {summary}\n"
    "Transcript of the speech: {transcript}\n"
    "Creator's notes: {user_text}\n"
    "Measured pacing: {pacing}\n\n"
    "Write one paragraph (at most 60 words) describing background music for this video: mood, "
    "genre, instrumentation, tempo and energy. Describe the sound only: no lyrics, no quotes from "
    "the transcript, no names of artists or songs. Answer with the paragraph only."
)

# Used when a tokenizer has no chat template (base models).
PLAIN_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"

_NONE = "(none)"
_MAX_TRANSCRIPT_CHARS = 4000  # keeps the final LLM call short; the gist is in the first minutes
_MAX_CAPTION_CHARS = 600

Progress = Callable[[int, int, str], None]  # (step, total, message); may raise to stop the run


# --------------------------------------------------------------------------------------------
# results


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


# --------------------------------------------------------------------------------------------
# media access: core.media (imported lazily: it imports PyAV), plus a seeking frame grabber


def _check_video(path: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path!r}; give the path of an existing video file")
    return path


def _open_video(path: str):
    import av

    try:
        return av.open(path)
    except Exception as exc:  # PyAV raises several error types for unreadable files
        raise MediaError(f"cannot open video {path!r} ({exc}); is it a complete video file?") from exc


def _grab_frames(path: str, times: Sequence[float], *, start: float, max_side: int = 768) -> list:
    """The frames shown at ``times`` as RGB PIL images, one seek per time.

    Times count from the first frame (as in ``media``); ``start`` is that frame's time stamp.
    """
    from PIL import Image

    out = []
    with _open_video(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path!r} has no video stream")
        s = c.streams.video[0]
        for t in times:
            c.seek(max(0, int((t + start) / s.time_base)), stream=s, backward=True, any_frame=False)
            best = None
            for f in c.decode(s):
                if f.time is None:
                    continue
                if best is None or float(f.time) - start <= t + 1e-6:
                    best = f
                if float(f.time) - start > t + 1e-6:
                    break
            if best is None:
                raise MediaError(f"no frame could be decoded near {t:.2f} s in {path!r}")
            img = best.to_image().convert("RGB")
            scale = max_side / max(img.size)
            if scale < 1:
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
            out.append(img)
    return out


def _decode_audio_mono(path: str, sample_rate: int) -> np.ndarray | None:
    """Mono float32 audio of the video at ``sample_rate``, or None when it has no audio stream."""
    from .timing import media

    if not media.probe_video(path).has_audio:
        return None
    wave, _ = media.decode_audio(path, sample_rate=sample_rate, channels=1)
    return np.asarray(wave, dtype=np.float32).reshape(-1)


# --------------------------------------------------------------------------------------------
# pacing: a cheap cut detector and the tempo it suggests


def detect_cuts(
    video_path: str, *, size: int = 32, sample_fps: float = 8.0, bins: int = 16, min_jump: float = 0.3, k: float = 8.0
) -> tuple[list[float], float]:
    """Hard cuts by colour-histogram difference; returns (cut times in seconds, duration).

    Frames are decoded small (``size``², ``sample_fps``). For consecutive frames we take half the
    L1 distance of their normalised per-channel histograms (0 = same colours, 1 = disjoint). A cut
    is a jump that is a strong outlier: above ``median + k·MAD`` of all jumps and above
    ``min_jump``. Gradual transitions and fast motion inside a shot are not counted; that is fine
    for a tempo hint, not for evaluation (use PySceneDetect there).
    """
    from .timing import media

    hists, times = [], []
    stats: dict = {}  # the decode pass also measures the exact duration (no second probe)
    for batch in media.iter_frames(video_path, size=size, sample_fps=sample_fps, stats=stats):
        frames, ts = np.asarray(batch.frames), np.asarray(batch.times, dtype=np.float64)
        n = frames.shape[0]
        q = (frames.reshape(n, -1, 3).astype(np.int64) * bins) // 256 + np.arange(3) * bins
        q += np.arange(n)[:, None, None] * (3 * bins)  # one histogram row per frame
        h = np.bincount(q.ravel(), minlength=n * 3 * bins).reshape(n, 3 * bins).astype(np.float64)
        hists.append(h / h.sum(axis=1, keepdims=True))  # each channel sums to 1/3
        times.append(ts)
    duration = float(stats["duration"])
    if sum(len(h) for h in hists) < 2:
        return [], duration
    H = np.concatenate(hists)
    T = np.concatenate(times)
    d = np.abs(np.diff(H, axis=0)).sum(axis=1) / 2.0  # half-L1 of channel-averaged hists ∈ [0,1]
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * 1.4826
    thr = max(min_jump, med + k * mad)
    cuts = [float(T[i + 1]) for i in np.nonzero(d > thr)[0]]
    return cuts, duration


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
    cuts, duration = detect_cuts(video_path)
    return pacing_from_cuts(cuts, duration)


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


# --------------------------------------------------------------------------------------------
# frames


def sample_frames(
    video_path: str, *, n: int = 8, mode: str = "even", cut_times: Sequence[float] | None = None,
    max_side: int = 768,
) -> list[tuple[float, Any]]:
    """``[(time, PIL.Image)]``: ``n`` frames evenly spread (centres of ``n`` equal spans), or with
    ``mode="scenes"`` the middle frame of each scene between ``cut_times`` (detected with
    ``detect_cuts`` when None), keeping the ``n`` longest scenes when there are more."""
    from .timing import media

    path = _check_video(video_path)
    if n < 1:
        raise V2MError(f"number of frames must be at least 1, got {n}")
    if mode not in ("even", "scenes"):
        raise V2MError(f"frame sampling mode must be 'even' or 'scenes', got {mode!r}")
    info = media.probe_video(path)
    duration = info.duration
    if mode == "even":
        times = [(i + 0.5) * duration / n for i in range(n)]
    else:
        if cut_times is None:
            cut_times, _ = detect_cuts(path)
        edges = [0.0] + sorted(t for t in cut_times if 0 < t < duration) + [duration]
        scenes = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        if len(scenes) > n:
            keep = sorted(sorted(range(len(scenes)), key=lambda i: scenes[i][0] - scenes[i][1])[:n])
            scenes = [scenes[i] for i in keep]
        times = [(a + b) / 2 for a, b in scenes]
    return list(zip(times, _grab_frames(path, times, start=info.start_time, max_side=max_side)))


# --------------------------------------------------------------------------------------------
# model loading


@dataclass
class LoadedModel:
    kind: str  # "asr" | "vlm" | "llm"
    path: str
    model: Any
    processor: Any  # WhisperProcessor | AutoProcessor | tokenizer
    device: str
    dtype: Any

    def release(self) -> None:
        """Drop the weights now (not at the next garbage collection) and empty the CUDA cache."""
        self.model = None
        self.processor = None
        gc.collect()
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def resolve_dtype(dtype: Any, device: str):
    """None/"auto" → float32 on CPU, bfloat16 (float16 where unsupported) on CUDA."""
    import torch

    if dtype is None or dtype == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    d = getattr(torch, str(dtype), None)
    if not isinstance(d, torch.dtype) or not d.is_floating_point:
        raise V2MError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return d


def check_model_dir(model_dir: str | os.PathLike, role: str) -> str:
    path = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(path):
        raise ModelError(
            f"{role} model folder not found: {path}. Download the model into that folder "
            f"(e.g. `huggingface-cli download <repo> --local-dir {path}`), fix the path, or leave "
            f"the {role} model unset to skip this step"
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelError(
            f"{role} model folder {path} has no config.json; it must be a transformers model "
            f"folder (config.json, weights and tokenizer/processor files)"
        )
    return path


def _dtype_kw() -> str:
    import transformers

    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_model(kind: str, model_dir: str, *, device: str = "cpu", dtype: Any = None) -> LoadedModel:
    """Load an ASR (Whisper), VLM (image-text-to-text) or LLM (causal LM) folder, offline."""
    import transformers as tf

    role = {"asr": "ASR", "vlm": "VLM", "llm": "LLM"}[kind]
    path = check_model_dir(model_dir, role)
    torch_dtype = resolve_dtype(dtype, device)
    kw = {"local_files_only": True, "use_safetensors": True, _dtype_kw(): torch_dtype}
    processor_cls, model_cls, expected = {
        "asr": (tf.WhisperProcessor, tf.WhisperForConditionalGeneration,
                "a Whisper model (e.g. openai/whisper-small)"),
        "vlm": (tf.AutoProcessor, tf.AutoModelForImageTextToText,
                "an image-text-to-text model with its processor (e.g. google/gemma-3-4b-it or "
                "HuggingFaceTB/SmolVLM2-256M-Video-Instruct)"),
        "llm": (tf.AutoTokenizer, tf.AutoModelForCausalLM,
                "a causal language model with its tokenizer (e.g. Qwen/Qwen2.5-1.5B-Instruct)"),
    }[kind]

    def failed(exc: Exception) -> ModelError:
        return ModelError(f"cannot load the {role} model from {path}: {exc}. The folder must hold {expected}")

    try:
        processor = processor_cls.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise failed(exc) from exc
    if kind == "vlm" and not getattr(processor, "chat_template", None):
        raise ModelError(
            f"the VLM folder {path} has no chat template (chat_template.jinja, or chat_template in its "
            f"processor/tokenizer config); use an instruction-tuned model such as gemma-3-4b-it"
        )
    try:
        model = model_cls.from_pretrained(path, **kw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise failed(exc) from exc
    model.to(device)
    model.eval()
    return LoadedModel(kind, path, model, processor, str(device), torch_dtype)


def _use(kind: str, model: LoadedModel | None, model_dir: str | None, device: str, dtype: Any):
    """(loaded model, whether we own it and must release it)."""
    if model is not None:
        return model, False
    if model_dir is None:
        raise V2MError(f"give either model_dir or model for the {kind} step")
    return load_model(kind, model_dir, device=device, dtype=dtype), True


# --------------------------------------------------------------------------------------------
# stage 1: transcript


def _to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise V2MError(f"audio must be [channels, samples] or [samples], got shape {x.shape}")
    if int(sr) != ASR_SAMPLE_RATE and x.size:
        from .timing import media

        x = np.asarray(media.resample_audio(x, int(sr), ASR_SAMPLE_RATE), dtype=np.float32)
    return x


def transcribe(
    audio: np.ndarray, sr: int, *, model_dir: str | None = None, model: LoadedModel | None = None,
    device: str = "cpu", dtype: Any = None, language: str | None = None, chunk_seconds: float = 30,
    max_new_tokens: int = 224, batch_size: int = 4, silence_rms: float = 1e-4,
) -> dict[str, Any]:
    """Speech → ``{"text", "language"}`` with Whisper, greedy, in ``chunk_seconds`` windows.

    Audio is mixed to mono and resampled to 16 kHz. Windows are transcribed independently and
    joined with spaces (words cut at a window edge may be garbled; fine for a music prompt).
    Near-silent windows are skipped (Whisper invents text on silence). With ``language=None`` the
    language is detected on the first few speech windows (majority vote) and then fixed.
    """
    import torch

    x = _to_mono_16k(audio, sr)
    win = int(round(min(chunk_seconds, 30) * ASR_SAMPLE_RATE))
    chunks = [x[i : i + win] for i in range(0, len(x), win)]
    chunks = [c for c in chunks if c.size and float(np.sqrt(np.mean(c.astype(np.float64) ** 2))) > silence_rms]
    if not chunks:
        return {"text": "", "language": language}
    lm, own = _use("asr", model, model_dir, device, dtype)
    try:
        proc, m = lm.processor, lm.model
        gen_cfg = m.generation_config
        multilingual = getattr(gen_cfg, "is_multilingual", True) and hasattr(gen_cfg, "lang_to_id")
        cap = int(getattr(m.config, "max_target_positions", 448)) - 4  # room for the init tokens
        new_tokens = max(1, min(int(max_new_tokens), cap))

        def features(batch):
            f = proc.feature_extractor(batch, sampling_rate=ASR_SAMPLE_RATE, return_tensors="pt")
            return f.input_features.to(lm.device, dtype=lm.dtype)

        lang = language
        if multilingual and lang is None:
            with torch.inference_mode():
                ids = m.detect_language(features(chunks[:3])).tolist()
            best = max(ids, key=ids.count)  # ties: the earliest window wins
            lang = proc.tokenizer.convert_ids_to_tokens(best).strip("<|>")
        elif not multilingual:
            lang = lang or "en"
        texts = []
        for i in range(0, len(chunks), batch_size):
            kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=new_tokens)
            if multilingual:
                kwargs.update(language=lang, task="transcribe")
            with torch.inference_mode():
                out = m.generate(features(chunks[i : i + batch_size]), **kwargs)
            seqs = out.sequences if hasattr(out, "sequences") else out
            texts += proc.batch_decode(seqs, skip_special_tokens=True)
    finally:
        if own:
            lm.release()
    text = " ".join(" ".join(t.split()) for t in texts if t.strip())
    return {"text": text, "language": lang}


# --------------------------------------------------------------------------------------------
# stages 2–4: captions, summary, music prompt


def _generate(lm: LoadedModel, content: list[dict] | str, max_new_tokens: int) -> str:
    """Greedy reply of a VLM (content parts, may hold images) or an LLM (text) to one user turn."""
    import torch

    if lm.kind == "vlm":
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        messages = [{"role": "user", "content": content}]
        inputs = lm.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        tokenizer = getattr(lm.processor, "tokenizer", lm.processor)
    else:
        tokenizer = lm.processor
        text = content if isinstance(content, str) else "\n".join(c.get("text", "") for c in content)
        if getattr(tokenizer, "chat_template", None):
            inputs = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt",
            )
        else:
            inputs = tokenizer(PLAIN_TEMPLATE.format(instruction=text), return_tensors="pt")
    inputs = inputs.to(lm.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(lm.dtype)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = lm.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens), pad_token_id=pad)
    new = out[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new, skip_special_tokens=True)[0].strip()


def caption_frames(
    frames: Sequence[Any], *, model_dir: str | None = None, model: LoadedModel | None = None,
    device: str = "cpu", dtype: Any = None, prompt: str = CAPTION_PROMPT, max_new_tokens: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """One caption per frame (PIL images, or ``(time, image)`` pairs) with a VLM, greedy."""
    imgs = [f[1] if isinstance(f, tuple) else f for f in frames]
    if not imgs:
        return []
    lm, own = _use("vlm", model, model_dir, device, dtype)
    try:
        out = []
        for i, img in enumerate(imgs):
            content = [{"type": "image", "image": img}, {"type": "text", "text": prompt}]
            out.append(" ".join(_generate(lm, content, max_new_tokens).split()))
            if progress is not None:
                progress(i + 1, len(imgs))
        return out
    finally:
        if own:
            lm.release()


def summarise(
    captions: Sequence[str], *, model_dir: str | None = None, model: LoadedModel | None = None,
    kind: str = "llm", device: str = "cpu", dtype: Any = None, template: str = SUMMARY_TEMPLATE,
    max_new_tokens: int = 160,
) -> str:
    """Visual summary S = LLM(C) of the frame captions (``kind="vlm"`` runs a VLM folder text-only)."""
    caps = [c.strip()[:_MAX_CAPTION_CHARS] for c in captions if c and c.strip()]
    if not caps:
        return ""
    lm, own = _use(kind, model, model_dir, device, dtype)
    try:
        listing = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(caps))
        return " ".join(_generate(lm, template.format(captions=listing), max_new_tokens).split())
    finally:
        if own:
            lm.release()


def _clean_prompt(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"^(music prompt|prompt|paragraph)\s*:\s*", "", text, flags=re.I)
    return text.strip().strip('"“”').strip()


def music_prompt(
    transcript: str, summary: str, *, model_dir: str | None = None, model: LoadedModel | None = None,
    kind: str = "llm", device: str = "cpu", dtype: Any = None, user_text: str = "",
    pacing: Pacing | None = None, template: str = MUSIC_PROMPT_TEMPLATE, max_new_tokens: int = 128,
) -> str:
    """Music prompt P = LLM(T, S): one paragraph on mood, genre, instrumentation, tempo, energy."""
    t = " ".join((transcript or "").split())
    if len(t) > _MAX_TRANSCRIPT_CHARS:
        t = t[:_MAX_TRANSCRIPT_CHARS] + " …"
    instruction = template.format(
        summary=summary.strip() or _NONE,
        transcript=t or _NONE,
        user_text=" ".join((user_text or "").split()) or _NONE,
        pacing=pacing.describe() if pacing is not None else _NONE,
    )
    lm, own = _use(kind, model, model_dir, device, dtype)
    try:
        return _clean_prompt(_generate(lm, instruction, max_new_tokens))
    finally:
        if own:
            lm.release()


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
        path = _check_video(video_path)
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
        steps = [s for s, on in (("asr", self.asr_dir), ("captions", self.vlm_dir), ("summary", text_dir and self.vlm_dir),
                                 ("prompt", text_dir)) if on]
        total = max(1, len(steps))

        def report(step: str, msg: str) -> None:
            if progress is not None:
                progress(steps.index(step) + 1 if step in steps else total, total, msg)

        res = PromptResult(prompt="")
        used: dict[str, str] = {}

        pacing = None
        if self.pacing_hint or text_dir is None:
            pacing = measure_pacing(path)
            res.cuts_per_minute, res.bpm_hint = round(pacing.cuts_per_minute, 2), pacing.bpm

        if self.asr_dir:
            if audio is not None:
                wave, sr = audio
            else:
                wave, sr = _decode_audio_mono(path, ASR_SAMPLE_RATE), ASR_SAMPLE_RATE
            if wave is not None:
                tr = transcribe(wave, sr, model_dir=self.asr_dir, device=self.device, dtype=self.dtype,
                                language=self.language, max_new_tokens=self.asr_tokens)
                res.transcript, res.language = tr["text"], tr["language"]
            used["asr"] = self.asr_dir
            report("asr", "transcribed the speech")

        keep: LoadedModel | None = None  # the VLM stays loaded when it also writes the text
        try:
            if self.vlm_dir:
                frames = sample_frames(path, n=self.n_frames, mode=self.frame_mode,
                                       cut_times=pacing.cut_times if pacing and self.frame_mode == "scenes" else None)
                res.frame_times = [round(float(t), 3) for t, _ in frames]
                vlm = load_model("vlm", self.vlm_dir, device=self.device, dtype=self.dtype)
                try:
                    res.captions = caption_frames(frames, model=vlm, prompt=self.caption_prompt,
                                                  max_new_tokens=self.caption_tokens)
                finally:
                    if text_kind == "vlm":
                        keep = vlm
                    else:
                        vlm.release()
                del vlm, frames
                used["vlm"] = self.vlm_dir
                report("captions", f"captioned {len(res.captions)} frames")

            if text_dir is None:
                missing = [r for r, d in (("ASR", self.asr_dir), ("VLM", self.vlm_dir), ("LLM", self.llm_dir)) if not d]
                what = "no ASR/VLM/LLM configured" if len(missing) == 3 else (
                    "no LLM configured" + (" (and the VLM is not used for text)" if self.vlm_dir else ""))
                res.prompt = fallback_prompt(user_text, pacing)
                res.fallback_reason = (
                    f"{what}: prompt built from your text and the video's pacing "
                    f"({pacing.cuts_per_minute:.1f} cuts/min → ~{pacing.bpm} BPM)"
                )
            else:
                text_model = keep or load_model(text_kind, text_dir, device=self.device, dtype=self.dtype)
                keep = text_model
                if res.captions:
                    res.summary = summarise(res.captions, model=text_model, template=SUMMARY_TEMPLATE,
                                            max_new_tokens=self.summary_tokens)
                    report("summary", "summarised the frames")
                res.prompt = music_prompt(res.transcript, res.summary, model=text_model, user_text=user_text,
                                          pacing=pacing if self.pacing_hint else None,
                                          max_new_tokens=self.prompt_tokens)
                used["text"] = text_dir
                report("prompt", "wrote the music prompt")
                if not res.prompt:
                    pacing = pacing or measure_pacing(path)
                    res.prompt = fallback_prompt(user_text, pacing)
                    res.fallback_reason = (
                        f"the text model returned an empty prompt: prompt built from your text and the "
                        f"video's pacing ({pacing.cuts_per_minute:.1f} cuts/min → ~{pacing.bpm} BPM)"
                    )
        finally:
            if keep is not None:
                keep.release()

        res.used_models = used
        self._cache_write(key, res)
        return res
