"""The V2M diffusion transformer: stable-audio-tools' ``DiffusionTransformer`` layout, plus conditioners.

The module tree mirrors the stable-audio-tools ``ConditionedDiffusionModelWrapper`` so that
``V2MDiT().state_dict()`` has exactly the keys of a stable-audio-tools single-file checkpoint:

* ``model.model.*``             the ``DiffusionTransformer`` (``DiTWrapper.model``)
* ``conditioner.conditioners.*`` the conditioners that own weights (the ``number`` conditioners for
  ``seconds_start``/``seconds_total``; a text conditioner only when it projects its tokens)

so Stable Audio Open 1.0 weights load without renaming. The pretransform (``pretransform.model.*``,
the Oobleck codec) and the text encoder itself (T5, never stored in SAO files) live elsewhere.

Conditioning is data: the model config lists which conditioner ids feed cross-attention, the
global (prepended) token and the input-concat channels. V2M-Zero's event curve is one
input-concat conditioner (``input_concat_ids: ["curve"]``, ``input_concat_dim: 1``): it is
concatenated to the latent along channels *after* the latent channels, before ``preprocess_conv``
and ``project_in``, as stable-audio-tools does. ``model_io.sao.widen_for_curve`` grows a pretrained
checkpoint by that channel with zero weights, so outputs are unchanged until training.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CurveError, ModelError, V2MError
from .blocks import ContinuousTransformer, FourierFeatures, mlp
from .conditioners import MultiConditioner, build_conditioners, default_conditioning_config

# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class DiTConfig:
    """The ``diffusion.config`` block of a stable-audio-tools ``dit`` model config.

    Field names and defaults are stable-audio-tools' (``DiffusionTransformer.__init__``), except
    the defaults here are those of Stable Audio Open 1.0. ``cross_attn_mask`` is ours: SAO was
    trained with the text padding mask *disabled* (stable-audio-tools drops it before attention;
    padded T5 tokens are zero vectors instead), so it defaults to False for fidelity. ``ff_mult``
    is the feed-forward width factor (stable-audio-tools' default 4) and ``timestep_features_dim``
    its fixed 256, made explicit.
    """

    io_channels: int = 64
    embed_dim: int = 1536
    depth: int = 24
    num_heads: int = 24
    cond_token_dim: int = 768
    project_cond_tokens: bool = False
    global_cond_dim: int = 1536
    project_global_cond: bool = True
    input_concat_dim: int = 0
    prepend_cond_dim: int = 0
    patch_size: int = 1
    transformer_type: str = "continuous_transformer"
    global_cond_type: str = "prepend"
    timestep_cond_type: str = "global"
    timestep_features_dim: int = 256
    ff_mult: int = 4
    cross_attn_mask: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DiTConfig":
        known = {f.name for f in fields(cls)}
        # stable-audio-tools passes unknown keys to ContinuousTransformer; we implement only the
        # SAO 1.0 transformer, so an unknown option would silently change the maths — refuse it.
        ignorable = {"diffusion_objective"}
        unknown = sorted(set(d) - known - ignorable)
        if unknown:
            raise ModelError(f"unsupported DiT config field(s) {unknown}; supported: {sorted(known)}")
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def rotary_dim(self) -> int:
        # stable-audio-tools: RotaryEmbedding(max(dim_heads // 2, 32)), applied to the first
        # rotary_dim channels of each head (partial rotary, GPT-J style).
        return max(self.head_dim // 2, 32)

    @property
    def cond_embed_dim(self) -> int:
        if self.cond_token_dim <= 0:
            return 0
        return self.embed_dim if self.project_cond_tokens else self.cond_token_dim

    def validate(self) -> None:
        problems = []
        if self.transformer_type != "continuous_transformer":
            problems.append(f"transformer_type {self.transformer_type!r} (only 'continuous_transformer')")
        if self.global_cond_type != "prepend":
            problems.append(f"global_cond_type {self.global_cond_type!r} (only 'prepend' so far)")
        if self.timestep_cond_type != "global":
            problems.append(f"timestep_cond_type {self.timestep_cond_type!r} (only 'global')")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        elif self.rotary_dim > self.head_dim:
            problems.append(f"head dim {self.head_dim} < 32 (the rotary embedding needs >= 32)")
        if self.cond_token_dim > 0 and not self.project_cond_tokens:
            if self.cond_token_dim % max(self.head_dim, 1):
                problems.append(f"cond_token_dim {self.cond_token_dim} not a multiple of head dim {self.head_dim}")
            elif self.num_heads % (self.cond_token_dim // self.head_dim):
                problems.append("num_heads not a multiple of the cross-attention key/value heads")
        if self.patch_size < 1 or self.depth < 1 or self.io_channels < 1 or self.input_concat_dim < 0:
            problems.append("patch_size, depth, io_channels must be >= 1 and input_concat_dim >= 0")
        if problems:
            raise ModelError("bad DiT config: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------
# the transformer


class DiffusionTransformer(nn.Module):
    """stable-audio-tools' ``DiffusionTransformer`` (continuous transformer, prepended global token).

    Inputs are the already-assembled conditioning tensors (see :class:`V2MDiT` for the
    config-driven assembly): ``cross_attn_cond`` [B,S,cond_token_dim], ``global_embed``
    [B,global_cond_dim], ``input_concat_cond`` [B,input_concat_dim,L], ``prepend_cond`` [B,P,prepend_cond_dim].
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        c = self.config = config
        d = c.embed_dim
        self.timestep_features = FourierFeatures(1, c.timestep_features_dim)
        self.to_timestep_embed = mlp(c.timestep_features_dim, d, bias=True)
        if c.cond_token_dim > 0:
            self.to_cond_embed = mlp(c.cond_token_dim, c.cond_embed_dim, bias=False)
        if c.global_cond_dim > 0:
            self.to_global_embed = mlp(c.global_cond_dim, d if c.project_global_cond else c.global_cond_dim, bias=False)
        if c.prepend_cond_dim > 0:
            self.to_prepend_embed = mlp(c.prepend_cond_dim, d, bias=False)
        dim_in = c.io_channels + c.input_concat_dim
        self.transformer = ContinuousTransformer(
            dim=d,
            depth=c.depth,
            dim_in=dim_in * c.patch_size,
            dim_out=c.io_channels * c.patch_size,
            dim_heads=c.head_dim,
            dim_context=c.cond_embed_dim if c.cond_token_dim > 0 else None,
            ff_mult=c.ff_mult,
            rotary_dim=c.rotary_dim,
        )
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(c.io_channels, c.io_channels, 1, bias=False)
        self._zero_init()

    def _zero_init(self) -> None:
        # as stable-audio-tools: residual 1x1 convs and every branch output start at zero
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)
        for layer in self.transformer.layers:
            nn.init.zeros_(layer.self_attn.to_out.weight)
            if layer.cross_attend:
                nn.init.zeros_(layer.cross_attn.to_out.weight)
            nn.init.zeros_(layer.ff.ff[2].weight)
            nn.init.zeros_(layer.ff.ff[2].bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        cross_attn_cond: torch.Tensor | None = None,
        cross_attn_mask: torch.Tensor | None = None,
        input_concat_cond: torch.Tensor | None = None,
        global_embed: torch.Tensor | None = None,
        prepend_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.config
        dtype = self.preprocess_conv.weight.dtype
        x, t = x.to(dtype), t.to(dtype)
        if cross_attn_cond is not None:
            cross_attn_cond = self.to_cond_embed(cross_attn_cond.to(dtype))
        if global_embed is not None:
            global_embed = self.to_global_embed(global_embed.to(dtype))
        prepend = None
        if prepend_cond is not None:
            prepend = self.to_prepend_embed(prepend_cond.to(dtype))
        if input_concat_cond is not None:
            x = torch.cat([x, input_concat_cond.to(dtype)], dim=1)

        t_embed = self.to_timestep_embed(self.timestep_features(t[:, None]))
        global_embed = t_embed if global_embed is None else global_embed + t_embed
        # global_cond_type "prepend": the (global + timestep) embedding is one extra leading token
        g = global_embed.unsqueeze(1)
        prepend = g if prepend is None else torch.cat([prepend, g], dim=1)
        prepend_length = prepend.shape[1]

        x = self.preprocess_conv(x) + x
        x = x.transpose(1, 2)  # b c t -> b t c
        if c.patch_size > 1:
            b, n, ch = x.shape
            x = (x.reshape(b, n // c.patch_size, c.patch_size, ch).transpose(2, 3)
                 .reshape(b, n // c.patch_size, ch * c.patch_size))

        mask = None
        if cross_attn_mask is not None and c.cross_attn_mask and cross_attn_cond is not None:
            mask = cross_attn_mask.to(torch.bool)
            # a row with nothing to attend to would give NaN: let it attend to its (zero) tokens
            mask = mask | ~mask.any(dim=1, keepdim=True)
        out = self.transformer(x, prepend_embeds=prepend, context=cross_attn_cond, context_mask=mask)

        out = out.transpose(1, 2)[:, :, prepend_length:]
        if c.patch_size > 1:
            b, cp, n = out.shape
            out = (out.reshape(b, cp // c.patch_size, c.patch_size, n).permute(0, 1, 3, 2)
                   .reshape(b, cp // c.patch_size, n * c.patch_size))
        return self.postprocess_conv(out) + out


# --------------------------------------------------------------------------------------------
# the public model


def make_model_config(*, with_curve: bool = False, text_dim: int | None = None, **dit_fields: Any) -> dict[str, Any]:
    """A SAO-style model config (prompt + seconds conditioning) with the given DiT fields.

    ``make_model_config()`` is SAO 1.0's DiT; tiny test/benchmark models override the sizes, e.g.
    ``make_model_config(io_channels=8, embed_dim=128, depth=2, num_heads=2, cond_token_dim=64,
    global_cond_dim=128, with_curve=True)``.
    """
    fields_ = dict(dit_fields)
    fields_.setdefault("global_cond_dim", 2 * fields_.get("cond_token_dim", DiTConfig.cond_token_dim))
    dcfg = DiTConfig.from_dict(fields_)
    if with_curve and dcfg.input_concat_dim == 0:
        dcfg.input_concat_dim = 1
    cond = default_conditioning_config(cond_dim=dcfg.cond_token_dim, with_curve=with_curve)
    if text_dim is not None:
        cond["configs"][0]["config"]["text_dim"] = int(text_dim)
    elif dcfg.cond_token_dim != 768:
        cond["configs"][0]["config"]["text_dim"] = dcfg.cond_token_dim
    diffusion: dict[str, Any] = {
        "type": "dit",
        "config": dcfg.to_dict(),
        "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
        "global_cond_ids": ["seconds_start", "seconds_total"],
    }
    if with_curve:
        diffusion["input_concat_ids"] = ["curve"]
    return {"diffusion": diffusion, "conditioning": cond, "io_channels": dcfg.io_channels}


class _DiTWrapper(nn.Module):
    """Holds the transformer at ``.model`` so keys read ``model.model.*`` as in stable-audio-tools."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.model = DiffusionTransformer(config)


class V2MDiT(nn.Module):
    """A conditioned DiT built from a stable-audio-tools-like model config.

    ``model_config`` is the ``model`` block of a stable-audio-tools config, restricted to what a DiT
    needs::

        {"diffusion": {"type": "dit", "config": {...DiTConfig...},
                       "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                       "global_cond_ids": ["seconds_start", "seconds_total"],
                       "input_concat_ids": ["curve"]},
         "conditioning": {"configs": [...], "cond_dim": 768},
         "io_channels": 64}

    ``forward`` returns the raw network output in the model's own objective (``self.objective``:
    ``"v"`` for SAO 1.0, ``"rectified_flow"`` for V2M fine-tunes); :mod:`core.model.flow` turns it into a
    rectified-flow velocity for the sampler.
    """

    def __init__(self, model_config: Mapping[str, Any], objective: str = "v"):
        super().__init__()
        self.model_config = copy.deepcopy(dict(model_config))
        diff = self.model_config.get("diffusion", {})
        if diff.get("type", "dit") != "dit":
            raise ModelError(f"model type {diff.get('type')!r} is not a DiT")
        self.config = DiTConfig.from_dict(diff.get("config", {}))
        modules, cond_dim = self._read_conditioning(diff)
        if self.cross_attention_cond_ids and self.config.cond_token_dim not in (0, cond_dim):
            raise ModelError(f"cond_token_dim {self.config.cond_token_dim} != conditioning cond_dim {cond_dim}")
        if self.global_cond_ids and self.config.global_cond_dim != cond_dim * len(self.global_cond_ids):
            raise ModelError(
                f"global_cond_dim {self.config.global_cond_dim} != {len(self.global_cond_ids)} global ids "
                f"x cond_dim {cond_dim}"
            )
        if self.input_concat_ids and self.config.input_concat_dim <= 0:
            raise ModelError("input_concat_ids given but input_concat_dim is 0")
        if self.config.input_concat_dim > 0 and not self.input_concat_ids:
            raise ModelError("input_concat_dim > 0 but no input_concat_ids declared")
        self.objective = objective
        self.model = _DiTWrapper(self.config)
        self.conditioner = MultiConditioner(modules)

    def _read_conditioning(self, diff: Mapping[str, Any]) -> tuple[dict, int]:
        """The conditioning ids of the ``diffusion`` config (as stable-audio-tools names them) and
        the conditioner modules; every id the DiT uses must be declared. Returns (modules, cond_dim)."""
        self.cross_attention_cond_ids = list(diff.get("cross_attention_cond_ids", []))
        self.global_cond_ids = list(diff.get("global_cond_ids", []))
        self.input_concat_ids = list(diff.get("input_concat_ids", []))
        self.prepend_cond_ids = list(diff.get("prepend_cond_ids", []))
        if self.prepend_cond_ids:
            raise ModelError("prepend_cond_ids are not supported")
        modules, self._kinds = build_conditioners(self.model_config.get("conditioning", {}))
        for cid in self.cross_attention_cond_ids + self.global_cond_ids + self.input_concat_ids:
            if cid not in self._kinds:
                raise ModelError(f"conditioning id {cid!r} is used by the DiT but not declared in 'conditioning'")
        return modules, int(self.model_config.get("conditioning", {}).get("cond_dim", 768))

    # ---- helpers

    @property
    def dit(self) -> DiffusionTransformer:
        return self.model.model

    @property
    def curve_channels(self) -> int:
        return self.config.input_concat_dim

    @property
    def takes_text(self) -> bool:
        """Whether a text conditioner (e.g. T5 tokens) feeds cross-attention."""
        return any(self._kinds[cid] == "tokens" for cid in self.cross_attention_cond_ids)

    @property
    def text_dim(self) -> int | None:
        """Width of the text tokens the model takes (None without text conditioning)."""
        for cid in self.cross_attention_cond_ids:
            if self._kinds[cid] == "tokens":
                return int(self.conditioner.conditioners[cid].text_dim)
        return None

    def conditioning(self, *, text: tuple[torch.Tensor, torch.Tensor] | None = None, seconds=None, batch: int = 1,
                     device=None, dtype=None) -> dict[str, torch.Tensor]:
        """The conditioning keyword inputs of :meth:`forward` for a batch (the curve is passed apart).

        ``text`` is ``(tokens [B|1, S, text_dim], mask [B|1, S])`` from a text encoder, or None: the
        null text condition, one all-zero token (what a model trained without a text encoder saw,
        and what inference gives it). ``seconds`` (a float or [B]) is the clip length: it feeds
        ``seconds_total`` (``seconds_start`` = 0) when the model takes them. Floating tensors go to
        ``dtype``; everything to ``device``.
        """
        out: dict[str, torch.Tensor] = {}
        if self.takes_text:
            if text is None:
                tokens, mask = torch.zeros(batch, 1, self.text_dim), torch.ones(batch, 1, dtype=torch.bool)
            else:
                tokens, mask = text
            out["cond_tokens"] = torch.as_tensor(tokens).to(device=device, dtype=dtype)
            out["cond_mask"] = torch.as_tensor(mask).to(device=device, dtype=torch.bool)
        if seconds is not None:
            total = torch.as_tensor(seconds, dtype=torch.float32).reshape(-1)
            total = total.expand(batch) if total.numel() == 1 else total
            if "seconds_start" in self._kinds:
                out["seconds_start"] = torch.zeros_like(total).to(device)
            if "seconds_total" in self._kinds:
                out["seconds_total"] = total.to(device)
        return out

    def set_gradient_checkpointing(self, on: bool | str = True) -> None:
        """False, True/"full" (recompute whole blocks) or "selective" (recompute only cheap operations)."""
        from .blocks import CHECKPOINTING

        if not (on is True or on is False or on in ("full", "selective")):
            raise V2MError(f"gradient checkpointing must be one of {CHECKPOINTING}, got {on!r}")
        self.dit.transformer.gradient_checkpointing = "full" if on is True else on

    def _curve(self, curve, x: torch.Tensor) -> torch.Tensor:
        b, _, length = x.shape
        ch = self.config.input_concat_dim
        if curve is None:
            return x.new_zeros(b, ch, length)
        curve = torch.as_tensor(curve, device=x.device)
        if curve.ndim == 1:
            curve = curve[None, None]
        elif curve.ndim == 2:
            curve = curve[:, None] if ch == 1 else curve[None]
        if curve.ndim != 3 or curve.shape[1] != ch:
            raise CurveError(f"curve must be [B,L] or [B,{ch},L]; got shape {tuple(curve.shape)}")
        if curve.shape[-1] != length:
            raise CurveError(
                f"curve has {curve.shape[-1]} frames but the latent has {length}: resample the curve "
                "to the latent length (by time) before sampling"
            )
        if curve.shape[0] == 1 and b > 1:
            curve = curve.expand(b, -1, -1)
        elif curve.shape[0] != b:
            raise CurveError(f"curve batch {curve.shape[0]} does not match latent batch {b}")
        return curve

    def assemble_conditioning(
        self,
        batch: int,
        device: torch.device,
        *,
        cond_tokens=None,
        cond_mask=None,
        seconds_start=None,
        seconds_total=None,
        global_cond=None,
        cond_drop=None,
    ) -> dict[str, torch.Tensor | None]:
        """Assemble ``cross_attn_cond``/``cross_attn_mask``/``global_embed`` from the named inputs.

        ``cond_drop`` (bool [B]) zeroes the *whole* cross-attention sequence of those rows (text
        and seconds tokens, as stable-audio-tools' CFG null embedding does); the global token is
        kept.
        """
        numbers = {"seconds_start": seconds_start, "seconds_total": seconds_total}
        outs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def get(cid: str):
            if cid in outs:
                return outs[cid]
            kind = self._kinds[cid]
            if kind == "tokens":
                if cond_tokens is None:
                    raise V2MError(f"the model needs text tokens for {cid!r} (cond_tokens)")
                tok = torch.as_tensor(cond_tokens).to(device)
                if tok.shape[0] == 1 and batch > 1:
                    tok = tok.expand(batch, -1, -1)
                    m = None if cond_mask is None else torch.as_tensor(cond_mask).to(device).expand(batch, -1)
                else:
                    m = None if cond_mask is None else torch.as_tensor(cond_mask).to(device)
                outs[cid] = self.conditioner.conditioners[cid](tok, m)
            elif kind == "number":
                val = numbers.get(cid)
                if val is None:
                    raise V2MError(f"the model needs the number {cid!r} (e.g. seconds_total = clip length in seconds)")
                val = torch.as_tensor(val, dtype=torch.float32).reshape(-1)
                if val.numel() == 1 and batch > 1:
                    val = val.expand(batch)
                emb, m = self.conditioner.conditioners[cid](val)
                outs[cid] = (emb, m)
            else:
                raise ModelError(f"conditioning id {cid!r} of kind {kind!r} cannot feed attention")
            return outs[cid]

        cross, cross_mask = None, None
        if self.cross_attention_cond_ids and self.config.cond_token_dim > 0:
            parts = [get(cid) for cid in self.cross_attention_cond_ids]
            cross = torch.cat([p[0].to(device) for p in parts], dim=1)
            cross_mask = torch.cat([p[1].to(device) for p in parts], dim=1)
            if cond_drop is not None:
                keep = ~torch.as_tensor(cond_drop, dtype=torch.bool, device=device).reshape(-1, 1, 1)
                cross = cross * keep.to(cross.dtype)
        glob = global_cond
        if glob is None and self.global_cond_ids and self.config.global_cond_dim > 0:
            glob = torch.cat([get(cid)[0].to(device) for cid in self.global_cond_ids], dim=-1).squeeze(1)
        return {"cross_attn_cond": cross, "cross_attn_mask": cross_mask, "global_embed": glob}

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        *,
        curve: torch.Tensor | None = None,
        cond_tokens: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        seconds_start=None,
        seconds_total=None,
        global_cond: torch.Tensor | None = None,
        cond_drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One network evaluation.

        x [B,io_channels,L] (the noisy latent, without the curve); t [B] or scalar in [0,1];
        curve [B,L] or [B,C,L] (zeros when omitted: "no curve", the CFG null); cond_tokens
        [B,S,text_dim] with cond_mask [B,S] (True = real token); seconds_start/total [B] or
        scalars; global_cond [B,global_cond_dim] overrides the seconds-derived global vector.
        Returns [B,io_channels,L] in x's dtype: a v-prediction or an RF velocity (``self.objective``).
        """
        if x.ndim != 3 or x.shape[1] != self.config.io_channels:
            raise V2MError(f"latent must be [B,{self.config.io_channels},L]; got {tuple(x.shape)}")
        b, _, length = x.shape
        if length % self.config.patch_size:
            raise V2MError(f"latent length {length} is not a multiple of patch_size {self.config.patch_size}")
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).reshape(-1)
        if t.numel() == 1 and b > 1:
            t = t.expand(b)
        cond = self.assemble_conditioning(
            b, x.device, cond_tokens=cond_tokens, cond_mask=cond_mask, seconds_start=seconds_start,
            seconds_total=seconds_total, global_cond=global_cond, cond_drop=cond_drop,
        )
        concat = None
        if self.config.input_concat_dim > 0:
            concat = self._curve(curve, x)
        elif curve is not None:
            raise ModelError("this model has no curve input (input_concat_dim is 0): widen it with init-checkpoint")
        out = self.dit(x, t, input_concat_cond=concat, **cond)
        return out.to(x.dtype)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
