"""CLAP score (text–audio agreement) from a local transformers folder; never downloads."""

from __future__ import annotations

import inspect
import os

from ..errors import ModelError, V2MError
from .files import require_file, weights_problem


def clap_score(audio_paths, texts, weights_dir=None) -> dict:
    """CLAP score: mean cosine similarity between each audio's and its text's CLAP embedding.

    Weights come only from ``weights_dir``, a local transformers folder (``ClapModel`` +
    ``ClapProcessor``, e.g. a copy of ``laion/larger_clap_music``), loaded with
    ``local_files_only=True``; nothing is downloaded. Without weights the result is
    ``{"value": None, "skipped": reason}``. Audio is decoded at the processor's rate (48 kHz for
    LAION CLAP) and averaged to mono. Imports transformers and torch only when weights are present.
    """
    reason = weights_problem(weights_dir)
    if reason:
        return {"value": None, "skipped": f"CLAP: {reason}"}
    paths = [require_file(p, "audio") for p in audio_paths]
    texts = list(texts)
    if len(paths) != len(texts):
        raise V2MError(f"CLAP needs one text per audio file: {len(paths)} files, {len(texts)} texts")
    if not paths:
        return {"value": None, "skipped": "CLAP: no audio files"}
    import numpy as np

    from ...model_io.hf import load_pretrained
    from ..timing import media

    folder = os.fspath(weights_dir)
    try:
        import torch
        from transformers import ClapModel, ClapProcessor

        processor = ClapProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(f"cannot load CLAP from {folder!r}: {exc}") from exc
    model = load_pretrained(ClapModel, folder, what="CLAP").eval()

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
