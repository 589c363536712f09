"""A training data folder: its music files and their captions.

Captions: a sidecar ``<name>.txt`` next to the audio file, else a row of ``captions.csv`` (header
``file,caption``) or ``captions.jsonl`` (``{"file": ..., "caption": ...}``) in the data folder,
``file`` relative to it (or a bare file name).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import V2MError

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


def caption_for(path: Path, rel: str, table: Mapping[str, str]) -> str | None:
    side = path.with_suffix(".txt")
    if side.is_file():
        return side.read_text(encoding="utf-8").strip()
    for key in (rel, path.name):
        if key in table:
            return table[key]
    return None


def file_signature(path: Path) -> dict:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
