"""Stable Audio 3's DiT (``small-music-base`` and family) as a V2M backbone.

The module tree is the ``stable_audio_3`` reference's, so ``SA3DiT().state_dict()`` has the keys
of an SA3 single-file checkpoint: ``model.model.*`` (the ``DiffusionTransformer``) and
``conditioner.conditioners.*`` (``seconds_total``'s expo-Fourier number embedder and the prompt's
learned ``padding_embedding``). The T5Gemma text encoder and the SAME autoencoder
(``pretransform.model.*``) live elsewhere.

What differs from Stable Audio Open 1.0's DiT (:mod:`.dit`): adaLN global conditioning (the
seconds embedding + timestep embedding modulate every block through ``global_cond_embedder`` and
a per-block ``to_scale_shift_gate``), learned memory tokens, RMS norms (fp32) and RMS q/k norms,
optionally differential attention, exponentially spaced (fixed) timestep features, the prompt's
padded positions replaced by a learned embedding (the text mask itself is not used, as in the
reference), and a per-block local-add conditioning path (``to_local_embed``: the inpainting mask
and masked latents, all zeros for text-to-music, as the reference feeds them).

V2M's event curve is one more input-concat channel, exactly as for SAO 1.0
(``model_io.sao.widen_for_curve``: zero rows/columns in ``preprocess_conv`` and ``project_in``),
so an initialised V2M checkpoint generates what the base does. :class:`SA3DiT` keeps
:class:`~.dit.V2MDiT`'s public API (``conditioning``, ``takes_text``, ``text_dim``,
``curve_channels``, ``forward(x, t, curve=, cond_tokens=, ..., cond_drop=)``), so ``flow.sample``,
CFG and the trainer use it unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ModelError, V2MError
from .blocks import FourierFeatures, mlp
from .conditioners import MultiConditioner
from .dit import V2MDiT
from .sa3_blocks import ContinuousTransformer, ExpoFourierFeatures

ARCHITECTURE = "stable_audio_3"
LOCAL_ADD_IDS = ("inpaint_mask", "inpaint_masked_input")


@dataclass
class SA3DiTConfig:
    """The ``diffusion.config`` block of an SA3 ``model_config.json`` (stable-audio-tools names).

    ``norm_kwargs``/``attn_kwargs``/``ff_kwargs`` are read into flat fields and written back nested.
    Defaults are the reference's (``RMSNorm`` eps 1e-5, q/k norm eps 1e-6).
    """

    io_channels: int = 256
    embed_dim: int = 1024
    depth: int = 20
    num_heads: int = 16
    cond_token_dim: int = 768
    project_cond_tokens: bool = True
    global_cond_dim: int = 768
    project_global_cond: bool = True
    input_concat_dim: int = 0
    local_add_cond_dim: int | None = None
    patch_size: int = 1
    num_memory_tokens: int = 64
    timestep_features_type: str = "expo"
    timestep_features_dim: int = 256
    timestep_features_logsnr: bool = False
    norm_type: str = "rms_norm"
    norm_eps: float = 1e-5
    norm_fp32: bool = True
    qk_norm: str = "rms"
    qk_norm_eps: float = 1e-6
    differential: bool = False
    ff_mult: float = 4.0
    extra: dict = field(default_factory=dict)  # accepted reference fields that do not change the maths

    _FIXED = {"transformer_type": "continuous_transformer", "global_cond_type": "adaLN", "timestep_cond_type": "global",
              "prepend_cond_dim": 0, "rotary_pos_emb": True, "cross_attn_rotary_pos_emb": False, "conformer": False,
              "layer_scale": False, "sliding_window": None, "zero_init_branch_outputs": True}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SA3DiTConfig":
        d = dict(d)
        nk, ak, fk = (dict(d.pop(k, None) or {}) for k in ("norm_kwargs", "attn_kwargs", "ff_kwargs"))
        flat = {"norm_eps": nk.pop("eps", 1e-5), "norm_fp32": nk.pop("force_fp32", False),
                "qk_norm": ak.pop("qk_norm", "none"), "qk_norm_eps": ak.pop("qk_norm_eps", 1e-6),
                "differential": ak.pop("differential", False), "ff_mult": fk.pop("mult", 4.0)}
        # options whose default keeps the maths we implement may be present; anything else is refused
        harmless = {("attn_kwargs", "feat_scale", False), ("ff_kwargs", "no_bias", False), ("ff_kwargs", "glu", True)}
        problems = [f"{grp}.{k}={v!r}" for grp, kw in (("norm_kwargs", nk), ("attn_kwargs", ak), ("ff_kwargs", fk))
                    for k, v in kw.items() if (grp, k, v) not in harmless]
        extra = {}
        for k in [k for k in d if k in cls._FIXED or k in ("diffusion_objective", "modular_local_cond_configs")]:
            v = d.pop(k)
            if k == "modular_local_cond_configs":
                if v:
                    problems.append(f"{k}={v!r}")
            elif k != "diffusion_objective" and v != cls._FIXED[k]:
                problems.append(f"{k}={v!r}")
            else:
                extra[k] = v
        known = {f.name for f in fields(cls)} - set(flat) - {"extra"}
        problems += [f"unknown field {k!r}" for k in sorted(set(d) - known)]
        if problems:
            raise ModelError("unsupported Stable Audio 3 DiT config: " + "; ".join(problems))
        cfg = cls(**d, **flat, extra=extra)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("extra", "norm_eps", "norm_fp32", "qk_norm", "qk_norm_eps", "differential", "ff_mult")}
        out.update(self.extra)
        out["norm_kwargs"] = {"eps": self.norm_eps, "force_fp32": self.norm_fp32}
        out["attn_kwargs"] = {"qk_norm": self.qk_norm, "qk_norm_eps": self.qk_norm_eps,
                              "differential": self.differential}
        out["ff_kwargs"] = {"mult": self.ff_mult}
        out["global_cond_type"] = "adaLN"
        return out

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def cond_embed_dim(self) -> int:
        return self.embed_dim if self.project_cond_tokens else self.cond_token_dim

    def validate(self) -> None:
        problems = []
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if self.timestep_features_type not in ("expo", "learned"):
            problems.append(f"timestep_features_type {self.timestep_features_type!r} (expo or learned)")
        if self.norm_type != "rms_norm":
            problems.append(f"norm_type {self.norm_type!r} (only rms_norm)")
        if self.qk_norm not in ("rms", "none"):
            problems.append(f"attn_kwargs.qk_norm {self.qk_norm!r} (rms or none)")
        if self.patch_size < 1 or self.depth < 1 or self.io_channels < 1 or self.input_concat_dim < 0:
            problems.append("patch_size, depth, io_channels must be >= 1 and input_concat_dim >= 0")
        if self.cond_token_dim <= 0 or self.global_cond_dim <= 0:
            problems.append("cond_token_dim and global_cond_dim must be > 0 (SA3 is prompt- and seconds-conditioned)")
        if problems:
            raise ModelError("bad Stable Audio 3 DiT config: " + "; ".join(problems))


class SA3DiffusionTransformer(nn.Module):
    """The reference ``DiffusionTransformer`` with ``global_cond_type="adaLN"`` (keys ``model.model.*``)."""

    def __init__(self, c: SA3DiTConfig):
        super().__init__()
        self.config = c
        d = c.embed_dim
        if c.timestep_features_type == "expo":
            self.timestep_features = ExpoFourierFeatures(c.timestep_features_dim)
        else:
            self.timestep_features = FourierFeatures(1, c.timestep_features_dim)
        self.to_timestep_embed = mlp(c.timestep_features_dim, d, bias=True)
        self.to_cond_embed = mlp(c.cond_token_dim, c.cond_embed_dim, bias=False)
        self.to_global_embed = mlp(c.global_cond_dim, d if c.project_global_cond else c.global_cond_dim, bias=False)
        dim_in = c.io_channels + c.input_concat_dim
        self.transformer = ContinuousTransformer(
            d, c.depth, dim_in=dim_in * c.patch_size, dim_out=c.io_channels * c.patch_size, dim_heads=c.head_dim,
            num_memory_tokens=c.num_memory_tokens, dim_context=c.cond_embed_dim, global_cond_dim=d,
            local_add_cond_dim=c.local_add_cond_dim, norm_type=c.norm_type, norm_eps=c.norm_eps, norm_fp32=c.norm_fp32,
            differential=c.differential, qk_norm=c.qk_norm, qk_norm_eps=c.qk_norm_eps, ff_mult=c.ff_mult,
        )
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(c.io_channels, c.io_channels, 1, bias=False)
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)

    def _timestep(self, t: torch.Tensor, dtype) -> torch.Tensor:
        if self.config.timestep_features_logsnr:  # the reference's normalised log-SNR, range [-12, 5]
            tc = t.float().clamp(1e-7, 1 - 1e-7)
            t = (5.0 - torch.log((1 - tc) / tc).clamp(-12.0, 5.0)) / 17.0
        # features from float32 t (as diffusers; the reference casts t to the model dtype first, which in
        # half precision moves the 10 kHz features by radians), then the model dtype for the MLP
        return self.to_timestep_embed(self.timestep_features(t.float()[:, None]).to(dtype))

    def forward(self, x, t, *, cross_attn_cond, global_embed, cross_attn_mask=None, input_concat_cond=None,
                local_add_cond=None):
        c = self.config
        dtype = self.preprocess_conv.weight.dtype
        x = x.to(dtype)
        context = self.to_cond_embed(cross_attn_cond.to(dtype))
        glob = self.to_global_embed(global_embed.to(dtype)) + self._timestep(t.float(), dtype)
        if input_concat_cond is not None:
            x = torch.cat([x, input_concat_cond.to(dtype)], dim=1)
        local = None
        if local_add_cond is not None:
            if c.patch_size > 1:
                raise V2MError("local-add (inpainting) conditioning needs patch_size 1")
            local = local_add_cond.to(dtype).transpose(1, 2)
        x = self.preprocess_conv(x) + x
        x = x.transpose(1, 2)
        if c.patch_size > 1:
            b, n, ch = x.shape
            x = (x.reshape(b, n // c.patch_size, c.patch_size, ch).transpose(2, 3)
                 .reshape(b, n // c.patch_size, ch * c.patch_size))
        out = self.transformer(x, context=context, global_cond=glob, local_add_cond=local).transpose(1, 2)
        if c.patch_size > 1:
            b, cp, n = out.shape
            out = (out.reshape(b, cp // c.patch_size, c.patch_size, n).permute(0, 1, 3, 2)
                   .reshape(b, cp // c.patch_size, n * c.patch_size))
        return self.postprocess_conv(out) + out


class _Wrapper(nn.Module):
    def __init__(self, config: SA3DiTConfig):
        super().__init__()
        self.model = SA3DiffusionTransformer(config)


class SA3DiT(V2MDiT):
    """An SA3 DiT behind :class:`~.dit.V2MDiT`'s conditioning API (only the backbone differs).

    ``model_config`` is the ``model`` block of an SA3 ``model_config.json`` restricted to the DiT
    and tagged ``"architecture": "stable_audio_3"``::

        {"architecture": "stable_audio_3",
         "diffusion": {"type": "dit", "config": {...SA3DiTConfig...},
                       "cross_attention_cond_ids": ["prompt", "seconds_total"],
                       "global_cond_ids": ["seconds_total"],
                       "local_add_cond_ids": ["inpaint_mask", "inpaint_masked_input"],
                       "input_concat_ids": ["curve"]},
         "conditioning": {"configs": [...t5gemma prompt, expo seconds_total, curve...], "cond_dim": 768},
         "io_channels": 256}
    """

    def __init__(self, model_config: Mapping[str, Any], objective: str = "rectified_flow"):
        nn.Module.__init__(self)  # V2MDiT's own __init__ builds the SAO backbone; only its methods are shared
        self.model_config = copy.deepcopy(dict(model_config))
        diff = self.model_config.get("diffusion", {})
        self.config = SA3DiTConfig.from_dict(diff.get("config", {}))
        self.local_add_cond_ids = list(diff.get("local_add_cond_ids", []))
        modules, cond_dim = self._read_conditioning(diff)
        c = self.config
        if c.cond_token_dim != cond_dim or c.global_cond_dim != cond_dim * len(self.global_cond_ids):
            raise ModelError(f"cond_token_dim {c.cond_token_dim} / global_cond_dim {c.global_cond_dim} do not fit "
                             f"cond_dim {cond_dim} with {len(self.global_cond_ids)} global id(s)")
        if bool(self.input_concat_ids) != (c.input_concat_dim > 0):
            raise ModelError("input_concat_ids and input_concat_dim must be given together")
        if bool(self.local_add_cond_ids) != bool(c.local_add_cond_dim):
            raise ModelError("local_add_cond_ids and local_add_cond_dim must be given together")
        self.objective = objective
        self.model = _Wrapper(c)
        self.conditioner = MultiConditioner(modules)

    def forward(self, x, t, *, curve=None, cond_tokens=None, cond_mask=None, seconds_start=None, seconds_total=None,
                global_cond=None, cond_drop=None, local_add_cond=None) -> torch.Tensor:
        """One network evaluation: as :meth:`V2MDiT.forward`, plus ``local_add_cond``
        [B, local_add_cond_dim, L] (the inpainting mask and masked latents; zeros when omitted, as
        the reference feeds text-to-music). ``seconds_start`` is accepted and ignored (SA3 has
        only ``seconds_total``). Returns the rectified-flow velocity, [B, io_channels, L]."""
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.io_channels:
            raise V2MError(f"latent must be [B,{c.io_channels},L]; got {tuple(x.shape)}")
        b, _, length = x.shape
        if length % c.patch_size:
            raise V2MError(f"latent length {length} is not a multiple of patch_size {c.patch_size}")
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).reshape(-1)
        if t.numel() == 1 and b > 1:
            t = t.expand(b)
        cond = self.assemble_conditioning(b, x.device, cond_tokens=cond_tokens, cond_mask=cond_mask,
                                          seconds_total=seconds_total, global_cond=global_cond, cond_drop=cond_drop)
        concat = None
        if c.input_concat_dim > 0:
            concat = self._curve(curve, x)
        elif curve is not None:
            raise ModelError("this model has no curve input (input_concat_dim is 0): widen it with init-checkpoint")
        if c.local_add_cond_dim:
            if local_add_cond is None:
                local_add_cond = x.new_zeros(b, c.local_add_cond_dim, length)
            elif tuple(local_add_cond.shape) != (b, c.local_add_cond_dim, length):
                raise V2MError(f"local_add_cond must be [{b},{c.local_add_cond_dim},{length}]; "
                               f"got {tuple(local_add_cond.shape)}")
        out = self.dit(x, t, cross_attn_cond=cond["cross_attn_cond"], global_embed=cond["global_embed"],
                       input_concat_cond=concat, local_add_cond=local_add_cond if c.local_add_cond_dim else None)
        return out.to(x.dtype)


def sa3_conditioning_config(cond_dim: int = 768, *, max_length: int = 256, padding: str = "learned",
                            seconds_max: float = 384.0, with_curve: bool = False,
                            seconds_min: float = 0.0) -> dict[str, Any]:
    """SA3's conditioning block: a T5Gemma prompt (256 tokens, learned padding) and ``seconds_total``
    (an expo-Fourier number in [``seconds_min``, ``seconds_max``] s: the model_config.json's range;
    384 s when there is none, as stable_audio_3's MLX port hard-codes for small-music and medium)."""
    configs = [
        {"id": "prompt", "type": "t5gemma", "config": {"model_name": "google/t5gemma-b-b-ul2", "max_length": max_length,
                                                        "padding_mode": padding}},
        {"id": "seconds_total", "type": "number", "config": {"min_val": seconds_min, "max_val": seconds_max,
                                                             "fourier_features_type": "expo"}},
    ]
    if with_curve:
        configs.append({"id": "curve", "type": "curve", "config": {"channels": 1}})
    return {"configs": configs, "cond_dim": cond_dim}


def make_sa3_model_config(*, with_curve: bool = False, text_dim: int | None = None, max_length: int = 256,
                          **dit_fields: Any) -> dict[str, Any]:
    """An SA3 model config with the given DiT fields (defaults: ``small-music-base``).

    Tiny test models override the sizes, e.g. ``make_sa3_model_config(io_channels=8, embed_dim=128,
    depth=2, num_heads=2, cond_token_dim=32, global_cond_dim=32, local_add_cond_dim=9,
    num_memory_tokens=3)``.
    """
    f = {"norm_kwargs": {"force_fp32": True}, "attn_kwargs": {"qk_norm": "rms"}, "global_cond_type": "adaLN",
         "local_add_cond_dim": 257, **dit_fields}
    cfg = SA3DiTConfig.from_dict(f)
    if with_curve and cfg.input_concat_dim == 0:
        cfg.input_concat_dim = 1
    cond = sa3_conditioning_config(cfg.cond_token_dim, max_length=max_length, with_curve=with_curve)
    if text_dim is not None or cfg.cond_token_dim != 768:  # tiny models: the text width is the conditioning width
        cond["configs"][0]["config"]["text_dim"] = int(text_dim or cfg.cond_token_dim)
    diffusion: dict[str, Any] = {"type": "dit", "config": cfg.to_dict(),
                                 "cross_attention_cond_ids": ["prompt", "seconds_total"],
                                 "global_cond_ids": ["seconds_total"]}
    if cfg.local_add_cond_dim:
        diffusion["local_add_cond_ids"] = list(LOCAL_ADD_IDS)
    if with_curve:
        diffusion["input_concat_ids"] = ["curve"]
    return {"architecture": ARCHITECTURE, "diffusion": diffusion, "conditioning": cond, "io_channels": cfg.io_channels}
