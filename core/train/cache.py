"""The training cache on disk: ``manifest.json`` + safetensors shards, written by ``prepare``, read by ``train``.

Layout of a cache folder::

    manifest.json             spec, files done, clips (caption, source, offset), skipped files
    shard-00000.safetensors   latents [N, D, L] float32, curves [N, L] float32,
                              seconds [N] float32 (audio in the clip), clip_id [N] int64

Shards are written atomically and the manifest after them, so a killed run loses at most the
clips not yet flushed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json
from ..errors import V2MError

CACHE_VERSION = 1
MANIFEST = "manifest.json"


def load_manifest(cache_dir: str | os.PathLike) -> dict | None:
    p = Path(cache_dir) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise V2MError(f"{p}: corrupt cache manifest ({exc}). Fix: delete "
                       "the cache folder and prepare again.") from None


def new_manifest(spec: Mapping) -> dict:
    return {"version": CACHE_VERSION, "spec": dict(spec), "files": {}, "clips": [], "shards": [], "skipped": []}


def spec_diff(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def clear_cache(cache: Path) -> None:
    for p in cache.glob("shard-*.safetensors"):
        p.unlink()
    m = cache / MANIFEST
    if m.exists():
        m.unlink()


class ShardWriter:
    """Buffers encoded clips and writes them as one shard at a time, the manifest after each.

    It also keeps the manifest's file bookkeeping: files finished (``file_done``) and files that
    could not be read (``skip``). A file not visited in this run keeps its old ``skipped`` entry,
    so a killed run still knows it.
    """

    def __init__(self, cache: Path, manifest: dict):
        self.cache, self.manifest = Path(cache), manifest
        self.skipped_prev = {s["file"]: s for s in manifest.get("skipped", [])}
        self.skipped_now: list[dict] = []
        self.visited: set[str] = set()
        self._clear()

    def _clear(self) -> None:
        self.latents: list[np.ndarray] = []
        self.curves: list[np.ndarray] = []
        self.seconds: list[float] = []
        self.clips: list[dict] = []
        self.files: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def add_clip(self, latents: np.ndarray, curve: np.ndarray, seconds: float, clip: dict) -> None:
        self.latents.append(np.asarray(latents, np.float32))
        self.curves.append(np.asarray(curve, np.float32))
        self.seconds.append(float(seconds))
        self.clips.append(clip)

    def file_done(self, rel: str, entry: dict) -> None:
        self.files[rel] = entry

    def skip(self, entry: dict) -> None:
        self.skipped_now.append(entry)

    def flush(self) -> None:
        """Write the pending clips as a new shard (if any), then the manifest."""
        from ...model_io.weights import write_safetensors

        m = self.manifest
        if self.clips:
            name = f"shard-{len(m['shards']):05d}.safetensors"
            first = int(m.get("next_id", 0))
            m["next_id"] = first + len(self.clips)
            for row, c in enumerate(self.clips):
                c.update(id=first + row, shard=name, row=row)
            write_safetensors(self.cache / name, {
                "latents": torch.from_numpy(np.stack(self.latents)),
                "curves": torch.from_numpy(np.stack(self.curves)),
                "seconds": torch.tensor(self.seconds, dtype=torch.float32),
                "clip_id": torch.arange(first, first + len(self.clips), dtype=torch.int64),
            }, {"v2m_cache": str(CACHE_VERSION)})
            m["shards"].append({"name": name, "count": len(self.clips)})
            m["clips"].extend(self.clips)
        m["files"].update(self.files)
        merged = {k: v for k, v in self.skipped_prev.items() if k not in self.visited}
        merged.update({s["file"]: s for s in self.skipped_now})
        m["skipped"] = sorted(merged.values(), key=lambda s: s["file"])
        m["num_clips"] = len(m["clips"])
        write_json(self.cache / MANIFEST, m)
        self._clear()


class ClipCache:
    """Random access to the clips of a prepared cache; shards are read lazily, row by row."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)
        m = load_manifest(self.dir)
        if m is None:
            raise V2MError(f"{self.dir}: no manifest.json — not a prepared cache. "
                           f"Fix: run `v2m-zero prepare DATA --out {self.dir}`")
        self.manifest = m
        self.spec = dict(m["spec"])
        self.clips = list(m["clips"])
        if not self.clips:
            raise V2MError(f"{self.dir}: the cache holds no clips (all files skipped or too short?)")
        self._handles: dict[str, Any] = {}
        self._check_shards()

    def _rebuild_hint(self) -> str:
        return (f"Fix: delete {self.dir} and run `v2m-zero prepare DATA --out {self.dir}` again "
                "(the music files are not touched)")

    def _check_shards(self) -> None:
        """Every shard the clips use exists, is a whole safetensors file, and holds their rows (fails fast)."""
        from ...model_io.weights import read_safetensors_header

        rows: dict[str, int] = {}
        for c in self.clips:
            rows[c["shard"]] = max(rows.get(c["shard"], 0), int(c["row"]) + 1)
        for shard, n in rows.items():
            path = self.dir / shard
            if not path.is_file():
                raise V2MError(f"{path}: cache shard missing. {self._rebuild_hint()}")
            try:
                header, _ = read_safetensors_header(path)
            except V2MError as exc:
                raise V2MError(f"cache shard {path} is damaged ({exc}). {self._rebuild_hint()}") from None
            for key in ("latents", "curves", "seconds"):
                if key not in header or not header[key]["shape"] or header[key]["shape"][0] < n:
                    raise V2MError(f"cache shard {path} lacks the {key!r} rows its clips need. {self._rebuild_hint()}")

    def __len__(self) -> int:
        return len(self.clips)

    def _handle(self, shard: str):
        from safetensors import safe_open

        h = self._handles.get(shard)
        if h is None:
            path = self.dir / shard
            try:
                h = safe_open(str(path), framework="pt", device="cpu")
            except Exception as exc:  # safetensors raises its own error types
                raise V2MError(f"cache shard {path} cannot be read ({exc}). {self._rebuild_hint()}") from None
            self._handles[shard] = h
        return h

    def batch(self, indices) -> dict:
        lat, cur, sec, caps = [], [], [], []
        for i in indices:
            c = self.clips[int(i)]
            h = self._handle(c["shard"])
            r = int(c["row"])
            try:
                lat.append(h.get_slice("latents")[r:r + 1])
                cur.append(h.get_slice("curves")[r:r + 1])
                sec.append(h.get_slice("seconds")[r:r + 1])
            except Exception as exc:  # corrupt tensor data
                raise V2MError(f"cache shard {self.dir / c['shard']} cannot be "
                               f"read ({exc}). {self._rebuild_hint()}") from None
            caps.append(c.get("caption", ""))
        return {"latents": torch.cat(lat).float(), "curves": torch.cat(cur).float(),
                "seconds": torch.cat(sec).float(), "captions": caps}
