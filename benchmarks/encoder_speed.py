"""Encoder speed: DINOv2 frames/s as a bare model and end to end (decode → preprocess → model → curve), one run.

Random weights in the real architectures (transformers ``Dinov2Config`` of each size, the real
processor: shortest edge 256, bicubic, centre crop 224, ImageNet mean/std) saved as a model folder
and loaded through the encoder's own loader. A 1080p H.264 clip (cut every 2.5 s) is generated once
into --workdir. For each model, in the same process:

  bare decode   PyAV decodes every frame and does nothing else (the floor of any video pipeline)
  decode@256    ``media.iter_frames`` at the processor's size (decode + scale to RGB)
  bare model    the model alone on ready ``pixel_values`` batches already on the device
  end to end    ``encoders.encode_video_curve`` on the file: decode ahead in a thread, batched
                preprocessing (pinned uint8 copy on CUDA), model, pooling, streaming curve

"around the model" = end-to-end seconds − frames / bare-model rate: what the pipeline costs
beyond the network, compared with the bare decode of the same file (issue 15's CPU goal ≤ 1.5×;
measure it with the tiny model, whose network time is negligible). ``--baseline`` adds the
pipeline before issue 15 for the tiny model (the Hugging Face processor frame by frame, no
decode-ahead) for comparison.

    python benchmarks/encoder_speed.py                          # CPU: tiny (+ baseline) and dinov2-s/b/l
    python benchmarks/encoder_speed.py --cuda --models tiny dinov2-l --duration 60
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from curve_speed import make_clip  # the sibling script (its folder is on sys.path when run as a script)

SIZES = {  # transformers Dinov2Config fields of facebook/dinov2-* (and a tiny one to time the pipeline alone)
    "tiny": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2),
    "dinov2-s": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "dinov2-b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "dinov2-l": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
}


def make_model_folder(name: str, root: str) -> str:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        torch.manual_seed(0)
        Dinov2Model(Dinov2Config(image_size=518, patch_size=14, **SIZES[name])).save_pretrained(folder)
        BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


CPU_S: dict = {}  # the process's CPU seconds (all threads) of the last timed(): robust to a loaded machine


def timed(fn, repeat: int = 1, label: str | None = None) -> float:
    """Median wall seconds of ``repeat`` runs of ``fn()`` (median CPU seconds into CPU_S[label])."""
    runs, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if label:
        CPU_S[label] = statistics.median(cpu)
    return statistics.median(runs)


def bare_decode(path: str) -> int:
    import av

    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return n


def bare_model_rate(enc, batches: int) -> float:
    """Frames/s of the network alone on ready 224×224 batches on its device."""
    px = torch.randn(enc.batch_size, 3, 224, 224).to(enc.device, enc.dtype)

    def run(k):
        with torch.inference_mode():
            for _ in range(k):
                h = enc.model(pixel_values=px).last_hidden_state
                h[:, 1:].mean(dim=1).float()
        sync(enc.device)

    run(1)  # warm-up (kernels, allocator)
    rate = batches * enc.batch_size / timed(lambda: run(batches), label="model")
    CPU_S["model_per_frame"] = CPU_S["model"] / (batches * enc.batch_size)
    return rate


def end_to_end(path: str, enc, sample_fps: float | None, repeat: int, label: str = "e2e") -> tuple[float, int]:
    from v2m_zero.core.timing import encoders

    out = {}

    def run():
        out["curve"] = encoders.encode_video_curve(path, enc, sample_fps=sample_fps)

    seconds = timed(run, repeat, label)
    return seconds, len(out["curve"]) + 1


def measure(name: str, path: str, root: str, args, bare_s: float) -> dict:
    from v2m_zero.core.timing import encoders

    enc = encoders.get_encoder("dinov2", model=make_model_folder(name, root), device=args.device,
                               precision=args.precision, batch_size=args.batch or None)
    sf = args.sample_fps if name != "tiny" else None
    model_fps = bare_model_rate(enc, args.model_batches if name != "tiny" else 5)
    e2e_s, n = end_to_end(path, enc, sf, args.repeat if name == "tiny" else 1)
    row = {"model": name, "bare_model_fps": model_fps, "e2e_s": e2e_s, "frames": n, "e2e_fps": n / e2e_s,
           "around_s": e2e_s - n / model_fps, "sample_fps": sf}
    row["around_x_bare"] = row["around_s"] / bare_s  # the decoder decodes every frame, even with --sample-fps
    row["e2e_x_bare"] = e2e_s / bare_s
    row["around_cpu_x_bare"] = (CPU_S["e2e"] - n * CPU_S["model_per_frame"]) / CPU_S["bare"]
    if args.baseline and name == "tiny":
        from v2m_zero.core.timing.media import frames as frames_mod

        tr, pf, fmt = enc.transform, enc.prefetch, frames_mod._scaled_format
        # before issue 15: packed RGB out of swscale, the processor frame by frame, no decode-ahead
        enc.transform, enc.prefetch, frames_mod._scaled_format = None, 0, (lambda: "rgb24")
        try:
            row["baseline_s"], _ = end_to_end(path, enc, None, args.repeat, "baseline")
            row["baseline_cpu_x_bare"] = CPU_S["baseline"] / CPU_S["bare"]
        finally:
            enc.transform, enc.prefetch, frames_mod._scaled_format = tr, pf, fmt
    enc.close()
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda", action="store_true", help="run the models on the GPU (bf16 unless --precision)")
    ap.add_argument("--models", nargs="+", choices=sorted(SIZES), default=None,
                    help="default: tiny dinov2-s dinov2-b dinov2-l")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of 1080p30 video (default 20)")
    ap.add_argument("--sample-fps", type=float, default=None,
                    help="frames per second encoded by the real-size models (default: every frame on CUDA, 1 on CPU)")
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch", type=int, default=0,
                    help="frames per model batch (default: the encoder's: 64 CUDA, 16 CPU)")
    ap.add_argument("--model-batches", type=int, default=None,
                    help="batches timed for the bare model (default 20 CUDA, 2 CPU)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the decode and tiny-model timings (median)")
    ap.add_argument("--baseline", action="store_true", help="also time the tiny model through the pre-issue-15 path")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own choice)")
    ap.add_argument("--workdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache"))
    args = ap.parse_args(argv)
    if args.cuda and not torch.cuda.is_available():
        print("--cuda given but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    args.device = "cuda" if args.cuda else "cpu"
    args.precision = args.precision or ("bf16" if args.cuda else "fp32")
    args.sample_fps = args.sample_fps if args.sample_fps is not None else (None if args.cuda else 1.0)
    args.model_batches = args.model_batches or (20 if args.cuda else 2)
    models = args.models or ["tiny", "dinov2-s", "dinov2-b", "dinov2-l"]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)

    import av
    import transformers

    dev = (torch.cuda.get_device_name(0) if args.cuda
           else f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"device: {dev}; {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, PyAV {av.__version__}; precision {args.precision}", flush=True)
    path = os.path.join(args.workdir, f"clip_1080p_{int(args.duration)}s_30fps.mp4")
    make_clip(path, args.duration, 30.0, 2.5)
    frames = bare_decode(path)  # also warms the file cache
    bare_s = timed(lambda: bare_decode(path), args.repeat, "bare")
    from v2m_zero.core.timing import media

    dec_s = timed(lambda: sum(len(b) for b in media.iter_frames(path, size=256)), args.repeat, "decode256")
    print(f"clip: {frames} frames of 1920x1080; bare PyAV decode {bare_s:.2f} s ({frames / bare_s:.0f} fps, "
          f"{CPU_S['bare']:.2f} CPU s); decode + scale to 455x256 RGB {dec_s:.2f} s ({dec_s / bare_s:.2f}x bare; "
          f"CPU {CPU_S['decode256'] / CPU_S['bare']:.2f}x)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name in models:
            r = measure(name, path, root, args, bare_s)
            rows.append(r)
            sf = f" at --sample-fps {r['sample_fps']:g}" if r["sample_fps"] else ""
            base = (f"; before issue 15: {r['baseline_s']:.2f} s = {r['baseline_s'] / bare_s:.2f}x bare decode "
                    f"(CPU {r['baseline_cpu_x_bare']:.2f}x)" if "baseline_s" in r else "")
            # "around the model" only where the network is a small part of the time (else it is noise)
            around = (f"; around the model {r['around_s']:.2f} s = {r['around_x_bare']:.2f}x bare decode "
                      f"(CPU time {r['around_cpu_x_bare']:.2f}x)" if r["around_s"] > 0.5 * r["e2e_s"] else "")
            print(f"{name:>9}: bare model {r['bare_model_fps']:8.1f} frames/s | end to end {r['frames']} frames{sf} "
                  f"in {r['e2e_s']:.2f} s = {r['e2e_fps']:7.1f} frames/s ({r['e2e_x_bare']:.2f}x bare decode)"
                  f"{around}{base}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
