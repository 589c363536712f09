"""Training data preparation: music files + captions → a cache of codec latents and event curves.

Clips are non-overlapping windows of ``L`` latent frames (``L = ceil(clip_seconds ·
latent_rate)``, so a window is ``L · downsampling_ratio`` samples ≈ ``clip_seconds``). The last,
partial window of a file is zero-padded when it holds at least ``min_last_fraction`` of a clip
(``last_clip="pad"``, the default; its ``seconds`` says how much is music) and dropped otherwise;
``last_clip="drop"`` drops every partial window. A file shorter than the fraction gives no clip.

Each clip's curve is the music event curve of paper §3.2 computed exactly as for video at
inference: encoder features of the clip → ``curves.conditioning_curve`` (dissimilarity,
standardised per clip, resampled by time to the ``L`` latent frames, Hann-smoothed).

Captions (see :mod:`.dataset_files`): a file without caption gets a generated one from its tags
and measured tempo, key, loudness and brightness (``generate_captions``, the default; stored with
the file's manifest entry and marked ``caption_source: generated`` on its clips), or ``""`` when
generation is off (it then trains the text-dropped branch only); both are counted in
``uncaptioned``. Captions are re-read on every run, so editing them needs no re-encoding.

Music encoder fallback: when ``music_encoder`` cannot be built because its weights are missing
(MusicFM without a checkpoint) and ``music_encoder_fallback`` names another encoder, that one is
used with a warning, and the cache spec records ``music_encoder_fallback`` (wanted, used, reason)
so training can check it and the checkpoint can carry it.

Resuming: files whose (path, size, mtime) match a finished entry are skipped; a killed run loses
at most the clips not yet flushed to a shard (:class:`.cache.ShardWriter`). Unreadable files are
listed under ``skipped`` with the reason (and skipped again while unchanged). If the spec (codec,
encoder, smoothing, clip length, …) differs from the cache's, the cache is rebuilt from scratch
with a message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError, ModelError, V2MError, WeightsMissing
from ..precision import torch_device
from ..timing import curves
from ..timing.spec import CurveSpec
from .cache import CACHE_VERSION, ShardWriter, clear_cache, load_manifest, new_manifest, spec_diff
from .dataset_files import (audio_tags, caption_source, file_signature, find_audio_files, generated_caption,
                            measured_properties, read_captions)

__all__ = ["DEFAULT_CLIP_SECONDS", "PrepareResult", "prepare_dataset"]

DEFAULT_CLIP_SECONDS = 32.0  # paper §3.5


@dataclass
class PrepareResult:
    cache_dir: str
    spec: dict
    clips: int  # clips in the cache (all runs)
    new_clips: int  # added by this run
    files_done: int
    files_skipped_done: int  # already in the cache, skipped
    skipped: list = field(default_factory=list)  # [{"file", "reason"}]
    uncaptioned: int = 0
    generated_captions: int = 0
    rebuilt: bool = False
    messages: list = field(default_factory=list)


def _clip_windows(n_samples: int, clip_samples: int, last_clip: str, min_last: int) -> list[tuple[int, int]]:
    """``(start, valid_samples)`` of the non-overlapping windows of a file."""
    out = []
    start = 0
    while start < n_samples:
        valid = min(clip_samples, n_samples - start)
        if valid == clip_samples or (last_clip == "pad" and valid >= min_last):
            out.append((start, valid))
        start += clip_samples
    return out


def _cache_spec(cod, codec_source, enc, curve: CurveSpec, *, clip_seconds: float, last_clip: str,
                min_last_fraction: float) -> dict:
    from ...model_io.codec import codec_spec

    latent_len = curves.latent_length(float(clip_seconds), cod.latent_rate)
    clip_samples = latent_len * cod.downsampling_ratio
    return {
        "version": CACHE_VERSION,
        "codec": codec_spec(cod, codec_source),
        "encoder": enc.describe(),
        "smoothing_seconds": float(curve.smoothing_seconds),
        "standardise": bool(curve.standardise),
        "clip_seconds": float(clip_seconds),
        "clip_samples": int(clip_samples),
        "clip_duration": clip_samples / cod.sample_rate,
        "latent_length": int(latent_len),
        "latent_channels": int(cod.latent_channels),
        "sample_rate": int(cod.sample_rate),
        "audio_channels": int(cod.audio_channels),
        "latent_rate": float(cod.latent_rate),
        "last_clip": last_clip,
        "min_last_fraction": float(min_last_fraction),
    }


def _decode_music(path: Path, rel: str, cod) -> np.ndarray:
    from ..timing.media import decode_audio

    wave, _sr = decode_audio(str(path), sample_rate=cod.sample_rate, channels=cod.audio_channels)
    if wave.shape[-1] == 0:
        raise MediaError(f"{rel}: no audio samples")
    if not np.all(np.isfinite(wave)):
        raise MediaError(f"{rel}: NaN/Inf samples")
    return wave


def _encode_clips(wave: np.ndarray, windows, cod, enc, spec: Mapping, *, batch_size: int, device):
    """Yield ``(latents [D, L], curve [L], valid_samples, start_sample)`` for each window of a file."""
    import torch

    clip_samples, latent_len = int(spec["clip_samples"]), int(spec["latent_length"])
    curve_spec = CurveSpec.from_cache(spec)
    step = max(1, int(batch_size))
    for b0 in range(0, len(windows), step):
        chunk = windows[b0:b0 + step]
        batch = np.zeros((len(chunk), wave.shape[0], clip_samples), dtype=np.float32)
        for j, (s, valid) in enumerate(chunk):
            batch[j, :, :valid] = wave[:, s:s + valid]
        x = torch.from_numpy(batch).to(device)
        if isinstance(cod, torch.nn.Module):
            p = next(cod.parameters(), None)
            if p is not None:
                x = x.to(p.dtype)
        with torch.no_grad():
            lat = cod.encode(x).float().cpu()
        if lat.shape[-1] != latent_len:
            raise ModelError(f"codec gave {lat.shape[-1]} latent frames for "
                             f"{clip_samples} samples, expected {latent_len}")
        for j, (s, valid) in enumerate(chunk):
            curve = enc.conditioning_curve(batch[j], cod.sample_rate, spec=curve_spec, length=latent_len,
                                           latents=lat[j])
            yield lat[j].numpy(), np.asarray(curve.values, np.float32), valid, s


class _FileEncoder:
    """Decodes one music file, encodes its clips into the shard writer, or records why it was skipped."""

    def __init__(self, cod, enc, spec: Mapping, writer: ShardWriter, say: Callable[[str], None], *,
                 batch_size: int, device, shard_size: int, generate_captions: bool = True):
        self.cod, self.enc, self.spec, self.writer, self.say = cod, enc, spec, writer, say
        self.generate_captions = generate_captions
        self.batch_size, self.device, self.shard_size = batch_size, device, shard_size
        self.min_last = max(1, int(math.ceil(float(spec["min_last_fraction"]) * int(spec["clip_samples"]))))

    def encode(self, path: Path, rel: str, sig: dict, caption: str | None, source: str) -> tuple[int, str, str] | None:
        """``(clips added, caption, caption source)``, or None when the file could not be read (it is skipped)."""
        cod, writer = self.cod, self.writer
        try:
            wave = _decode_music(path, rel, cod)
        except (MediaError, ValueError, OSError, RuntimeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            writer.skip({"file": rel, "reason": reason, **sig})
            self.say(f"skipped {rel}: {reason}")
            return None
        entry = {**sig}
        if caption is None and self.generate_captions:
            caption, source = (generated_caption(audio_tags(path), measured_properties(wave, cod.sample_rate)),
                               "generated")
            entry["generated_caption"] = caption
        windows = _clip_windows(wave.shape[-1], int(self.spec["clip_samples"]), self.spec["last_clip"], self.min_last)
        clips = _encode_clips(wave, windows, cod, self.enc, self.spec, batch_size=self.batch_size, device=self.device)
        for lat, curve, valid, start in clips:
            writer.add_clip(lat, curve, valid / cod.sample_rate, {
                "file": rel, "offset": start / cod.sample_rate, "seconds": valid / cod.sample_rate,
                "caption": caption or "", "caption_source": source})
        writer.file_done(rel, {**entry, "clips": len(windows)})
        if not windows:
            self.say(f"{rel}: shorter than {float(self.spec['min_last_fraction']):g} of a clip "
                     f"({wave.shape[-1] / cod.sample_rate:.2f} s), no clip")
        if len(writer) >= self.shard_size:
            writer.flush()
        return len(windows), caption or "", source


def _music_encoder(name, fallback: str | None, cod, options, say):
    """``(encoder, fallback record or None)``: the wanted music encoder, or the fallback when its weights
    are absent (:class:`WeightsMissing`: none found) and a fallback is configured. Weights that are there but
    cannot be loaded (damaged, unsafe pickle, wrong layout, bad stats) stop with their error: a long run must
    not end up on the weaker curve because of a broken file."""
    from .music_encoders import make_music_encoder

    try:
        return make_music_encoder(name, codec=cod, **dict(options or {})), None
    except WeightsMissing as exc:
        if not fallback or not isinstance(name, str):
            raise
        reason = f"no {name} weights found (" + str(exc).split(". ")[0] + ")"
        say(f"warning: {reason}; the preset/config allows the fallback (music_encoder_fallback = {fallback!r}), so "
            f"the music curves use {fallback} instead (recorded in the cache and the checkpoint). For the paper's "
            f"curves get the weights (`v2m-zero models download {name}`) and prepare again")
        return make_music_encoder(fallback, codec=cod), {"wanted": name, "used": fallback, "reason": reason}


def _open_cache(cache: Path, spec: dict, say: Callable[[str], None]) -> tuple[dict, bool]:
    """The cache's manifest, or a new one when there is none or its spec differs (then rebuilt)."""
    manifest = load_manifest(cache)
    if manifest is not None and manifest.get("spec") != spec:
        say(f"cache spec changed ({'; '.join(spec_diff(manifest.get('spec') or {}, spec))}): rebuilding {cache}")
        clear_cache(cache)
        return new_manifest(spec), True
    return (manifest if manifest is not None else new_manifest(spec)), False


def _encode_files(files: list[Path], data_root: Path, manifest: dict, encoder: "_FileEncoder", progress) -> dict:
    """Encode new or changed files, skip finished and known-unreadable ones; refresh every clip's caption."""
    writer, say = encoder.writer, encoder.say
    table = read_captions(data_root)
    # captions are refreshed for finished files too (cheap, and edits need no re-encoding)
    by_file: dict[str, list[dict]] = {}
    for c in manifest["clips"]:
        by_file.setdefault(c["file"], []).append(c)
    counts = {"new": 0, "done_before": 0, "uncaptioned": 0, "generated": 0}
    for i, path in enumerate(files):
        rel = path.relative_to(data_root).as_posix()
        writer.visited.add(rel)
        sig = file_signature(path)
        caption, source = caption_source(path, rel, table)
        entry, prev = manifest["files"].get(rel), writer.skipped_prev.get(rel)
        if entry is not None and all(entry.get(k) == sig[k] for k in sig):
            counts["uncaptioned"] += caption is None
            if caption is None and encoder.generate_captions and entry.get("generated_caption"):
                caption, source = entry["generated_caption"], "generated"
            counts["generated"] += source == "generated"
            for c in by_file.get(rel, []):
                c["caption"], c["caption_source"] = caption or "", source
            counts["done_before"] += 1
        elif prev is not None and all(prev.get(k) == sig[k] for k in sig):
            writer.skip(prev)
            say(f"skipped {rel}: {prev['reason']} (unchanged since the last run)")
        else:
            if entry is not None:
                # changed since it was cached: its old clips stay in their shard but leave the manifest
                manifest["clips"] = [c for c in manifest["clips"] if c["file"] != rel]
                say(f"{rel} changed since it was cached: encoding it again")
            done = encoder.encode(path, rel, sig, caption, source)
            if done is not None:
                counts["new"] += done[0]
                counts["uncaptioned"] += caption is None
                counts["generated"] += done[2] == "generated"
        if progress is not None:
            progress(i + 1, len(files), rel)
    return counts


def prepare_dataset(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    codec: Any = "patch",
    music_encoder: str | Any = "logmel",
    encoder_options: Mapping[str, Any] | None = None,
    music_encoder_fallback: str | None = None,
    generate_captions: bool = True,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    smoothing_seconds: float = curves.DEFAULT_SMOOTHING_SECONDS,
    last_clip: str = "pad",
    min_last_fraction: float = 0.5,
    shard_size: int = 256,
    batch_size: int = 8,
    device: Any = None,
    progress: Callable[[int, int, str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PrepareResult:
    """Encode every music file under ``data_dir`` into the cache ``out_dir`` (see module doc).

    ``progress(done_files, total_files, current_name)`` is called after each file; ``log`` gets
    the human-readable messages (rebuilds, skipped files).
    """
    import torch

    from ...model_io.codec import make_codec

    if last_clip not in ("pad", "drop"):
        raise V2MError(f"last_clip must be 'pad' or 'drop', got {last_clip!r}")
    if not clip_seconds > 0:
        raise V2MError(f"clip_seconds must be > 0, got {clip_seconds}")
    messages: list[str] = []

    def say(msg: str) -> None:
        messages.append(msg)
        if log is not None:
            log(msg)

    data_root = Path(data_dir)
    files = find_audio_files(data_root)
    cache = Path(out_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dev = torch_device(device)
    cod = make_codec(codec)
    if isinstance(cod, torch.nn.Module):
        cod = cod.to(dev)
    enc, fallback = _music_encoder(music_encoder, music_encoder_fallback, cod, encoder_options, say)
    described = enc.describe()
    curve = CurveSpec(music_encoder=described.get("id"),
                      music_encoder_options={k: v for k, v in described.items() if k != "id"},
                      smoothing_seconds=smoothing_seconds)
    spec = _cache_spec(cod, codec, enc, curve, clip_seconds=clip_seconds, last_clip=last_clip,
                       min_last_fraction=min_last_fraction)
    if fallback:
        spec["music_encoder_fallback"] = fallback

    manifest, rebuilt = _open_cache(cache, spec, say)
    writer = ShardWriter(cache, manifest)
    encoder = _FileEncoder(cod, enc, spec, writer, say, batch_size=batch_size, device=dev, shard_size=shard_size,
                           generate_captions=generate_captions)
    counts = _encode_files(files, data_root, manifest, encoder, progress)
    encoder.writer.flush()
    if counts["generated"]:
        say(f"{counts['generated']} file(s) have no caption (no sidecar .txt or "
            "captions.csv/.jsonl row): captions generated from their tags and measured tempo, "
            "key, loudness and brightness (caption_source 'generated' in the manifest)")
    elif counts["uncaptioned"]:
        say(f"{counts['uncaptioned']} file(s) have no caption (no sidecar .txt or captions.csv/.jsonl row): caption ''")
    return PrepareResult(
        cache_dir=str(cache), spec=spec, clips=len(manifest["clips"]), new_clips=counts["new"],
        files_done=len(manifest["files"]), files_skipped_done=counts["done_before"], skipped=list(manifest["skipped"]),
        uncaptioned=counts["uncaptioned"], generated_captions=counts["generated"], rebuilt=rebuilt, messages=messages,
    )
