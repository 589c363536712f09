"""A training data folder: its music files and their captions.

Captions: a sidecar ``<name>.txt`` next to the audio file, else a row of ``captions.csv`` (header
``file,caption``) or ``captions.jsonl`` (``{"file": ..., "caption": ...}``) in the data folder,
``file`` relative to it (or a bare file name).

A file with none of these gets a *generated* caption (``prepare`` does it unless told not to):
its tags (title, artist, genre, comment, read with PyAV) and measured properties (tempo and key
with librosa, loudness, brightness), e.g. ``rock, "Song" by Artist, 120 BPM, in A minor, bright,
loud``. The manifest marks each clip's ``caption_source``: ``sidecar``, ``table``, ``generated``
or ``none``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import V2MError

__all__ = ["AUDIO_EXTENSIONS", "audio_tags", "caption_for", "caption_source", "file_signature", "find_audio_files",
           "generated_caption", "measured_properties", "read_captions"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


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


def caption_source(path: Path, rel: str, table: Mapping[str, str]) -> tuple[str | None, str]:
    """``(caption, source)``: source ``sidecar`` (``<name>.txt``), ``table`` (captions.csv/.jsonl) or ``none``."""
    side = path.with_suffix(".txt")
    if side.is_file():
        return side.read_text(encoding="utf-8").strip(), "sidecar"
    for key in (rel, path.name):
        if key in table:
            return table[key], "table"
    return None, "none"


def caption_for(path: Path, rel: str, table: Mapping[str, str]) -> str | None:
    return caption_source(path, rel, table)[0]


def file_signature(path: Path) -> dict:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


# --------------------------------------------------------------------------------------------
# captions for files without one (built from tags and measured properties, marked "generated")

_TAGS = ("title", "artist", "album", "genre", "comment", "description")
_KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl–Kessler key profiles (major, minor)
_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def audio_tags(path: str | os.PathLike) -> dict[str, str]:
    """Title, artist, album, genre, comment/description of an audio file (container and stream tags, PyAV)."""
    import av

    out: dict[str, str] = {}
    try:
        with av.open(str(path)) as c:
            tags = {k.lower(): v for k, v in dict(c.metadata).items()}
            for s in c.streams.audio:
                tags.update({k.lower(): v for k, v in dict(s.metadata).items() if k.lower() not in tags})
    except (av.error.FFmpegError, OSError, ValueError):
        return out
    for k in _TAGS:
        v = " ".join(str(tags.get(k, "")).split())
        if v:
            out[k] = v[:200]
    return out


def _estimate_key(y, sr: int) -> str | None:
    import librosa
    import numpy as np

    chroma = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
    if not np.isfinite(chroma).all() or chroma.std() < 1e-6:
        return None
    best, name = -2.0, None
    for profile, mode in ((_MAJOR, "major"), (_MINOR, "minor")):
        for shift in range(12):
            r = float(np.corrcoef(chroma, np.roll(profile, shift))[0, 1])
            if r > best:
                best, name = r, f"{_KEYS[shift]} {mode}"
    return name


def measured_properties(wave, sample_rate: int, *, max_seconds: float = 60.0) -> dict:
    """Tempo (BPM), key, loudness (RMS dBFS) and brightness (spectral centroid, Hz) of up to a minute of audio."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # librosa warns about short CQT octaves on brief or quiet audio
        warnings.simplefilter("ignore")
        return _measure(np.asarray(wave, np.float32), int(sample_rate), max_seconds)


def _measure(w, sample_rate: int, max_seconds: float) -> dict:
    import librosa
    import numpy as np

    from ..timing.media import resample_audio

    mono = w.mean(axis=0) if w.ndim == 2 else w
    sr = 22050
    y = resample_audio(mono[: int(max_seconds * sample_rate)], int(sample_rate), sr)
    rms = float(np.sqrt(np.mean(np.square(y)))) if y.size else 0.0
    props: dict = {"loudness_dbfs": round(float(20 * np.log10(max(rms, 1e-9))), 1)}
    if rms < 1e-4 or y.size < sr:
        return props  # silence or under a second: nothing more to measure
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    bpm = float(np.atleast_1d(tempo)[0])
    if bpm > 0:
        props["tempo_bpm"] = round(bpm, 1)
    props["brightness_hz"] = float(round(float(np.mean(librosa.feature.spectral_centroid(y=y, sr=sr)))))
    key = _estimate_key(y, sr)
    if key:
        props["key"] = key
    return props


def generated_caption(tags: Mapping[str, str], props: Mapping) -> str:
    """A plain-words caption from tags and measured properties,
    e.g. ``rock, "Song" by Artist, 120 BPM, in A minor, bright, loud``."""
    parts = []
    if tags.get("genre"):
        parts.append(tags["genre"].lower())
    if tags.get("title"):
        parts.append(f'"{tags["title"]}"' + (f' by {tags["artist"]}' if tags.get("artist") else ""))
    elif tags.get("artist"):
        parts.append(f'by {tags["artist"]}')
    if props.get("tempo_bpm"):
        parts.append(f"{round(props['tempo_bpm'])} BPM")
    if props.get("key"):
        parts.append(f"in {props['key']}")
    if "brightness_hz" in props:
        b = props["brightness_hz"]
        parts.append("dark" if b < 1200 else "warm" if b < 2500 else "bright")
    loud = props.get("loudness_dbfs")
    if loud is not None:
        parts.append("very quiet" if loud < -40 else "quiet" if loud < -24 else "moderate" if loud < -14 else "loud")
    if tags.get("comment") or tags.get("description"):
        parts.append(tags.get("description") or tags["comment"])
    return ", ".join(parts) or "music"
