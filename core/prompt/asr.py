"""Stage 1 of Algorithm 2: the speech transcript (Whisper, greedy, in windows)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import V2MError
from .models import LoadedModel, use_model
from .templates import ASR_SAMPLE_RATE


def _to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise V2MError(f"audio must be [channels, samples] or [samples], got shape {x.shape}")
    if int(sr) != ASR_SAMPLE_RATE and x.size:
        from ..timing import media

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
    lm, own = use_model("asr", model, model_dir, device, dtype)
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
