"""Does the main job's music have pitch and harmony? Old vs new demo checkpoint (issue 16 item 4).

Runs ``v2m-zero demo`` (the main job: generated cut clip → event curve → music → mux → SCH) with
each checkpoint given, decodes the soundtrack of ``demo_with_music.mp4`` and measures it:

- **harmonic energy share**: energy of librosa's HPSS harmonic part / total (STFT 2048/512);
- **chroma peak share**: per frame, the largest of the 12 chroma bins / their sum, averaged over
  frames with energy (1/12 = 0.083 is no pitch at all; a single pure note is near 1);
- Scene Cut Hit and its chance level as the demo prints them.

    python benchmarks/demo_music.py CHECKPOINT [CHECKPOINT ...] [--out DIR] [--video FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def measure(checkpoint: str, out: str, video: str | None = None) -> dict:
    from zero_pair_music import music_measures

    from v2m_zero.core import cli
    from v2m_zero.core.timing import media

    os.makedirs(out, exist_ok=True)
    argv = ["demo", "--out", out, "--checkpoint", checkpoint] + (["--video", video] if video else [])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(argv)
    text = buf.getvalue()
    if rc not in (0, None):
        raise RuntimeError(f"v2m-zero demo failed ({rc}): {text}")
    wave, sr = media.decode_audio(os.path.join(out, "demo_with_music.mp4"), channels=1)
    m = music_measures(wave[0], sr)
    hit = re.search(r"Scene Cut Hit: ([\d.na/]+)\s+\(chance level ([\d.na/]+)", text)
    m.update(sch=hit.group(1) if hit else None, sch_null=hit.group(2) if hit else None)
    return m


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", default=os.path.join(HERE, ".cache", "demo_music"))
    ap.add_argument("--video", default=None, help="a video instead of the demo's generated clip")
    args = ap.parse_args(argv)
    rows = {}
    print("| checkpoint | harmonic share | chroma peak share | SCH | chance |")
    print("|---|---|---|---|---|")
    for i, ckpt in enumerate(args.checkpoints):
        m = measure(ckpt, os.path.join(args.out, f"{i}-{os.path.splitext(os.path.basename(ckpt))[0]}"), args.video)
        rows[ckpt] = m
        print(f"| {os.path.basename(ckpt)} | {m['harmonic_share']:.2f} | {m['chroma_peak_share']:.3f} "
              f"| {m['sch']} | {m['sch_null']} |")
    return rows


if __name__ == "__main__":
    main()
