"""Sampler speed: seconds per Euler step (with CFG, batch 2B) and peak memory against DiT size.

CPU (default): tiny/small random DiTs, a few steps each::

    python benchmarks/sampler_speed.py --size tiny small

CUDA: a SAO-1.0-sized random DiT (≈1.06 B parameters) + the curve channel, a 32 s latent
(44100·32/2048 ≈ 689 frames), 96 Euler steps with CFG (one batch-2 forward per step), bf16 + SDPA::

    python benchmarks/sampler_speed.py --cuda [--compile] [--peak-tflops 989]

FLOPs are counted analytically: 2 · (weights of each linear layer) · (tokens through it), for the
latent tokens (+1 prepended global token) and the cross-attention context (T5 128 + 2 seconds
tokens), plus the attention matmuls (4·N²·D self, 4·N·S·D cross per layer). Figures are printed;
nothing is asserted. Weights are random (timing does not depend on their values).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from v2m_zero.core.model.dit import V2MDiT, count_parameters, make_model_config
from v2m_zero.core.model.flow import CFGDenoiser, make_noise, rf_timesteps, sample_euler
from v2m_zero.core.timing.curves import SAO_LATENT_RATE

SIZES = {
    # name: DiT fields (head dim 64 throughout, as SAO 1.0)
    "tiny": dict(embed_dim=128, depth=2, num_heads=2, cond_token_dim=128),
    "small": dict(embed_dim=512, depth=8, num_heads=8, cond_token_dim=256),
    "base": dict(embed_dim=1024, depth=16, num_heads=16, cond_token_dim=512),
    "sao1": dict(embed_dim=1536, depth=24, num_heads=24, cond_token_dim=768),
}
LATENT_RATE = SAO_LATENT_RATE
TEXT_TOKENS = 128


def forward_flops(model: V2MDiT, batch: int, length: int, text_tokens: int) -> float:
    """Analytic FLOPs of one forward of ``batch`` latents of ``length`` frames."""
    c = model.config
    n = length // c.patch_size + 1  # + the prepended global token
    s = text_tokens + 2  # T5 tokens + seconds_start/total tokens
    flops = 0.0
    for name, mod in model.dit.named_modules():
        if isinstance(mod, torch.nn.Linear):
            if name.startswith("transformer."):
                tokens = s if name.endswith("cross_attn.to_kv") else n
            elif name.startswith("to_cond_embed"):
                tokens = s
            else:  # timestep / global MLPs: once per row
                tokens = 1
            flops += 2.0 * mod.weight.numel() * tokens
        elif isinstance(mod, torch.nn.Conv1d):
            flops += 2.0 * mod.weight.numel() * length
    attn = 4.0 * c.depth * (n * n * c.embed_dim + n * s * c.embed_dim)
    return batch * (flops + attn)


def build(size: str, device: str, dtype: torch.dtype) -> V2MDiT:
    cfg = make_model_config(with_curve=True, io_channels=64, **SIZES[size])
    with torch.device(device):
        model = V2MDiT(cfg, objective="rectified_flow")
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised branches would make the run unrealistic
            p.normal_(0.0, 0.02)
    return model.to(dtype=dtype).eval()


def run_one(size: str, *, device: str, dtype: torch.dtype, seconds: float, steps: int, cfg_scale: float,
            compile_: bool, warmup: int, peak_tflops: float | None, compile_mode: str | None = None,
            fast_sampler: str = "off", model: V2MDiT | None = None) -> dict:
    """Time one generation. ``fast_sampler`` is the product's fast path (core.model.fast: "compile" =
    Inductor + CUDA graphs on CUDA); ``compile_`` the older whole-transformer torch.compile switch."""
    from v2m_zero.core.model.fast import fast_model

    model = model if model is not None else build(size, device, dtype)
    params = count_parameters(model.dit)
    length = round(seconds * LATENT_RATE)
    batch = 2 if cfg_scale != 1.0 else 1
    flops = forward_flops(model, batch, length, TEXT_TOKENS)  # before compile renames the modules
    if compile_:
        model.model.model = torch.compile(model.dit, mode=compile_mode)
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, TEXT_TOKENS, model.config.cond_token_dim, generator=g)
    curve = torch.randn(1, length, generator=g).to(device, dtype)
    # conditioning as the product builds it: tensors on the device (CUDA graphs skip graphs with CPU tensors)
    extra = dict(model.conditioning(text=(text, torch.ones(1, TEXT_TOKENS, dtype=torch.bool)), seconds=float(seconds),
                                    device=device, dtype=dtype), curve=curve)
    net = fast_model(model, fast_sampler, device=device)
    den = CFGDenoiser(net, cfg_scale, uncond="both")
    x = make_noise((1, 64, length), seed=0, device=device, dtype=torch.float32)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        t0 = time.perf_counter()
        if warmup:
            sample_euler(den, x.clone(), rf_timesteps(warmup), extra_args=extra, disable=True)
        sync()
        warm_s = time.perf_counter() - t0
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = sample_euler(den, x.clone(), rf_timesteps(steps), extra_args=extra, disable=True)
        sync()
        elapsed = time.perf_counter() - t0
    assert torch.isfinite(out).all(), "non-finite output"
    per_step = elapsed / steps
    res = {
        "size": size, "params": params, "frames": length, "steps": steps, "batch": batch,
        "s_per_step": per_step, "s_per_gen": per_step * steps, "tflops": flops / per_step / 1e12,
        "gflop_per_step": flops / 1e9, "warmup_s": warm_s, "out": out.float().cpu(),
        "fast_failed": getattr(net, "failure", None),
    }
    if device.startswith("cuda"):
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if peak_tflops:
        res["mfu"] = res["tflops"] / peak_tflops
    del den, net
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", nargs="+", choices=sorted(SIZES), default=None,
                   help="model sizes (default: tiny small on CPU, sao1 with --cuda)")
    p.add_argument("--cuda", action="store_true", help="run on the GPU in bf16 (default size sao1, 96 steps)")
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer first")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode, e.g. reduce-overhead (CUDA graphs) or max-autotune")
    p.add_argument("--fast", nargs="+", choices=["off", "compile", "auto"], default=None,
                   help="fast-sampler modes to time on the same model, e.g. off compile (eager vs compiled + CUDA "
                        "graphs); prints the speed-up and the largest difference of the samples. Default: off")
    p.add_argument("--seconds", type=float, default=32.0, help="audio length (default 32 s → 689 latent frames)")
    p.add_argument("--steps", type=int, default=None, help="Euler steps (default 96 on CUDA, 4 on CPU)")
    p.add_argument("--cfg-scale", type=float, default=7.0, help="CFG scale; 1 disables the uncond branch")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="default bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3 on CUDA, 1 on CPU)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense peak for MFU (H100 SXM bf16 ≈ 989; default 989 with --cuda)")
    args = p.parse_args(argv)

    device = "cuda" if args.cuda else "cpu"
    if args.cuda and not torch.cuda.is_available():
        print("--cuda given but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    sizes = args.size or (["sao1"] if args.cuda else ["tiny", "small"])
    steps = args.steps or (96 if args.cuda else 4)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.cuda else "float32"))
    warmup = args.warmup if args.warmup is not None else (3 if args.cuda else 1)
    peak = args.peak_tflops or (989.0 if args.cuda else None)
    if args.cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name()
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; dtype {dtype}; {args.seconds:g} s audio; "
          f"{steps} steps; CFG {args.cfg_scale:g}{' (batch 2)' if args.cfg_scale != 1 else ''}"
          f"{'; torch.compile ' + (args.compile_mode or 'default') if args.compile else ''}")
    modes = args.fast or ["off"]
    for size in sizes:
        model = build(size, device, dtype)
        results = {}
        for mode in modes:
            r = run_one(size, device=device, dtype=dtype, seconds=args.seconds, steps=steps, cfg_scale=args.cfg_scale,
                        compile_=args.compile, warmup=warmup, peak_tflops=peak, compile_mode=args.compile_mode,
                        fast_sampler=mode, model=model)
            results[mode] = r
            mem = (f"peak GPU mem {r['peak_mem_gib']:.2f} GiB" if "peak_mem_gib" in r
                   else f"peak RSS {r['peak_rss_gib']:.2f} GiB")
            mfu = f", MFU {100 * r['mfu']:.1f}% of {peak:g}" if "mfu" in r else ""
            label = f"fast={mode}" + (f" (FELL BACK TO EAGER: {r['fast_failed']})" if r["fast_failed"] else "")
            print(f"{size:>6} {label}: {r['params'] / 1e6:8.1f} M params, {r['frames']} frames x batch {r['batch']}: "
                  f"{r['s_per_step'] * 1e3:9.2f} ms/step, {r['s_per_gen']:8.2f} s/generation ({r['steps']} steps), "
                  f"{r['gflop_per_step']:.1f} GFLOP/step, {r['tflops']:.3f} TFLOP/s{mfu}; {mem}; "
                  f"warm-up ({warmup} steps, incl. compile) {r['warmup_s']:.1f} s", flush=True)
        if "off" in results:
            base = results["off"]
            for mode, r in results.items():
                if mode != "off":
                    diff = (r["out"] - base["out"]).abs().max().item() / base["out"].abs().max().item()
                    print(f"{size:>6} fast={mode} vs eager: {base['s_per_gen'] / r['s_per_gen']:.2f}x faster, "
                          f"largest sample difference {diff:.2e} of the peak", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
