"""Full fine-tuning vs LoRA of the SAO-1.0-sized V2M DiT on 32 s clips: peak GPU memory and clips/s at the
largest batch that fits a memory budget (default 24 GiB), with and without gradient checkpointing (issue 12).

One step = the trainer's step: eq. 6 loss (``flow.rf_loss``, 10 % text/curve dropout), bf16 autocast, AdamW
(fused on CUDA), gradient clipping. LoRA = the trainer's own setup (``core.train.lora.add_lora``: peft adapters on
the attention and MLP projections, rank/alpha as given, the curve-channel weights trained in full under a mask,
base frozen in fp32). The budget is enforced with ``torch.cuda.set_per_process_memory_fraction`` on a larger
card, so a 24 GB card's limit is measured on whatever GPU runs it. For each mode the batch is doubled until it
no longer fits, then the largest fitting batch is timed.

    python benchmarks/lora_speed.py --cuda                      # the four SAO-1.0 modes at 24 GiB (needs a GPU)
    python benchmarks/lora_speed.py --cuda --budget-gib 80      # another budget
    python benchmarks/lora_speed.py --size tiny --seconds 2     # CPU smoke run (figures meaningless)
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import sampler_speed as ss  # the sibling script (its folder is on sys.path when run as a script)

from v2m_zero.core.model.flow import rf_loss
from v2m_zero.core.train.presets import LORA_TARGETS


def make(size, device, lora, rank, checkpointing):
    model = ss.build(size, "cpu", torch.float32).train()
    model.set_gradient_checkpointing(checkpointing)
    if lora:
        from v2m_zero.core.train.lora import add_lora, param_groups

        run = add_lora(model, {"rank": rank, "alpha": float(rank), "dropout": 0.0, "targets": LORA_TARGETS,
                               "train_curve_weights": True})
        model.to(device)
        groups = param_groups(model, run, 1e-3)
    else:
        model.requires_grad_(True).to(device)
        groups = [p for p in model.parameters()]
    opt = torch.optim.AdamW(groups, lr=1e-4, weight_decay=1e-3, fused=device.startswith("cuda"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, opt, trainable


def step(model, opt, batch, length, device, amp, gen):
    x0 = torch.randn(batch, 64, length, generator=gen).to(device)
    curve = torch.randn(batch, 1, length, generator=gen).to(device)
    text = torch.randn(batch, ss.TEXT_TOKENS, model.config.cond_token_dim, generator=gen).to(device)
    with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=amp):
        loss = rf_loss(model, x0, curve=curve, cond_tokens=text, seconds_start=0.0, seconds_total=32.0,
                       generator=gen, p_drop_text=0.1, p_drop_curve=0.1)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def time_batch(size, batch, *, device, seconds, steps, warmup, lora, rank, checkpointing, amp):
    cuda = device.startswith("cuda")
    model, opt, trainable = make(size, device, lora, rank, checkpointing)
    length = round(seconds * ss.LATENT_RATE)
    gen = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            step(model, opt, batch, length, device, amp, gen)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step(model, opt, batch, length, device, amp, gen)
        sync()
        dt = (time.perf_counter() - t0) / steps
        assert torch.isfinite(loss), "non-finite loss"
        mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        return {"batch": batch, "s_per_step": dt, "clips_per_s": batch / dt, "peak_gib": mem, "trainable": trainable,
                "params": ss.count_parameters(model.dit), "frames": length}
    finally:
        del model, opt
        if cuda:
            torch.cuda.empty_cache()


def largest(size, mode_kw, max_batch, batch=None):
    batches = [batch] if batch else [2**i for i in range(0, 20) if 2**i <= max_batch]
    best = None
    for b in batches:
        try:
            best = time_batch(size, b, **mode_kw)
        except torch.OutOfMemoryError:
            break
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--size", default=None, choices=sorted(ss.SIZES))
    p.add_argument("--seconds", type=float, default=32.0)
    p.add_argument("--budget-gib", type=float, default=24.0, help="GPU memory budget (a 24 GB card by default)")
    p.add_argument("--rank", type=int, default=32, help="LoRA rank (alpha = rank)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--batch", type=int, default=None, help="time this batch only (no search)")
    p.add_argument("--modes", nargs="+", default=["full", "full+ckpt", "lora", "lora+ckpt"],
                   choices=["full", "full+ckpt", "lora", "lora+ckpt"])
    args = p.parse_args(argv)
    device = "cuda" if args.cuda else "cpu"
    size = args.size or ("sao1" if args.cuda else "tiny")
    steps = args.steps or (8 if args.cuda else 1)
    warmup = args.warmup if args.warmup is not None else (2 if args.cuda else 1)
    if args.cuda:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        frac = min(1.0, args.budget_gib / total)
        torch.cuda.set_per_process_memory_fraction(frac)
        print(f"device: {torch.cuda.get_device_name(0)} ({total:.0f} GiB), budget {args.budget_gib:g} GiB "
              f"(fraction {frac:.3f}), torch {torch.__version__}")
    else:
        print(f"CPU run (no GPU): figures show the script works, they are not GPU figures; torch {torch.__version__}")
    rows = []
    for mode in args.modes:
        kw = dict(device=device, seconds=args.seconds, steps=steps, warmup=warmup, lora=mode.startswith("lora"),
                  rank=args.rank, checkpointing=mode.endswith("ckpt"), amp=args.cuda)
        r = largest(size, kw, args.max_batch, args.batch)
        if r is None:
            print(f"{mode:10s}: batch 1 does not fit")
            continue
        rows.append((mode, r))
        print(f"{mode:10s}: largest batch {r['batch']:4d}  {r['s_per_step'] * 1e3:8.1f} ms/step  "
              f"{r['clips_per_s']:7.2f} clips/s  "
              f"peak {r['peak_gib']:5.1f} GiB  trainable {r['trainable'] / 1e6:8.2f} M of {r['params'] / 1e6:.0f} M",
              flush=True)
    if rows:
        r0 = rows[0][1]
        print(f"\n{size}: {r0['params'] / 1e6:.0f} M params, {r0['frames']} latent frames ({args.seconds:g} s), "
              f"bf16 autocast={args.cuda}, LoRA rank {args.rank} on {', '.join(LORA_TARGETS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
