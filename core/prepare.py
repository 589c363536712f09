"""Training data preparation: music files + captions → a cache of codec latents and event curves.

Layout of a cache folder::

    manifest.json             spec, files done, clips (caption, source, offset), skipped files
    shard-00000.safetensors   latents [N, D, L] float32, curves [N, L] float32,
                              seconds [N] float32 (audio in the clip), clip_id [N] int64

Clips are non-overlapping windows of ``L`` latent frames (``L = ceil(clip_seconds ·
latent_rate)``, so a window is ``L · downsampling_ratio`` samples ≈ ``clip_seconds``). The last,
partial window of a file is zero-padded when it holds at least ``min_last_fraction`` of a clip
(``last_clip="pad"``, the default; its ``seconds`` says how much is music) and dropped otherwise;
``last_clip="drop"`` drops every partial window. A file shorter than the fraction gives no clip.

Each clip's curve is the music event curve of paper §3.2 computed exactly as for video at
inference: encoder features of the clip → ``curves.conditioning_curve`` (dissimilarity,
standardised per clip, resampled by time to the ``L`` latent frames, Hann-smoothed).

Captions: a sidecar ``<name>.txt`` next to the audio file, else a row of ``captions.csv``
(header ``file,caption``) or ``captions.jsonl`` (``{"file": ..., "caption": ...}``) in the data
folder, ``file`` relative to it (or a bare file name). A file without caption gets ``""`` (it
then trains the text-dropped branch only) and is counted in ``uncaptioned``. Captions are
re-read on every run, so editing them needs no re-encoding.

Resuming: files whose (path, size, mtime) match a finished entry are skipped; shards are
written atomically and the manifest after them, so a killed run loses at most the clips not
yet flushed. Unreadable files are listed under ``skipped`` with the reason (and skipped again
while unchanged). If the spec (codec, encoder, smoothing, clip length, …) differs from the
cache's, the cache is rebuilt from scratch with a message.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .timing import curves
from .atomic import write_json
from .errors import MediaError, ModelError, V2MError

__all__ = [
    "AUDIO_EXTENSIONS",
    "CACHE_VERSION",
    "PrepareResult",
    "find_audio_files",
    "load_manifest",
    "prepare_dataset",
    "read_captions",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
CACHE_VERSION = 1
MANIFEST = "manifest.json"
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
    rebuilt: bool = False
    messages: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# files and captions


def find_audio_files(data_dir: str | os.PathLike) -> list[Path]:
    root = Path(data_dir)
    if not root.is_dir():
        raise V2MError(f"{root}: data folder not found. Fix: give the folder that holds the music files.")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


def read_captions(data_dir: str | os.PathLike) -> dict[str, str]:
    """``{relative path or bare name: caption}`` from ``captions.csv`` / ``captions.jsonl``."""
    root = Path(data_dir)
    out: dict[str, str] = {}
    csv_path, jsonl_path = root / "captions.csv", root / "captions.jsonl"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "caption"} <= set(reader.fieldnames):
                raise V2MError(f"{csv_path}: needs a header row with the columns file,caption")
            for row in reader:
                if row.get("file"):
                    out[row["file"].strip()] = (row.get("caption") or "").strip()
    if jsonl_path.is_file():
        for n, line in enumerate(jsonl_path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[str(row["file"]).strip()] = str(row.get("caption") or "").strip()
            except (ValueError, KeyError, TypeError):
                raise V2MError(f"{jsonl_path} line {n}: expected a JSON object with 'file' and 'caption'") from None
    return out


def _caption_for(path: Path, rel: str, table: Mapping[str, str]) -> str | None:
    side = path.with_suffix(".txt")
    if side.is_file():
        return side.read_text(encoding="utf-8").strip()
    for key in (rel, path.name):
        if key in table:
            return table[key]
    return None


def _signature(path: Path) -> dict:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


# --------------------------------------------------------------------------------------------
# manifest


def load_manifest(cache_dir: str | os.PathLike) -> dict | None:
    p = Path(cache_dir) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise V2MError(f"{p}: corrupt cache manifest ({exc}). Fix: delete the cache folder and prepare again.") from None


def _spec_diff(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _clear_cache(cache: Path) -> None:
    for p in cache.glob("shard-*.safetensors"):
        p.unlink()
    m = cache / MANIFEST
    if m.exists():
        m.unlink()


# --------------------------------------------------------------------------------------------
# the pipeline


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


def prepare_dataset(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    codec: Any = "patch",
    music_encoder: str | Any = "logmel",
    encoder_options: Mapping[str, Any] | None = None,
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

    from ..model_io.codec import codec_spec, make_codec
    from .timing.media import decode_audio
    from .music_encoders import CodecMusicEncoder, MusicEncoder, get_music_encoder

    if last_clip not in ("pad", "drop"):
        raise V2MError(f"last_clip must be 'pad' or 'drop', got {last_clip!r}")
    if not clip_seconds > 0:
        raise V2MError(f"clip_seconds must be > 0, got {clip_seconds}")
    if smoothing_seconds < 0:
        raise V2MError(f"smoothing seconds must be >= 0, got {smoothing_seconds}")
    messages: list[str] = []

    def say(msg: str) -> None:
        messages.append(msg)
        if log is not None:
            log(msg)

    data_root = Path(data_dir)
    files = find_audio_files(data_root)
    cache = Path(out_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    cod = make_codec(codec)
    if isinstance(cod, torch.nn.Module):
        cod = cod.to(dev)
    if isinstance(music_encoder, MusicEncoder):
        enc = music_encoder
    elif music_encoder == "codec":
        enc = CodecMusicEncoder(cod)
    else:
        enc = get_music_encoder(str(music_encoder), **dict(encoder_options or {}))

    latent_len = curves.latent_length(float(clip_seconds), cod.latent_rate)
    clip_samples = latent_len * cod.downsampling_ratio
    spec = {
        "version": CACHE_VERSION,
        "codec": codec_spec(cod, codec),
        "encoder": enc.describe(),
        "smoothing_seconds": float(smoothing_seconds),
        "standardise": True,
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

    manifest = load_manifest(cache)
    rebuilt = False
    if manifest is not None and manifest.get("spec") != spec:
        diff = _spec_diff(manifest.get("spec") or {}, spec)
        say(f"cache spec changed ({'; '.join(diff)}): rebuilding {cache}")
        _clear_cache(cache)
        manifest, rebuilt = None, True
    if manifest is None:
        manifest = {"version": CACHE_VERSION, "spec": spec, "files": {}, "clips": [], "shards": [], "skipped": []}

    table = read_captions(data_root)
    done: dict = manifest["files"]
    skipped_prev = {s["file"]: s for s in manifest.get("skipped", [])}
    skipped_now: list[dict] = []
    visited: set[str] = set()
    uncaptioned = 0
    # captions are refreshed for finished files too (cheap, and edits need no re-encoding)
    by_file: dict[str, list[dict]] = {}
    for c in manifest["clips"]:
        by_file.setdefault(c["file"], []).append(c)

    pending_lat: list[np.ndarray] = []
    pending_curve: list[np.ndarray] = []
    pending_sec: list[float] = []
    pending_clips: list[dict] = []
    pending_files: dict[str, dict] = {}
    new_clips = 0
    files_skipped_done = 0

    def flush() -> None:
        from ..model_io.weights import write_safetensors

        nonlocal pending_lat, pending_curve, pending_sec, pending_clips, pending_files
        if pending_clips:
            shard_idx = len(manifest["shards"])
            name = f"shard-{shard_idx:05d}.safetensors"
            first = int(manifest.get("next_id", 0))
            manifest["next_id"] = first + len(pending_clips)
            for row, c in enumerate(pending_clips):
                c.update(id=first + row, shard=name, row=row)
            write_safetensors(cache / name, {
                "latents": torch.from_numpy(np.stack(pending_lat).astype(np.float32)),
                "curves": torch.from_numpy(np.stack(pending_curve).astype(np.float32)),
                "seconds": torch.tensor(pending_sec, dtype=torch.float32),
                "clip_id": torch.arange(first, first + len(pending_clips), dtype=torch.int64),
            }, {"v2m_cache": str(CACHE_VERSION)})
            manifest["shards"].append({"name": name, "count": len(pending_clips)})
            manifest["clips"].extend(pending_clips)
        done.update(pending_files)
        # files not visited yet keep their old entry (a killed run then still knows them)
        merged = {k: v for k, v in skipped_prev.items() if k not in visited}
        merged.update({s["file"]: s for s in skipped_now})
        manifest["skipped"] = sorted(merged.values(), key=lambda s: s["file"])
        manifest["num_clips"] = len(manifest["clips"])
        write_json(cache / MANIFEST, manifest)
        pending_lat, pending_curve, pending_sec, pending_clips, pending_files = [], [], [], [], {}

    min_last = max(1, int(math.ceil(min_last_fraction * clip_samples)))
    total = len(files)
    for i, path in enumerate(files):
        rel = path.relative_to(data_root).as_posix()
        visited.add(rel)
        sig = _signature(path)
        caption = _caption_for(path, rel, table)
        if caption is None:
            caption = ""
            uncaptioned += 1  # taken back below if the file turns out unreadable
        entry = done.get(rel)
        if entry is not None and entry.get("size") == sig["size"] and entry.get("mtime_ns") == sig["mtime_ns"]:
            for c in by_file.get(rel, []):
                c["caption"] = caption
            files_skipped_done += 1
            if progress is not None:
                progress(i + 1, total, rel)
            continue
        prev = skipped_prev.get(rel)
        if prev is not None and prev.get("size") == sig["size"] and prev.get("mtime_ns") == sig["mtime_ns"]:
            skipped_now.append(prev)
            uncaptioned -= int(caption == "" and _caption_for(path, rel, table) is None)
            say(f"skipped {rel}: {prev['reason']} (unchanged since the last run)")
            if progress is not None:
                progress(i + 1, total, rel)
            continue
        if entry is not None:
            # changed since it was cached: its old clips stay in their shard but leave the manifest
            manifest["clips"] = [c for c in manifest["clips"] if c["file"] != rel]
            say(f"{rel} changed since it was cached: encoding it again")
        try:
            wave, _sr = decode_audio(str(path), sample_rate=cod.sample_rate, channels=cod.audio_channels)
            if wave.shape[-1] == 0:
                raise MediaError(f"{rel}: no audio samples")
            if not np.all(np.isfinite(wave)):
                raise MediaError(f"{rel}: NaN/Inf samples")
        except (MediaError, ValueError, OSError, RuntimeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            skipped_now.append({"file": rel, "reason": reason, **sig})
            uncaptioned -= int(caption == "" and _caption_for(path, rel, table) is None)
            say(f"skipped {rel}: {reason}")
            if progress is not None:
                progress(i + 1, total, rel)
            continue
        windows = _clip_windows(wave.shape[-1], clip_samples, last_clip, min_last)
        file_clips = []
        for b0 in range(0, len(windows), max(1, int(batch_size))):
            chunk = windows[b0:b0 + max(1, int(batch_size))]
            batch = np.zeros((len(chunk), wave.shape[0], clip_samples), dtype=np.float32)
            for j, (s, valid) in enumerate(chunk):
                batch[j, :, :valid] = wave[:, s:s + valid]
            x = torch.from_numpy(batch).to(dev)
            if isinstance(cod, torch.nn.Module):
                p = next(cod.parameters(), None)
                if p is not None:
                    x = x.to(p.dtype)
            with torch.no_grad():
                lat = cod.encode(x).float().cpu()
            if lat.shape[-1] != latent_len:
                raise ModelError(f"codec gave {lat.shape[-1]} latent frames for {clip_samples} samples, expected {latent_len}")
            for j, (s, valid) in enumerate(chunk):
                dur = clip_samples / cod.sample_rate
                if isinstance(enc, CodecMusicEncoder):
                    feats = enc.features_from_latents(lat[j], dur)
                else:
                    feats = enc.encode(batch[j], cod.sample_rate)
                curve = curves.conditioning_curve(feats, length=latent_len, smoothing_seconds=float(smoothing_seconds))
                pending_lat.append(lat[j].numpy())
                pending_curve.append(np.asarray(curve.values, np.float32))
                pending_sec.append(valid / cod.sample_rate)
                clip = {"file": rel, "offset": s / cod.sample_rate, "seconds": valid / cod.sample_rate,
                        "caption": caption}
                pending_clips.append(clip)
                file_clips.append(clip)
        new_clips += len(file_clips)
        pending_files[rel] = {**sig, "clips": len(file_clips)}
        if not windows:
            say(f"{rel}: shorter than {min_last_fraction:g} of a clip ({wave.shape[-1] / cod.sample_rate:.2f} s), no clip")
        if len(pending_clips) >= shard_size:
            flush()
        if progress is not None:
            progress(i + 1, total, rel)
    flush()
    if uncaptioned:
        say(f"{uncaptioned} file(s) have no caption (no sidecar .txt or captions.csv/.jsonl row): caption ''")
    return PrepareResult(
        cache_dir=str(cache), spec=spec, clips=len(manifest["clips"]), new_clips=new_clips,
        files_done=len(done), files_skipped_done=files_skipped_done, skipped=list(manifest["skipped"]),
        uncaptioned=uncaptioned, rebuilt=rebuilt, messages=messages,
    )
