"""``v2m-zero models list|download|convert-musicfm``: what is installed where, what is missing, downloads on
request, and the one-time conversion of MusicFM's pickled checkpoint to safetensors."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._common import OutputPlan, Progress

NAME = "models"
HELP = "list the models the nodes and commands use (installed where, what is missing) and download them on request"

# model_io.download.MODELS (no import at parser time)
KNOWN = ("dinov2-small", "dinov2-base", "dinov2-large", "dinov2-giant", "t5-base", "musicfm", "whisper-small",
         "smolvlm2-256m", "qwen2.5-1.5b-instruct", "sao1", "sa3", "t5gemma-b-b-ul2", "beat-this", "beat-this-small")


def _where_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dir", default=None, help="models folder (default $V2M_MODELS_DIR, else a per-user folder that "
                                               "`models list` prints): files go to DIR/<kind>/<name>/")
    g.add_argument("--comfyui", default=None, metavar="COMFYUI_ROOT",
                   help="a ComfyUI folder: models/v2m/<kind>/ (SAO 1.0 into models/checkpoints/)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    class ActionParser(type(p)):
        """Errors read ``v2m-zero models: error: ...`` (one line), like every command's."""

        def error(self, message: str):
            self.exit(2, f"{self.prog.rsplit(' ', 1)[0]}: error: {message} (see {self.prog} --help)\n")

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ActionParser)
    ls = sub.add_parser("list", help="every known model: installed or missing, where, and what each node/command lacks")
    _where_arguments(ls)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dl = sub.add_parser("download", help="download models through huggingface_hub (resumable; HF_ENDPOINT, HF_TOKEN "
                                         "honoured); beat-this from its authors' server (JKU, MIT licence)")
    dl.add_argument("names", nargs="+", choices=KNOWN, metavar="NAME", help=f"one or more of: {', '.join(KNOWN)}")
    _where_arguments(dl)
    dl.add_argument("--token", default=None, help="a Hugging Face token (default: HF_TOKEN or your saved login); "
                                                  "needed for gated models such as sao1, sa3 and t5gemma-b-b-ul2")
    cv = sub.add_parser("convert-musicfm", help="MusicFM's pretrained_msd.pt -> .safetensors, once, for a .pt that "
                                                "torch.load(weights_only=True) refuses (nothing in the pickle is run)")
    cv.add_argument("checkpoint", help="the pretrained_*.pt (read, never modified)")
    cv.add_argument("--out", default=None, help="where to write (default: the same name with .safetensors, beside it)")


def _where(args) -> dict:
    if args.comfyui:
        from ..errors import V2MError

        root = os.path.abspath(args.comfyui)
        if not os.path.isdir(os.path.join(root, "models")):
            raise V2MError(f"--comfyui {root}: no models/ folder there; give the ComfyUI folder")
        kinds = ("encoders", "text_encoders", "prompt", "music_encoders", "beat_trackers")
        folders = {k: os.path.join(root, "models", "v2m", k) for k in kinds}
        folders["base"] = os.path.join(root, "models", "checkpoints")
        return {"folders": folders}
    return {"root": args.dir} if args.dir else {}


def _list(args) -> int:
    from ...model_io.download import MODELS, missing_report, model_status

    where = _where(args)
    rows = [{"name": n, "repo": m.repo, "size": m.size, **model_status(m, **where)} for n, m in MODELS.items()]
    report = missing_report(**where)
    if args.json:
        print(json.dumps({"models": rows, "missing": [{"for": w, "missing": m, "note": n} for w, m, n in report]},
                         indent=1))
        return 0
    if where:
        print(f"models folder: {where.get('root') or os.path.abspath(args.comfyui)}")
    else:
        from ...model_io.folders import user_models_root

        root, why = user_models_root()
        print(f"models folder: {os.path.abspath(root)} ({why})")
    for r in rows:
        print(f"  {r['name']:<22} {r['state']:<9} {r['size']:>7}  "
              f"{r['path'] if r['state'] != 'missing' else r['repo']}")
    print("what is missing:")
    for who, missing, note in report:
        text = ("ready" if not missing
                else "missing " + ", ".join(missing) + f" (v2m-zero models download {' '.join(missing)})")
        print(f"  {who}: {text}" + (f"; {note}" if note and missing else ""))
    return 0


def _download(args) -> int:
    from ...model_io.download import MODELS, download, target_dir

    where = _where(args)
    plan = OutputPlan()
    for name in dict.fromkeys(args.names):
        plan.folder(target_dir(MODELS[name], **where), f"folder for {name}")
    with plan:  # a failed download keeps its .part files (the next run continues them); empty new folders go
        for name in dict.fromkeys(args.names):
            with Progress(f"downloading {name}", unit="B") as bar:
                path = download(name, token=args.token, progress=bar, log=lambda m: print(m, file=sys.stderr), **where)
            print(f"{name} -> {path}")
    return 0


def _convert_musicfm(args) -> int:
    from ...model_io.musicfm import convert_musicfm

    src = os.path.abspath(args.checkpoint)
    out = args.out or os.path.splitext(src)[0] + ".safetensors"
    plan = OutputPlan()
    plan.input(src, "MusicFM checkpoint")
    plan.file(out, "converted MusicFM checkpoint", extensions=(".safetensors",))
    with plan:
        path, n = convert_musicfm(src, out)
    print(f"wrote {path} ({n} tensors); prepare finds it in the models folder, or give it with --musicfm")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "convert-musicfm":
        return _convert_musicfm(args)
    return _list(args) if args.action == "list" else _download(args)
