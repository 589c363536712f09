"""Validation during training: loss on held-out clips and the event-curve correlation of sampled clips."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import V2MError
from ..timing import curves
from ..timing.spec import CurveSpec


def _swap_ema(tr):
    model = tr.rt.unwrap(tr.model)
    if tr.ema is None:
        return None
    backup = {n: p.detach().clone() for n, p in model.named_parameters() if n in tr.ema}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in tr.ema:
                p.copy_(tr.ema[n].to(p.device, p.dtype))
    return backup


def _restore(tr, backup) -> None:
    if backup is None:
        return
    with torch.no_grad():
        for n, p in tr.rt.unwrap(tr.model).named_parameters():
            if n in backup:
                p.copy_(backup[n])


def _curve_tools(tr):
    """The codec and music encoder the cache was made with (built once per run)."""
    if tr._val_tools is None:
        from ...model_io.codec import make_codec
        from .music_encoders import make_music_encoder

        codec = make_codec(tr.spec["codec"])
        if isinstance(codec, torch.nn.Module):
            codec = codec.to(tr.rt.device)
        options = {}
        if tr.spec["encoder"].get("id") == "musicfm":
            path = tr.cfg["validation"].get("music_encoder_path")
            if not path:
                raise V2MError("set validation.music_encoder_path to the MusicFM checkpoint for the curve metric")
            options["path"] = path
        tr._val_tools = (codec, make_music_encoder(tr.spec["encoder"], codec=codec, **options))
    return tr._val_tools


def _decode(codec, latents: torch.Tensor) -> np.ndarray:
    p = next(codec.parameters(), None) if isinstance(codec, torch.nn.Module) else None
    wave = codec.decode(latents.to(p.dtype) if p is not None else latents.cpu())
    return wave[0].float().cpu().numpy()


@torch.no_grad()
def validate(tr) -> dict:
    """Validation loss on the held-out clips; with ``validation.curve_metric``, the mean correlation of
    the event curves of clips sampled on the held-out curves with those curves."""
    from ..model import flow

    if len(tr.val_ids) == 0 or not tr.rt.is_main:
        return {}
    v = tr.cfg["validation"]
    model = tr.rt.unwrap(tr.model)
    backup = _swap_ema(tr)
    was_training = model.training
    model.eval()
    try:
        batch = tr.data.batch(tr.val_ids)
        dev = tr.rt.device
        x0, target = batch["latents"].to(dev), batch["curves"]
        cond = tr.text.conditioning(model, batch, dev)
        g = torch.Generator(device="cpu").manual_seed(int(tr.cfg["seed"]) + 4242)
        vel = flow.velocity_model(model, tr.objective)
        with tr.rt.autocast():
            val_loss = float(flow.rf_loss(vel, x0, curve=target.to(dev), generator=g, t_sampling="uniform", **cond))
        out = {"val_loss": val_loss}
        if v["curve_metric"]:
            try:
                codec, enc = _curve_tools(tr)
            except V2MError as exc:
                tr._log(f"validation: no curve metric ({exc})")
                v["curve_metric"] = False
                return out
            with tr.rt.autocast():
                lat = flow.sample(model, tuple(x0.shape), flow.rf_timesteps(int(v["steps"])),
                                  seed=int(tr.cfg["seed"]) + 777, cfg_scale=float(v["cfg_scale"]), uncond="both",
                                  cond=cond, curve=target.to(dev), objective=tr.objective, device=dev)
            lat = lat.float()
            cors = []
            for j in range(lat.shape[0]):
                gen_curve = enc.conditioning_curve(
                    lambda j=j: _decode(codec, lat[j:j + 1]), codec.sample_rate, spec=CurveSpec.from_cache(tr.spec),
                    latents=lat[j], duration=float(tr.spec["clip_duration"]), length=lat.shape[-1])
                c = curves.curve_correlation(np.asarray(gen_curve.values, np.float64), target[j].double().numpy())
                if c is not None:
                    cors.append(c)
            out["curve_corr"] = float(np.mean(cors)) if cors else float("nan")
        return out
    finally:
        _restore(tr, backup)
        model.train(was_training)
