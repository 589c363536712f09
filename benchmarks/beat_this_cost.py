"""What the optional second beat tracker adds to a sync report: CPU seconds and peak RSS of Beat This! on one minute
of audio, for networks of the published sizes (final0: BeatThis's defaults; small0: transformer_dim 128), with random
weights (the cost does not depend on their values, and the real files cannot be fetched in CI).

    python benchmarks/beat_this_cost.py [--seconds 60]

Needs ``pip install --no-deps beat-this==1.1.0 einops rotary-embedding-torch``. Each size runs in its own process so
its peak RSS is its own. Prints one line per size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SIZES = {"final0": {}, "small0": {"transformer_dim": 128}}

CHILD = """
import json, resource, sys, time
import numpy as np, torch
from beat_this.model.beat_tracker import BeatThis
from v2m_zero.core.eval.beat_this import beats_and_downbeats
kw, seconds = json.loads(sys.argv[1]), float(sys.argv[2])
torch.manual_seed(0)
model = BeatThis(**kw).eval()
y = (0.1 * np.random.default_rng(0).standard_normal(int(44100 * seconds))).astype(np.float32)
t0, w0 = time.process_time(), time.time()
beats_and_downbeats(model, y, 44100)
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "cpu": time.process_time() - t0,
                  "wall": time.time() - w0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the audio (44.1 kHz noise)")
    args = ap.parse_args()
    for name, kw in SIZES.items():
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw), str(args.seconds)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name}-sized ({r['params'] / 1e6:.1f} M parameters): {args.seconds:.0f} s of audio in "
              f"{r['cpu']:.1f} CPU s ({r['wall']:.1f} s wall, {r['threads']} threads), peak RSS {r['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
