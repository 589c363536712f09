"""Training speed switches change nothing but speed: the optimised step (compiled blocks, selective or
full checkpointing, a chosen attention kernel, fused AdamW) gives the plain step's loss, gradients
and updated weights."""

import copy

import pytest
import torch

from v2m_zero.core.errors import V2MError
from v2m_zero.core.model import fast
from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.core.model.flow import rf_loss
from v2m_zero.core.train.config import resolve_config


def tiny_model():
    torch.manual_seed(0)
    cfg = make_model_config(io_channels=8, embed_dim=64, depth=3, num_heads=2, cond_token_dim=32, with_curve=True)
    model = V2MDiT(cfg, objective="rectified_flow").train()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised branches would hide differences
            p.normal_(0.0, 0.05)
    return model


def step(model, opt, attention="auto"):
    """One eq. 6 step with 10 % text/curve dropout; returns (loss, gradients) before the update."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(4, 8, 48, generator=g)
    curve = torch.randn(4, 1, 48, generator=g)
    text = torch.randn(4, 5, 32, generator=g)
    with fast.attention_kernel(attention):
        loss = rf_loss(model, x0, curve=curve, cond_tokens=text, cond_mask=torch.ones(4, 5, dtype=torch.bool),
                       seconds_start=0.0, seconds_total=4.0, generator=g, p_drop_text=0.5, p_drop_curve=0.5)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach(), grads


def adamw(model, fused=None):
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3, fused=fused)


@pytest.mark.parametrize("checkpointing", [False, "full", "selective"])
def test_optimised_step_equals_the_plain_one(checkpointing):
    plain = tiny_model()
    opt_plain = adamw(plain)
    fast_model = copy.deepcopy(plain)
    fast_model.set_gradient_checkpointing(checkpointing)
    fast.compile_blocks(fast_model, backend="aot_eager")  # Dynamo + AOT autograd, forward and backward graphs
    opt_fast = adamw(fast_model, fused=True)
    for _ in range(2):  # the second step also checks the optimiser state
        loss_p, grads_p = step(plain, opt_plain)
        loss_f, grads_f = step(fast_model, opt_fast, attention="math")
        torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
        for name, g in grads_p.items():
            torch.testing.assert_close(grads_f[name], g, rtol=1e-4, atol=1e-6, msg=name)
    for (name, a), b in zip(plain.named_parameters(), fast_model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert set(fast_model.state_dict()) == set(plain.state_dict())  # checkpoints keep their keys


def test_selective_checkpointing_saves_matmuls_and_recomputes_cheap_ops(monkeypatch):
    from torch.utils.checkpoint import CheckpointPolicy

    from v2m_zero.core.model import blocks

    aten = torch.ops.aten
    assert blocks._save_expensive(None, aten.mm.default) == CheckpointPolicy.MUST_SAVE
    assert blocks._save_expensive(None, aten.addmm.default) == CheckpointPolicy.MUST_SAVE
    for cheap in (aten.native_layer_norm.default, aten.silu.default, aten.mul.Tensor, aten.cat.default):
        assert blocks._save_expensive(None, cheap) == CheckpointPolicy.PREFER_RECOMPUTE
    # the policy is what a training step consults, op by op
    seen = {}
    real = blocks._save_expensive

    def record(ctx, op, *args, **kwargs):
        seen[op] = real(ctx, op, *args, **kwargs)
        return seen[op]

    monkeypatch.setattr(blocks, "_save_expensive", record)
    model = tiny_model()
    model.set_gradient_checkpointing("selective")
    step(model, adamw(model))
    saved = {op for op, policy in seen.items() if policy == CheckpointPolicy.MUST_SAVE}
    assert saved and saved <= blocks._expensive_ops()
    assert aten.native_layer_norm.default in seen and aten.native_layer_norm.default not in saved


def test_checkpointing_policy_names_are_checked():
    model = tiny_model()
    for ok in (False, True, "full", "selective"):
        model.set_gradient_checkpointing(ok)
    assert model.dit.transformer.gradient_checkpointing == "selective"
    model.set_gradient_checkpointing(True)
    assert model.dit.transformer.gradient_checkpointing == "full"
    with pytest.raises(V2MError, match="gradient checkpointing must be one of"):
        model.set_gradient_checkpointing("some")
    with pytest.raises(V2MError, match="attention kernel must be one of"):
        fast.attention_kernel("fastest")


def test_training_config_speed_switches_are_validated(tmp_path):
    base = {"data": {"cache": str(tmp_path)}, "model": {"from_config": {"embed_dim": 64}}}
    cfg = resolve_config(base)
    assert cfg["train"]["compile"] is False and cfg["train"]["attention"] == "auto" and cfg["optim"]["fused"] == "auto"
    ok = resolve_config({**base,
                         "train": {"gradient_checkpointing": "selective", "compile": True, "attention": "flash"},
                         "optim": {"fused": False}})
    assert ok["train"]["gradient_checkpointing"] == "selective"
    for section, key, bad, msg in (("train", "gradient_checkpointing", "half", "gradient_checkpointing must be"),
                                   ("train", "compile", "yes", "train.compile must be"),
                                   ("train", "attention", "sparse", "train.attention must be one of"),
                                   ("optim", "fused", "always", "optim.fused must be")):
        with pytest.raises(V2MError, match=msg):
            resolve_config({**base, section: {key: bad}})
