"""Transformer blocks of Stable Audio 3 (the ``stable_audio_3`` reference layout).

Shared by the SA3 DiT (:mod:`.sa3`, adaLN blocks with RMS norms) and the SAME autoencoder
(:mod:`.same`, Dynamic-Tanh norms, a rotary embedding per block, a sliding-window band mask).
Submodule names are the checkpoint's (``pre_norm``, ``self_attn.to_qkv``, ``ff.ff.0.proj``,
``to_scale_shift_gate``, ``to_local_embed``, ...), so SA3 weights load without renaming.

Differential attention (``differential=True``): the fused projections hold two query/key sets,
``to_qkv`` = ``[q | k | v | q2 | k2]`` (self-attention), ``to_q`` = ``[q | q2]`` and ``to_kv`` =
``[k | k2 | v]`` (cross-attention), and the output is ``Attn(q, k, v) − Attn(q2, k2, v)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..errors import ModelError
from .blocks import RotaryEmbedding, apply_partial_rotary


class RMSNorm(nn.Module):
    """RMS norm with a ``gamma`` scale; ``force_fp32`` computes it in float32 (SA3's DiT norms)."""

    def __init__(self, dim: int, eps: float = 1e-5, force_fp32: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.eps, self.force_fp32 = float(eps), bool(force_fp32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        y = x.float() if self.force_fp32 else x
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.gamma.to(y.dtype)).to(dtype)


class DynamicTanh(nn.Module):
    """Dynamic Tanh (DyT): ``gamma · tanh(alpha · x) + beta`` (SAME's norms)."""

    def __init__(self, dim: int, init_alpha: float = 4.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * init_alpha)
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


def make_norm(kind: str, dim: int, eps: float = 1e-5, force_fp32: bool = False) -> nn.Module:
    if kind == "rms_norm":
        return RMSNorm(dim, eps=eps, force_fp32=force_fp32)
    if kind == "dyt":
        return DynamicTanh(dim)
    raise ModelError(f"norm type {kind!r} is not supported (rms_norm, dyt)")


class ExpoFourierFeatures(nn.Module):
    """Fixed Fourier features with frequencies spaced exponentially from ``min_freq`` to ``max_freq``:
    ``[cos(2π t f), sin(2π t f)]``, computed in float32 (no weights)."""

    def __init__(self, dim: int, min_freq: float = 0.5, max_freq: float = 10000.0):
        super().__init__()
        self.dim, self.min_freq, self.max_freq = int(dim), float(min_freq), float(max_freq)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        dtype = t.dtype
        t = t.float()
        if t.ndim == 1:
            t = t[:, None]
        ramp = torch.linspace(0.0, 1.0, self.dim // 2, device=t.device, dtype=torch.float32)
        freqs = torch.exp(ramp * (math.log(self.max_freq) - math.log(self.min_freq)) + math.log(self.min_freq))
        args = t * freqs * 2 * math.pi
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(dtype)


def band_attention(q, k, v, window: int, chunk: int = 1024):
    """Attention where position i sees j only when |i − j| <= ``window`` (a sliding-window band).

    Queries are processed in chunks with a halo of ``window`` keys on each side, which is exactly
    masked attention over the whole sequence without an N×N mask (SAME's decoder runs sequences
    of ~17 tokens per latent frame: a 2-minute clip is ~22 k tokens).
    """
    n = q.shape[-2]
    outs = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        k0, k1 = max(0, start - window), min(n, stop + window)
        qi = torch.arange(start, stop, device=q.device)
        ki = torch.arange(k0, k1, device=q.device)
        delta = ki[None, :] - qi[:, None]
        mask = torch.zeros(delta.shape, dtype=q.dtype, device=q.device).masked_fill(delta.abs() > window, float("-inf"))
        outs.append(F.scaled_dot_product_attention(q[..., start:stop, :], k[..., k0:k1, :], v[..., k0:k1, :],
                                                   attn_mask=mask))
    return torch.cat(outs, dim=-2)


class Attention(nn.Module):
    """Multi-head (optionally differential) attention with per-head q/k norms and partial rotary."""

    def __init__(self, dim: int, dim_heads: int, dim_context: int | None = None, *, differential: bool = False,
                 qk_norm: str = "none", qk_norm_eps: float = 1e-6):
        super().__init__()
        self.dim_heads, self.num_heads, self.differential = dim_heads, dim // dim_heads, bool(differential)
        dim_kv = dim_context if dim_context is not None else dim
        self.kv_heads = dim_kv // dim_heads
        n_q = 2 if differential else 1
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim * n_q, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * (n_q + 1), bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * (2 * n_q + 1), bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.qk_norm = qk_norm
        if qk_norm == "rms":
            self.q_norm, self.k_norm = RMSNorm(dim_heads, eps=qk_norm_eps), RMSNorm(dim_heads, eps=qk_norm_eps)
        elif qk_norm == "dyt":
            self.q_norm, self.k_norm = DynamicTanh(dim_heads), DynamicTanh(dim_heads)
        elif qk_norm != "none":
            raise ModelError(f"qk_norm {qk_norm!r} is not supported (rms, dyt, none)")

    def _heads(self, t: torch.Tensor, h: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, h, self.dim_heads).transpose(1, 2)

    def _project(self, x, context):
        h, kv = self.num_heads, self.kv_heads
        if context is None:
            parts = self.to_qkv(x).chunk(5 if self.differential else 3, dim=-1)
            parts = [self._heads(p, h) for p in parts]
            if self.differential:  # [q | k | v | q2 | k2]
                return [parts[0], parts[3]], [parts[1], parts[4]], parts[2]
            return [parts[0]], [parts[1]], parts[2]
        qs = [self._heads(p, h) for p in self.to_q(x).chunk(2 if self.differential else 1, dim=-1)]
        kvs = [self._heads(p, kv) for p in self.to_kv(context).chunk(3 if self.differential else 2, dim=-1)]
        return qs, kvs[:-1], kvs[-1]

    def forward(self, x, context=None, rotary=None, band: int | None = None):
        qs, ks, v = self._project(x, context)
        if self.qk_norm != "none":
            qs = [self.q_norm(q).to(q.dtype) for q in qs]
            ks = [self.k_norm(k).to(k.dtype) for k in ks]
        if rotary is not None:
            qs = [apply_partial_rotary(q, rotary).to(v.dtype) for q in qs]
            ks = [apply_partial_rotary(k, rotary).to(v.dtype) for k in ks]
        if self.kv_heads != self.num_heads:
            rep = self.num_heads // self.kv_heads
            ks, v = [k.repeat_interleave(rep, dim=1) for k in ks], v.repeat_interleave(rep, dim=1)
        outs = [band_attention(q, k, v, band) if band is not None else F.scaled_dot_product_attention(q, k, v)
                for q, k in zip(qs, ks)]
        out = outs[0] - outs[1] if self.differential else outs[0]
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))


class GLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, sinusoidal: bool = False):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)
        self.sinusoidal = bool(sinusoidal)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * (torch.sin(math.pi * gate) if self.sinusoidal else F.silu(gate))


class FeedForward(nn.Module):
    """GLU feed-forward (SiLU gate, or ``sin(π·gate)`` for SAME's trailing decoder layers);
    ``ff.0`` the GLU, ``ff.1`` an identity slot, ``ff.2`` the output (zero-initialised)."""

    def __init__(self, dim: int, mult: float = 4.0, sinusoidal: bool = False):
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(GLU(dim, inner, sinusoidal), nn.Identity(), nn.Linear(inner, dim))
        nn.init.zeros_(self.ff[2].weight)
        nn.init.zeros_(self.ff[2].bias)

    def forward(self, x):
        return self.ff(x)


class TransformerBlock(nn.Module):
    """Pre-norm block; with ``global_cond_dim`` the adaLN form of SA3's DiT:

    ``(scale, shift, gate)`` for self-attention and feed-forward come from ``to_scale_shift_gate +
    global_cond`` (6·dim); branches are ``x + sigmoid(1 − gate) · f(norm(x)·(1 + scale) + shift)``;
    cross-attention is a plain pre-norm branch; the local-add conditioning (SA3's inpainting input,
    ``to_local_embed``) is added to the audio positions after cross-attention.
    """

    def __init__(self, dim: int, dim_heads: int, *, dim_context: int | None = None, global_cond_dim: int | None = None,
                 local_add_cond_dim: int | None = None, norm_type: str = "rms_norm", norm_eps: float = 1e-5,
                 norm_fp32: bool = False, differential: bool = False, qk_norm: str = "none", qk_norm_eps: float = 1e-6,
                 ff_mult: float = 4.0, sinusoidal: bool = False, add_rope: bool = False):
        super().__init__()
        dim_heads = min(dim_heads, dim)
        norm = lambda: make_norm(norm_type, dim, norm_eps, norm_fp32)  # noqa: E731
        self.pre_norm = norm()
        self.self_attn = Attention(dim, dim_heads, differential=differential, qk_norm=qk_norm, qk_norm_eps=qk_norm_eps)
        self.cross_attend = dim_context is not None
        if self.cross_attend:
            self.cross_attend_norm = norm()
            self.cross_attn = Attention(dim, dim_heads, dim_context, differential=differential, qk_norm=qk_norm,
                                        qk_norm_eps=qk_norm_eps)
        self.ff_norm = norm()
        self.ff = FeedForward(dim, ff_mult, sinusoidal)
        nn.init.zeros_(self.self_attn.to_out.weight)
        if self.cross_attend:
            nn.init.zeros_(self.cross_attn.to_out.weight)
        self.adaln = global_cond_dim is not None
        if self.adaln:
            self.to_scale_shift_gate = nn.Parameter(torch.randn(6 * dim) / dim ** 0.5)
        if local_add_cond_dim is not None:
            self.to_local_embed = nn.Sequential(nn.Linear(local_add_cond_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            nn.init.zeros_(self.to_local_embed[2].weight)
            nn.init.zeros_(self.to_local_embed[2].bias)
        self.rope = RotaryEmbedding(dim_heads // 2) if add_rope else None

    def _local(self, x, local_add_cond):
        if local_add_cond is None or not hasattr(self, "to_local_embed"):
            return x
        emb = self.to_local_embed(local_add_cond)
        pad = x.shape[1] - emb.shape[1]  # memory tokens come first: the audio positions are the last ones
        return x + F.pad(emb, (0, 0, pad, 0)) if pad > 0 else x + emb[:, -x.shape[1]:]

    def forward(self, x, rotary=None, context=None, global_cond=None, local_add_cond=None, band=None):
        if rotary is None and self.rope is not None:
            rotary = self.rope(x.shape[1], x.device)
        if self.adaln and global_cond is not None:
            s_sa, sh_sa, g_sa, s_ff, sh_ff, g_ff = (
                (self.to_scale_shift_gate + global_cond).unsqueeze(1).chunk(6, dim=-1))
            h = self.self_attn(self.pre_norm(x) * (1 + s_sa) + sh_sa, rotary=rotary, band=band)
            x = x + h * torch.sigmoid(1 - g_sa)
            if context is not None and self.cross_attend:
                x = x + self.cross_attn(self.cross_attend_norm(x), context=context)
            x = self._local(x, local_add_cond)
            h = self.ff(self.ff_norm(x) * (1 + s_ff) + sh_ff)
            return x + h * torch.sigmoid(1 - g_ff)
        x = x + self.self_attn(self.pre_norm(x), rotary=rotary, band=band)
        if context is not None and self.cross_attend:
            x = x + self.cross_attn(self.cross_attend_norm(x), context=context)
        x = self._local(x, local_add_cond)
        return x + self.ff(self.ff_norm(x))


class ContinuousTransformer(nn.Module):
    """SA3's DiT transformer: ``project_in``, learned memory tokens prepended to the sequence,
    one rotary embedding for all layers, the adaLN ``global_cond_embedder`` (dim → 6·dim), the
    blocks, memory tokens removed, ``project_out``."""

    def __init__(self, dim: int, depth: int, *, dim_in: int, dim_out: int, dim_heads: int, num_memory_tokens: int = 0,
                 **block_kwargs):
        super().__init__()
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        self.rotary_pos_emb = RotaryEmbedding(max(dim_heads // 2, 32))
        self.num_memory_tokens = int(num_memory_tokens)
        if self.num_memory_tokens > 0:
            self.memory_tokens = nn.Parameter(torch.randn(self.num_memory_tokens, dim))
        self.global_cond_embedder = None
        if block_kwargs.get("global_cond_dim") is not None:
            self.global_cond_embedder = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim * 6))
        self.layers = nn.ModuleList(TransformerBlock(dim, dim_heads, **block_kwargs) for _ in range(depth))
        self.gradient_checkpointing = False

    def forward(self, x, context=None, global_cond=None, local_add_cond=None):
        x = self.project_in(x)
        if self.num_memory_tokens > 0:
            x = torch.cat([self.memory_tokens.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        rotary = self.rotary_pos_emb(x.shape[1], x.device)
        if global_cond is not None and self.global_cond_embedder is not None:
            global_cond = self.global_cond_embedder(global_cond)
        for layer in self.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = _checkpoint(layer, x, rotary, context, global_cond, local_add_cond, use_reentrant=False)
            else:
                x = layer(x, rotary, context, global_cond, local_add_cond)
        return self.project_out(x[:, self.num_memory_tokens:])
