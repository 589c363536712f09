"""The sampler's fast path (core.model.fast): when it compiles, that it gives eager's samples, and
that any compile failure falls back to eager with one warning."""

import logging

import pytest
import torch

from v2m_zero.core import generate
from v2m_zero.core.errors import CurveError, V2MError
from v2m_zero.core.model import fast, flow, parallel
from v2m_zero.core.model.dit import V2MDiT, make_model_config
from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core.sampling import SamplingSettings


def tiny_dit(seed=0):
    torch.manual_seed(seed)
    cfg = make_model_config(io_channels=16, embed_dim=64, depth=2, num_heads=2, cond_token_dim=32, with_curve=True)
    dit = V2MDiT(cfg, objective="rectified_flow").eval()
    with torch.no_grad():
        for p in dit.parameters():  # non-zero everywhere, so the curve and text matter
            if p.ndim > 1 and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return dit


def run(model, dit, **kw):
    cond = dit.conditioning(text=None, seconds=2.0)
    curve = torch.linspace(-1, 1, 64)[None, None]
    return flow.sample(model, (1, 16, 64), flow.rf_timesteps(4), seed=3, cfg_scale=3.0, cond=cond, curve=curve, **kw)


def test_modes_resolve_per_device_and_size():
    big, small = fast.AUTO_MIN_PARAMS, fast.AUTO_MIN_PARAMS - 1
    assert fast.resolve_mode("auto", "cuda", big) == "reduce-overhead"  # compiled + CUDA graphs
    assert fast.resolve_mode("auto", "cuda", small) is None  # the demo-size model: compiling does not pay
    assert fast.resolve_mode("auto", "cpu", big) is None  # the CPU default stays eager
    assert fast.resolve_mode("off", "cuda", big) is None
    assert fast.resolve_mode("compile", "cpu", small) == "default"
    assert fast.resolve_mode("compile", "cuda:0", small) == "reduce-overhead"
    assert fast.resolve_mode(False, "cuda", big) is None and fast.resolve_mode(None, "cuda", big) == "reduce-overhead"
    with pytest.raises(V2MError, match="fast sampler must be one of auto, off, compile"):
        fast.resolve_mode("turbo", "cpu")


def test_cpu_default_and_off_are_the_model_itself():
    dit = tiny_dit()
    assert fast.fast_model(dit, "auto") is dit
    assert fast.fast_model(dit, "off") is dit


def test_compiled_sampling_equals_eager_and_is_cached():
    """Dynamo traces the whole DiT (conditioning included) and AOT autograd runs the traced graph;
    the samples are eager's. (``aot_eager`` keeps the test short: the Inductor kernels are checked
    on CUDA in test_cuda.py and by benchmarks/sampler_speed.py --check.)"""
    dit = tiny_dit()
    keys = set(dit.state_dict())
    fm = fast.fast_model(dit, "compile", backend="aot_eager")
    assert isinstance(fm, fast.FastModel) and fm.objective == "rectified_flow"
    assert fast.fast_model(dit, "compile", backend="aot_eager") is fm  # warm-up kept for the next run
    want = run(dit, dit)
    got = run(fm, dit)
    assert fm.fast and fm.calls == 4
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run(fm, dit), want, rtol=1e-5, atol=1e-5)  # a second run reuses the graph
    assert set(dit.state_dict()) == keys  # the cache is no part of the weights


def test_a_compile_failure_falls_back_to_eager_once_with_a_warning(caplog, monkeypatch):
    calls = []
    # a compiled model's guidance is one forward of batch 2 (parallel.branches_in_parallel); the eager
    # reference takes the same form, so the fallback must give its samples bit for bit
    monkeypatch.setattr(parallel, "branches_in_parallel", lambda *a, **k: 0)

    def broken_backend(gm, example_inputs):
        calls.append(1)
        raise RuntimeError("no C++ compiler found\nlong details")

    dit = tiny_dit()
    fm = fast.fast_model(dit, "compile", backend=broken_backend)
    want = run(dit, dit)
    with caplog.at_level(logging.WARNING, logger="v2m_zero"):
        got = run(fm, dit)
        again = run(fm, dit)
    assert torch.equal(got, want) and torch.equal(again, want)
    assert not fm.fast and "no C++ compiler found" in fm.failure and "long details" not in fm.failure
    assert len(calls) == 1  # never retried after the first failure
    warnings = [r.getMessage() for r in caplog.records if r.name == "v2m_zero"]
    assert len(warnings) == 1 and "sampling eagerly" in warnings[0] and "'off'" in warnings[0]


def test_the_models_own_errors_are_not_taken_for_compile_failures():
    dit = tiny_dit()
    fm = fast.fast_model(dit, "compile", backend="aot_eager")
    x = torch.zeros(1, 16, 64)
    with pytest.raises(CurveError, match="latent has 64"):
        fm(x, torch.ones(1), curve=torch.zeros(1, 1, 32), **dit.conditioning(seconds=2.0))
    assert fm.fast


def test_cuda_without_triton_is_eager_with_a_note(monkeypatch, caplog):
    import torch.utils._triton as triton_probe

    monkeypatch.setattr(triton_probe, "has_triton", lambda: False)
    assert "Triton is not installed" in fast.compile_unavailable("cuda")
    dit = tiny_dit()
    with caplog.at_level(logging.WARNING, logger="v2m_zero"):
        fm = fast.fast_model(dit, "compile", device="cuda")
    assert not fm.fast and "Triton" in caplog.text
    assert fast.compile_unavailable("cpu") is None


def test_generator_pipeline_takes_the_fast_sampler_setting(tmp_path, monkeypatch):
    gen = generate.load_music_model(tiny_v2m_checkpoint(str(tmp_path / "t.safetensors")))
    seen = []
    real = fast.fast_model

    def spy(model, mode="auto", **kw):
        seen.append(mode)
        return real(model, "compile" if mode == "compile" else mode, backend="aot_eager", **kw)

    monkeypatch.setattr(fast, "fast_model", spy)
    eager = generate.sample_latents(gen, None, "", SamplingSettings(steps=3, cfg=2.0, seed=1, fast="off"), duration=0.5)
    compiled = generate.sample_latents(gen, None, "", SamplingSettings(steps=3, cfg=2.0, seed=1, fast="compile"),
                                       duration=0.5)
    assert seen == ["off", "compile"]
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
