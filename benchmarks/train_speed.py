"""Training-step throughput and model FLOP utilisation of the V2M DiT (issues 5 and 15, GPU benchmark).

One step = the paper's eq. 6 loss (``flow.rf_loss`` with 10 % text/curve dropout) on a random
SAO-1.0-sized DiT + curve channel, bf16 autocast, AdamW. Each batch size in turn (doubling until
it no longer fits, or ``--max-batch``; or ``--batch`` alone) is timed. MFU counts model FLOPs
only (3 × forward: forward + backward), not checkpoint recompute.

The speed switches are the trainer's own (core/train config): ``--compile`` (train.compile:
regional torch.compile, one graph for every block), ``--checkpointing full|selective``
(train.gradient_checkpointing), ``--attention flash|efficient|cudnn|math`` (train.attention),
``--fused/--no-fused`` AdamW (optim.fused; default fused on CUDA).

    python benchmarks/train_speed.py --cuda [--size sao1] [--seconds 32] [--batch 32] [--compile]
                                     [--checkpointing selective] [--attention flash] [--peak-tflops 989]
    python benchmarks/train_speed.py --size tiny --seconds 4           # CPU smoke run
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import sampler_speed as ss  # the sibling script (its folder is on sys.path when run as a script)

from v2m_zero.core.model import fast
from v2m_zero.core.model.flow import rf_loss


def step_fn(model, opt, batch: int, length: int, device: str, amp: bool, gen: torch.Generator, attention: str = "auto"):
    x0 = torch.randn(batch, 64, length, generator=gen).to(device)
    curve = torch.randn(batch, 1, length, generator=gen).to(device)
    text = torch.randn(batch, ss.TEXT_TOKENS, model.config.cond_token_dim, generator=gen).to(device)
    with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                        enabled=amp), \
            fast.attention_kernel(attention):
        loss = rf_loss(model, x0, curve=curve, cond_tokens=text, seconds_start=0.0, seconds_total=32.0,
                       generator=gen, p_drop_text=0.1, p_drop_curve=0.1)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def time_batch(size, batch, *, device, seconds, steps, warmup, checkpointing, amp, compile_=False, attention="auto",
               fused=None):
    model = ss.build(size, device, torch.float32).train()
    model.set_gradient_checkpointing(checkpointing)
    if compile_:
        fast.compile_blocks(model)
    fused = device.startswith("cuda") if fused is None else fused
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    length = round(seconds * ss.LATENT_RATE)
    gen = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    try:
        t0 = time.perf_counter()
        for _ in range(warmup):
            step_fn(model, opt, batch, length, device, amp, gen, attention)
        sync()
        warm_s = time.perf_counter() - t0
        sync()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step_fn(model, opt, batch, length, device, amp, gen, attention)
        sync()
        dt = (time.perf_counter() - t0) / steps
        assert torch.isfinite(loss), "non-finite loss"
        flops = 3 * ss.forward_flops(model, batch, length, ss.TEXT_TOKENS)
        mem = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
        return {"batch": batch, "s_per_step": dt, "clips_per_s": batch / dt, "tflops": flops / dt / 1e12,
                "peak_mem_gib": mem, "params": ss.count_parameters(model.dit), "frames": length, "warmup_s": warm_s}
    finally:
        del model, opt
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--size", default=None, choices=sorted(ss.SIZES))
    p.add_argument("--seconds", type=float, default=32.0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--checkpointing", nargs="?", const="full", default="off", choices=["off", "full", "selective"],
                   help="gradient checkpointing policy (fits larger batches); alone: full")
    p.add_argument("--compile", action="store_true", help="train.compile: regional torch.compile of the blocks")
    p.add_argument("--attention", default="auto", choices=list(fast.ATTENTION_KERNELS), help="train.attention")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fused AdamW (default: on CUDA)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--batch", type=int, default=None, help="time this batch only (no search)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (H100 SXM: 989)")
    args = p.parse_args(argv)
    device = "cuda" if args.cuda else "cpu"
    size = args.size or ("sao1" if args.cuda else "tiny")
    steps = args.steps or (10 if args.cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if args.cuda else 1)
    amp = args.cuda
    if args.cuda:
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    ckpt = False if args.checkpointing == "off" else args.checkpointing
    kw = dict(device=device, seconds=args.seconds, steps=steps, warmup=warmup, checkpointing=ckpt, amp=amp,
              compile_=args.compile, attention=args.attention, fused=args.fused)
    results = []
    batches = [args.batch] if args.batch else [2**i for i in range(0, 20) if 2**i <= args.max_batch]
    for b in batches:
        try:
            r = time_batch(size, b, **kw)
        except torch.OutOfMemoryError:
            print(f"batch {b}: out of memory")
            break
        results.append(r)
        mfu = f", MFU {r['tflops'] / args.peak_tflops:.1%}" if args.peak_tflops else ""
        print(f"batch {b:4d}: {r['s_per_step'] * 1e3:8.1f} ms/step, {r['clips_per_s']:7.2f} clips/s, "
              f"{r['tflops']:6.1f} TFLOP/s{mfu}, peak {r['peak_mem_gib']:.1f} GiB (warm-up {r['warmup_s']:.1f} s)",
              flush=True)
    if results:
        best = max(results, key=lambda r: r["clips_per_s"])
        print(f"\n{size}: {best['params'] / 1e6:.0f} M params, {best['frames']} latent frames ({args.seconds:g} s), "
              f"bf16 autocast={amp}, checkpointing={args.checkpointing}, compile={args.compile}, "
              f"attention={args.attention}, "
              f"fused={kw['fused'] if kw['fused'] is not None else args.cuda}: best batch {best['batch']} "
              f"-> {best['clips_per_s']:.2f} clips/s, {best['tflops']:.1f} TFLOP/s"
              + (f" = {best['tflops'] / args.peak_tflops:.1%} MFU" if args.peak_tflops else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
