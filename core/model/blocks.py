"""Transformer building blocks of stable-audio-tools' ``ContinuousTransformer``.

Submodule names are the checkpoint's key names (``self_attn.to_qkv``, ``ff.ff.0.proj``, ...), so
Stable Audio Open weights load without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint


class FourierFeatures(nn.Module):
    """Random Fourier features of the timestep: ``[cos(2π t W), sin(2π t W)]``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class LayerNorm(nn.Module):
    """Bias-free LayerNorm of stable-audio-tools: ``gamma`` parameter, ``beta`` a zero buffer."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], weight=self.gamma, bias=self.beta, eps=self.eps)


class RotaryEmbedding(nn.Module):
    """Rotary position frequencies; ``inv_freq`` is a checkpoint buffer kept in float32."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)))

    def _apply(self, fn, *args, **kwargs):
        # Casting the model to bf16 must not quantise the frequencies (positions up to ~1000
        # would drift by whole radians): keep the buffer in float32 whatever dtype the rest has.
        keep = self.inv_freq
        out = super()._apply(fn, *args, **kwargs)
        if keep.device.type != "meta" and self.inv_freq.dtype != torch.float32:
            self.inv_freq = keep.to(device=self.inv_freq.device, dtype=torch.float32)
        return out

    def forward(self, seq_len: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(seq_len, device=device, dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq.to(device=device, dtype=torch.float32))
        return torch.cat((freqs, freqs), dim=-1)  # [N, rotary_dim]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_partial_rotary(x: torch.Tensor, freqs) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` channels of each head (in float32); keep the rest. ``freqs``
    is the ``[N, rotary_dim]`` angle table or its ``(cos, sin)`` (computed once for every layer)."""
    cos, sin = freqs if isinstance(freqs, tuple) else (freqs.cos(), freqs.sin())
    rot = cos.shape[-1]
    xr, xp = x[..., :rot].float(), x[..., rot:]
    xr = xr * cos + _rotate_half(xr) * sin
    return torch.cat((xr.to(x.dtype), xp), dim=-1)


class Attention(nn.Module):
    """Multi-head attention via PyTorch SDPA; fused ``to_qkv`` for self-, ``to_q``/``to_kv`` for cross-.

    Cross-attention keys/values keep the context width, so they may have fewer heads than the
    queries (SAO 1.0: 12 kv heads of 64 for 768-wide T5 tokens vs 24 query heads); each kv head
    serves consecutive query heads (``repeat_interleave``), as stable-audio-tools does.
    """

    def __init__(self, dim: int, dim_heads: int, dim_context: int | None = None):
        super().__init__()
        self.dim_heads = dim_heads
        self.num_heads = dim // dim_heads
        dim_kv = dim_context if dim_context is not None else dim
        self.kv_heads = dim_kv // dim_heads
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * 2, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def _heads(self, t: torch.Tensor, h: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, h, self.dim_heads).transpose(1, 2)

    def forward(self, x, context=None, rotary=None, context_mask=None):
        if context is not None and rotary is None and self._few_keys(x, context):
            return self._attend_few_keys(x, context, context_mask)
        if context is None:
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
            q, k, v = (self._heads(t, self.num_heads) for t in (q, k, v))
        else:
            q = self._heads(self.to_q(x), self.num_heads)
            k, v = self.to_kv(context).chunk(2, dim=-1)
            k, v = self._heads(k, self.kv_heads), self._heads(v, self.kv_heads)
        if rotary is not None:
            q, k = apply_partial_rotary(q, rotary), apply_partial_rotary(k, rotary)
        if self.kv_heads != self.num_heads:
            rep = self.num_heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        mask = None
        if context_mask is not None:
            mask = context_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))

    def _few_keys(self, x: torch.Tensor, context: torch.Tensor) -> bool:
        """Whether :meth:`_attend_few_keys` applies and is cheaper: inference (no gradients), plain
        ``Linear`` projections (not wrapped, e.g. by a LoRA layer) and fewer keys per head than a
        quarter of the width (the demo's 3 prompt/seconds tokens; not SAO's 130 T5 tokens)."""
        return (not torch.is_grad_enabled() and type(self.to_q) is nn.Linear and type(self.to_out) is nn.Linear
                and self.to_out.bias is None and 4 * self.num_heads * context.shape[1] <= x.shape[-1])

    def _attend_few_keys(self, x, context, context_mask=None):
        """Cross-attention to S context tokens, computed without the ``[N, dim]`` query and output
        projections: the same maths re-associated. For head h the logits are
        ``(x W_q,h^T) k_s / √d = x (W_q,h^T k_s / √d)`` and the output is
        ``Σ_h p_h (v W_out,h^T)``, so ``x`` meets two ``[dim, H·S]`` matrices built from the context
        (``H·S`` ≪ dim) instead of two ``[dim, dim]`` weights. Equal to the SDPA path within float
        rounding (``tests/test_dit.py``); the context is the same at every step of a run."""
        b, n, dim = x.shape
        s, h, d = context.shape[1], self.num_heads, self.dim_heads
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k, v = k.view(b, s, self.kv_heads, d), v.view(b, s, self.kv_heads, d)
        if self.kv_heads != h:
            rep = h // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
        # block rows: row (h, s) holds token s's key (value) of head h in head h's d columns, zeros
        # elsewhere, so one product with the projection weight gives every head's [dim] vector
        kb, vb = (x.new_zeros(b, h, s, h, d) for _ in range(2))
        kb.diagonal(dim1=1, dim2=3).copy_(k.permute(0, 1, 3, 2))
        vb.diagonal(dim1=1, dim2=3).copy_(v.permute(0, 1, 3, 2))
        keys = (kb.view(b * h * s, h * d) @ self.to_q.weight).view(b, h * s, dim) * d ** -0.5
        values = F.linear(vb.view(b * h * s, h * d), self.to_out.weight).view(b, h * s, -1)
        logits = (x @ keys.transpose(1, 2)).view(b, n, h, s).float()
        if context_mask is not None:
            logits = logits.masked_fill(~context_mask.to(torch.bool)[:, None, None, :], float("-inf"))
        p = logits.softmax(dim=-1).to(x.dtype)
        return p.view(b, n, h * s) @ values


class GLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.silu(gate)


class FeedForward(nn.Module):
    """SwiGLU feed-forward; ``ff.0`` is the GLU, ``ff.1`` an identity slot, ``ff.2`` the output."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(), nn.Linear(inner, dim))

    def forward(self, x):
        return self.ff(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, dim_heads: int, dim_context: int | None, ff_mult: int):
        super().__init__()
        self.pre_norm = LayerNorm(dim)
        self.self_attn = Attention(dim, dim_heads)
        self.cross_attend = dim_context is not None
        if self.cross_attend:
            self.cross_attend_norm = LayerNorm(dim)
            self.cross_attn = Attention(dim, dim_heads, dim_context=dim_context)
        self.ff_norm = LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)

    def forward(self, x, rotary, context=None, context_mask=None):
        x = x + self.self_attn(self.pre_norm(x), rotary=rotary)
        if context is not None and self.cross_attend:
            x = x + self.cross_attn(self.cross_attend_norm(x), context=context, context_mask=context_mask)
        return x + self.ff(self.ff_norm(x))


# Gradient-checkpointing policies: False (keep every activation), "full" (keep each block's input,
# recompute the block), "selective" (keep what is expensive to recompute: the matmul and attention
# outputs; recompute norms, rotary, activations, residual adds: ~1/3 of the memory for ~5 % of the
# FLOPs). True means "full".
CHECKPOINTING = (False, True, "full", "selective")


def _save_expensive(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in _expensive_ops() else CheckpointPolicy.PREFER_RECOMPUTE


def _expensive_ops() -> set:
    aten = torch.ops.aten
    names = ("mm", "addmm", "bmm", "baddbmm", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
             "_scaled_dot_product_flash_attention_for_cpu", "_flash_attention_forward", "_efficient_attention_forward")
    return {getattr(aten, n).default for n in names if hasattr(aten, n)}


def _selective_context():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(_save_expensive)


def run_layer(layer, x, rotary, context, context_mask, checkpointing=False):
    """One transformer block, checkpointed by the given policy when gradients are recorded."""
    if checkpointing and torch.is_grad_enabled():
        kw = {"context_fn": _selective_context} if checkpointing == "selective" else {}
        return _checkpoint(layer, x, rotary, context, context_mask, use_reentrant=False, **kw)
    return layer(x, rotary, context, context_mask)


class ContinuousTransformer(nn.Module):
    def __init__(self, dim, depth, dim_in, dim_out, dim_heads, dim_context, ff_mult, rotary_dim):
        super().__init__()
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        self.rotary_pos_emb = RotaryEmbedding(rotary_dim)
        self.layers = nn.ModuleList(
            TransformerBlock(dim, dim_heads, dim_context, ff_mult) for _ in range(depth)
        )
        self.gradient_checkpointing: bool | str = False
        # how a block is run: run_layer, or its compiled twin (core.model.fast.compile_blocks), one
        # compiled graph shared by every block
        self.run_layer = run_layer

    def forward(self, x, prepend_embeds=None, context=None, context_mask=None):
        x = self.project_in(x)
        if prepend_embeds is not None:
            x = torch.cat((prepend_embeds.to(x.dtype), x), dim=-2)
        freqs = self.rotary_pos_emb(x.shape[1], x.device)
        rotary = (freqs.cos(), freqs.sin())  # the same for every layer, queries and keys
        for layer in self.layers:
            x = self.run_layer(layer, x, rotary, context, context_mask, self.gradient_checkpointing)
        return self.project_out(x)


def mlp(d_in: int, d_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out, bias=bias), nn.SiLU(), nn.Linear(d_out, d_out, bias=bias))
