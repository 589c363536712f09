"""Fine-tuning a V2M DiT on a prepared cache (paper §3.3, eq. 6) with exact resume.

``train(config)`` reads clips from a cache made by :mod:`core.prepare`, trains with
``flow.rf_loss`` (text and curve dropped independently, 10 % each), keeps an EMA, validates,
checkpoints, and writes a V2M checkpoint (EMA weights by default) whose metadata carries the
cache's curve spec, so inference rebuilds the curve the model was trained on.

Config (a dict; ``v2m-zero train CONFIG.toml`` reads it from TOML — see :data:`EXAMPLE_TOML`).
Paths are relative to ``base_dir`` (the TOML file's folder).

Exact resume. Everything random in a step comes from one CPU ``torch.Generator`` per process
(t, noise, text/curve dropout) and the data order from a per-epoch permutation of the training
clips seeded by ``(seed, epoch)``; a state holds the model, EMA and optimiser tensors
(safetensors), and the step, learning-rate schedule position, data position (epoch, index),
the generator and the global torch/CUDA/numpy/python RNG states (JSON). The learning rate is a
pure function of the step. Resuming from a state therefore repeats the uninterrupted run
bit for bit on CPU (same thread count, same torch build).

Text. ``text.encoder = "none"`` trains without a text encoder: every row gets the null text
condition (one all-zero token), which is exactly what inference (``generate.encode_text``)
feeds a checkpoint whose metadata says ``text.type = "none"``. A learned per-caption embedding
was not used on purpose: inference could not reproduce it. Otherwise give a T5 folder.

Multi-GPU: ``accelerate launch -m v2m_zero.core.cli train cfg.toml`` (DDP). Accelerate is
imported only when used (``train.accelerate = "auto"`` uses it when launched by accelerate or
torchrun, ``true`` always, ``false`` never). FSDP: run ``accelerate config`` and choose FSDP
(e.g. ``fsdp_sharding_strategy: FULL_SHARD``, ``fsdp_state_dict_type: FULL_STATE_DICT``,
``fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP`` with ``fsdp_transformer_layer_cls_to_wrap:
TransformerBlock``), then ``accelerate launch --config_file fsdp.yaml -m v2m_zero.core.cli train
cfg.toml``; the full state dict is gathered for checkpoints. (Exact resume is verified on a
single CPU process only; under FSDP the optimiser state is saved as the wrapped optimiser gives it.)
"""

from __future__ import annotations

import base64
import copy
import csv
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .timing import curves
from .atomic import write_json
from .errors import ModelError, V2MError

__all__ = [
    "DEFAULT_CONFIG",
    "EXAMPLE_TOML",
    "ClipCache",
    "TrainResult",
    "latest_state",
    "load_config",
    "lr_at",
    "resolve_config",
    "train",
]

EXAMPLE_TOML = """\
seed = 0
run_dir = "runs/toy"            # states, checkpoints, logs (relative to this file)

[data]
cache = "cache"                 # made by `v2m-zero prepare`
val_clips = 2                   # held-out clips (a seeded random choice), not trained on

[model]
# either a V2M checkpoint (e.g. from `v2m-zero init-checkpoint`) ...
# from_checkpoint = "models/v2m/checkpoints/v2m-sao1.safetensors"
# ... or a fresh model from make_model_config fields (io_channels defaults to the cache's):
objective = "rectified_flow"    # for from_config; a checkpoint keeps its own
[model.from_config]
embed_dim = 64
depth = 2
num_heads = 2
cond_token_dim = 64

[text]
encoder = "none"                # or a T5 folder, e.g. "models/v2m/text_encoders/t5-base"
max_length = 128

[optim]
lr = 1e-4
betas = [0.9, 0.999]
weight_decay = 0.001
eps = 1e-8
warmup_steps = 100
schedule = "constant"           # or "cosine" (to min_lr_ratio · lr at max_steps)
min_lr_ratio = 0.0
grad_clip = 1.0                 # 0 = off

[train]
batch_size = 4                  # per process
grad_accum = 1
max_steps = 1000
precision = "bf16"              # bf16 autocast on CUDA; CPU always runs fp32
gradient_checkpointing = false
t_sampling = "logit_normal"     # or "uniform"
p_drop_text = 0.1
p_drop_curve = 0.1
accelerate = "auto"             # true / false / "auto"
device = "auto"                 # "cpu", "cuda", "auto"

[ema]
enabled = true
decay = 0.999

[checkpoint]
every = 500                     # steps between resumable states (+ a V2M checkpoint)
keep_last = 3
export = "ema"                  # weights in the V2M checkpoints: "ema" or "model"

[validation]
every = 500                     # 0 = off
steps = 10                      # Euler steps for the sampled clips
cfg_scale = 1.0
curve_metric = true             # event-curve correlation of generated vs target clips

[log]
every = 10                      # CSV rows (always) and TensorBoard (if installed)
tensorboard = true
"""

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "run_dir": "runs/v2m",
    "resume": True,
    "data": {"cache": None, "val_clips": 2},
    "model": {"from_checkpoint": None, "from_config": None, "objective": "rectified_flow"},
    "text": {"encoder": "none", "max_length": 128},
    "optim": {"lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 1e-3, "eps": 1e-8, "warmup_steps": 100,
              "schedule": "constant", "min_lr_ratio": 0.0, "grad_clip": 1.0},
    "train": {"batch_size": 4, "grad_accum": 1, "max_steps": 1000, "precision": "bf16",
              "gradient_checkpointing": False, "t_sampling": "logit_normal", "p_drop_text": 0.1,
              "p_drop_curve": 0.1, "accelerate": "auto", "device": "auto"},
    "ema": {"enabled": True, "decay": 0.999},
    "checkpoint": {"every": 500, "keep_last": 3, "export": "ema"},
    "validation": {"every": 500, "steps": 10, "cfg_scale": 1.0, "curve_metric": True, "music_encoder_path": None},
    "log": {"every": 10, "tensorboard": True},
    "curve": {"video_encoder": None},
}

STATE_DIR = "state"
CKPT_DIR = "checkpoints"


@dataclass
class TrainResult:
    checkpoint_path: str | None
    step: int
    last_loss: float | None
    stopped: bool = False
    run_dir: str = ""
    state_dir: str | None = None
    losses: list = field(default_factory=list)  # (step, loss) of this session
    val: dict | None = None


# --------------------------------------------------------------------------------------------
# configuration


def _merge(base: Mapping, over: Mapping, where: str = "") -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if k not in base:
            raise V2MError(f"unknown training config key {where}{k!r}; known: {', '.join(sorted(base))}")
        if isinstance(base[k], Mapping) and isinstance(v, Mapping):
            out[k] = _merge(base[k], v, f"{where}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_config(config: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> dict:
    """Defaults merged in, keys checked, relative paths made absolute against ``base_dir``."""
    model_over = dict(config.get("model") or {})
    cfg = _merge(DEFAULT_CONFIG, {k: v for k, v in config.items() if k != "model"})
    cfg["model"] = _merge({k: v for k, v in DEFAULT_CONFIG["model"].items()}, model_over, "model.")
    base = Path(base_dir) if base_dir else Path.cwd()

    def absolute(p):
        return None if p in (None, "") else str(p if os.path.isabs(str(p)) else (base / str(p)))

    cfg["run_dir"] = absolute(cfg["run_dir"])
    cfg["data"]["cache"] = absolute(cfg["data"]["cache"])
    cfg["model"]["from_checkpoint"] = absolute(cfg["model"]["from_checkpoint"])
    if cfg["text"]["encoder"] not in (None, "none", ""):
        cfg["text"]["encoder"] = absolute(cfg["text"]["encoder"])
    if cfg["validation"].get("music_encoder_path"):
        cfg["validation"]["music_encoder_path"] = absolute(cfg["validation"]["music_encoder_path"])
    if not cfg["data"]["cache"]:
        raise V2MError("training config: set data.cache to a folder made by `v2m-zero prepare`")
    if bool(cfg["model"]["from_checkpoint"]) == bool(cfg["model"]["from_config"]):
        raise V2MError("training config: give exactly one of model.from_checkpoint (a V2M checkpoint) or "
                       "[model.from_config] (make_model_config fields)")
    t, o = cfg["train"], cfg["optim"]
    for key, val in (("train.batch_size", t["batch_size"]), ("train.grad_accum", t["grad_accum"]),
                     ("train.max_steps", t["max_steps"])):
        if not isinstance(val, int) or val < 1:
            raise V2MError(f"training config: {key} must be a whole number >= 1, got {val!r}")
    if o["schedule"] not in ("constant", "cosine"):
        raise V2MError(f"training config: optim.schedule must be 'constant' or 'cosine', got {o['schedule']!r}")
    if t["precision"] not in ("bf16", "fp32"):
        raise V2MError(f"training config: train.precision must be 'bf16' or 'fp32', got {t['precision']!r}")
    if cfg["checkpoint"]["export"] not in ("ema", "model"):
        raise V2MError("training config: checkpoint.export must be 'ema' or 'model'")
    return cfg


def load_config(path: str | os.PathLike) -> dict:
    """Read a TOML training config and resolve it (paths relative to the file's folder)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise V2MError(f"{p}: training config not found")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise V2MError(f"{p}: not valid TOML ({exc})") from None
    return resolve_config(raw, base_dir=p.parent)


def lr_at(step: int, optim: Mapping[str, Any], max_steps: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then constant or cosine."""
    lr, warm = float(optim["lr"]), int(optim.get("warmup_steps", 0))
    if warm > 0 and step < warm:
        return lr * (step + 1) / warm
    if optim.get("schedule") == "cosine":
        span = max(1, max_steps - warm)
        p = min(1.0, max(0.0, (step - warm) / span))
        lo = float(optim.get("min_lr_ratio", 0.0))
        return lr * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p)))
    return lr


# --------------------------------------------------------------------------------------------
# data


class ClipCache:
    """Random access to the clips of a prepared cache; shards are read lazily, row by row."""

    def __init__(self, cache_dir: str | os.PathLike):
        from .prepare import load_manifest

        self.dir = Path(cache_dir)
        m = load_manifest(self.dir)
        if m is None:
            raise V2MError(f"{self.dir}: no manifest.json — not a prepared cache. Fix: run `v2m-zero prepare DATA --out {self.dir}`")
        self.manifest = m
        self.spec = dict(m["spec"])
        self.clips = list(m["clips"])
        if not self.clips:
            raise V2MError(f"{self.dir}: the cache holds no clips (all files skipped or too short?)")
        self._handles: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def _handle(self, shard: str):
        from safetensors import safe_open

        h = self._handles.get(shard)
        if h is None:
            path = self.dir / shard
            if not path.is_file():
                raise V2MError(f"{path}: cache shard missing. Fix: run `v2m-zero prepare` again on this cache")
            h = safe_open(str(path), framework="pt", device="cpu")
            self._handles[shard] = h
        return h

    def batch(self, indices) -> dict:
        lat, cur, sec, caps = [], [], [], []
        for i in indices:
            c = self.clips[int(i)]
            h = self._handle(c["shard"])
            r = int(c["row"])
            lat.append(h.get_slice("latents")[r:r + 1])
            cur.append(h.get_slice("curves")[r:r + 1])
            sec.append(h.get_slice("seconds")[r:r + 1])
            caps.append(c.get("caption", ""))
        return {"latents": torch.cat(lat).float(), "curves": torch.cat(cur).float(),
                "seconds": torch.cat(sec).float(), "captions": caps}


class _Sampler:
    """Deterministic order: epoch e visits the training clips in ``permutation(seed, e)``."""

    def __init__(self, train_ids: np.ndarray, seed: int, epoch: int = 0, index: int = 0):
        self.ids, self.seed, self.epoch, self.index = np.asarray(train_ids), int(seed), int(epoch), int(index)
        self._perm_epoch, self._perm = None, None

    def _permutation(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch, 0x5EED])
            self._perm, self._perm_epoch = rng.permutation(len(self.ids)), self.epoch
        return self._perm

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            perm = self._permutation()
            k = min(n - len(out), len(perm) - self.index)
            out.extend(int(x) for x in self.ids[perm[self.index:self.index + k]])
            self.index += k
            if self.index >= len(perm):
                self.epoch, self.index = self.epoch + 1, 0
        return out


def _split(n: int, val_clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    val_clips = max(0, int(val_clips))
    if n - val_clips < 1:
        raise V2MError(f"the cache has {n} clip(s); with data.val_clips = {val_clips} none is left to train on")
    perm = np.random.default_rng([int(seed), 0xCA11]).permutation(n)
    return np.sort(perm[val_clips:]), np.sort(perm[:val_clips])


# --------------------------------------------------------------------------------------------
# state I/O


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


def _prune(folder: Path, pattern: str, keep: int) -> None:
    items = sorted(folder.glob(pattern))
    for old in items[: max(0, len(items) - max(1, keep))]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# runtime (single process or Accelerate)


class _Runtime:
    def __init__(self, cfg: Mapping):
        t = cfg["train"]
        want = t["accelerate"]
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or any(k.startswith("ACCELERATE_") for k in os.environ)
        use = want is True or (want == "auto" and launched)
        self.acc = None
        dev_cfg = t["device"]
        if use:
            try:
                from accelerate import Accelerator
            except ImportError:
                if want is True:
                    raise V2MError("train.accelerate = true but accelerate is not installed. Fix: pip install accelerate") from None
                use = False
        if use:
            cuda_ok = torch.cuda.is_available() and dev_cfg != "cpu"
            mp = "bf16" if (t["precision"] == "bf16" and cuda_ok) else "no"
            self.acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=int(t["grad_accum"]), cpu=not cuda_ok)
            self.device = self.acc.device
            self.rank, self.world, self.is_main = self.acc.process_index, self.acc.num_processes, self.acc.is_main_process
        else:
            if dev_cfg == "auto":
                dev_cfg = "cuda" if torch.cuda.is_available() else "cpu"
            self.device = torch.device(dev_cfg)
            self.rank, self.world, self.is_main = 0, 1, True
        self.bf16 = t["precision"] == "bf16" and self.device.type == "cuda"

    def autocast(self):
        import contextlib

        if self.acc is None and self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def wait(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()

    def unwrap(self, model):
        return self.acc.unwrap_model(model) if self.acc is not None else model

    def state_dict(self, model) -> dict:
        if self.acc is not None:
            return self.acc.get_state_dict(model)
        return model.state_dict()


# --------------------------------------------------------------------------------------------
# model and text


def _build_model(cfg: Mapping, spec: Mapping, text_dim: int | None):
    from .model.dit import V2MDiT, make_model_config

    m = cfg["model"]
    carried: dict[str, torch.Tensor] = {}
    src_meta: dict = {}
    if m["from_checkpoint"]:
        from ..model_io.checkpoint import build_dit_from_checkpoint
        from ..model_io.weights import read_safetensors

        model = build_dit_from_checkpoint(m["from_checkpoint"], device="cpu")
        model = model.float()
        src_meta = dict(model.meta)
        try:
            pre, _ = read_safetensors(m["from_checkpoint"], prefix="pretransform.")
            carried = {"pretransform." + k: v for k, v in pre.items()}
        except ModelError:
            carried = {}
        objective = model.objective
    else:
        fields = dict(m["from_config"])
        fields.setdefault("io_channels", int(spec["latent_channels"]))
        fields.setdefault("cond_token_dim", 768)
        if text_dim is not None:
            fields.setdefault("text_dim", int(text_dim))
        torch.manual_seed(int(cfg["seed"]))
        model_cfg = make_model_config(with_curve=True, **fields)
        objective = m["objective"]
        model = V2MDiT(model_cfg, objective=objective)
    if model.config.io_channels != int(spec["latent_channels"]):
        raise ModelError(f"the model takes {model.config.io_channels} latent channels but the cache ({cfg['data']['cache']}) "
                         f"holds {spec['latent_channels']}: prepare the cache with the model's codec")
    if model.curve_channels < 1:
        raise ModelError("the model has no event-curve input channel: make the checkpoint with `v2m-zero init-checkpoint`")
    if model.config.patch_size > 1 and int(spec["latent_length"]) % model.config.patch_size:
        raise ModelError(f"clip latent length {spec['latent_length']} is not a multiple of the DiT patch size "
                         f"{model.config.patch_size}: prepare with another --clip-seconds")
    return model, objective, carried, src_meta


class _Text:
    """Caption → cross-attention inputs (T5 or the null condition)."""

    def __init__(self, cfg: Mapping, device):
        enc = cfg["text"]["encoder"]
        self.t5 = None
        if enc not in (None, "", "none"):
            from ..model_io.text import load_t5

            self.t5 = load_t5(enc, max_length=int(cfg["text"]["max_length"]), device=device)

    @property
    def dim(self) -> int | None:
        return None if self.t5 is None else self.t5.dim

    def meta(self, cfg) -> dict:
        if self.t5 is None:
            return {"type": "none"}
        return {"type": "t5", "max_length": int(cfg["text"]["max_length"])}

    def __call__(self, model, captions: list[str], device) -> dict:
        if "prompt" not in model.cross_attention_cond_ids:
            return {}
        if self.t5 is None:
            dim = model.conditioner.conditioners["prompt"].text_dim
            b = len(captions)
            return {"cond_tokens": torch.zeros(b, 1, dim, device=device),
                    "cond_mask": torch.ones(b, 1, dtype=torch.bool, device=device)}
        tokens, mask = self.t5.encode(list(captions))
        return {"cond_tokens": tokens.to(device), "cond_mask": mask.to(device)}


def _numbers(model, seconds: torch.Tensor, device) -> dict:
    kinds = getattr(model, "_kinds", {})
    out = {}
    if "seconds_start" in kinds:
        out["seconds_start"] = torch.zeros_like(seconds).to(device)
    if "seconds_total" in kinds:
        out["seconds_total"] = seconds.to(device)
    return out


# --------------------------------------------------------------------------------------------
# the trainer


class _Trainer:
    def __init__(self, cfg: dict, progress, should_stop, log):
        self.cfg, self.progress, self.should_stop = cfg, progress, should_stop
        self.rt = _Runtime(cfg)
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self.run_dir = Path(cfg["run_dir"])
        self.data = ClipCache(cfg["data"]["cache"])
        self.spec = self.data.spec
        self.train_ids, self.val_ids = _split(len(self.data), cfg["data"]["val_clips"], cfg["seed"])
        self.text = _Text(cfg, self.rt.device)
        model, self.objective, self.carried, self.src_meta = _build_model(cfg, self.spec, self.text.dim)
        if self.text.t5 is not None and "prompt" in model.cross_attention_cond_ids:
            want = model.conditioner.conditioners["prompt"].text_dim
            if want != self.text.dim:
                raise ModelError(f"the model's prompt conditioner takes {want}-wide tokens but the T5 in "
                                 f"{cfg['text']['encoder']} gives {self.text.dim}")
        if cfg["train"]["gradient_checkpointing"]:
            model.set_gradient_checkpointing(True)
        model.train().requires_grad_(True)
        model.to(self.rt.device)
        self.model = model
        o = cfg["optim"]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=float(o["lr"]), betas=tuple(float(b) for b in o["betas"]),
                                     weight_decay=float(o["weight_decay"]), eps=float(o["eps"]))
        self.ema = None
        if cfg["ema"]["enabled"]:
            self.ema = {n: p.detach().float().clone() for n, p in model.named_parameters()}
        self.gen = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]) * 1_000_003 + self.rt.rank)
        self.step = 0
        self.sampler = _Sampler(self.train_ids, cfg["seed"])
        self.last_loss: float | None = None
        self.resumed_from: Path | None = None
        if cfg["resume"]:
            st = latest_state(self.run_dir)
            if st is not None:
                self._load_state(st)
        if self.rt.acc is not None:
            self.model, self.opt = self.rt.acc.prepare(self.model, self.opt)
        self.tb = None
        if self.rt.is_main and cfg["log"]["tensorboard"]:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: CSV only
                self.tb = None
        self._val_tools = None

    # ---- state

    def _load_state(self, folder: Path) -> None:
        from ..model_io.weights import read_safetensors

        info = json.loads((folder / "trainer.json").read_text())
        if int(info.get("world_size", 1)) != self.rt.world:
            self._log(f"warning: resuming a run saved with {info.get('world_size')} process(es) on {self.rt.world}: "
                      "the data order continues but is not the one an uninterrupted run would have used")
        sd, _ = read_safetensors(folder / "model.safetensors")
        self.model.load_state_dict(sd, strict=True)
        if self.ema is not None and (folder / "ema.safetensors").is_file():
            ema, _ = read_safetensors(folder / "ema.safetensors")
            self.ema = {k: v.float() for k, v in ema.items()}
        opt_t = {}
        if (folder / "optimizer.safetensors").is_file():
            opt_t, _ = read_safetensors(folder / "optimizer.safetensors")
        opt_sd = _optimizer_from_flat(opt_t, info["optimizer"])
        self.opt.load_state_dict(opt_sd)
        self.step = int(info["step"])
        self.sampler = _Sampler(self.train_ids, self.cfg["seed"], info["data"]["epoch"], info["data"]["index"])
        self.last_loss = info.get("last_loss")
        rng_file = folder / f"rng-{self.rt.rank}.json"
        if rng_file.is_file():
            _set_rng_state(json.loads(rng_file.read_text()), self.gen)
        self.resumed_from = folder
        self._truncate_logs(self.step)
        self._log(f"resumed from {folder} at step {self.step}")

    def save_state(self) -> Path:
        from ..model_io.weights import write_safetensors

        rt = self.rt
        name = f"step-{self.step:08d}"
        root = self.run_dir / STATE_DIR
        final = root / name
        tmp = root / f".tmp-{name}"
        sd = rt.state_dict(self.model)
        opt_sd = self.opt.state_dict()
        rng = _rng_state(self.gen)
        if rt.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        rt.wait()
        (tmp / f"rng-{rt.rank}.json").write_text(json.dumps(rng))
        if rt.is_main:
            write_safetensors(tmp / "model.safetensors", {k: v for k, v in sd.items()})
            if self.ema is not None:
                write_safetensors(tmp / "ema.safetensors", self.ema)
            tensors, meta = _optimizer_to_flat(opt_sd)
            if tensors:
                write_safetensors(tmp / "optimizer.safetensors", tensors)
        rt.wait()
        if rt.is_main:
            info = {"step": self.step, "data": {"epoch": self.sampler.epoch, "index": self.sampler.index},
                    "optimizer": meta, "last_loss": self.last_loss, "world_size": rt.world,
                    "lr": lr_at(self.step, self.cfg["optim"], self.cfg["train"]["max_steps"]),
                    "schedule": {k: self.cfg["optim"][k] for k in ("lr", "warmup_steps", "schedule", "min_lr_ratio")},
                    "config": self.cfg, "time": time.time()}
            write_json(tmp / "trainer.json", info)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            write_json(root / "latest.json", {"dir": name, "step": self.step})
            _prune(root, "step-*", int(self.cfg["checkpoint"]["keep_last"]))
        rt.wait()
        return final

    def export(self, name: str | None = None) -> Path | None:
        """Write a V2M checkpoint (EMA weights by default) with the training curve spec."""
        from ..model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint

        rt = self.rt
        sd = rt.state_dict(self.model)
        if not rt.is_main:
            rt.wait()
            return None
        model = rt.unwrap(self.model)
        state = {k: v.detach().cpu() for k, v in sd.items()}
        if self.cfg["checkpoint"]["export"] == "ema" and self.ema is not None:
            for k, v in self.ema.items():
                state[k] = v.to(state[k].dtype)
        state.update(self.carried)
        codec = dict(self.spec["codec"])
        if codec.get("type") == "oobleck" and not any(k.startswith("pretransform.") for k in state):
            from ..model_io.codec import make_codec

            vae = make_codec(codec)
            state.update({"pretransform.model." + k: v for k, v in vae.state_dict().items()})
        src_curve = dict(self.src_meta.get("curve") or {})
        enc = dict(self.spec["encoder"])
        curve = {
            "encoder": self.cfg["curve"]["video_encoder"] or src_curve.get("encoder", "dinov2-large"),
            "music_encoder": enc.get("id"),
            "music_encoder_spec": enc,
            "standardise": True,
            "smoothing_seconds": float(self.spec["smoothing_seconds"]),
            "window": "hann",
            "channels": int(model.curve_channels),
            "clip_seconds": float(self.spec["clip_duration"]),
        }
        meta = {
            "v2m_format": V2M_FORMAT,
            "model_config": model.model_config,
            "objective": self.objective,
            "latent_rate": float(self.spec["latent_rate"]),
            "sample_rate": int(self.spec["sample_rate"]),
            "curve": curve,
            "codec": codec,
            "text": self.text.meta(self.cfg),
            "training": {"step": self.step, "weights": self.cfg["checkpoint"]["export"] if self.ema is not None else "model",
                         "cache": self.cfg["data"]["cache"], "seed": self.cfg["seed"],
                         "base": self.src_meta.get("base") or (os.path.basename(self.cfg["model"]["from_checkpoint"])
                                                               if self.cfg["model"]["from_checkpoint"] else "from_config")},
        }
        out = self.run_dir / CKPT_DIR / (name or f"v2m-step-{self.step:08d}.safetensors")
        save_v2m_checkpoint(out, state, meta)
        if name is None:
            _prune(out.parent, "v2m-step-*.safetensors", int(self.cfg["checkpoint"]["keep_last"]))
        rt.wait()
        return out

    # ---- logging

    def _csv(self, name: str, row: dict) -> None:
        if not self.rt.is_main:
            return
        p = self.run_dir / name
        new = not p.exists()
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def _truncate_logs(self, step: int) -> None:
        """Drop log rows a killed run wrote after the state we resume from."""
        if not self.rt.is_main:
            return
        for name in ("train_log.csv", "val_log.csv"):
            p = self.run_dir / name
            if not p.is_file():
                continue
            with open(p, newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows:
                continue
            keep = [r for r in rows if int(r["step"]) <= step]
            with open(p, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(keep)

    # ---- one optimiser step

    def _loss(self, batch: dict) -> torch.Tensor:
        from .model import flow

        dev = self.rt.device
        core = self.rt.unwrap(self.model)
        x0 = batch["latents"].to(dev)
        curve = batch["curves"].to(dev)
        cond = dict(self.text(core, batch["captions"], dev))
        cond.update(_numbers(core, batch["seconds"], dev))
        t = self.cfg["train"]
        with self.rt.autocast():
            return flow.rf_loss(flow.velocity_model(self.model, self.objective), x0, curve=curve, generator=self.gen,
                                t_sampling=t["t_sampling"], p_drop_text=float(t["p_drop_text"]),
                                p_drop_curve=float(t["p_drop_curve"]), **cond)

    def train_step(self) -> tuple[float, float, float]:
        t = self.cfg["train"]
        bs, ga = int(t["batch_size"]), int(t["grad_accum"])
        lr = lr_at(self.step, self.cfg["optim"], int(t["max_steps"]))
        for g in self.opt.param_groups:
            g["lr"] = lr
        total = 0.0
        grad_norm = float("nan")
        clip = float(self.cfg["optim"]["grad_clip"])
        acc = self.rt.acc
        for micro in range(ga):
            ids = self.sampler.take(bs * self.rt.world)[self.rt.rank::self.rt.world]
            batch = self.data.batch(ids)
            if acc is not None:
                with acc.accumulate(self.model):
                    loss = self._loss(batch)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        if clip > 0:
                            grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), clip))
                        self.opt.step()
                        self.opt.zero_grad(set_to_none=True)
            else:
                loss = self._loss(batch)
                (loss / ga).backward()
            total += float(loss.detach()) / ga
        if acc is None:
            if clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        if acc is not None and self.rt.world > 1:
            v = torch.tensor([total], device=self.rt.device)
            total = float(acc.reduce(v, reduction="mean"))
        if self.ema is not None:
            decay = min(float(self.cfg["ema"]["decay"]), (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for n, p in self.rt.unwrap(self.model).named_parameters():
                    self.ema[n].lerp_(p.detach().float().to(self.ema[n].device), 1.0 - decay)
        self.step += 1
        self.last_loss = total
        return total, lr, grad_norm

    # ---- validation

    def _swap_ema(self):
        model = self.rt.unwrap(self.model)
        if self.ema is None:
            return None
        backup = {n: p.detach().clone() for n, p in model.named_parameters()}
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(self.ema[n].to(p.device, p.dtype))
        return backup

    def _restore(self, backup) -> None:
        if backup is None:
            return
        with torch.no_grad():
            for n, p in self.rt.unwrap(self.model).named_parameters():
                p.copy_(backup[n])

    def _curve_tools(self):
        if self._val_tools is None:
            from .music_encoders import CodecMusicEncoder, get_music_encoder
            from ..model_io.codec import make_codec

            codec = make_codec(self.spec["codec"])
            if isinstance(codec, torch.nn.Module):
                codec = codec.to(self.rt.device)
            enc_spec = dict(self.spec["encoder"])
            eid = enc_spec.pop("id")
            if eid == "codec":
                enc = CodecMusicEncoder(codec)
            elif eid == "musicfm":
                path = self.cfg["validation"].get("music_encoder_path")
                if not path:
                    raise V2MError("set validation.music_encoder_path to the MusicFM checkpoint for the curve metric")
                enc = get_music_encoder("musicfm", path=path, layer=enc_spec.get("layer", 7))
            else:
                enc_spec.pop("checkpoint", None)
                enc = get_music_encoder(eid, **enc_spec)
            self._val_tools = (codec, enc)
        return self._val_tools

    @torch.no_grad()
    def validate(self) -> dict:
        from .model import flow
        from .metrics import _pearson

        if len(self.val_ids) == 0 or not self.rt.is_main:
            return {}
        v = self.cfg["validation"]
        model = self.rt.unwrap(self.model)
        backup = self._swap_ema()
        was_training = model.training
        model.eval()
        try:
            batch = self.data.batch(self.val_ids)
            dev = self.rt.device
            x0, target = batch["latents"].to(dev), batch["curves"]
            cond = dict(self.text(model, batch["captions"], dev))
            cond.update(_numbers(model, batch["seconds"], dev))
            g = torch.Generator(device="cpu").manual_seed(int(self.cfg["seed"]) + 4242)
            vel = flow.velocity_model(model, self.objective)
            with self.rt.autocast():
                val_loss = float(flow.rf_loss(vel, x0, curve=target.to(dev), generator=g, t_sampling="uniform", **cond))
            out = {"val_loss": val_loss}
            if v["curve_metric"]:
                try:
                    codec, enc = self._curve_tools()
                except V2MError as exc:
                    self._log(f"validation: no curve metric ({exc})")
                    v["curve_metric"] = False
                    return out
                den = flow.CFGDenoiser(vel, float(v["cfg_scale"]), uncond="both")
                noise = flow.make_noise(tuple(x0.shape), int(self.cfg["seed"]) + 777, device=dev)
                with self.rt.autocast():
                    lat = flow.sample_euler(den, noise, flow.rf_timesteps(int(v["steps"])),
                                            extra_args={"curve": target.to(dev), **cond}, disable=True)
                lat = lat.float()
                cors = []
                dur = float(self.spec["clip_duration"])
                from .music_encoders import CodecMusicEncoder

                for j in range(lat.shape[0]):
                    if isinstance(enc, CodecMusicEncoder):
                        feats = enc.features_from_latents(lat[j], dur)
                    else:
                        p = next(codec.parameters(), None) if isinstance(codec, torch.nn.Module) else None
                        wave = codec.decode(lat[j:j + 1].to(p.dtype) if p is not None else lat[j:j + 1].cpu())
                        feats = enc.encode(wave[0].float().cpu().numpy(), codec.sample_rate)
                    gen_curve = curves.conditioning_curve(feats, length=lat.shape[-1],
                                                          smoothing_seconds=float(self.spec["smoothing_seconds"]))
                    c = _pearson(np.asarray(gen_curve.values, np.float64), target[j].double().numpy())
                    if c is not None:
                        cors.append(c)
                out["curve_corr"] = float(np.mean(cors)) if cors else float("nan")
            return out
        finally:
            self._restore(backup)
            model.train(was_training)

    # ---- loop

    def run(self) -> TrainResult:
        cfg = self.cfg
        max_steps = int(cfg["train"]["max_steps"])
        ck_every, val_every, log_every = (int(cfg["checkpoint"]["every"]), int(cfg["validation"]["every"]),
                                          int(cfg["log"]["every"]))
        losses: list[tuple[int, float]] = []
        start_step, t0 = self.step, time.time()
        val: dict | None = None
        stopped = False
        state_dir = self.resumed_from
        if self.rt.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", cfg)
        while self.step < max_steps:
            loss, lr, gn = self.train_step()
            losses.append((self.step, loss))
            if not math.isfinite(loss):
                state_dir = self.save_state()
                raise V2MError(f"training loss became {loss} at step {self.step}: lower optim.lr or use fp32; "
                               f"the state before is in {state_dir.parent}")
            elapsed = time.time() - t0
            done = self.step - start_step
            eta = elapsed / done * (max_steps - self.step) if done else None
            if self.step % log_every == 0 or self.step == max_steps:
                self._csv("train_log.csv", {"step": self.step, "epoch": self.sampler.epoch, "loss": loss, "lr": lr,
                                            "grad_norm": gn, "seconds": round(elapsed, 3)})
                if self.tb is not None:
                    self.tb.add_scalar("train/loss", loss, self.step)
                    self.tb.add_scalar("train/lr", lr, self.step)
            if val_every > 0 and self.step % val_every == 0:
                val = self.validate()
                if val:
                    self._csv("val_log.csv", {"step": self.step, "val_loss": val.get("val_loss"),
                                              "curve_corr": val.get("curve_corr")})
                    if self.tb is not None:
                        for k, x in val.items():
                            self.tb.add_scalar(f"val/{k}", x, self.step)
                self.rt.wait()
            if self.progress is not None:
                self.progress({"step": self.step, "max_steps": max_steps, "loss": loss, "lr": lr,
                               "epoch": self.sampler.epoch, "eta_seconds": eta, "val": val})
            stop = bool(self.should_stop()) if self.should_stop is not None else False
            if ck_every > 0 and self.step % ck_every == 0 and self.step < max_steps and not stop:
                state_dir = self.save_state()
                self.export()
            if stop:
                state_dir = self.save_state()
                path = self.export()
                stopped = True
                break
        if not stopped:
            if self.resumed_from is None or self.step != int(json.loads((self.resumed_from / "trainer.json").read_text())["step"]):
                state_dir = self.save_state()
            path = self.export("v2m-final.safetensors")
        if self.tb is not None:
            self.tb.flush()
        return TrainResult(checkpoint_path=None if path is None else str(path), step=self.step, last_loss=self.last_loss,
                           stopped=stopped, run_dir=str(self.run_dir), state_dir=None if state_dir is None else str(state_dir),
                           losses=losses, val=val)


def train(
    config: Mapping[str, Any],
    *,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    base_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train (or resume the run in ``config["run_dir"]``) and write a V2M checkpoint.

    ``config`` is a raw or resolved config dict (see :data:`EXAMPLE_TOML`); relative paths are
    taken against ``base_dir`` (default: the current folder). ``progress(info)`` gets ``step``,
    ``max_steps``, ``loss``, ``lr``, ``epoch``, ``eta_seconds`` and the last ``val`` after every
    step. ``should_stop()`` is checked after every step: when it returns True a resumable state
    and a checkpoint are written and ``TrainResult.stopped`` is True.
    """
    cfg = resolve_config(config, base_dir=base_dir)
    trainer = _Trainer(cfg, progress, should_stop, log)
    return trainer.run()
