"""Stable Audio 3's DiT against diffusers' StableAudio3DiTModel (oracle), its key layout, the V2M
curve channel (identity before training), conditioning contracts and SA3's sampling schedule."""

from __future__ import annotations

import pytest
import torch

from tiny_sa3 import DIT, TEXT_DIM, randomise, tiny_sa3_file, tiny_sa3_state_dict
from v2m_zero.core.errors import ModelError
from v2m_zero.core.model import flow
from v2m_zero.core.model.architectures import build_dit
from v2m_zero.core.model.sa3 import SA3DiT, SA3DiTConfig, make_sa3_model_config
from v2m_zero.model_io.sa3 import (dit_from_diffusers, dit_to_diffusers, infer_sa3_dit_config, sa3_model_config,
                                   seconds_from_diffusers, seconds_to_diffusers)
from v2m_zero.model_io.sao import widen_for_curve

# head dim 64 (rotary on 32 channels, as SA3), diffusers' fixed RMS-norm eps (1e-6; the reference's is 1e-5)
ORACLE = dict(io_channels=8, embed_dim=128, depth=2, num_heads=2, cond_token_dim=32, global_cond_dim=32,
              local_add_cond_dim=9, num_memory_tokens=3, timestep_features_dim=64)


def _model(differential: bool, seed: int = 0, **over) -> SA3DiT:
    cfg = make_sa3_model_config(**{**ORACLE, **over}, norm_kwargs={"eps": 1e-6, "force_fp32": True},
                                attn_kwargs={"qk_norm": "rms", "differential": differential})
    torch.manual_seed(seed)
    model = SA3DiT(cfg).eval()
    randomise(model, seed, 0.1)
    return model


def _inputs(b=2, length=12, s=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, s, dtype=torch.bool)
    mask[1, 3:] = False
    return {"x": torch.randn(b, 8, length, generator=g), "t": torch.rand(b, generator=g),
            "tok": torch.randn(b, s, 32, generator=g), "mask": mask, "sec": torch.tensor([10.0, 47.0])[:b],
            "local": torch.randn(b, 9, length, generator=g)}


def _diffusers(model: SA3DiT, inp, *, io_channels=8, x=None, extra_sd=None):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    c = model.config
    ref = diffusers.StableAudio3DiTModel(
        io_channels=io_channels, embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads,
        cond_token_dim=c.cond_token_dim, global_cond_dim=c.global_cond_dim, local_add_cond_dim=c.local_add_cond_dim,
        timestep_features_dim=c.timestep_features_dim,
        ff_mult=c.ff_mult, num_memory_tokens=c.num_memory_tokens, use_differential_attention=c.differential).eval()
    ref.load_state_dict({**dit_to_diffusers(model.state_dict()), **(extra_sd or {})}, strict=True)
    dur = StableAudio3DurationEmbedder(output_dim=c.global_cond_dim, fourier_dim=256, max_val=384.0).eval()
    dur.load_state_dict(seconds_to_diffusers(model.state_dict()), strict=True)
    with torch.no_grad():
        glob = dur(inp["sec"])
        # as StableAudio3Pipeline.prepare_cross_attention: the seconds embedding is one more context token
        enc = torch.cat([inp["tok"], glob[:, None]], dim=1)
        mask = torch.cat([inp["mask"], torch.ones(len(inp["sec"]), 1, dtype=torch.bool)], dim=1)
        return ref(inp["x"] if x is None else x, inp["t"], encoder_hidden_states=enc, global_hidden_states=glob,
                   encoder_attention_mask=mask, local_add_cond=inp["local"]).sample


@pytest.mark.parametrize("differential", [False, True])
def test_matches_diffusers_stable_audio_3_dit(differential):
    model = _model(differential)
    inp = _inputs()
    with torch.no_grad():
        ours = model(inp["x"], inp["t"], cond_tokens=inp["tok"], cond_mask=inp["mask"], seconds_total=inp["sec"],
                     local_add_cond=inp["local"])
    ref = _diffusers(model, inp)
    assert ref.abs().max() > 0.5  # a non-trivial output
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_widened_input_matches_diffusers_with_one_more_channel():
    """The curve channel is input-concat: diffusers with io_channels + 1 (extra output row zero) is the oracle."""
    model = _model(False)
    sd, cfg = widen_for_curve(model.state_dict(), model.model_config)
    wide = SA3DiT(cfg).eval()
    wide.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # train the new weights a little: the curve must now matter
        wide.dit.preprocess_conv.weight[8:].normal_(0, 0.1, generator=g)
        wide.dit.preprocess_conv.weight[:, 8:].normal_(0, 0.1, generator=g)
        wide.dit.transformer.project_in.weight[:, 8:].normal_(0, 0.1, generator=g)
    inp = _inputs()
    curve = torch.randn(2, 12, generator=g)
    with torch.no_grad():
        ours = wide(inp["x"], inp["t"], curve=curve, cond_tokens=inp["tok"], cond_mask=inp["mask"],
                    seconds_total=inp["sec"], local_add_cond=inp["local"])
        flat = wide(inp["x"], inp["t"], curve=torch.zeros_like(curve), cond_tokens=inp["tok"], cond_mask=inp["mask"],
                    seconds_total=inp["sec"], local_add_cond=inp["local"])
    wsd = wide.state_dict()
    out_w, post = wsd["model.model.transformer.project_out.weight"], wsd["model.model.postprocess_conv.weight"]
    extra = {"proj_out.weight": torch.cat([out_w, torch.zeros(1, out_w.shape[1])]),
             "postprocess_conv.weight": torch.nn.functional.pad(post, (0, 0, 0, 1, 0, 1))}
    ref = _diffusers(wide, inp, io_channels=9, x=torch.cat([inp["x"], curve[:, None]], dim=1), extra_sd=extra)
    torch.testing.assert_close(ours, ref[:, :8], atol=1e-5, rtol=1e-5)
    assert (ours - flat).abs().max() > 1e-3


def test_key_mappings_round_trip():
    sd = _model(True).state_dict()
    back = {**dit_from_diffusers(dit_to_diffusers(sd)), **seconds_from_diffusers(seconds_to_diffusers(sd))}
    assert set(back) == set(sd)
    for k in sd:
        torch.testing.assert_close(back[k], sd[k], rtol=0, atol=0)
    # the differential self-attention rows are reordered (reference [q|k|v|q2|k2] -> diffusers [q|q2|k|k2|v])
    key = "model.model.transformer.layers.0.self_attn.to_qkv.weight"
    d = dit_to_diffusers(sd)["transformer_blocks.0.self_attn.to_qkv.weight"]
    assert torch.equal(d[128:256], sd[key][384:512]) and torch.equal(d[512:], sd[key][256:384])


@pytest.mark.parametrize("differential", [False, True])
def test_config_read_off_the_weights(differential):
    sd = tiny_sa3_state_dict(differential=differential)
    cfg = SA3DiTConfig.from_dict(infer_sa3_dit_config(sd))
    want = SA3DiTConfig.from_dict({**DIT, "norm_kwargs": {"force_fp32": True},
                                   "attn_kwargs": {"qk_norm": "rms", "differential": differential}})
    assert cfg.to_dict() == want.to_dict()
    model = SA3DiT(sa3_model_config(sd))
    model.load_state_dict({k: v for k, v in sd.items()
                           if not k.startswith(("pretransform.", "conditioner.conditioners.prompt.model"))},
                          strict=True)


def test_reference_defaults_and_architecture_dispatch():
    cfg = SA3DiTConfig()  # small-music-base: 1024 x 20, 16 heads, 64 memory tokens, 256-channel SAME latents
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.num_memory_tokens, cfg.io_channels) == (1024, 20, 16, 64, 256)
    assert cfg.norm_eps == 1e-5 and cfg.qk_norm_eps == 1e-6  # the reference RMSNorm (diffusers uses 1e-6 for both)
    model = build_dit(make_sa3_model_config(**DIT))
    assert (isinstance(model, SA3DiT) and model.objective == "rectified_flow" and model.takes_text
            and model.text_dim == TEXT_DIM)
    with torch.device("meta"):
        full = SA3DiT(make_sa3_model_config())
    n = sum(p.numel() for name, p in full.model.named_parameters() if "to_local_embed" not in name)
    assert abs(n / 433e6 - 1) < 0.01  # SA3 small is published as 433 M (without the 26 M of the inpainting path)


@pytest.mark.parametrize("field,value",
                         [("sliding_window", [4, 4]), ("global_cond_type", "prepend"), ("conformer", True),
                                         ("norm_type", "layer_norm"), ("attn_kwargs", {"qk_norm": "l2"}),
                                         ("modular_local_cond_configs", [{"id": "x", "dim": 3}]), ("made_up", 1)])
def test_unsupported_options_are_refused_by_name(field, value):
    with pytest.raises(ModelError, match=field.split("_kwargs")[0] if field != "attn_kwargs" else "qk_norm"):
        SA3DiTConfig.from_dict({**DIT, field: value})


def test_v2m_init_generates_exactly_what_the_base_does(tmp_path):
    from v2m_zero.model_io.checkpoint import build_dit_from_checkpoint, read_metadata
    from v2m_zero.model_io.formats import read_dit
    from v2m_zero.model_io.sa3 import init_from_sa3

    src = tiny_sa3_file(str(tmp_path / "stable_audio_3_small_music_base.safetensors"))
    init_from_sa3(src, tmp_path / "v2m.safetensors")
    sd = tiny_sa3_state_dict()
    base = SA3DiT(sa3_model_config(sd)).eval()
    base.load_state_dict({k: v for k, v in sd.items()
                          if k.startswith(("model.model.", "conditioner.conditioners.seconds",
                                           "conditioner.conditioners.prompt.padding"))})
    v2m = build_dit_from_checkpoint(tmp_path / "v2m.safetensors")
    direct = read_dit(src)  # a base file is initialised in memory
    assert v2m.curve_channels == direct.curve_channels == 1 and isinstance(v2m, SA3DiT)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(2, 8, 20, generator=g), torch.rand(2, generator=g)
    cond = v2m.conditioning(text=(torch.randn(2, 6, TEXT_DIM, generator=g), torch.ones(2, 6, dtype=torch.bool)),
                            seconds=[3.0, 5.0], batch=2)
    with torch.no_grad():
        want = base(x, t, **cond)
        for model in (v2m, direct):
            got = model(x, t, curve=torch.randn(2, 20, generator=g), **cond)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    meta = read_metadata(tmp_path / "v2m.safetensors")
    assert meta["objective"] == "rectified_flow" and meta["text"] == {"type": "t5gemma", "max_length": 256}
    assert meta["codec"]["type"] == "same" and meta["latent_rate"] == pytest.approx(44100 / 512)
    assert meta["sampling"]["schedule"] == {"type": "logsnr", "logsnr_min": -6.2, "logsnr_max": 2.0}
    assert meta["model_config"]["architecture"] == "stable_audio_3"


def test_reference_model_config_beside_the_file_wins(tmp_path):
    from v2m_zero.model_io.sa3 import sa3_v2m_parts

    ref = {"sample_rate": 44100, "model": {"conditioning": {"configs": [
        {"id": "prompt", "type": "t5gemma", "config": {"max_length": 128, "padding_mode": "learned"}},
        {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 120}}]}}}
    src = tiny_sa3_file(str(tmp_path / "model.safetensors"), reference=ref)
    _, meta = sa3_v2m_parts(src)
    configs = {c["id"]: c["config"] for c in meta["model_config"]["conditioning"]["configs"]}
    assert configs["seconds_total"]["max_val"] == 120 and configs["prompt"]["max_length"] == 128
    assert meta["text"]["max_length"] == 128
    (tmp_path / "model_config.json").write_text("{not json")
    with pytest.raises(ModelError, match="model_config.json"):
        sa3_v2m_parts(src)


def test_conditioning_contracts():
    model = _model(False)
    inp = _inputs()
    kw = dict(cond_tokens=inp["tok"], cond_mask=inp["mask"], seconds_total=inp["sec"])
    with torch.no_grad():
        base = model(inp["x"], inp["t"], **kw)
        # the local-add (inpainting) input is all zeros for text-to-music, as the reference feeds it
        torch.testing.assert_close(base, model(inp["x"], inp["t"], local_add_cond=torch.zeros_like(inp["local"]), **kw))
        # padded text positions are replaced by the learned padding embedding: their values do not matter
        tok = inp["tok"].clone()
        tok[1, 3:] = 100.0
        torch.testing.assert_close(base, model(inp["x"], inp["t"], **{**kw, "cond_tokens": tok}))
        model.conditioner.conditioners["prompt"].padding_embedding.add_(1.0)
        assert (model(inp["x"], inp["t"], **kw)[1] - base[1]).abs().max() > 1e-4
        # cond_drop zeroes the whole cross-attention sequence (text + seconds token), as the reference's CFG null
        drop = model(inp["x"], inp["t"], cond_drop=torch.tensor([True, False]), **kw)
        null = model(inp["x"][:1], inp["t"][:1], cond_tokens=torch.zeros(1, 5, 32),
                     cond_mask=torch.zeros(1, 5, dtype=torch.bool),
                     seconds_total=inp["sec"][:1], cond_drop=torch.tensor([True]))
    torch.testing.assert_close(drop[:1], null)
    with pytest.raises(Exception, match="local_add_cond"):
        model(inp["x"], inp["t"], local_add_cond=torch.zeros(2, 3, 12), **kw)


def test_flow_sampler_and_cfg_drive_sa3_unchanged():
    model = _model(False)
    sd, cfg = widen_for_curve(model.state_dict(), model.model_config)
    wide = SA3DiT(cfg).eval()
    wide.load_state_dict(sd)
    cond = wide.conditioning(text=(torch.randn(1, 5, 32), torch.ones(1, 5, dtype=torch.bool)), seconds=4.0)
    a = flow.sample(wide, (1, 8, 10), flow.rf_timesteps(3), seed=1, cfg_scale=3.0, cond=cond,
                    curve=torch.zeros(1, 1, 10))
    b = flow.sample(wide, (1, 8, 10), flow.schedule_timesteps(3, {"type": "logsnr"}), seed=1, cfg_scale=3.0, cond=cond,
                    curve=torch.zeros(1, 1, 10))
    assert a.shape == (1, 8, 10) and torch.isfinite(a).all() and (a - b).abs().max() > 1e-4


def test_logsnr_schedule_matches_diffusers_and_reference():
    pytest.importorskip("diffusers")
    from diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 import logsnr_sigma_schedule

    ts = flow.logsnr_timesteps(50)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and torch.all(ts[1:] < ts[:-1])
    torch.testing.assert_close(ts[:-1].float(), torch.tensor(logsnr_sigma_schedule(50, -6.2, 2.0)), atol=1e-6,
                               rtol=1e-6)
    torch.testing.assert_close(flow.schedule_timesteps(8, None), flow.rf_timesteps(8))
    with pytest.raises(Exception, match="schedule"):
        flow.schedule_timesteps(8, {"type": "karras"})


def test_safetensors_whose_header_length_starts_like_a_pickle_still_load(tmp_path):
    """A header length ≡ 128 (mod 256) begins with byte 0x80, the pickle opcode: it is still safetensors."""
    from safetensors.torch import save_file

    from v2m_zero.model_io.weights import read_safetensors

    path = tmp_path / "x.safetensors"
    for pad in range(300):
        save_file({"a": torch.ones(2)}, str(path), metadata={"p": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert torch.equal(read_safetensors(path)[0]["a"], torch.ones(2))
    pickled = tmp_path / "p.safetensors"
    torch.save({"a": torch.ones(2)}, pickled, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError, match="pickle"):
        read_safetensors(pickled)


def test_train_preset_names_real_modules(tmp_path):
    from v2m_zero.model_io.sa3 import sa3_train_preset

    preset = sa3_train_preset(str(tmp_path / "sa3.safetensors"), "t5gemma_b_b_ul2.safetensors")
    assert (preset["objective"] == "rectified_flow" and preset["codec"]["type"] == "same"
            and preset["text"]["max_length"] == 256)
    assert round(preset["clip_seconds"] * preset["latent_rate"]) == 1292  # SA3 small's window in SAME frames
    model = SA3DiT(make_sa3_model_config(**DIT, with_curve=True))
    names = {n for n, _ in model.named_modules()}
    for target in preset["lora"]["targets"]:
        assert f"model.model.transformer.layers.0.{target}" in names, target
    assert set(preset["lora"]["train_in_full"]) <= set(model.state_dict())


def test_bf16_close_to_fp32_and_checkpointing_gives_the_same_gradients():
    model = _model(True)
    inp = _inputs()
    kw = dict(cond_tokens=inp["tok"], cond_mask=inp["mask"], seconds_total=inp["sec"])
    with torch.no_grad():
        ref = model(inp["x"], inp["t"], **kw)
        low = SA3DiT(model.model_config).eval()
        low.load_state_dict(model.state_dict())
        low.to(torch.bfloat16)
        assert low.dit.transformer.rotary_pos_emb.inv_freq.dtype == torch.float32
        out = low(inp["x"].bfloat16(), inp["t"], **kw)
    assert out.dtype == torch.bfloat16 and (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
    grads = []
    for on in (False, True):
        model.zero_grad()
        model.set_gradient_checkpointing(on)
        model(inp["x"], inp["t"], **kw).square().mean().backward()
        grads.append(model.dit.transformer.layers[0].self_attn.to_qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
