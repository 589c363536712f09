"""Stable Audio 3 small as the V2M backbone: sampler time for 32 s of music, training clips/s and MFU,
peak memory at the largest batch under a memory cap (issue 17, GPU benchmark).

Random weights in SA3's real shapes: ``small`` = small-music-base's DiT (1024 × 20, 16 heads, 64
memory tokens, 433 M) + the curve channel, SAME-S (decode timed separately), T5Gemma's 256 + 1
context tokens. Sampling: the checkpoint defaults init-checkpoint records for SA3 bases (50 Euler
steps on the log-SNR schedule, CFG 7 = one batch-2 forward per step), bf16 on CUDA. Training: the
paper's eq. 6 (``flow.rf_loss``, 10 % text/curve dropout), AdamW, bf16 autocast, full fine-tuning;
the batch is doubled until a step no longer fits under ``--mem-cap-gib`` (default 24: a consumer
card), then the largest fitting batch is timed. MFU counts model FLOPs (3 × forward for training).
LoRA rows come with issue 12's adapters (``--lora`` is refused until then).

    python benchmarks/sa3_speed.py --cuda [--size small|medium] [--seconds 32] [--checkpointing] \
[--lora] [--peak-tflops 989]
    python benchmarks/sa3_speed.py --size tiny --seconds 4        # CPU smoke run (shapes, not speed)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from v2m_zero.core.model import flow
from v2m_zero.core.model.sa3 import SA3DiT, make_sa3_model_config
from v2m_zero.core.model.same import SAMECodec

LATENT_RATE = 44100 / 4096
TEXT_TOKENS = 256 + 1  # T5Gemma prompt + the seconds token
SIZES = {
    "tiny": dict(embed_dim=128, depth=2, num_heads=2, num_memory_tokens=8),
    "small": dict(),  # small-music-base
    "medium": dict(embed_dim=1536, depth=24, num_heads=24, attn_kwargs={"qk_norm": "rms", "differential": True},
                   norm_kwargs={"force_fp32": True}),
}
# SAMEConfig's defaults are SAME-S (small); medium's codec is SAME-L (a sliding window, 8 sine-gated decoder layers)
SAME_SIZES = {"tiny": dict(channels=16, c_mults=[1], transformer_depths=[1], dim_heads=16), "small": dict(),
              "medium": dict(channels=256, transformer_depths=[12], sliding_window=1, decoder_sinusoidal_blocks=[8],
                             decoder_conv_mapping=False)}


def build(size: str, device: str, dtype=torch.float32) -> SA3DiT:
    torch.manual_seed(0)
    with torch.device(device):
        model = SA3DiT(make_sa3_model_config(with_curve=True, **SIZES[size]))
    return model.to(dtype)


def forward_flops(model: SA3DiT, batch: int, length: int, text_tokens: int = TEXT_TOKENS) -> float:
    """Matmul FLOPs of one forward (2 per multiply-add); attention scores and values included."""
    c = model.config
    d, n, s, diff = c.embed_dim, length + c.num_memory_tokens, text_tokens, 2 if c.differential else 1
    inner = int(d * c.ff_mult)
    per = (2 * n * d * d * (2 * diff + 1) + 4 * n * n * d * diff + 2 * n * d * d  # self-attention
           + 2 * n * d * d * diff + 2 * s * d * d * (diff + 1) + 4 * n * s * d * diff + 2 * n * d * d  # cross-attention
           + 2 * n * d * 2 * inner + 2 * n * inner * d  # GLU feed-forward
           + 2 * length * ((c.local_add_cond_dim or 0) * d + d * d))  # local-add path
    top = 2 * length * d * (c.io_channels + c.input_concat_dim + c.io_channels) + 2 * s * (c.cond_token_dim * d + d * d)
    return batch * (c.depth * per + top)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak(device):
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def sampler(size, *, device, dtype, seconds, steps, cfg, warmup):
    model = build(size, device, dtype).eval()
    n = math.ceil(seconds * LATENT_RATE)
    cond = model.conditioning(text=(torch.randn(1, 256, model.text_dim), torch.ones(1, 256, dtype=torch.bool)),
                              seconds=seconds, device=device, dtype=dtype)
    curve = torch.randn(1, 1, n, device=device, dtype=dtype)
    kw = dict(cond=cond, curve=curve, cfg_scale=cfg, device=device, dtype=dtype)
    flow.sample(model, (1, model.config.io_channels, n), flow.logsnr_timesteps(warmup), **kw)
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    lat = flow.sample(model, (1, model.config.io_channels, n), flow.logsnr_timesteps(steps), **kw)
    _sync(device)
    dt = time.perf_counter() - t0
    assert torch.isfinite(lat).all()
    flops = steps * forward_flops(model, 2 if cfg != 1 else 1, n)
    codec = SAMECodec(SAME_SIZES[size]).to(device).eval()
    with torch.no_grad():
        codec.decode_chunked(lat[..., :16].float())  # warm-up
        _sync(device)
        t1 = time.perf_counter()
        wave = codec.decode_chunked(lat.float())
        _sync(device)
    return {"frames": n, "s_total": dt, "ms_step": dt / steps * 1e3, "tflops": flops / dt / 1e12,
            "peak_gib": _peak(device), "decode_s": time.perf_counter() - t1, "samples": wave.shape[-1],
            "params": sum(p.numel() for p in model.model.parameters())}


def train_step(model, opt, batch, length, device, amp, gen):
    c = model.config
    x0 = torch.randn(batch, c.io_channels, length, generator=gen).to(device)
    curve = torch.randn(batch, 1, length, generator=gen).to(device)
    tokens = torch.randn(batch, 256, model.text_dim, generator=gen).to(device)
    with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=amp):
        loss = flow.rf_loss(model, x0, curve=curve, cond_tokens=tokens,
                            cond_mask=torch.ones(batch, 256, dtype=torch.bool),
                            seconds_total=length / LATENT_RATE, generator=gen, p_drop_text=0.1, p_drop_curve=0.1)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def make_optimiser(model, device, lora_rank: int):
    """AdamW over every parameter (full fine-tuning), or the sa3 preset's LoRA (the trainer's own add_lora: peft
    adapters on SA3_LORA_TARGETS, the curve-channel weights trained in full, the rest frozen)."""
    if not lora_rank:
        return torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))
    from v2m_zero.core.train.lora import add_lora, param_groups
    from v2m_zero.model_io.sa3 import SA3_LORA_TARGETS

    model.to("cpu")
    run = add_lora(model, {"rank": lora_rank, "alpha": float(lora_rank), "dropout": 0.0,
                           "targets": list(SA3_LORA_TARGETS), "train_curve_weights": True})
    model.to(device)
    return torch.optim.AdamW(param_groups(model, run, 0.01), lr=1e-4, fused=device.startswith("cuda"))


def train(size, batch, *, device, seconds, steps, warmup, checkpointing, amp, cap_gib, lora_rank=0):
    model = build(size, device).train()
    model.set_gradient_checkpointing(checkpointing)
    opt = make_optimiser(model, device, lora_rank)
    length = math.ceil(seconds * LATENT_RATE)
    gen = torch.Generator().manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        train_step(model, opt, batch, length, device, amp, gen)
    _sync(device)
    if device.startswith("cuda") and _peak(device) > cap_gib:
        raise torch.OutOfMemoryError(f"peak {_peak(device):.1f} GiB over the {cap_gib} GiB cap")
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, opt, batch, length, device, amp, gen)
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    assert torch.isfinite(loss)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # FLOPs: forward + backward as 3x forward for full training; LoRA skips the weight gradients of the frozen
    # base (about 2x forward), so MFU is reported on the work actually done
    flops = (2 if lora_rank else 3) * forward_flops(model, batch, length)
    return {"batch": batch, "s_step": dt, "clips_s": batch / dt, "tflops": flops / dt / 1e12,
            "peak_gib": _peak(device), "frames": length, "trainable": trainable}


def largest_batch(args, device):
    best, b = None, 1
    while b <= args.max_batch:
        try:
            best = train(args.size, b, device=device, seconds=args.seconds, steps=args.steps, warmup=args.warmup,
                         checkpointing=args.checkpointing, amp=device.startswith("cuda"), cap_gib=args.mem_cap_gib,
                         lora_rank=args.lora_rank if args.lora else 0)
        except torch.OutOfMemoryError:
            break
        finally:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        b *= 2
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--size", default=None, choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=32.0)
    p.add_argument("--steps", type=int, default=None, help="sampler Euler steps / timed training steps")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--batch", type=int, default=None, help="time this training batch only (no search)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--mem-cap-gib", type=float, default=24.0, help="a batch fits when its peak stays under this")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (H100 SXM: 989)")
    p.add_argument("--lora", action="store_true",
                   help="LoRA fine-tuning as the sa3 preset (peft, curve weights in full)")
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (the sa3 preset: 16)")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args(argv)
    if args.cuda and not torch.cuda.is_available():
        print("--cuda: no CUDA device", file=sys.stderr)
        return 2
    device = "cuda" if args.cuda else "cpu"
    args.size = args.size or ("small" if args.cuda else "tiny")
    args.warmup = args.warmup if args.warmup is not None else (3 if args.cuda else 1)
    dtype = torch.bfloat16 if args.cuda else torch.float32
    name = torch.cuda.get_device_name() if args.cuda else "CPU"
    print(f"device: {name}; torch {torch.__version__}; size {args.size}; {args.seconds:g} s of music")
    s = sampler(args.size, device=device, dtype=dtype, seconds=args.seconds,
                steps=args.steps or (50 if args.cuda else 3), cfg=args.cfg, warmup=args.warmup)
    mfu = f", MFU {s['tflops'] / args.peak_tflops:.1%}" if args.peak_tflops else ""
    print(f"sampler: DiT {s['params'] / 1e6:.1f} M params, {s['frames']} latent frames, {s['ms_step']:.2f} ms/step, "
          f"{s['s_total']:.2f} s/generation, {s['tflops']:.3g} TFLOP/s{mfu}, peak {s['peak_gib']:.2f} GiB; "
          f"SAME decode {s['decode_s']:.2f} s for {s['samples'] / 44100:.1f} s of audio")
    if args.skip_train:
        return 0
    args.steps = args.steps or (10 if args.cuda else 2)
    rank = args.lora_rank if args.lora else 0
    if args.batch:
        r = train(args.size, args.batch, device=device, seconds=args.seconds, steps=args.steps, warmup=args.warmup,
                  checkpointing=args.checkpointing, amp=args.cuda, cap_gib=args.mem_cap_gib, lora_rank=rank)
    else:
        r = largest_batch(args, device) if args.cuda else train(args.size, 2, device=device, seconds=args.seconds,
                                                                steps=args.steps, warmup=args.warmup,
                                                                checkpointing=args.checkpointing, amp=False,
                                                                cap_gib=args.mem_cap_gib, lora_rank=rank)
    if r is None:
        print(f"training: batch 1 does not fit under {args.mem_cap_gib} GiB (try --checkpointing)")
        return 1
    mfu = f", MFU {r['tflops'] / args.peak_tflops:.1%}" if args.peak_tflops else ""
    mode = f"LoRA rank {rank}" if rank else "full"
    print(f"training ({mode}{', checkpointing' if args.checkpointing else ''}, {r['trainable'] / 1e6:.2f} M trained): "
          f"batch {r['batch']} x {r['frames']} frames, "
          f"{r['s_step']:.3f} s/step, {r['clips_s']:.2f} clips/s, {r['tflops']:.3g} TFLOP/s{mfu}, "
          f"peak {r['peak_gib']:.2f} GiB "
          f"(cap {args.mem_cap_gib:g} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
