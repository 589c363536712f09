"""Peak RSS (VmHWM) before and after each stage of ``v2m-zero demo --video VIDEO`` (issue 24).

The sampler is stubbed (``--stub-sampler``, default on): random latents of the window plan's
shape, so an hour of video is measured in minutes; everything else is the command as shipped
(curve, plan, decode, mux, redo file, JSON, plot, scoring). Make a long composite first, e.g.
with ``long_video.make_clip``, in another process (its footage would raise this one's peak).

    python benchmarks/demo_memory.py VIDEO [--no-stub-sampler]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time


def hwm() -> str:
    d = {ln.split(":")[0]: int(ln.split()[1]) / 1024 for ln in open("/proc/self/status")
         if ln.startswith(("VmHWM", "VmRSS"))}
    return f"HWM {d['VmHWM']:.0f} MB, RSS {d['VmRSS']:.0f} MB"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--stub-sampler", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    import torch

    from v2m_zero.core import cli, generate, windows
    from v2m_zero.core.commands import demo
    from v2m_zero.core.timing import encoders, media, plot

    torch.set_num_threads(1)

    def probe(mod, name):
        f = getattr(mod, name)

        @functools.wraps(f)
        def g(*a, **k):
            print(f"  before {name}: {hwm()}", flush=True)
            r = f(*a, **k)
            print(f"  after  {name}: {hwm()}", flush=True)
            return r
        setattr(mod, name, g)

    if args.stub_sampler:
        def stub(model, curve, plan, timesteps, **kw):
            g = torch.Generator().manual_seed(0)
            return torch.randn(1, model.dit.config.io_channels, plan.total, generator=g).mul_(0.7)
        windows.sample_windows = stub
    for mod, name in [(encoders, "encode_video_curve"), (generate, "sample_job"), (generate, "decode_to_spool"),
                      (media, "mux_audio"), (generate, "save_redo"), (demo, "write_json"), (plot, "save_png"),
                      (demo, "score")]:
        probe(mod, name)
    print("start", hwm())
    t = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        rc = cli.main(["demo", "--video", args.video, "--out", tmp])
    print(f"end {hwm()}; {time.process_time() - t:.0f} CPU s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
