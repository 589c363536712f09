"""The fine-tuning road for Stable Audio 3 (the sa3 preset) end to end on a tiny SA3 file in its real layout:
init-checkpoint → prepare --preset sa3 (its own SAME codec) → train --example --base sa3 (LoRA, T5Gemma)
→ the adapter applied at generation; and the checks that refuse a mismatched SA3 run before its first step."""

import json
import os
import re
import tomllib

import numpy as np
import pytest

from v2m_zero.core.train import resolve_config
from v2m_zero.core.train.checks import ConsistencyError, check_run
from v2m_zero.core.train.presets import example_toml
from v2m_zero.model_io.sa3 import SA3_LORA_TARGETS
from tiny_models import click_music_folder, tiny_t5
from tiny_sa3 import tiny_sa3_file, tiny_t5gemma_folder
from v2m_zero.core.sampling import SamplingSettings


def _cli(capsys, *argv):
    from v2m_zero.core import cli

    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def sa3_road(tmp_path_factory):
    from v2m_zero.model_io.sa3 import init_from_sa3

    root = tmp_path_factory.mktemp("sa3road")
    data = root / "music"
    click_music_folder(data, 2, 2.0, sample_rate=44100, channels=2, hits=4, caption="upbeat electronic dance track {i}")
    models = root / "models"
    tiny_t5gemma_folder(str(models / "text_encoders" / "t5gemma-b-b-ul2"))
    tiny_t5(str(models / "text_encoders" / "t5-base"), d_model=32)
    sa3 = tiny_sa3_file(str(root / "stable_audio_3_small_music_base.safetensors"))
    base = root / "v2m_sa3.safetensors"
    init_from_sa3(sa3, base)
    return root, data, models, str(base)


def _small(toml: str, **kv) -> str:
    for key, value in kv.items():
        toml, n = re.subn(rf"(?m)^{key} = [^\n#]*", f"{key} = {value} ", toml)
        assert n == 1, key
    return toml.replace("every = 1000 ", "every = 0 ")


def test_sa3_road_prepare_train_generate(sa3_road, capsys, monkeypatch, tmp_path):
    import torch

    from v2m_zero.core.generate import load_music_model, sample_latents
    from v2m_zero.core.train import ClipCache
    from v2m_zero.model_io.lora import read_adapter

    root, data, models, base = sa3_road
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    cache = tmp_path / "cache"
    rc, out, err = _cli(capsys, "prepare", data, "--out", cache, "--preset", "sa3", "--checkpoint", base,
                        "--clip-seconds", "0.5", "--device", "cpu")
    assert rc == 0, err
    assert "warning: no musicfm weights" in err
    spec = ClipCache(cache).spec
    assert spec["codec"]["type"] == "same" and spec["codec"]["path"] == os.path.abspath(base)
    assert spec["latent_channels"] == 8 and spec["latent_rate"] == pytest.approx(44100 / 512)

    rc, toml, err = _cli(capsys, "train", "--example", "--base", "sa3", "--checkpoint", base)
    assert rc == 0, err
    cfg = tomllib.loads(toml)
    assert cfg["base"] == "sa3" and cfg["model"]["from_checkpoint"] == os.path.abspath(base)
    assert cfg["text"] == {"encoder": "t5gemma-b-b-ul2", "max_length": 256, "allow_none": False}
    assert cfg["lora"]["enabled"] and cfg["lora"]["targets"] == list(SA3_LORA_TARGETS) and cfg["lora"]["rank"] == 16
    toml = _small(toml, cache=json.dumps(str(cache)), val_clips=0, max_steps=3, batch_size=2, rank=2,
                  device='"cpu"', tensorboard="false", gradient_checkpointing="false")
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text(toml)
    rc, out, err = _cli(capsys, "train", cfg_path)
    assert rc == 0, err
    adapter = tmp_path / "runs" / "sa3-lora" / "checkpoints" / "v2m-lora-final.safetensors"
    tensors, meta = read_adapter(adapter)
    assert meta["text"]["type"] == "t5gemma" and meta["text"]["max_length"] == 256
    assert any("lora_A" in k for k in tensors) and any("preprocess_conv" in k for k in tensors)

    text = str(models / "text_encoders" / "t5gemma-b-b-ul2")
    plain = load_music_model(base, device="cpu", text_encoder=text)
    tuned = load_music_model(base, device="cpu", text_encoder=text, lora=str(adapter))
    assert tuned.meta["sampling"] == plain.meta["sampling"] and tuned.latent_rate == pytest.approx(44100 / 512)
    changed = [k for k, v in tuned.dit.state_dict().items() if not torch.equal(v, plain.dit.state_dict()[k])]
    assert changed and all(("layers." in k or "preprocess_conv" in k or "project_in" in k) for k in changed)
    from v2m_zero.core.timing.curves import Curve

    n = 44  # 0.5 s at 86.1 Hz
    curve = Curve(values=np.sin(np.linspace(0, 6, n)).astype(np.float32), times=np.arange(n) / (44100 / 512),
                  duration=0.5, rate=44100 / 512)
    lat = sample_latents(tuned, curve, "upbeat electronic dance track", SamplingSettings(steps=2, seed=0), duration=0.5)
    assert lat.shape[1] == 8 and torch.isfinite(lat).all()


def _cfg(cache, base, **over):
    cfg = {"run_dir": "run", "base": "sa3", "data": {"cache": str(cache), "val_clips": 0},
           "model": {"from_checkpoint": str(base)}, "text": {"encoder": "t5gemma-b-b-ul2", "max_length": 256},
           "train": {"batch_size": 1, "max_steps": 1, "device": "cpu"}, "validation": {"every": 0},
           "log": {"tensorboard": False}}
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def test_sa3_checks_refuse_before_the_first_step(sa3_road, monkeypatch, tmp_path):
    from v2m_zero.model_io.checkpoint import read_metadata

    root, data, models, base = sa3_road
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    meta = read_metadata(base)
    spec = {"codec": {**meta["codec"], "path": base}, "encoder": {"id": "logmel"},
            "smoothing_seconds": meta["curve"]["smoothing_seconds"],
            "latent_rate": meta["latent_rate"], "sample_rate": 44100, "latent_channels": 8}
    ok = resolve_config(_cfg(tmp_path, base), tmp_path)
    assert check_run(ok, spec).warnings == []
    # a SAO-family (Oobleck) cache, another SAME, another latent rate
    with pytest.raises(ConsistencyError,
                       match=r"oobleck codec but the base checkpoint v2m_sa3.safetensors uses same latents"
                             r".*--preset sa3"):
        check_run(ok, {**spec, "codec": {"type": "oobleck", "config": {}}})
    other_same = {**spec["codec"], "config": {**spec["codec"]["config"], "latent_dim": 16}}
    with pytest.raises(ConsistencyError, match="another SAME codec .*differs in latent_dim"):
        check_run(ok, {**spec, "codec": other_same})
    with pytest.raises(ConsistencyError, match="latent rate 21.5"):
        check_run(ok, {**spec, "latent_rate": 21.5})
    # text: none is prompt-deaf, T5 is the wrong encoder, another length is a warning (256 are kept)
    with pytest.raises(ConsistencyError,
                       match=r"prompt-conditioned \(T5Gemma\) but text.encoder = \"none\".*t5gemma-b-b-ul2"):
        check_run(resolve_config(_cfg(tmp_path, base, text={"encoder": "none"}), tmp_path), spec)
    with pytest.raises(ConsistencyError,
                       match=r"trained with a T5Gemma text encoder but text.encoder = 't5-base' is T5"):
        check_run(resolve_config(_cfg(tmp_path, base, text={"encoder": "t5-base"}), tmp_path), spec)
    res = check_run(resolve_config(_cfg(tmp_path, base, text={"max_length": 128}), tmp_path), spec)
    assert "all 256 T5Gemma positions" in res.warnings[0]
    with pytest.raises(ConsistencyError, match="base = \"sa3\" needs model.from_checkpoint.*--from sa3"):
        check_run(resolve_config({"base": "sa3", "data": {"cache": "c"}, "model": {"from_config": {"depth": 1}}},
                                 tmp_path), spec)


def test_sa3_example_config_is_complete_and_valid(tmp_path):
    cfg = resolve_config(tomllib.loads(example_toml("sa3", tmp_path / "b.safetensors")), tmp_path)
    assert cfg["base"] == "sa3" and cfg["lora"]["alpha"] == 16.0 and cfg["text"]["max_length"] == 256
    assert "init-checkpoint --from sa3" in example_toml("sa3") and "v2m_sa3.safetensors" in example_toml("sa3")
