"""Fine-tuning a V2M DiT on a prepared cache (paper §3.3, eq. 6) with exact resume.

``train(config)`` reads clips from a cache made by :mod:`core.train.prepare`, trains with
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
condition (one all-zero token, ``V2MDiT.conditioning(text=None)``), which is exactly what inference
feeds a checkpoint whose metadata says ``text.type = "none"``. A learned per-caption embedding
was not used on purpose: inference could not reproduce it. Otherwise give a T5 folder.

Multi-GPU: ``accelerate launch -m v2m_zero.core.cli train cfg.toml`` (DDP). Accelerate is
imported only when used (``train.accelerate = "auto"`` uses it when launched by accelerate or
torchrun, ``true`` always, ``false`` never). FSDP: run ``accelerate config`` and choose FSDP
(e.g. ``fsdp_sharding_strategy: FULL_SHARD``, ``fsdp_state_dict_type: FULL_STATE_DICT``,
``fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP`` with ``fsdp_transformer_layer_cls_to_wrap:
TransformerBlock``), then ``accelerate launch --config_file fsdp.yaml -m v2m_zero.core.cli train
cfg.toml``; the full state dict is gathered for checkpoints, and the EMA (keyed by the unwrapped
names) is updated from the gathered parameters each step (:mod:`.ema`; tests/test_fsdp_ema.py). (Exact
resume is verified on a single CPU process only; under FSDP the optimiser state is saved as the wrapped
optimiser gives it.)
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_json
from ..errors import ModelError, V2MError
from .config import lr_at, resolve_config
from ..timing.spec import CurveSpec
from .cache import ClipCache
from .checks import check_run
from .data import DataOrder, split_clips
from .ema import update_ema, with_ema
from .runtime import Runtime
from .state import latest_state, load_state, prune, save_state
from .validate import validate

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
    adapter: bool = False  # checkpoint_path is a LoRA adapter (apply it on top of the base checkpoint)
    merged_path: str | None = None  # base + adapter as one checkpoint (lora.export_merged)


# model and text


def _build_model(cfg: Mapping, spec: Mapping, text_dim: int | None, carry_codec: bool = True):
    from ..model.dit import V2MDiT, make_model_config

    m = cfg["model"]
    carried: dict[str, torch.Tensor] = {}
    src_meta: dict = {}
    if m["from_checkpoint"]:
        from ...model_io.formats import read_dit as build_dit_from_checkpoint  # any DiT-carrying file
        from ...model_io.weights import read_safetensors

        model = build_dit_from_checkpoint(m["from_checkpoint"], device="cpu")
        model = model.float()
        src_meta = dict(model.meta)
        try:
            pre, _ = read_safetensors(m["from_checkpoint"], prefix="pretransform.") if carry_codec else ({}, {})
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
        raise ModelError(f"the model takes {model.config.io_channels} latent channels but the "
                         f"cache ({cfg['data']['cache']}) holds {spec['latent_channels']}: "
                         "prepare the cache with the model's codec")
    if model.curve_channels < 1:
        raise ModelError("the model has no event-curve input channel: make "
                         "the checkpoint with `v2m-zero init-checkpoint`")
    if model.config.patch_size > 1 and int(spec["latent_length"]) % model.config.patch_size:
        raise ModelError(f"clip latent length {spec['latent_length']} is not a multiple of the DiT patch size "
                         f"{model.config.patch_size}: prepare with another --clip-seconds")
    return model, objective, carried, src_meta


class CaptionText:
    """Captions → the model's conditioning inputs: text-encoder tokens (T5, or T5Gemma for Stable
    Audio 3), or the null text condition (``text = none``)."""

    def __init__(self, cfg: Mapping, device):
        enc = cfg["text"]["encoder"]
        self.t5 = None
        if enc not in (None, "", "none"):
            from ...model_io.folders import resolve_model_dir
            from ...model_io.text import load_text_encoder

            # a name means a folder under the models roots; a path (folder or ComfyUI file) is used as given
            path = enc if (os.path.isabs(enc) or os.path.exists(enc)) else resolve_model_dir(enc, "text_encoders")
            base = _base_text_meta(cfg)
            kind = base.get("type") if base.get("type") in ("t5", "t5gemma") else None
            # T5Gemma's length is part of what SA3 learned (it attends to every padded position)
            length = int(base.get("max_length") or 256) if kind == "t5gemma" else int(cfg["text"]["max_length"])
            self.t5 = load_text_encoder(path, kind=kind, max_length=length, device=device)

    @property
    def dim(self) -> int | None:
        return None if self.t5 is None else self.t5.dim

    def meta(self, cfg) -> dict:
        if self.t5 is None:
            return {"type": "none"}
        return {"type": getattr(self.t5, "kind", "t5"), "max_length": int(self.t5.max_length)}

    def conditioning(self, model, batch: dict, device) -> dict:
        """``model.conditioning`` of a data batch: its captions and clip lengths (``seconds``)."""
        captions = list(batch["captions"])
        text = self.t5.encode(captions) if self.t5 is not None and model.takes_text else None
        return model.conditioning(text=text, seconds=batch["seconds"], batch=len(captions), device=device)


def _base_text_meta(cfg: Mapping) -> dict:
    """The text encoder the base checkpoint was made with (its metadata ``text``), if any."""
    path = cfg["model"]["from_checkpoint"]
    if not path:
        return {}
    from ...model_io.checkpoint import read_metadata
    from ...model_io.formats import is_format

    try:
        return dict(read_metadata(path).get("text") or {})
    except ModelError:  # not a V2M checkpoint: a Stable Audio 3 base file is initialised in memory
        return {"type": "t5gemma", "max_length": 256} if is_format(path, "sa3") else {}


# --------------------------------------------------------------------------------------------
# the trainer


def _compile(model, device) -> None:
    """train.compile: the transformer blocks through torch.compile (or a one-line reason why not)."""
    from ..model.fast import compile_blocks, compile_unavailable

    why = compile_unavailable(device)
    if why:
        raise V2MError(f"training config: train.compile = true, but {why}. "
                       "Fix: install it, or set train.compile = false")
    compile_blocks(model)


class Trainer:
    def __init__(self, cfg: dict, progress, should_stop, log):
        self.cfg, self.progress, self.should_stop = cfg, progress, should_stop
        self.rt = Runtime(cfg)
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self.run_dir = Path(cfg["run_dir"])
        self.data = ClipCache(cfg["data"]["cache"])
        self.spec = self.data.spec
        self.checks = check_run(cfg, self.spec)  # refuses a mismatched cache / base / config before any work
        for w in self.checks.warnings:
            self._log(f"warning: {w}")
        self.train_ids, self.val_ids = split_clips(len(self.data), cfg["data"]["val_clips"], cfg["seed"])
        self.text = CaptionText(cfg, self.rt.device)
        use_lora = bool(cfg["lora"]["enabled"])
        model, self.objective, self.carried, self.src_meta = _build_model(cfg, self.spec, self.text.dim, not use_lora)
        if self.text.t5 is not None and model.takes_text:
            want = model.text_dim
            if want != self.text.dim:
                raise ModelError(f"the model's prompt conditioner takes {want}-wide tokens but the T5 in "
                                 f"{cfg['text']['encoder']} gives {self.text.dim}")
        if cfg["train"]["gradient_checkpointing"]:
            model.set_gradient_checkpointing(cfg["train"]["gradient_checkpointing"])
        if cfg["train"]["compile"]:
            _compile(model, self.rt.device)
        model.train().requires_grad_(True)
        self.lora = None
        if use_lora:
            from .lora import param_groups, start_lora

            self.lora = start_lora(model, cfg)
        model.to(self.rt.device)
        self.model = model
        o = cfg["optim"]
        self.params = [p for p in model.parameters() if p.requires_grad]
        groups = param_groups(model, self.lora, o["weight_decay"]) if self.lora else self.params
        self.opt = torch.optim.AdamW(groups, lr=float(o["lr"]), betas=tuple(float(b) for b in o["betas"]),
                                     weight_decay=float(o["weight_decay"]), eps=float(o["eps"]),
                                     fused=self.rt.fused_optimizer or None)
        self.ema = None
        if cfg["ema"]["enabled"]:  # of the trained parameters (all of them, or LoRA's)
            self.ema = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.gen = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]) * 1_000_003 + self.rt.rank)
        self.step = 0
        self.sampler = DataOrder(self.train_ids, cfg["seed"])
        self.last_loss: float | None = None
        self.resumed_from: Path | None = None
        if cfg["resume"]:
            st = latest_state(self.run_dir)
            if st is not None:
                load_state(self, st)
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

    def curve_meta(self, model) -> dict:
        """The cache's curve spec, with the video encoder of the config or of the base checkpoint, and any
        music-encoder fallback the checks found."""
        video_encoder = self.cfg["curve"]["video_encoder"] or CurveSpec.from_dict(self.src_meta.get("curve")).encoder
        curve = (CurveSpec.from_cache(self.spec, encoder=video_encoder)
                 .replace(channels=int(model.curve_channels)).to_dict())
        curve.update(self.checks.curve_record)
        return curve

    def export(self, name: str | None = None) -> Path | None:
        """Write a V2M checkpoint (EMA weights by default) with the training curve spec; a LoRA run writes
        its adapter instead (``name`` None: a periodic one, pruned to ``keep_last``)."""
        from ...model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint

        rt = self.rt
        if self.lora is not None:
            with torch.no_grad(), rt.full_parameters(self.model) as params:  # every rank: FSDP gathers
                values = {n: p.detach().to("cpu", copy=True) for n, p in params if p.requires_grad}
            if not rt.is_main:
                rt.wait()
                return None
            from .lora import export_adapter

            out = self.run_dir / CKPT_DIR / (name or f"v2m-lora-step-{self.step:08d}.safetensors")
            export_adapter(self, out, self.curve_meta(rt.unwrap(self.model)), values)
            if name is None:
                prune(out.parent, "v2m-lora-step-*.safetensors", int(self.cfg["checkpoint"]["keep_last"]))
            rt.wait()
            return out
        sd = rt.state_dict(self.model)
        if not rt.is_main:
            rt.wait()
            return None
        model = rt.unwrap(self.model)
        state = {k: v.detach().cpu() for k, v in sd.items()}
        if self.cfg["checkpoint"]["export"] == "ema" and self.ema is not None:
            state = with_ema(state, self.ema)
        state.update(self.carried)
        codec = dict(self.spec["codec"])
        if codec.get("type") == "oobleck" and not any(k.startswith("pretransform.") for k in state):
            from ...model_io.codec import make_codec

            vae = make_codec(codec)
            state.update({"pretransform.model." + k: v for k, v in vae.state_dict().items()})
        meta = {
            "v2m_format": V2M_FORMAT,
            "model_config": model.model_config,
            "objective": self.objective,
            "latent_rate": float(self.spec["latent_rate"]),
            "sample_rate": int(self.spec["sample_rate"]),
            "curve": self.curve_meta(model),
            "codec": codec,
            "text": self.text.meta(self.cfg),
            "training": {"step": self.step,
                         "weights": self.cfg["checkpoint"]["export"] if self.ema is not None else "model",
                         "cache": self.cfg["data"]["cache"], "seed": self.cfg["seed"],
                         "base": (self.src_meta.get("base")
                                  or (os.path.basename(self.cfg["model"]["from_checkpoint"])
                                      if self.cfg["model"]["from_checkpoint"] else "from_config"))},
        }
        out = self.run_dir / CKPT_DIR / (name or f"v2m-step-{self.step:08d}.safetensors")
        save_v2m_checkpoint(out, state, meta)
        if name is None:
            prune(out.parent, "v2m-step-*.safetensors", int(self.cfg["checkpoint"]["keep_last"]))
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
        from ..model import flow

        dev = self.rt.device
        core = self.rt.unwrap(self.model)
        x0 = batch["latents"].to(dev)
        curve = batch["curves"].to(dev)
        cond = self.text.conditioning(core, batch, dev)
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
        for _micro in range(ga):
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
            self._update_ema()
        self.step += 1
        self.last_loss = total
        return total, lr, grad_norm

    def _update_ema(self) -> None:
        """EMA of the trained parameters by the unwrapped names, from the whole parameters (:mod:`.ema`)."""
        decay = min(float(self.cfg["ema"]["decay"]), (1 + self.step) / (10 + self.step))
        with torch.no_grad(), self.rt.full_parameters(self.model) as params:
            update_ema(self.ema, params, decay)

    # ---- loop

    def run(self) -> TrainResult:
        cfg = self.cfg
        max_steps = int(cfg["train"]["max_steps"])
        ck_every, val_every, log_every = (int(cfg["checkpoint"]["every"]), int(cfg["validation"]["every"]),
                                          int(cfg["log"]["every"]))
        losses: list[tuple[int, float]] = []
        start_step, t0 = self.step, time.time()
        val: dict | None = None
        stopped, merged = False, None
        state_dir = self.resumed_from
        if self.rt.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", cfg)
        while self.step < max_steps:
            loss, lr, gn = self.train_step()
            losses.append((self.step, loss))
            if not math.isfinite(loss):
                state_dir = save_state(self)
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
                val = validate(self)
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
                state_dir = save_state(self)
                self.export()
            if stop:
                state_dir = save_state(self)
                path = self.export()
                stopped = True
                break
        if not stopped:
            if (self.resumed_from is None
                    or self.step != int(json.loads((self.resumed_from / "trainer.json").read_text())["step"])):
                state_dir = save_state(self)
            path = self.export("v2m-lora-final.safetensors" if self.lora is not None else "v2m-final.safetensors")
            if self.lora is not None and self.cfg["lora"]["export_merged"] and path is not None:
                from .lora import export_merged

                merged = export_merged(self, path)
        if self.tb is not None:
            self.tb.flush()
        return TrainResult(checkpoint_path=None if path is None else str(path), step=self.step,
                           last_loss=self.last_loss, stopped=stopped, run_dir=str(self.run_dir),
                           state_dir=None if state_dir is None else str(state_dir),
                           losses=losses, val=val, adapter=self.lora is not None,
                           merged_path=None if merged is None else str(merged))


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
    trainer = Trainer(cfg, progress, should_stop, log)
    return trainer.run()
