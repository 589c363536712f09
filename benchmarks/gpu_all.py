"""Every GPU benchmark and the CUDA tests in one go, under a time budget (default 470 s), printing every figure.

Made for a short lent-GPU session: one command, one log to paste into benchmarks/RESULTS.md.
Each stage runs in its own process (its own CUDA context, compile caches and peak memory) with a
timeout; a stage that would not fit in what is left of the budget is skipped and says so.

  1. sampler   SAO-1.0-size DiT, 32 s, 96 Euler steps + CFG, bf16: eager vs the fast path
               (torch.compile + CUDA graphs, the product default on CUDA) — goal ≤ 0.5 s on an H100
  2. train     the same DiT, 32 s clips, bf16: the issue-5 baseline (batch 32, no compile) vs the
               speed switches (compile + flash attention + fused AdamW; + selective checkpointing at
               batch 64) — goal ≥ 45 % MFU on an H100
  3. encoder   DINOv2-L bf16 end to end on a 30 s 1080p clip vs the bare model, and the tiny
               model's pipeline-only cost — goal ≥ 1,000 frames/s on an H100
  4. tests     pytest tests/test_cuda.py (CPU = CUDA samples, fast sampler = eager on the GPU,
               Pillow-exact resize on the GPU, DINOv2 on the GPU = CPU, bf16 training)
  (last, skipped when the budget is spent: training with selective checkpointing at batch 64)

    python benchmarks/gpu_all.py [--budget 470] [--only sampler train encoder tests] [--peak-tflops 989]

Needs: a CUDA build of torch with Triton, and this package's dependencies (PyAV, transformers, ...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def stages(peak: float) -> list[tuple[str, list[str], int]]:
    """(name, command, the longest it may take in seconds) in order of importance."""
    py = sys.executable
    pk = ["--peak-tflops", f"{peak:g}"]
    return [
        ("sampler", [py, "sampler_speed.py", "--cuda", "--fast", "off", "compile", *pk], 200),
        ("train: baseline (issue 5 setup)", [py, "train_speed.py", "--cuda", "--batch", "32", "--steps", "8", *pk], 60),
        ("train: compile + flash + fused", [py, "train_speed.py", "--cuda", "--batch", "32", "--steps", "8",
                                            "--compile", "--attention", "flash", *pk], 150),
        ("encoder", [py, "encoder_speed.py", "--cuda", "--models", "tiny", "dinov2-l", "--duration", "30",
                     "--repeat", "1"], 120),
        ("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   os.path.join(ROOT, "tests", "test_cuda.py")], 150),
        ("train: + selective checkpointing, batch 64", [py, "train_speed.py", "--cuda", "--batch", "64", "--steps", "6",
                                                        "--compile", "--attention", "flash",
                                                        "--checkpointing", "selective", *pk], 150),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=470.0, help="seconds for everything (default 470, under 8 min)")
    ap.add_argument("--only", nargs="+", default=None,
                    help="stage name prefixes to run (sampler, train, encoder, tests)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM 989; H200 989)")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_all: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    print(f"== {time.strftime('%Y-%m-%d %H:%M')} {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, {os.cpu_count()} CPU cores; budget {args.budget:g} s", flush=True)
    t_start = time.time()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    failed = []
    for name, cmd, longest in stages(args.peak_tflops):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        left = args.budget - (time.time() - t_start)
        if left < min(longest, 45):
            print(f"\n== {name}: SKIPPED (budget: {left:.0f} s left)", flush=True)
            continue
        print(f"\n== {name}: {' '.join(os.path.basename(c) for c in cmd[1:])}", flush=True)
        t0 = time.time()
        try:
            rc = subprocess.run(cmd, cwd=HERE, env=env, timeout=min(longest, left)).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.time() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    print(f"\n== all done in {time.time() - t_start:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
