"""The V2M checkpoint format, the SAO initialisation, and refusing bad or unsafe files."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from v2m_zero.core.commands import init_checkpoint
from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.timing.curves import DEFAULT_SMOOTHING_SECONDS
from v2m_zero.model_io import sao
from v2m_zero.model_io.checkpoint import (
    build_dit_from_checkpoint,
    load_v2m_checkpoint,
    read_metadata,
    save_v2m_checkpoint,
)

TINY = dict(io_channels=8, embed_dim=128, depth=2, num_heads=2, cond_token_dim=64)


def _model(with_curve=True, seed=0):
    m = V2MDiT(make_model_config(with_curve=with_curve, **TINY)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m


def _meta(model, objective="rectified_flow"):
    return {
        "v2m_format": 1,
        "model_config": model.model_config,
        "objective": objective,
        "latent_rate": 44100 / 2048,
        "sample_rate": 44100,
        "curve": {"encoder": "dinov2-large", "smoothing_seconds": 2.5, "standardise": True},
    }


def _run(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 12, generator=g)
    kw = dict(cond_tokens=torch.randn(2, 4, 64, generator=g), seconds_start=0.0, seconds_total=torch.tensor([5.0, 9.0]))
    if model.curve_channels:
        kw["curve"] = torch.randn(2, 12, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([0.3, 0.8]), **kw)


def test_round_trip_with_metadata(tmp_path):
    m = _model()
    path = tmp_path / "v2m.safetensors"
    save_v2m_checkpoint(path, m.state_dict(), _meta(m))
    assert [p.name for p in tmp_path.iterdir()] == ["v2m.safetensors"]  # no temp file left behind
    sd, meta = load_v2m_checkpoint(path)
    assert meta == json.loads(json.dumps(_meta(m)))
    assert set(sd) == set(m.state_dict())
    for k, v in m.state_dict().items():
        assert torch.equal(sd[k], v)
    assert read_metadata(path)["objective"] == "rectified_flow"

    built = build_dit_from_checkpoint(path)
    assert built.objective == "rectified_flow" and built.meta["curve"]["smoothing_seconds"] == 2.5
    assert not built.training
    torch.testing.assert_close(_run(built), _run(m), atol=0, rtol=0)


def test_build_in_bfloat16_keeps_rotary_in_fp32(tmp_path):
    m = _model()
    path = tmp_path / "v2m.safetensors"
    save_v2m_checkpoint(path, m.state_dict(), _meta(m, objective="v"))
    built = build_dit_from_checkpoint(path, device="cpu", dtype=torch.bfloat16)
    assert built.dit.transformer.project_in.weight.dtype == torch.bfloat16
    assert built.dit.transformer.rotary_pos_emb.inv_freq.dtype == torch.float32
    assert built.objective == "v"
    out = _run(built)
    ref = _run(m)
    assert ((out.float() - ref).abs().max() / ref.abs().max()) < 0.05


def test_save_is_atomic_and_validates_meta(tmp_path):
    m = _model()
    path = tmp_path / "v2m.safetensors"
    save_v2m_checkpoint(path, m.state_dict(), _meta(m))
    before = path.read_bytes()
    bad = dict(_meta(m), objective="eps")
    with pytest.raises(ModelError, match="objective"):
        save_v2m_checkpoint(path, m.state_dict(), bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v2m.safetensors"]


def _save_raw(path, sd, meta):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path),
              metadata={"format": "pt", **{k: json.dumps(v) for k, v in meta.items()}})


def test_wrong_shapes_are_named(tmp_path):
    m = _model()
    sd = dict(m.state_dict())
    sd["model.model.transformer.project_in.weight"] = torch.zeros(128, 8)  # the un-widened shape
    path = tmp_path / "shapes.safetensors"
    _save_raw(path, sd, _meta(m))
    with pytest.raises(ModelError) as e:
        build_dit_from_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "project_in.weight (128, 8) vs model (128, 9)" in msg


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    m = _model()
    sd = {k: v for k, v in m.state_dict().items() if ".layers.1." not in k}
    sd["model.model.extra.weight"] = torch.zeros(1)
    path = tmp_path / "keys.safetensors"
    _save_raw(path, sd, _meta(m))
    with pytest.raises(ModelError) as e:
        build_dit_from_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "missing key(s)" in msg and "layers.1." in msg and "more" in msg
    assert "1 unexpected key(s): model.model.extra.weight" in msg


def test_derived_buffers_may_be_absent(tmp_path):
    m = _model()
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith(("inv_freq", ".beta"))}
    sd["pretransform.model.decoder.layers.0.weight"] = torch.zeros(3)  # codec weights are ignored
    path = tmp_path / "nobuf.safetensors"
    save_v2m_checkpoint(path, sd, _meta(m))
    torch.testing.assert_close(_run(build_dit_from_checkpoint(path)), _run(m), atol=0, rtol=0)


def test_pickles_are_refused_without_loading(tmp_path, monkeypatch):
    def boom(*a, **k):  # a pickle must never be unpickled
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", boom)
    m = _model()
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": m.state_dict()}, ckpt)
    disguised = tmp_path / "zip.safetensors"
    disguised.write_bytes(ckpt.read_bytes())  # torch's zip format under a safetensors name
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    for path in (ckpt, disguised, raw):
        with pytest.raises(ModelError, match="pickle") as e:
            load_v2m_checkpoint(path)
        assert str(path) in str(e.value) and "safetensors" in str(e.value)


def test_truncated_garbage_and_foreign_files(tmp_path):
    m = _model()
    good = tmp_path / "good.safetensors"
    save_v2m_checkpoint(good, m.state_dict(), _meta(m))
    data = good.read_bytes()

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated") as e:
        build_dit_from_checkpoint(cut)
    assert str(cut) in str(e.value)

    cut_header = tmp_path / "cut_header.safetensors"
    cut_header.write_bytes(data[:100])
    with pytest.raises(ModelError, match="truncated"):
        load_v2m_checkpoint(cut_header)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ModelError, match="garbage.safetensors"):
        load_v2m_checkpoint(garbage)

    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_v2m_checkpoint(empty)

    bad_json = tmp_path / "badjson.safetensors"
    bad_json.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(ModelError, match="badjson"):
        load_v2m_checkpoint(bad_json)

    plain = tmp_path / "plain.safetensors"
    save_file({"model.model.x": torch.zeros(2)}, str(plain), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="init-checkpoint"):
        load_v2m_checkpoint(plain)

    with pytest.raises(ModelError, match="not found"):
        load_v2m_checkpoint(tmp_path / "nope.safetensors")


def _fake_sao_file(path, base: V2MDiT):
    sd = dict(base.state_dict())
    sd["pretransform.model.decoder.layers.0.weight_g"] = torch.randn(4, 1, 1)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"format": "pt"})


def test_init_from_sao_widens_and_keeps_outputs(tmp_path):
    base = _model(with_curve=False, seed=4)
    base.objective = "v"
    src, out = tmp_path / "model.safetensors", tmp_path / "v2m.safetensors"
    _fake_sao_file(src, base)
    parts = sao.load_sao_file(src)
    assert set(parts["pretransform"]) == {"pretransform.model.decoder.layers.0.weight_g"}
    assert parts["conditioner"] and parts["dit"] and not parts["other"]

    meta = sao.init_from_sao(src, out, base_config=base.model_config)
    assert meta["objective"] == "v" and meta["latent_rate"] == 44100 / 2048 and meta["sample_rate"] == 44100
    assert meta["curve"]["standardise"] is True and meta["curve"]["smoothing_seconds"] == DEFAULT_SMOOTHING_SECONDS
    built = build_dit_from_checkpoint(out)
    assert built.curve_channels == 1 and built.objective == "v"
    sd, _ = load_v2m_checkpoint(out)
    assert "pretransform.model.decoder.layers.0.weight_g" in sd
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 8, 12, generator=g)
    kw = dict(cond_tokens=torch.randn(2, 4, 64, generator=g), seconds_start=0.0, seconds_total=30.0)
    with torch.no_grad():
        torch.testing.assert_close(
            built(x, torch.tensor([0.5, 0.5]), curve=torch.randn(2, 12), **kw),
            base(x, torch.tensor([0.5, 0.5]), **kw), atol=0, rtol=0,
        )


def test_init_from_sao_rejects_other_files(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, str(other))
    with pytest.raises(ModelError, match="not a stable-audio-tools single-file"):
        sao.init_from_sao(other, tmp_path / "o.safetensors")
    base = _model(with_curve=False)
    src = tmp_path / "model.safetensors"
    _fake_sao_file(src, base)
    with pytest.raises(ModelError, match="shape mismatch"):  # tiny weights vs the real SAO 1.0 config
        sao.init_from_sao(src, tmp_path / "o.safetensors")


def test_init_checkpoint_command(tmp_path, monkeypatch, capsys):
    base = _model(with_curve=False, seed=2)
    src, out = tmp_path / "model.safetensors", tmp_path / "v2m.safetensors"
    _fake_sao_file(src, base)
    monkeypatch.setattr(sao, "sao1_model_config", lambda with_curve=False: base.model_config)
    p = argparse.ArgumentParser()
    init_checkpoint.add_arguments(p)
    assert init_checkpoint.NAME == "init-checkpoint" and init_checkpoint.HELP
    args = p.parse_args(["--from", "sao1", str(src), "--out", str(out), "--dtype", "bf16", "--smoothing-seconds",
                         "2.0"])
    assert init_checkpoint.run(args) == 0
    assert "wrote" in capsys.readouterr().out
    sd, meta = load_v2m_checkpoint(out)
    assert meta["curve"]["smoothing_seconds"] == 2.0
    assert sd["model.model.transformer.project_in.weight"].dtype == torch.bfloat16
    assert sd["model.model.transformer.rotary_pos_emb.inv_freq"].dtype == torch.float32
    with pytest.raises(V2MError, match="exists"):
        init_checkpoint.run(p.parse_args([str(src), "--out", str(out)]))
    with pytest.raises(V2MError, match="safetensors"):
        init_checkpoint.run(p.parse_args([str(src), "--out", str(tmp_path / "x.ckpt")]))
