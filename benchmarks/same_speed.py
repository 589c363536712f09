"""SAME at its real sizes on CPU: encode and decode time of a clip with the attention layout each
published SAME ships (issue 23): SAME-S (stable-audio-3-small-*: chunks of 32 frames with a half-chunk
shift) and, for comparison, the same weights run with SAME-L's sliding window (what the code did before
it knew SAME-S's layout). Random weights in the real shapes (no real weights here), float32, one thread
count as torch chooses. Prints CPU seconds (process time) and this process's peak RSS, which survive a
busy machine; wall seconds are for reference only.

    python benchmarks/same_speed.py [--seconds 10] [--size small|medium]
"""

from __future__ import annotations

import argparse
import time

import torch

from v2m_zero.core.model.same import SAMECodec

SIZES = {"small": {}, "medium": dict(channels=256, transformer_depths=[12], sliding_window=1,
                                     decoder_sinusoidal_blocks=[8], decoder_conv_mapping=False)}


def peak_rss_mib() -> float:
    """VmHWM: this process's own peak resident memory (Linux)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    args = ap.parse_args()
    torch.manual_seed(0)
    codec = SAMECodec(SIZES[args.size]).eval()
    wave = 0.1 * torch.randn(1, 2, int(args.seconds * codec.sample_rate))
    params = sum(p.numel() for p in codec.parameters()) / 1e6
    print(f"SAME {args.size}: {params:.0f} M params, {args.seconds:g} s of audio, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    variants = [("as shipped", codec)]
    if args.size == "small":
        other = SAMECodec({**codec.cfg.to_dict(), "sliding_window": 1}).eval()
        other.load_state_dict(codec.state_dict())
        variants.append(("sliding window 1 (SAME-L's layout)", other))
    for name, c in variants:
        c.encode(wave[..., :c.downsampling_ratio * 4])  # warm-up
        z, enc_cpu, enc_wall = timed(lambda c=c: c.encode(wave))
        y, dec_cpu, dec_wall = timed(lambda c=c, z=z: c.decode(z))
        print(f"  {name}: encode {enc_cpu:.2f} CPU s ({enc_wall:.2f} s wall), decode {dec_cpu:.2f} CPU s "
              f"({dec_wall:.2f} s wall); {z.shape[-1]} latent frames, {y.shape[-1]} samples")
    print(f"peak RSS {peak_rss_mib():.0f} MiB (wall time on a shared, busy machine)")


if __name__ == "__main__":
    main()
