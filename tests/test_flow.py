"""Sampler, schedules, CFG and objectives, checked against closed forms."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.core.errors import V2MError
from v2m_zero.core.model import parallel
from v2m_zero.core.model.parallel import SideBySide, branches_in_parallel, side_by_side, torch_threads
from v2m_zero.core.model.flow import (
    CFGDenoiser,
    VPredictionVelocity,
    make_noise,
    rf_loss,
    rf_timesteps,
    sample,
    sample_euler,
    velocity_model,
)

MU, SIG = 1.5, 0.5  # data x0 ~ N(MU, SIG²), elementwise


def gaussian_rf_velocity(x, t):
    """Exact marginal RF velocity E[ε − x0 | x_t = x] for x0 ~ N(μ, s²), ε ~ N(0, 1).

    x_t = t ε + (1 − t) x0 is Gaussian with mean (1 − t) μ and variance t² + (1 − t)² s²;
    Cov(ε − x0, x_t) = t − (1 − t) s², E[ε − x0] = −μ, so by Gaussian conditioning
    v(x, t) = −μ + (t − (1 − t) s²) / (t² + (1 − t)² s²) · (x − (1 − t) μ).
    Along its ODE, z = (x − (1 − t) μ) / √(t² + (1 − t)² s²) is constant, so ε (t = 1) ↦ μ + s ε (t = 0).
    """
    t = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    var = t**2 + (1 - t) ** 2 * SIG**2
    return -MU + (t - (1 - t) * SIG**2) / var * (x - (1 - t) * MU)


def gaussian_v_prediction(z, tau):
    """Exact E[v | z] for stable-audio-tools' v objective: z = α x0 + σ ε, v = α ε − σ x0."""
    tau = tau.reshape(-1, *([1] * (z.ndim - 1))).to(z.dtype)
    a, s = torch.cos(tau * math.pi / 2), torch.sin(tau * math.pi / 2)
    return -s * MU + a * s * (1 - SIG**2) / (a**2 * SIG**2 + s**2) * (z - a * MU)


def _model(fn):
    def call(x, t, **_):
        return fn(x, t)
    return call


def test_euler_converges_to_the_exact_transport_at_first_order():
    eps = make_noise((4, 3, 50), seed=0, dtype=torch.float64)
    exact = MU + SIG * eps
    errors = []
    for steps in (25, 50, 100, 200):
        out = sample_euler(_model(gaussian_rf_velocity), eps.clone(), rf_timesteps(steps), disable=True)
        errors.append((out - exact).abs().max().item())
    ratios = [errors[i + 1] / errors[i] for i in range(len(errors) - 1)]
    assert all(0.4 < r < 0.6 for r in ratios), (errors, ratios)  # error ∝ 1/steps
    assert errors[-1] < 0.03


def test_rf_timesteps_and_shift():
    t = rf_timesteps(4)
    assert t.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    ts = rf_timesteps(4, shift=3.0)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and torch.all(ts[1:-1] > t[1:-1])
    assert torch.all(ts[:-1] > ts[1:])
    with pytest.raises(V2MError):
        rf_timesteps(0)


def test_v_prediction_conversion_is_exact():
    x = torch.randn(3, 2, 7, dtype=torch.float64)
    model = VPredictionVelocity(_model(gaussian_v_prediction))
    for tv in (0.0, 0.1, 0.5, 0.9, 1.0):
        t = torch.full((3,), tv, dtype=torch.float64)
        got = model(x, t).double()
        torch.testing.assert_close(got, gaussian_rf_velocity(x, t), atol=1e-5, rtol=1e-5)


def test_v_model_samples_with_the_rf_schedule():
    eps = make_noise((2, 2, 40), seed=3, dtype=torch.float64)
    ts = rf_timesteps(400)
    m = velocity_model(_model(gaussian_v_prediction), "v")
    out = sample_euler(m, eps * ts[0].item(), ts, disable=True)
    assert (out - (MU + SIG * eps)).abs().max() < 0.02


def test_velocity_model_dispatch():
    class M:
        objective = "rectified_flow"

        def __call__(self, x, t):
            return x

    m = M()
    assert velocity_model(m) is m
    assert isinstance(velocity_model(m, "v"), VPredictionVelocity)
    with pytest.raises(Exception, match="objective"):
        velocity_model(m, "eps")


def test_noise_is_seeded_and_device_independent():
    a = make_noise((2, 64, 10), seed=1234)
    b = make_noise((2, 64, 10), seed=1234)
    c = make_noise((2, 64, 10), seed=1235)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, torch.randn(2, 64, 10, generator=torch.Generator().manual_seed(1234)))
    assert torch.equal(make_noise((2, 64, 10), seed=1234, dtype=torch.float64).float(), a)
    if torch.cuda.is_available():
        assert torch.equal(make_noise((2, 64, 10), seed=1234, device="cuda").cpu(), a)


def test_sampling_is_deterministic_and_callback_sees_every_step():
    seen = []
    x = make_noise((1, 2, 5), seed=7)
    out1 = sample_euler(_model(gaussian_rf_velocity), x, rf_timesteps(6), callback=seen.append, disable=True)
    out2 = sample_euler(_model(gaussian_rf_velocity), make_noise((1, 2, 5), seed=7), rf_timesteps(6), disable=True)
    assert torch.equal(out1, out2)
    assert [d["i"] for d in seen] == list(range(6))
    assert set(seen[0]) == {"i", "t", "x", "denoised"} and seen[0]["t"] == 1.0
    # the denoised estimate x − t·v at the last step is exactly the output (t_next = 0)
    torch.testing.assert_close(seen[-1]["denoised"], out1)

    class Stop(Exception):
        pass

    def interrupt(d):
        if d["i"] == 2:
            raise Stop

    with pytest.raises(Stop):
        sample_euler(_model(gaussian_rf_velocity), x, rf_timesteps(6), callback=interrupt, disable=True)


class Recorder:
    """A fake conditioned model: output depends linearly on the conditioning, and records calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, *, curve=None, cond_drop=None, cond_tokens=None, seconds_total=None):
        self.calls.append(dict(x=x, t=t, curve=curve, cond_drop=cond_drop, cond_tokens=cond_tokens,
                               seconds_total=seconds_total))
        b = x.shape[0]
        text = cond_tokens.mean(dim=(1, 2)) if cond_tokens is not None else torch.zeros(b)
        if cond_drop is not None:
            text = torch.where(cond_drop, torch.zeros_like(text), text)
        c = curve if curve is not None else torch.zeros(b, x.shape[-1])
        return x * 0.5 + text[:, None, None] * 2 + c[:, None, :] * 3


@pytest.mark.parametrize("mode,drop_text,drop_curve",
                         [("both", True, True), ("text", True, False), ("curve", False, True)])
def test_cfg_branches(mode, drop_text, drop_curve):
    rec = Recorder()
    x = torch.randn(2, 4, 6)
    curve = torch.randn(2, 6)
    tok = torch.randn(2, 3, 5)
    den = CFGDenoiser(rec, cfg_scale=4.0, uncond=mode)
    out = den(x, torch.tensor([0.3, 0.3]), curve=curve, cond_tokens=tok, seconds_total=30.0)
    assert len(rec.calls) == 1  # one forward of 2B
    call = rec.calls[0]
    assert call["x"].shape[0] == 4 and call["cond_tokens"].shape[0] == 4 and call["seconds_total"] == 30.0
    assert call["cond_drop"].tolist() == [False, False, drop_text, drop_text]
    assert torch.equal(call["curve"][:2], curve)
    assert torch.equal(call["curve"][2:], curve * 0 if drop_curve else curve)
    cond = Recorder()(x, 0.3, curve=curve, cond_tokens=tok)
    un = Recorder()(x, 0.3, curve=curve * 0 if drop_curve else curve, cond_tokens=tok * 0 if drop_text else tok)
    torch.testing.assert_close(out, un + 4.0 * (cond - un))


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("mode", ["both", "text", "curve"])
def test_cfg_branches_side_by_side_are_the_batched_branches(mode, negative):
    """Side by side the two branches are two forwards of B, the unconditional one on the worker
    thread, and each gets exactly the rows the batch-2B forward gives it."""
    x, curve, tok = torch.randn(2, 4, 6), torch.randn(2, 6), torch.randn(2, 3, 5)
    neg = {"cond_tokens": torch.randn(1, 3, 5)} if negative else None
    batched = Recorder()
    one = CFGDenoiser(batched, cfg_scale=4.0, uncond=mode, negative=neg)(x, torch.tensor([0.3, 0.3]), curve=curve,
                                                                           cond_tokens=tok, seconds_total=30.0)
    threads = {}

    class OnThread(Recorder):
        def __call__(self, x, t, **kw):
            threads[len(self.calls)] = threading.current_thread().name
            return super().__call__(x, t, **kw)

    rec = OnThread()
    with SideBySide(1) as side:
        two = CFGDenoiser(rec, cfg_scale=4.0, uncond=mode, negative=neg, side=side)(
            x, torch.tensor([0.3, 0.3]), curve=curve, cond_tokens=tok, seconds_total=30.0)
    torch.testing.assert_close(two, one, rtol=0, atol=0)
    assert len(rec.calls) == 2 and sorted(n.startswith("v2m-guidance") for n in threads.values()) == [False, True]
    (call,) = batched.calls
    by_thread = {name.startswith("v2m-guidance"): rec.calls[k] for k, name in threads.items()}
    cond, un = by_thread[False], by_thread[True]
    for key in ("x", "t", "curve", "cond_drop", "cond_tokens"):
        assert torch.equal(torch.cat([cond[key], un[key]]), call[key]), key
    assert cond["seconds_total"] == un["seconds_total"] == 30.0


def test_guidance_runs_its_branches_side_by_side_only_on_a_cpu_with_two_threads():
    class Compiled:
        compile_mode = "default"

    with torch_threads(4):
        assert branches_in_parallel("cpu", 3.0) == 2 and branches_in_parallel(None, 3.0) == 2
        assert branches_in_parallel("cpu", 1.0) == 0  # no guidance: one forward
        assert branches_in_parallel("cuda", 3.0) == 0 and branches_in_parallel(torch.device("meta"), 3.0) == 0
        assert branches_in_parallel("cpu", 3.0, Compiled()) == 0
        with side_by_side("cpu", 3.0) as side:
            assert side is not None and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 4  # restored
    with torch_threads(1), side_by_side("cpu", 3.0) as side:
        assert side is None and branches_in_parallel("cpu", 3.0) == 0


def tiny_dit(seed=0):
    torch.manual_seed(seed)
    return V2MDiT(make_model_config(with_curve=True, io_channels=4, embed_dim=64, depth=2, num_heads=2,
                                    cond_token_dim=32), objective="rectified_flow").eval()


def test_side_by_side_guidance_records_the_dit_and_gives_its_unbatched_forwards_bit_for_bit():
    """The branches run as TorchScript recordings (one per branch), checked on a later call and
    kept: each output is the model's own forward of batch 1, bit for bit, and within float
    rounding of the batched guidance."""
    dit = tiny_dit()
    kw = dict(curve=torch.randn(1, 16), cond_tokens=torch.randn(1, 3, 32), seconds_start=0.0, seconds_total=8.0)
    den = CFGDenoiser(dit, 5.0)
    with torch.no_grad(), SideBySide(1, record_after=1) as side:
        side_den = CFGDenoiser(dit, 5.0, side=side)
        for step in range(5):
            x, t = torch.randn(1, 4, 16), torch.tensor([1.0 - step / 5])
            got = side_den(x, t, **kw)
            torch.testing.assert_close(got, den(x, t, **kw), rtol=1e-5, atol=1e-5)
            cond, uncond = side_den._branches(x, t, kw["curve"], {k: v for k, v in kw.items() if k != "curve"})
            want = dit(x, t, **{k: v for k, v in cond.items() if k not in ("x", "t")})
            unwant = dit(x, t, **{k: v for k, v in uncond.items() if k not in ("x", "t")})
            assert torch.equal(got, unwant + (want - unwant) * 5.0)
        states = sorted(r.state for r in side.recorded.values())
    assert states == ["ok", "ok"]  # both branches recorded and checked


class Branchy(torch.nn.Module):
    """A forward whose Python decides on a value of t: a recording keeps only the branch it saw."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x, t, *, curve=None, cond_drop=None):
        return x * self.w * (2.0 if float(t[0]) > 0.5 else 3.0)


def test_a_recording_that_differs_from_the_model_is_dropped():
    model = Branchy().eval()
    x = torch.ones(1, 2, 4)
    with torch.no_grad(), SideBySide(1, record_after=1) as side:
        den = CFGDenoiser(model, 2.0, side=side)
        outs = [den(x, torch.tensor([t])) for t in (1.0, 0.9, 0.8, 0.3, 0.2)]  # recorded at 0.9, checked at 0.3
        assert sorted(r.state for r in side.recorded.values()) == ["eager", "eager"]
    assert [float(o.flatten()[0]) for o in outs] == [2.0, 2.0, 2.0, 3.0, 3.0]


def test_side_by_side_guidance_is_set_up_once_per_job(monkeypatch, tmp_path):
    """A windowed job records each branch once per window shape, not once per window, and only
    after RECORD_AFTER calls of it."""
    from tiny_models import tiny_v2m_checkpoint

    from v2m_zero.core import generate
    from v2m_zero.core.sampling import SamplingSettings

    gen = generate.load_music_model(tiny_v2m_checkpoint(str(tmp_path / "m.safetensors")), device="cpu")
    traces = []
    real = torch.jit.trace

    def spy(*a, **k):
        traces.append(1)
        return real(*a, **k)

    monkeypatch.setattr(torch.jit, "trace", spy)
    monkeypatch.setattr(parallel, "RECORD_AFTER", 3)
    job = generate.plan_job(gen, None, SamplingSettings(steps=2, cfg=3.0, window_seconds=1.0, overlap_seconds=0.25),
                            duration=4.0)
    assert len(job.plan) >= 4
    shapes = {w.length for w in job.plan.windows}
    with torch_threads(2):
        generate.sample_job(gen, job)
    assert 0 < len(traces) <= 2 * len(shapes)
    traces.clear()
    monkeypatch.setattr(parallel, "RECORD_AFTER", 10 ** 6)
    with torch_threads(2):
        generate.sample_job(gen, job)
    assert traces == []  # a short job runs the model itself


def test_cfg_scale_one_is_the_conditional_model():
    rec = Recorder()
    x = torch.randn(2, 4, 6)
    out = CFGDenoiser(rec, 1.0)(x, torch.tensor([0.5, 0.5]), curve=torch.ones(2, 6), cond_tokens=torch.ones(2, 1, 1))
    assert len(rec.calls) == 1 and rec.calls[0]["x"].shape[0] == 2
    torch.testing.assert_close(out, x * 0.5 + 2 + 3)
    with pytest.raises(V2MError):
        CFGDenoiser(rec, 3.0, uncond="nothing")


def test_cfg_on_v_output_equals_cfg_on_velocity_with_tiny_dit():
    torch.manual_seed(0)
    dit = V2MDiT(make_model_config(with_curve=True, io_channels=4, embed_dim=64, depth=1, num_heads=2,
                                   cond_token_dim=32)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(2, 4, 8)
    kw = dict(curve=torch.randn(2, 8), cond_tokens=torch.randn(2, 3, 32), seconds_start=0.0,
              seconds_total=torch.tensor([8.0, 9.0]))
    t = torch.tensor([0.7, 0.7])
    with torch.no_grad():
        a = CFGDenoiser(VPredictionVelocity(dit), 5.0)(x, t, **kw)
        b = VPredictionVelocity(CFGDenoiser(dit, 5.0))(x, t, **kw)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rf_loss_is_eq6():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 5, generator=g)
    noise = torch.randn(3, 2, 5, generator=g)
    t = torch.tensor([0.1, 0.5, 0.9])

    def oracle(x_t, tt, **_):  # knows x0, so predicts the target exactly
        return noise - x0

    assert rf_loss(oracle, x0, t=t, noise=noise).item() == 0.0
    seen = {}

    def zero(x_t, tt, **kw):
        seen.update(x_t=x_t, t=tt, **kw)
        return torch.zeros_like(x_t)

    loss = rf_loss(zero, x0, t=t, noise=noise, reduction="none")
    torch.testing.assert_close(loss, ((noise - x0) ** 2).mean(dim=(1, 2)))
    torch.testing.assert_close(seen["x_t"], t[:, None, None] * noise + (1 - t[:, None, None]) * x0)


def test_rf_loss_drops_text_and_curve_independently():
    seen = {}

    def m(x_t, t, *, curve=None, cond_drop=None):
        seen.update(curve=curve, cond_drop=cond_drop)
        return torch.zeros_like(x_t)

    x0 = torch.randn(4000, 1, 2)
    rf_loss(m, x0, curve=torch.ones(4000, 2), generator=torch.Generator().manual_seed(0), p_drop_text=0.1,
            p_drop_curve=0.1)
    text_rate = seen["cond_drop"].float().mean().item()
    curve_dropped = seen["curve"][:, 0] == 0
    assert 0.08 < text_rate < 0.12 and 0.08 < curve_dropped.float().mean().item() < 0.12
    both = (seen["cond_drop"] & curve_dropped).float().mean().item()
    assert both < 0.02  # independent: ≈ 1 %


def test_rf_loss_trains_the_tiny_dit():
    torch.manual_seed(0)
    dit = V2MDiT(make_model_config(with_curve=True, io_channels=4, embed_dim=64, depth=1, num_heads=2,
                                   cond_token_dim=32), objective="rectified_flow")
    x0 = torch.randn(2, 4, 8)
    loss = rf_loss(dit, x0, curve=torch.randn(2, 8), cond_tokens=torch.randn(2, 3, 32), seconds_start=0.0,
                   seconds_total=8.0, generator=torch.Generator().manual_seed(1), p_drop_text=0.5, p_drop_curve=0.5)
    loss.backward()
    assert torch.isfinite(loss)
    assert dit.dit.transformer.project_in.weight.grad is not None


def test_sample_wires_noise_guidance_and_the_given_sampler():
    """flow.sample = make_noise(shape, seed) → CFGDenoiser(velocity_model) → sampler over the one given schedule."""
    torch.manual_seed(0)
    model = V2MDiT(make_model_config(io_channels=4, embed_dim=64, depth=1, num_heads=1, cond_token_dim=64,
                                     with_curve=True),
                   objective="rectified_flow").eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    cond = model.conditioning(seconds=2.0)
    curve = torch.randn(1, 1, 8)
    for threads in (1, 2):  # guidance as one forward of 2B (1 thread) or two of B side by side (2 threads)
        with torch_threads(threads):
            got = sample(model, (1, 4, 8), rf_timesteps(3), seed=5, cfg_scale=2.0, cond=cond, curve=curve)
            with side_by_side(None, 2.0, model) as side:
                assert (side is None) == (threads == 1)
                den = CFGDenoiser(velocity_model(model), 2.0, side=side)
                want = sample_euler(den, make_noise((1, 4, 8), 5), rf_timesteps(3),
                                    extra_args={**cond, "curve": curve}, disable=True)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    seen = {}

    def my_sampler(m, x, ts, extra_args=None, callback=None, disable=None):
        seen.update(ts=ts, keys=sorted(extra_args))
        return x

    out = sample(model, (1, 4, 8), rf_timesteps(4, shift=3.0), seed=5, cfg_scale=7.0, cond=cond, curve=curve,
                 sampler=my_sampler)
    torch.testing.assert_close(out, make_noise((1, 4, 8), 5))
    assert (torch.equal(seen["ts"], rf_timesteps(4, shift=3.0)) and "curve" in seen["keys"]
            and "seconds_total" in seen["keys"])


def test_model_conditioning_inputs():
    model = V2MDiT(make_model_config(io_channels=4, embed_dim=64, depth=1, num_heads=1, cond_token_dim=64, text_dim=32,
                                     with_curve=True))
    assert model.takes_text and model.text_dim == 32
    null = model.conditioning(batch=3, seconds=torch.tensor([1.0, 2.0, 3.0]))
    assert null["cond_tokens"].shape == (3, 1, 32) and not null["cond_tokens"].any() and null["cond_mask"].all()
    assert null["seconds_start"].tolist() == [0, 0, 0] and null["seconds_total"].tolist() == [1, 2, 3]
    tok, mask = torch.randn(1, 5, 32), torch.ones(1, 5, dtype=torch.bool)
    text = model.conditioning(text=(tok, mask), dtype=torch.float64)
    assert (text["cond_tokens"].dtype == torch.float64 and text["cond_mask"].dtype == torch.bool
            and "seconds_total" not in text)
    plain = V2MDiT({"diffusion": {"type": "dit",
                                  "config": {"io_channels": 4, "embed_dim": 64, "depth": 1, "num_heads": 1,
                                                           "cond_token_dim": 0, "global_cond_dim": 0}}})
    assert not plain.takes_text and plain.text_dim is None and plain.conditioning(seconds=1.0) == {}
