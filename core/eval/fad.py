"""Fréchet Audio Distance from local VGGish weights, and the Fréchet distance itself.

numpy (and torch, for VGGish) are imported inside the functions; weights are never downloaded.
"""

from __future__ import annotations

import os

from ..errors import ModelError, V2MError
from .files import require_file, weights_problem

#: Audio extensions ``fad`` picks up when given a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".mp4", ".mkv", ".mov", ".webm")


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


def _audio_files(dir_or_paths) -> list[str]:
    if isinstance(dir_or_paths, (str, os.PathLike)):
        path = os.fspath(dir_or_paths)
        if os.path.isdir(path):
            return sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(AUDIO_EXTENSIONS)
            )
        return [require_file(path, "audio")]
    return [require_file(p, "audio") for p in dir_or_paths]


def fad(gen_dir_or_paths, ref_dir_or_paths, weights_dir=None, *, embed_fn=None, device="cpu") -> dict:
    """Fréchet Audio Distance (Kilgour et al.) between generated and reference audio.

    ``gen_dir_or_paths`` / ``ref_dir_or_paths``: a folder (its audio files, sorted) or a list of
    files. ``embed_fn(path) -> array [N, D]`` gives the embedding frames of one file; all frames
    of a set are pooled into one Gaussian fit, as in the VGGish FAD.

    Without ``embed_fn`` the paper's VGGish embeddings are used (``core.eval.vggish``: one raw 128-d
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
        reason = None if is_file else weights_problem(weights_dir)
        if reason:
            return {"value": None, "skipped": f"FAD: {reason}"}
        from ...model_io.vggish import load_vggish
        from . import vggish

        try:
            model = load_vggish(weights_dir, device)
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
