"""LoRA fine-tuning of the V2M DiT with peft: which parameters train, and the adapter a run exports.

peft's LoRA layers are injected into the DiT's attention and MLP projections (``[lora] targets``,
stable-audio-tools module names such as ``self_attn.to_qkv`` or ``ff.ff.2``); every base weight is
frozen. With ``train_curve_weights`` the new curve-channel weights are trained in full: the rows
and columns of ``preprocess_conv`` and the columns of ``transformer.project_in`` that belong to the
curve channel(s). Those two tensors are trainable, but a gradient mask zeroes every other entry and
their parameter group has no weight decay, so AdamW leaves the pretrained (latent) part bit for bit
as it was. The exported adapter (:mod:`model_io.lora`) holds the LoRA factors and the change of the
two curve tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import V2MError

PRE_CONV = "model.model.preprocess_conv.weight"
PROJECT_IN = "model.model.transformer.project_in.weight"
_ADAPTER = "default"


@dataclass
class LoraRun:
    """What a LoRA run trains: peft's factor names and the masked curve tensors (with their base values)."""

    settings: dict
    lora_names: list[str] = field(default_factory=list)
    curve_base: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> base value (CPU, float32)
    curve_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    base_hash: str | None = None
    base_name: str | None = None

    @property
    def trainable(self) -> list[str]:
        return self.lora_names + list(self.curve_base)


def curve_masks(model) -> dict[str, torch.Tensor]:
    """1 where a weight touches the curve channel(s), 0 elsewhere, for preprocess_conv and project_in."""
    c, k, p = model.config.io_channels, model.curve_channels, model.config.patch_size
    conv = torch.zeros(c + k, c + k, 1)
    conv[c:], conv[:, c:] = 1.0, 1.0
    proj = torch.zeros(model.config.embed_dim, (c + k) * p)
    proj[:, c * p:] = 1.0  # patches are flattened channel-major: (channel, patch position)
    return {PRE_CONV: conv, PROJECT_IN: proj}


def add_lora(model, settings: Mapping[str, Any]) -> LoraRun:
    """Inject peft LoRA layers, freeze the base, make the curve weights trainable (masked). In place."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise V2MError("lora.enabled needs peft. Fix: pip install peft (or pip install 'v2m-zero[train]')") from None
    targets = [str(t) for t in settings["targets"]]
    names = [n for n, _ in model.named_modules()]
    for t in targets:
        if not any(n == t or n.endswith("." + t) for n in names):
            linear = sorted({n.split("layers.0.", 1)[1] for n, m in model.named_modules()
                             if "layers.0." in n and isinstance(m, torch.nn.Linear)})
            raise V2MError(f"lora.targets: no module named {t!r} in the DiT; its projections are {', '.join(linear)}")
    model.requires_grad_(False)
    cfg = LoraConfig(r=int(settings["rank"]), lora_alpha=float(settings["alpha"]),
                     lora_dropout=float(settings["dropout"]),
                     target_modules=targets, bias="none")
    inject_adapter_in_model(cfg, model, adapter_name=_ADAPTER)
    run = LoraRun(settings=dict(settings))
    for n, p in model.named_parameters():
        p.requires_grad_(".lora_" in n)
        if ".lora_" in n:
            run.lora_names.append(n)
    if settings.get("train_curve_weights", True) and model.curve_channels > 0:
        params = dict(model.named_parameters())
        for name, mask in curve_masks(model).items():
            p = params[name]
            run.curve_base[name] = p.detach().float().cpu().clone()
            run.curve_masks[name] = mask
            p.requires_grad_(True)
            p.register_hook(lambda g, m=mask: g * m.to(g.device, g.dtype))
    return run


def param_groups(model, run: LoraRun, weight_decay: float) -> list[dict]:
    """AdamW groups: the LoRA factors with weight decay, the masked curve tensors without (see module doc)."""
    params = dict(model.named_parameters())
    groups = [{"params": [params[n] for n in run.lora_names], "weight_decay": float(weight_decay)}]
    if run.curve_base:
        groups.append({"params": [params[n] for n in run.curve_base], "weight_decay": 0.0})
    return groups


def adapter_tensors(values: Mapping[str, torch.Tensor], run: LoraRun) -> dict[str, torch.Tensor]:
    """The adapter file's tensors from the trained values (model parameters or EMA), by peft name."""
    out = {}
    for n in run.lora_names:  # "<module>.lora_A.default.weight" -> "<module>.lora_A.weight"
        out[n.replace(f".{_ADAPTER}.weight", ".weight")] = values[n].detach().float().cpu().contiguous()
    for n, base in run.curve_base.items():
        delta = (values[n].detach().float().cpu() - base) * run.curve_masks[n]
        out[n + ".delta"] = delta.contiguous()
    return out


def adapter_meta(tr, run: LoraRun, curve: dict) -> dict:
    s = run.settings
    return {
        "base": {"name": run.base_name, "content_sha256": run.base_hash},
        "lora": {"rank": int(s["rank"]), "alpha": float(s["alpha"]), "scale": float(s["alpha"]) / int(s["rank"]),
                 "targets": list(s["targets"]), "curve_weights": bool(run.curve_base)},
        "curve": curve,
        "text": tr.text.meta(tr.cfg),
        "objective": tr.objective,
        "latent_rate": float(tr.spec["latent_rate"]),
        "sample_rate": int(tr.spec["sample_rate"]),
        "training": {"step": tr.step, "cache": tr.cfg["data"]["cache"], "seed": tr.cfg["seed"],
                     "weights": tr.cfg["checkpoint"]["export"] if tr.ema is not None else "model"},
    }


def start_lora(model, cfg: Mapping) -> LoraRun:
    """``add_lora`` (factors initialised from ``seed``) plus the base checkpoint's name and content hash
    (recorded in every adapter)."""
    from ...model_io.lora import base_content_hash

    with torch.random.fork_rng(devices=[]):  # the factors' initialisation depends on the seed alone
        torch.manual_seed(int(cfg["seed"]))
        run = add_lora(model, cfg["lora"])
    base = cfg["model"]["from_checkpoint"]
    run.base_name, run.base_hash = os.path.basename(base), base_content_hash(base)
    return run


def export_adapter(tr, out, curve: dict, values: Mapping[str, torch.Tensor] | None = None):
    """Write the run's adapter (EMA or model weights, as ``checkpoint.export`` says) to ``out``. ``values``:
    the trained parameters by unwrapped name, whole (gathered by every rank under FSDP; default: the model's)."""
    from ...model_io.lora import save_adapter

    if values is None:
        values = dict(tr.rt.unwrap(tr.model).named_parameters())
    if tr.cfg["checkpoint"]["export"] == "ema" and tr.ema is not None:
        values = {**values, **tr.ema}
    return save_adapter(out, adapter_tensors(values, tr.lora), adapter_meta(tr, tr.lora, curve))


def export_merged(tr, adapter_path):
    """``<adapter>-merged.safetensors``: base + adapter as one full V2M checkpoint (``lora.export_merged``)."""
    from ...model_io.lora import merge_adapter_into_checkpoint

    out = adapter_path.with_name(adapter_path.stem + "-merged.safetensors")
    return merge_adapter_into_checkpoint(tr.cfg["model"]["from_checkpoint"], adapter_path, out)
