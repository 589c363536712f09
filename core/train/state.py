"""Resumable training state on disk: model, EMA and optimiser tensors (safetensors) + step, data
position, schedule and every RNG state (JSON), written atomically into ``state/step-N``."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from .config import lr_at
from .data import DataOrder


STATE_DIR = "state"


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def _rng_state(gen: torch.Generator) -> dict:
    np_state = np.random.get_state()
    py = random.getstate()
    d = {
        "generator": _b64(gen.get_state()),
        "torch_cpu": _b64(torch.get_rng_state()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available():
        d["torch_cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return d


def _set_rng_state(d: Mapping, gen: torch.Generator) -> None:
    gen.set_state(_unb64(d["generator"]))
    torch.set_rng_state(_unb64(d["torch_cpu"]))
    n = d["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    py = d["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "torch_cuda" in d and torch.cuda.is_available() and len(d["torch_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_unb64(s) for s in d["torch_cuda"]])


def _optimizer_to_flat(sd: Mapping) -> tuple[dict, dict]:
    tensors, extra = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{k}"] = v
            else:
                extra.setdefault(str(idx), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "non_tensor_state": extra}


def _optimizer_from_flat(tensors: Mapping, meta: Mapping) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for idx, st in (meta.get("non_tensor_state") or {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def latest_state(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete training state folder of a run, or None."""
    p = Path(run_dir) / STATE_DIR / "latest.json"
    if not p.is_file():
        return None
    try:
        d = Path(run_dir) / STATE_DIR / json.loads(p.read_text())["dir"]
    except (ValueError, KeyError):
        return None
    return d if (d / "trainer.json").is_file() else None


def prune(folder: Path, pattern: str, keep: int) -> None:
    items = sorted(folder.glob(pattern))
    for old in items[: max(0, len(items) - max(1, keep))]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# saving and resuming a trainer's state


def load_state(tr, folder: Path) -> None:
    from ...model_io.weights import read_safetensors

    info = json.loads((folder / "trainer.json").read_text())
    if int(info.get("world_size", 1)) != tr.rt.world:
        tr._log(f"warning: resuming a run saved with {info.get('world_size')} process(es) on {tr.rt.world}: "
                "the data order continues but is not the one an uninterrupted run would have used")
    sd, _ = read_safetensors(folder / "model.safetensors")
    if tr.lora is None:
        tr.model.load_state_dict(sd, strict=True)
    else:  # a LoRA state holds the trained tensors only; the base comes from model.from_checkpoint
        want = set(tr.lora.trainable)
        if set(sd) != want:
            from ..errors import V2MError

            raise V2MError(f"{folder}: this state does not hold the LoRA run's tensors (the [lora] settings changed?). "
                           "Fix: restore the config, or start a new run_dir (or --no-resume)")
        tr.model.load_state_dict(sd, strict=False)
    if tr.ema is not None and (folder / "ema.safetensors").is_file():
        ema, _ = read_safetensors(folder / "ema.safetensors")
        tr.ema = {k: v.float() for k, v in ema.items()}
    opt_t = {}
    if (folder / "optimizer.safetensors").is_file():
        opt_t, _ = read_safetensors(folder / "optimizer.safetensors")
    opt_sd = _optimizer_from_flat(opt_t, info["optimizer"])
    tr.opt.load_state_dict(opt_sd)
    tr.step = int(info["step"])
    tr.sampler = DataOrder(tr.train_ids, tr.cfg["seed"], info["data"]["epoch"], info["data"]["index"])
    tr.last_loss = info.get("last_loss")
    rng_file = folder / f"rng-{tr.rt.rank}.json"
    if rng_file.is_file():
        _set_rng_state(json.loads(rng_file.read_text()), tr.gen)
    tr.resumed_from = folder
    tr._truncate_logs(tr.step)
    tr._log(f"resumed from {folder} at step {tr.step}")


def save_state(tr) -> Path:
    from ...model_io.weights import write_safetensors

    rt = tr.rt
    name = f"step-{tr.step:08d}"
    root = tr.run_dir / STATE_DIR
    final = root / name
    tmp = root / f".tmp-{name}"
    if tr.lora is None:
        sd = rt.state_dict(tr.model)
    else:  # only what trains (the frozen base is model.from_checkpoint)
        params = dict(rt.unwrap(tr.model).named_parameters())
        sd = {n: params[n].detach() for n in tr.lora.trainable}
    opt_sd = tr.opt.state_dict()
    rng = _rng_state(tr.gen)
    if rt.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    rt.wait()
    (tmp / f"rng-{rt.rank}.json").write_text(json.dumps(rng))
    if rt.is_main:
        write_safetensors(tmp / "model.safetensors", {k: v for k, v in sd.items()})
        if tr.ema is not None:
            write_safetensors(tmp / "ema.safetensors", tr.ema)
        tensors, meta = _optimizer_to_flat(opt_sd)
        if tensors:
            write_safetensors(tmp / "optimizer.safetensors", tensors)
    rt.wait()
    if rt.is_main:
        info = {"step": tr.step, "data": {"epoch": tr.sampler.epoch, "index": tr.sampler.index},
                "optimizer": meta, "last_loss": tr.last_loss, "world_size": rt.world,
                "lr": lr_at(tr.step, tr.cfg["optim"], tr.cfg["train"]["max_steps"]),
                "schedule": {k: tr.cfg["optim"][k] for k in ("lr", "warmup_steps", "schedule", "min_lr_ratio")},
                "config": tr.cfg, "time": time.time()}
        write_json(tmp / "trainer.json", info)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_json(root / "latest.json", {"dir": name, "step": tr.step})
        prune(root, "step-*", int(tr.cfg["checkpoint"]["keep_last"]))
    rt.wait()
    return final
