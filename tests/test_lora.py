"""LoRA fine-tuning (peft): what trains, the adapter file, applying it with a strength, merged export."""

import pytest
import torch
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.train import ClipCache, resolve_config, train
from v2m_zero.core.train.prepare import prepare_dataset
from v2m_zero.model_io.checkpoint import build_dit_from_checkpoint
from v2m_zero.model_io.lora import base_content_hash, merge_adapter_into_checkpoint, read_adapter
from tiny_models import click_music_folder, tiny_train_config, tiny_v2m_checkpoint

pytest.importorskip("peft")

SR = 1600
CODEC = "patch:16:1:1600"  # tests/tiny_models.PATCH
TARGETS = ["self_attn.to_qkv", "self_attn.to_out", "cross_attn.to_q", "cross_attn.to_kv", "cross_attn.to_out",
           "ff.ff.0.proj", "ff.ff.2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    data = root / "data"
    click_music_folder(data, 3, 3.0, sample_rate=SR)
    cache = root / "cache"
    prepare_dataset(data, cache, codec=CODEC, clip_seconds=1.0, smoothing_seconds=0.1, device="cpu")
    base = tiny_v2m_checkpoint(str(root / "base.safetensors"))
    return str(cache), base, root


def _cfg(cache, base, run_dir, **over):
    over.setdefault("lora", {})
    lora = {"enabled": True, "rank": 4, "alpha": 8.0, "targets": TARGETS, **over.pop("lora")}
    return tiny_train_config(cache, run_dir, model={"from_checkpoint": base, "from_config": None}, lora=lora,
                             optim={"lr": 1e-2, "warmup_steps": 0, "schedule": "constant", "weight_decay": 0.1},
                             validation={"every": 0}, **over)


def _forward(dit, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 100, generator=g)
    curve = torch.randn(2, 1, 100, generator=g)
    cond = dit.conditioning(text=None, seconds=1.0, batch=2)
    with torch.no_grad():
        return dit(x, torch.tensor([0.3, 0.7]), curve=curve, **cond)


def test_lora_trains_only_the_adapters_and_the_curve_weights(setup, tmp_path):
    from v2m_zero.core.train.trainer import Trainer

    cache, base, _ = setup
    tr = Trainer(resolve_config(_cfg(cache, base, tmp_path / "run")), None, None, lambda m: None)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    trained = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    lora_names = {n for n in trained if ".lora_" in n}
    curve_names = {"model.model.preprocess_conv.weight", "model.model.transformer.project_in.weight"}
    assert trained == lora_names | curve_names
    assert len(lora_names) == 2 * 2 * len(TARGETS)  # A and B, 2 layers, every target
    in_opt = {id(p) for g in tr.opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for n, p in tr.model.named_parameters() if n in trained}
    for _ in range(3):
        tr.train_step()
    after = dict(tr.model.named_parameters())
    for n, p in after.items():
        if n in lora_names:
            if ".lora_B." in n:  # B starts at zero and must have moved
                assert p.abs().sum() > 0, n
            continue
        if n in curve_names:
            changed = (p.detach() != before[n])
            assert changed.any(), n
            c = 16  # latent channels: the latent block stays bit for bit the pretrained one
            latent_part = changed[:c, :c] if p.ndim == 3 else changed[:, :c]
            assert not latent_part.any(), n
            continue
        assert torch.equal(p.detach(), before[n]), f"{n} changed although it is frozen"


def test_adapter_changes_output_and_merged_equals_base_plus_adapter(setup, tmp_path):
    from v2m_zero.core.generate import load_music_model
    from v2m_zero.core.train.trainer import Trainer

    cache, base, root = setup
    cfg = _cfg(cache, base, tmp_path / "run", train={"max_steps": 3}, checkpoint={"every": 0, "export": "model"})
    res = train(cfg)
    assert res.adapter and res.checkpoint_path.endswith("v2m-lora-final.safetensors")
    tensors, meta = read_adapter(res.checkpoint_path)
    assert meta["base"]["content_sha256"] == base_content_hash(base) and meta["base"]["name"] == "base.safetensors"
    assert meta["lora"] == {"rank": 4, "alpha": 8.0, "scale": 2.0, "targets": TARGETS, "curve_weights": True}
    assert meta["curve"]["music_encoder"] == "logmel" and meta["curve"]["smoothing_seconds"] == 0.1
    assert {k for k in tensors if k.endswith(".delta")} == {"model.model.preprocess_conv.weight.delta",
                                                           "model.model.transformer.project_in.weight.delta"}
    assert sum(k.endswith(".lora_A.weight") for k in tensors) == 2 * len(TARGETS)
    import os

    assert os.path.getsize(res.checkpoint_path) < os.path.getsize(base)

    gen_base = load_music_model(base, device="cpu")
    gen_lora = load_music_model(base, device="cpu", lora=res.checkpoint_path)
    gen_zero = load_music_model(base, device="cpu", lora=res.checkpoint_path, lora_strength=0.0)
    out_base, out_lora = _forward(gen_base.dit), _forward(gen_lora.dit)
    assert (out_base - out_lora).abs().max() > 1e-3  # the trained adapter changes the music
    assert torch.equal(_forward(gen_zero.dit), out_base)
    assert gen_lora.meta["lora"]["strength"] == 1.0 and gen_lora.curve_spec.smoothing_seconds == 0.1

    merged = merge_adapter_into_checkpoint(base, res.checkpoint_path, tmp_path / "merged.safetensors")
    gen_merged = load_music_model(str(merged), device="cpu")
    torch.testing.assert_close(_forward(gen_merged.dit), out_lora, rtol=0, atol=1e-6)
    assert gen_merged.meta["lora_merged"]["strength"] == 1.0 and gen_merged.meta["curve"] == gen_lora.meta["curve"]
    # ... and equal to peft's own forward (base + B·A·scale inside the LoRA layers) of the trained run
    tr = Trainer(resolve_config({**cfg, "resume": True}), None, None, lambda m: None)  # resumes the final state
    tr.model.eval()
    torch.testing.assert_close(_forward(tr.model), out_lora, rtol=0, atol=1e-5)
    # half strength lies in between
    half = load_music_model(base, device="cpu", lora=res.checkpoint_path, lora_strength=0.5).dit
    d_half, d_full = (_forward(half) - out_base).abs().max(), (out_lora - out_base).abs().max()
    assert 0.2 * d_full < d_half < 0.8 * d_full


def test_adapter_refuses_another_base_and_a_full_checkpoint(setup, tmp_path):
    from v2m_zero.core.generate import load_music_model

    cache, base, _ = setup
    res = train(_cfg(cache, base, tmp_path / "run", train={"max_steps": 1}))
    other = tiny_v2m_checkpoint(str(tmp_path / "other.safetensors"), seed=5)
    with pytest.raises(ModelError, match="trained on another base"):
        load_music_model(other, device="cpu", lora=res.checkpoint_path)
    with pytest.raises(ModelError, match="not a V2M LoRA adapter"):
        load_music_model(base, device="cpu", lora=other)
    # the same weights in a file with other metadata hash the same
    dit = build_dit_from_checkpoint(base)
    from v2m_zero.model_io.checkpoint import save_v2m_checkpoint

    save_v2m_checkpoint(tmp_path / "copy.safetensors", dit.state_dict(), {**dit.meta, "note": "another file"})
    assert base_content_hash(tmp_path / "copy.safetensors") == base_content_hash(base)


def test_lora_run_resumes_from_its_small_state(setup, tmp_path):
    from v2m_zero.model_io.weights import read_safetensors

    cache, base, _ = setup
    full = train(_cfg(cache, base, tmp_path / "a", train={"max_steps": 4}))
    train(_cfg(cache, base, tmp_path / "b", train={"max_steps": 2}))
    resumed = train(_cfg(cache, base, tmp_path / "b", train={"max_steps": 4}))
    assert [l for _, l in resumed.losses] == pytest.approx([l for _, l in full.losses][2:], abs=1e-6)
    sd, _ = read_safetensors(tmp_path / "b" / "state" / "step-00000004" / "model.safetensors")
    assert all(".lora_" in k or k.endswith(("preprocess_conv.weight", "project_in.weight")) for k in sd)
    a, _ = read_adapter(full.checkpoint_path)
    b, _ = read_adapter(resumed.checkpoint_path)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_lora_config_errors(setup, tmp_path):
    cache, base, _ = setup
    with pytest.raises(V2MError, match="lora.rank"):
        resolve_config(_cfg(cache, base, tmp_path / "x", lora={"rank": 0}))
    with pytest.raises(V2MError, match="no module named 'attn.to_nothing'"):
        train(_cfg(cache, base, tmp_path / "y", lora={"targets": ["attn.to_nothing"]}))
    with pytest.raises(V2MError, match="needs a base to adapt"):
        train(tiny_train_config(cache, tmp_path / "z", lora={"enabled": True}))
    assert len(ClipCache(cache)) > 0
