"""``v2m-zero init-checkpoint``: make a V2M checkpoint (curve channel added) from a public model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_smoothing_argument, OutputPlan

NAME = "init-checkpoint"
HELP = "make a V2M checkpoint from a pretrained model (adds the event-curve input channel, zero-initialised)"

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="the pretrained model file, e.g. stable-audio-open-1.0's or "
                                  "stable-audio-3-small-music-base's model.safetensors")
    p.add_argument("--from", dest="base", choices=["sao1", "sa3"], default="sao1",
                   help="layout of the source file: sao1 = Stable Audio Open 1.0 single file (default); sa3 = "
                        "Stable Audio 3 single file (Hugging Face model.safetensors, with its model_config.json "
                        "beside it when there is one, or ComfyUI's models/checkpoints/stable_audio_3_*.safetensors)")
    p.add_argument("--out", required=True, help="where to write the V2M checkpoint (.safetensors)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default=None,
                   help="store weights in this dtype (default: as in the source)")
    p.add_argument("--no-pretransform", action="store_true",
                   help="leave the codec (pretransform.model.*) out of the checkpoint")
    p.add_argument("--curve-encoder", default=None, help="video encoder id recorded in the curve spec")
    add_smoothing_argument(p, default=None)
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from ..errors import V2MError

    out = Path(args.out)
    plan = OutputPlan()
    plan.input(args.source, "source model")
    plan.file(out, "--out", extensions=(".safetensors",))
    plan.check()
    if out.exists() and not args.force:
        raise V2MError(f"{out} exists; pass --force to overwrite it")
    curve = {}
    if args.curve_encoder:
        curve["encoder"] = args.curve_encoder
    if args.smoothing_seconds is not None:
        curve["smoothing_seconds"] = args.smoothing_seconds
    dtype = None
    if args.dtype:
        import torch

        dtype = getattr(torch, _DTYPES[args.dtype])
    if args.base == "sa3":
        from ...model_io.sa3 import init_from_sa3 as init
    else:
        from ...model_io.sao import init_from_sao as init

    meta = init(args.source, out, curve=curve, include_pretransform=not args.no_pretransform, dtype=dtype)
    dcfg = meta["model_config"]["diffusion"]["config"]
    print(
        f"wrote {out}: DiT {dcfg['depth']}x{dcfg['embed_dim']}, in-channels "
        f"{dcfg['io_channels']}+{dcfg['input_concat_dim']} (curve), objective {meta['objective']}, "
        f"latent rate {meta['latent_rate']:.4f} Hz"
    )
    if meta.get("sampling"):
        sm = meta["sampling"]
        print(f"sampling defaults recorded: {sm['steps']} steps, cfg "
              f"{sm['cfg_scale']}, schedule {sm['schedule']['type']}")
    return 0
