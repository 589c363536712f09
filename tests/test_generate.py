"""The generation pipeline on a tiny random V2M checkpoint: curve → sample → decode, exact length."""

import numpy as np
import pytest
import torch

from tiny_models import PATCH, tiny_v2m_checkpoint
from v2m_zero.core.model import flow
from v2m_zero.core import generate
from v2m_zero.core.timing.curves import Curve
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.sampling import SamplingSettings


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    path = tiny_v2m_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))
    return generate.load_music_model(path, device="cpu")


def _raw_curve(duration, fps=24.0, cuts=(1.0, 2.0)):
    t = np.arange(1, int(duration * fps)) / fps
    v = np.full(len(t), -0.2)
    for c in cuts:
        v[np.argmin(np.abs(t - c))] = 4.0
    return Curve(v, t, duration)


def test_generator_reads_codec_and_curve_spec(gen):
    assert gen.latent_rate == 100.0 and gen.sample_rate == 1600
    assert gen.curve_spec.smoothing_seconds == 0.5
    assert gen.codec.latent_channels == 16 and gen.text is None


@pytest.mark.parametrize("fps", [12, 24, 25, 30000 / 1001, 60])
def test_exact_length_at_any_fps(gen, fps):
    n_frames = 77
    duration = n_frames / fps
    cond = generate.conditioning_curve_for(gen, _raw_curve(duration, fps, cuts=()))
    assert len(cond) == generate.latent_frames(gen, duration)
    assert cond.spec["smoothing_seconds"] == 0.5
    lat = generate.sample_latents(gen, cond, "", SamplingSettings(steps=2, cfg=1.0, seed=1), duration=duration)
    wave = generate.decode_latents(gen, lat, duration)
    assert wave.shape == (1, round(duration * PATCH["sample_rate"]))
    assert np.isfinite(wave).all()


def test_deterministic_per_seed_and_curve_matters(gen):
    d = 3.0
    cond = generate.conditioning_curve_for(gen, _raw_curve(d))
    a = generate.sample_latents(gen, cond, "", SamplingSettings(steps=4, cfg=3.0, seed=7), duration=d)
    b = generate.sample_latents(gen, cond, "", SamplingSettings(steps=4, cfg=3.0, seed=7), duration=d)
    c = generate.sample_latents(gen, cond, "", SamplingSettings(steps=4, cfg=3.0, seed=8), duration=d)
    z = generate.sample_latents(gen, None, "", SamplingSettings(steps=4, cfg=3.0, seed=7), duration=d)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - z).abs().max() > 1e-4  # the curve channel changes the result
    steps = []
    generate.sample_latents(gen, cond, "", SamplingSettings(steps=5, cfg=1.0, seed=7), duration=d,
                            callback=lambda s: steps.append(s["i"]))
    assert steps == [0, 1, 2, 3, 4]


def test_callback_can_interrupt(gen):
    class Stop(Exception):
        pass

    def cb(state):
        if state["i"] == 1:
            raise Stop

    with pytest.raises(Stop):
        generate.sample_latents(gen, None, "", SamplingSettings(steps=10, cfg=1.0, seed=0), duration=1.0, callback=cb)


def test_nan_guard(gen):
    lat = torch.full((1, 16, 10), float("nan"))
    with pytest.raises(V2MError, match="NaN/Inf"):
        generate.decode_latents(gen, lat, 0.1)


def test_wrong_curve_length_is_clear(gen):
    bad = Curve(np.zeros(5), np.arange(5) / 100, 0.05, rate=100.0)
    with pytest.raises(V2MError, match="latent frames"):
        generate.sample_latents(gen, bad, "", SamplingSettings(steps=2, cfg=1.0), duration=1.0)


def test_checkpoint_without_curve_channel_is_refused(tmp_path):
    from v2m_zero.core.model.dit import V2MDiT, make_model_config
    from v2m_zero.model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint

    cfg = make_model_config(io_channels=16, embed_dim=64, depth=1, num_heads=2, cond_token_dim=32)
    meta = {"v2m_format": V2M_FORMAT, "model_config": cfg, "objective": "v", "latent_rate": 100.0, "sample_rate": 1600,
            "codec": {"type": "patch", "config": PATCH}}
    path = save_v2m_checkpoint(str(tmp_path / "plain.safetensors"), V2MDiT(cfg).state_dict(), meta)
    with pytest.raises(ModelError, match="init-checkpoint"):
        generate.load_music_model(str(path), device="cpu")


def test_negative_prompt_replaces_text_in_uncond_branch():
    seen = {}

    def model(x, t, *, curve=None, cond_drop=None, cond_tokens=None):
        seen["tokens"], seen["drop"] = cond_tokens, cond_drop
        return cond_tokens.mean(dim=(1, 2)).reshape(-1, 1, 1).expand_as(x)

    pos, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), -1.0)
    cfg = flow.CFGDenoiser(model, 2.0, uncond="both", negative={"cond_tokens": neg})
    out = cfg(torch.zeros(1, 2, 5), torch.tensor([0.5]), curve=torch.zeros(1, 1, 5), cond_tokens=pos)
    assert torch.equal(seen["tokens"][1], neg[0]) and not seen["drop"].any()
    assert torch.allclose(out, torch.full_like(out, -1 + 2 * (1 - -1)))


def test_t5_conditioned_checkpoint_with_prompt_and_negative_prompt(tmp_path):
    from tiny_models import tiny_t5
    from v2m_zero.core.model.text import T5TextEncoder

    folder = tiny_t5(tmp_path / "t5-tiny")
    ck = tiny_v2m_checkpoint(str(tmp_path / "t5.safetensors"), text_dim=16, text="t5")
    with pytest.raises(ModelError, match="T5"):
        generate.load_music_model(ck, device="cpu")
    gen = generate.load_music_model(ck, text_encoder=str(folder), device="cpu")
    assert isinstance(gen.text, T5TextEncoder)
    d = 1.5
    cond = generate.conditioning_curve_for(gen, _raw_curve(d))
    s = SamplingSettings(steps=3, cfg=4.0, seed=2)
    a = generate.sample_latents(gen, cond, "calm piano", s, duration=d)
    b = generate.sample_latents(gen, cond, "upbeat electronic dance track", s, duration=d)
    c = generate.sample_latents(gen, cond, "calm piano", s, negative_prompt="soft drums", duration=d)
    assert not torch.equal(a, b) and not torch.equal(a, c)
    assert np.isfinite(generate.decode_latents(gen, a, d)).all()


def test_check_finite_looks_at_every_block():
    """check_finite works in blocks along the last axis (no whole-size temporaries): NaN or Inf in a
    later block, in a partial last block, or in a 0-d value is still refused, for tensors and arrays."""
    from v2m_zero.core import generate as g

    n = 3 * (1 << 14) + 5
    for bad, at in ((float("nan"), n - 1), (float("inf"), (1 << 14) + 7), (-float("inf"), 0)):
        t = torch.zeros(1, 4, n)
        g.check_finite(t, "x")
        g.check_finite(t.numpy(), "x")
        t[0, 2, at] = bad
        with pytest.raises(V2MError, match="NaN/Inf in x"):
            g.check_finite(t, "x")
        with pytest.raises(V2MError, match="NaN/Inf in x"):
            g.check_finite(t.numpy(), "x")
    with pytest.raises(V2MError):
        g.check_finite(torch.tensor(float("nan")), "x")
    g.check_finite(np.zeros((2, 0), np.float32), "x")
