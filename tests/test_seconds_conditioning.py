"""``seconds_total`` / ``seconds_start`` tell the model the real clip, in the range its config states.

The reference (stable_audio_3 @636f906, ``models/conditioners.py`` NumberConditioner.forward, and
stable-audio-tools' identical one for SAO 1.0) clamps each number to [min_val, max_val], maps it to
(x - min_val) / (max_val - min_val) and embeds that (SA3: expo Fourier features 0.5 Hz..10 kHz, then a
Linear). Two ways to get it wrong, each caught here: a range other than the config's (e.g. a
hard-coded 384 s), and a clip length other than the real one — ComfyUI's open bug
(Comfy-Org/ComfyUI#14825: SA3's default seconds_total = latent frames / 10.7666 on a 21.53 Hz latent
grid, so every clip is conditioned as twice its length and the music fills only its first ~50-60 %).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tiny_models import tiny_v2m_checkpoint
from tiny_sa3 import tiny_sa3_file, tiny_t5gemma_comfy_file


def reference_normalised(seconds, lo, hi):
    return (np.clip(np.asarray(seconds, np.float64), lo, hi) - lo) / (hi - lo)


def reference_expo_embedding(seconds, lo, hi, weight, bias):
    """NumberConditioner(fourier_features_type="expo") of the reference: normalised and featurised in
    float32 in its order of operations (a 10 kHz feature's argument needs it), then its Linear."""
    x = torch.tensor(seconds, dtype=torch.float32).clamp(lo, hi)
    x = ((x - lo) / (hi - lo))[:, None]
    half = weight.shape[1] // 2
    ramp = torch.linspace(0, 1, half, dtype=torch.float32)
    freqs = torch.exp(ramp * (math.log(10000.0) - math.log(0.5)) + math.log(0.5))
    args = x * freqs * 2 * math.pi
    feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).double().numpy()
    return feats @ weight.T.astype(np.float64) + bias.astype(np.float64)


@pytest.fixture(scope="module")
def sa3(tmp_path_factory):
    root = tmp_path_factory.mktemp("sa3cfg")
    ref = {"sample_rate": 44100, "model": {"conditioning": {"configs": [
        {"id": "prompt", "type": "t5gemma", "config": {"max_length": 64, "padding_mode": "learned"}},
        {"id": "seconds_total", "type": "number", "config": {"min_val": 2, "max_val": 190,
                                                             "fourier_features_type": "expo"}}]}}}
    base = tiny_sa3_file(str(root / "stable_audio_3_small_music_base.safetensors"), reference=ref)
    text = str(root / "t5gemma_b_b_ul2.safetensors")
    tiny_t5gemma_comfy_file(text)
    return {"base": base, "text": text, "ref": ref}


def test_sa3_seconds_embedding_is_the_references_with_the_configs_range(sa3):
    from safetensors.torch import load_file

    from v2m_zero.core import generate

    model = generate.load_music_model(sa3["base"], text_encoder=sa3["text"])
    cond = model.dit.conditioner.conditioners["seconds_total"]
    assert (cond.min_val, cond.max_val) == (2.0, 190.0)  # from model_config.json, not SA3's 384 default
    sd = load_file(sa3["base"])
    w = sd["conditioner.conditioners.seconds_total.embedder.embedding.1.weight"].double().numpy()
    b = sd["conditioner.conditioners.seconds_total.embedder.embedding.1.bias"].double().numpy()
    lengths = [1.0, 2.0, 7.3, 30.0, 95.0, 190.0, 400.0]  # below, at and above the range too
    with torch.no_grad():
        ours = cond(torch.tensor(lengths))[0][:, 0].double().numpy()
    np.testing.assert_allclose(ours, reference_expo_embedding(lengths, 2.0, 190.0, w, b), atol=2e-5)
    # the check can fail: the same clip normalised with a hard-coded 384 s range is far off
    wrong = reference_expo_embedding(lengths, 0.0, 384.0, w, b)
    assert np.abs(ours - wrong).max() > 0.1


def _spy_numbers(monkeypatch, dit_type):
    seen = []
    real = dit_type.forward

    def spy(self, x, t, *a, seconds_start=None, seconds_total=None, **kw):
        first = lambda v: None if v is None else round(float(torch.as_tensor(v).reshape(-1)[0]), 5)  # noqa: E731
        seen.append((x.shape[-1], first(seconds_start), first(seconds_total)))
        return real(self, x, t, *a, seconds_start=seconds_start, seconds_total=seconds_total, **kw)

    monkeypatch.setattr(dit_type, "forward", spy)
    return seen


@pytest.mark.parametrize("base", ["sa3", "sao"])
def test_generation_conditions_on_the_real_clip_length(base, sa3, tmp_path, monkeypatch):
    """One window: seconds_total is the video's duration and agrees with the latent canvas at the
    codec's own latent rate (frames / rate = seconds, to one frame) — the invariant ComfyUI#14825 breaks."""
    from v2m_zero.core import generate
    from v2m_zero.core.timing import curves
    from v2m_zero.core.sampling import SamplingSettings

    if base == "sa3":
        model = generate.load_music_model(sa3["base"], text_encoder=sa3["text"])
    else:  # SAO 1.0's conditioning (seconds_start and seconds_total in [0, 512]), a tiny DiT
        model = generate.load_music_model(tiny_v2m_checkpoint(str(tmp_path / "sao.safetensors")))
    rate = model.codec.sample_rate / model.codec.downsampling_ratio
    assert model.latent_rate == pytest.approx(rate)
    seen = _spy_numbers(monkeypatch, type(model.dit))
    for d in (0.37, 0.81):
        seen.clear()
        t = np.arange(1, int(d * 24)) / 24
        generate.music_for_curve(model, curves.Curve(np.zeros(len(t)), t, d), "",
                                 SamplingSettings(steps=1, cfg=1.0, window_seconds=512))
        frames, start, total = seen[0]
        assert {s[2] for s in seen} == {round(d, 5)}
        assert abs(total * rate - frames) <= 1.0 + (frames % 2 if base == "sa3" else 0)
        assert start in ((None, 0.0) if base == "sa3" else (0.0,))
    cfgs = {c["id"]: c["config"] for c in model.meta["model_config"]["conditioning"]["configs"]}
    lo, hi = cfgs["seconds_total"].get("min_val", 0), cfgs["seconds_total"].get("max_val", 1)
    assert (lo, hi) == ((2, 190) if base == "sa3" else (0, 512))
    cond = model.dit.conditioner.conditioners["seconds_total"]
    fed = []
    hook = cond.embedder.embedding[0].register_forward_pre_hook(lambda m, a: fed.append(a[0].double().numpy()))
    with torch.no_grad():
        cond(torch.tensor([0.37, 0.81, 30.0]))
    hook.remove()
    np.testing.assert_allclose(fed[0], reference_normalised([0.37, 0.81, 30.0], lo, hi), atol=1e-6)


def test_config_ranges_are_bounded(tmp_path):
    from v2m_zero.core.errors import ModelError
    from v2m_zero.model_io.sa3 import sa3_v2m_parts

    for bad in ({"min_val": 10, "max_val": 10}, {"min_val": 0, "max_val": float("inf")}, {"max_val": "384"},
                {"min_val": 0, "max_val": 1e9}):
        ref = {"model": {"conditioning": {"configs": [{"id": "seconds_total", "type": "number", "config": bad}]}}}
        src = tiny_sa3_file(str(tmp_path / "model.safetensors"), reference=ref)
        with pytest.raises(ModelError, match="min_val"):
            sa3_v2m_parts(src)
    (tmp_path / "model_config.json").write_text(json.dumps({"sample_rate": 10**9}))
    with pytest.raises(ModelError, match="sample_rate"):
        sa3_v2m_parts(src)


def test_number_conditioner_refuses_an_empty_range():
    from v2m_zero.core.errors import ModelError
    from v2m_zero.core.model.conditioners import NumberConditioner

    for lo, hi in ((5, 5), (0, float("nan")), (3, 1)):
        with pytest.raises(ModelError, match="min_val < max_val"):
            NumberConditioner(8, lo, hi, "expo")
