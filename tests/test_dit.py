"""The DiT against diffusers' StableAudioDiTModel (oracle), curve widening, conditioning contracts."""

from __future__ import annotations

import pytest
import torch

from v2m_zero.core.model.dit import DiTConfig, V2MDiT, count_parameters, make_model_config
from v2m_zero.model_io.sao import widen_for_curve
from v2m_zero.core.errors import CurveError, ModelError
from v2m_zero.model_io.sao import (
    conditioners_to_diffusers,
    dit_from_diffusers,
    dit_to_diffusers,
    sao1_model_config,
)

# head dim 64 → rotary on 32 of 64 channels (partial, as SAO); 2 kv heads for 4 query heads (GQA, as SAO)
TINY = dict(io_channels=8, embed_dim=256, depth=2, num_heads=4, cond_token_dim=128)


def _randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def _inputs(b=2, length=16, s=5, text_dim=128, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, TINY["io_channels"], length, generator=g)
    t = torch.rand(b, generator=g)
    tok = torch.randn(b, s, text_dim, generator=g)
    mask = torch.ones(b, s, dtype=torch.bool)
    mask[1, 3:] = False
    return dict(x=x, t=t, tok=tok, mask=mask, ss=torch.tensor([0.0, 3.0])[:b], st=torch.tensor([10.0, 47.0])[:b])


def _diffusers_reference(model: V2MDiT, inp, in_channels, curve=None, encoder_mask=False):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

    c = model.config
    sd = model.state_dict()
    ref = diffusers.StableAudioDiTModel(
        sample_size=16, in_channels=in_channels, num_layers=c.depth, attention_head_dim=c.head_dim,
        num_attention_heads=c.num_heads, num_key_value_attention_heads=c.cond_token_dim // c.head_dim,
        out_channels=c.io_channels, cross_attention_dim=c.cond_token_dim, time_proj_dim=256,
        global_states_input_dim=c.global_cond_dim, cross_attention_input_dim=c.cond_token_dim,
    ).eval()
    ref.load_state_dict(dit_to_diffusers(sd), strict=True)
    proj = StableAudioProjectionModel(c.cond_token_dim, c.cond_token_dim, 0, 512).eval()
    proj.load_state_dict(conditioners_to_diffusers(sd), strict=True)
    x = inp["x"] if curve is None else torch.cat([inp["x"], curve[:, None]], dim=1)
    with torch.no_grad():
        po = proj(text_hidden_states=inp["tok"], start_seconds=inp["ss"], end_seconds=inp["st"])
        text = po.text_hidden_states * inp["mask"][..., None]
        enc = torch.cat([text, po.seconds_start_hidden_states, po.seconds_end_hidden_states], dim=1)
        glob = torch.cat([po.seconds_start_hidden_states, po.seconds_end_hidden_states], dim=2)
        rot = get_1d_rotary_pos_embed(c.rotary_dim, x.shape[-1] + 1, use_real=True, repeat_interleave_real=False)
        kw = {}
        if encoder_mask:
            kw["encoder_attention_mask"] = torch.cat([inp["mask"], torch.ones(x.shape[0], 2, dtype=torch.bool)], 1)
        return ref(x, inp["t"], encoder_hidden_states=enc, global_hidden_states=glob, rotary_embedding=rot, **kw).sample


def test_matches_diffusers_stable_audio_dit():
    model = V2MDiT(make_model_config(**TINY)).eval()
    _randomise(model)
    inp = _inputs()
    with torch.no_grad():
        ours = model(inp["x"], inp["t"], cond_tokens=inp["tok"], cond_mask=inp["mask"],
                     seconds_start=inp["ss"], seconds_total=inp["st"])
    ref = _diffusers_reference(model, inp, in_channels=TINY["io_channels"])
    assert ref.abs().max() > 0.5  # a non-trivial output
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_matches_diffusers_with_curve_channel_and_text_mask():
    model = V2MDiT(make_model_config(with_curve=True, cross_attn_mask=True, **TINY)).eval()
    _randomise(model, seed=3)
    inp = _inputs(seed=4)
    curve = torch.randn(2, 16)
    with torch.no_grad():
        ours = model(inp["x"], inp["t"], curve=curve, cond_tokens=inp["tok"], cond_mask=inp["mask"],
                     seconds_start=inp["ss"], seconds_total=inp["st"])
    # diffusers has no input-concat: feed it [x; curve] with in_channels = io + 1, as our layout does
    ref = _diffusers_reference(model, inp, in_channels=TINY["io_channels"] + 1, curve=curve, encoder_mask=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_diffusers_key_mapping_round_trips():
    model = V2MDiT(make_model_config(**TINY))
    _randomise(model)
    sd = {k: v for k, v in model.state_dict().items() if k.startswith("model.model.")}
    back = dit_from_diffusers(dit_to_diffusers(sd), rotary_dim=model.config.rotary_dim)
    assert set(back) == set(sd)
    for k in sd:
        torch.testing.assert_close(back[k], sd[k], atol=0, rtol=0)


def test_sao1_config_has_published_size_and_layout():
    with torch.device("meta"):
        model = V2MDiT(sao1_model_config())
    n = count_parameters(model.dit)
    assert 1.05e9 < n < 1.07e9  # "1.06 B"
    sd = model.state_dict()
    assert sd["model.model.transformer.layers.0.cross_attn.to_kv.weight"].shape == (1536, 768)  # 12 kv heads
    assert sd["model.model.transformer.rotary_pos_emb.inv_freq"].shape == (16,)
    assert sd["model.model.preprocess_conv.weight"].shape == (64, 64, 1)
    assert sd["conditioner.conditioners.seconds_total.embedder.embedding.1.weight"].shape == (768, 257)
    assert not any(k.startswith("conditioner.conditioners.prompt") for k in sd)  # T5 lives outside


def test_widen_for_curve_keeps_outputs_then_curve_matters():
    base_cfg = make_model_config(**TINY)
    base = V2MDiT(base_cfg).eval()
    _randomise(base, seed=5)
    sd, cfg = widen_for_curve(base.state_dict(), base_cfg)
    assert sd["model.model.preprocess_conv.weight"].shape == (9, 9, 1)
    assert sd["model.model.transformer.project_in.weight"].shape == (256, 9)
    assert cfg["diffusion"]["config"]["input_concat_dim"] == 1
    assert cfg["diffusion"]["input_concat_ids"] == ["curve"]
    wide = V2MDiT(cfg).eval()
    wide.load_state_dict(sd, strict=True)
    inp = _inputs(seed=6)
    curve = torch.randn(2, 16) * 3
    kw = dict(cond_tokens=inp["tok"], cond_mask=inp["mask"], seconds_start=inp["ss"], seconds_total=inp["st"])
    with torch.no_grad():
        y0 = base(inp["x"], inp["t"], **kw)
        y1 = wide(inp["x"], inp["t"], curve=curve, **kw)
        assert torch.equal(y0, y1)
        # once training moves the new weights, the curve changes the output
        wide.dit.transformer.project_in.weight[:, -1].normal_()
        wide.dit.preprocess_conv.weight[:-1, -1].normal_()
        y2 = wide(inp["x"], inp["t"], curve=curve, **kw)
        y3 = wide(inp["x"], inp["t"], curve=curve * 0, **kw)
    assert (y2 - y0).abs().max() > 1e-3
    assert (y2 - y3).abs().max() > 1e-3
    with pytest.raises(ModelError):
        widen_for_curve(sd, cfg)


def test_curve_shapes_and_errors():
    model = V2MDiT(make_model_config(with_curve=True, **TINY)).eval()
    _randomise(model)
    inp = _inputs()
    kw = dict(cond_tokens=inp["tok"], seconds_start=0, seconds_total=30)
    with torch.no_grad():
        a = model(inp["x"], inp["t"], curve=torch.ones(2, 16), **kw)
        b = model(inp["x"], inp["t"], curve=torch.ones(2, 1, 16), **kw)
        c = model(inp["x"], inp["t"], curve=torch.ones(1, 16), **kw)  # broadcast over the batch
    assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(CurveError, match="17 frames"):
        model(inp["x"], inp["t"], curve=torch.ones(2, 17), **kw)
    plain = V2MDiT(make_model_config(**TINY))
    with pytest.raises(ModelError, match="no curve input"):
        plain(inp["x"], inp["t"], curve=torch.ones(2, 16), **kw)


def test_cond_drop_zeroes_the_whole_cross_attention_sequence():
    model = V2MDiT(make_model_config(**TINY)).eval()
    _randomise(model)
    inp = _inputs()
    kw = dict(seconds_start=inp["ss"], seconds_total=inp["st"])
    with torch.no_grad():
        dropped = model(inp["x"], inp["t"], cond_tokens=inp["tok"], cond_drop=torch.tensor([True, False]), **kw)
        cond = model.assemble_conditioning(2, torch.device("cpu"), cond_tokens=inp["tok"] * 0, **kw)
        cond["cross_attn_cond"] = cond["cross_attn_cond"] * 0  # SAO's null: text and seconds tokens zero
        manual = model.dit(inp["x"], inp["t"], **cond)
        kept = model(inp["x"], inp["t"], cond_tokens=inp["tok"], **kw)
    torch.testing.assert_close(dropped[0], manual[0])
    torch.testing.assert_close(dropped[1], kept[1])


def test_padding_positions_do_not_matter():
    model = V2MDiT(make_model_config(**TINY)).eval()
    _randomise(model)
    inp = _inputs()
    tok2 = inp["tok"].clone()
    tok2[1, 3:] = 99.0  # garbage under the mask
    kw = dict(cond_mask=inp["mask"], seconds_start=inp["ss"], seconds_total=inp["st"])
    with torch.no_grad():
        a = model(inp["x"], inp["t"], cond_tokens=inp["tok"], **kw)
        b = model(inp["x"], inp["t"], cond_tokens=tok2, **kw)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_close_to_fp32(dtype):
    model = V2MDiT(make_model_config(with_curve=True, **TINY)).eval()
    _randomise(model, scale=0.05)
    inp = _inputs()
    kw = dict(curve=torch.randn(2, 16), cond_tokens=inp["tok"], cond_mask=inp["mask"],
              seconds_start=inp["ss"], seconds_total=inp["st"])
    with torch.no_grad():
        ref = model(inp["x"], inp["t"], **kw)
        model.to(dtype)
        assert model.dit.transformer.rotary_pos_emb.inv_freq.dtype == torch.float32
        low = model(inp["x"].to(dtype), inp["t"], **kw)
    assert low.dtype == dtype and torch.isfinite(low).all()
    err = (low.float() - ref).abs().max() / ref.abs().max()
    assert err < 0.05


def test_patch_size_two_runs_and_widens():
    cfg = make_model_config(patch_size=2, **TINY)
    m = V2MDiT(cfg).eval()
    _randomise(m)
    sd, wcfg = widen_for_curve(m.state_dict(), cfg)
    w = V2MDiT(wcfg).eval()
    w.load_state_dict(sd)
    inp = _inputs()
    kw = dict(cond_tokens=inp["tok"], seconds_start=0, seconds_total=10)
    with torch.no_grad():
        assert torch.equal(m(inp["x"], inp["t"], **kw), w(inp["x"], inp["t"], curve=torch.randn(2, 16), **kw))


def test_bad_configs_are_model_errors():
    with pytest.raises(ModelError, match="unsupported DiT config"):
        DiTConfig.from_dict({"embed_dim": 64, "num_heads": 2, "qk_norm": "ln"})
    with pytest.raises(ModelError, match="global_cond_type"):
        DiTConfig.from_dict({"global_cond_type": "adaLN"})
    with pytest.raises(ModelError, match="rotary"):
        DiTConfig.from_dict({"embed_dim": 64, "num_heads": 4, "cond_token_dim": 64})


@pytest.mark.parametrize("text_mask", [False, True])
def test_few_key_cross_attention_equals_sdpa(text_mask, monkeypatch):
    """Inference re-associates cross-attention to a short context (blocks.Attention._attend_few_keys):
    same outputs as the SDPA path (which gradients still take) within float rounding; the
    unconditional rows (cond_drop) get exactly zero from it, as from SDPA."""
    from v2m_zero.core.model import blocks

    model = V2MDiT(make_model_config(with_curve=True, cross_attn_mask=text_mask, **TINY)).eval()
    _randomise(model)
    inp = _inputs()
    kw = dict(curve=torch.randn(2, 16), cond_tokens=inp["tok"], cond_mask=inp["mask"], seconds_start=inp["ss"],
              seconds_total=inp["st"], cond_drop=torch.tensor([False, True]))
    calls = []
    real = blocks.Attention._attend_few_keys
    monkeypatch.setattr(blocks.Attention, "_attend_few_keys", lambda self, *a: calls.append(1) or real(self, *a))
    with torch.no_grad():
        fast = model(inp["x"], inp["t"], **kw)
    assert len(calls) == TINY["depth"]  # every block's cross-attention took it
    ref = model(inp["x"], inp["t"], **kw).detach()  # gradients on: the SDPA path
    assert len(calls) == TINY["depth"]
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    x = torch.randn(2, 9, 256)
    attn = model.dit.transformer.layers[0].cross_attn
    with torch.no_grad():
        ctx = torch.zeros(2, 7, 128)
        assert attn(x, context=ctx).abs().max() == 0  # the CFG null: nothing to attend to, zero out
