"""The fine-tuning road without foot-guns: the sao1 preset end to end (tiny SAO-like base with its own VAE),
the consistency checks that refuse a run before its first step, and MusicFM without seams."""

import json
import os
import re
import tomllib

import numpy as np
import pytest
import torch
from v2m_zero.core.errors import V2MError
from v2m_zero.core.model.dit import V2MDiT, make_model_config
from v2m_zero.core.model.oobleck import OobleckVAE
from v2m_zero.core.train import resolve_config, train
from v2m_zero.core.train.checks import ConsistencyError, check_run
from v2m_zero.core.train.presets import LORA_TARGETS, example_toml
from v2m_zero.model_io.checkpoint import V2M_FORMAT, save_v2m_checkpoint
from v2m_zero.model_io.weights import write_safetensors
from tiny_models import click_music_folder, tiny_t5

# a tiny Oobleck VAE: 4 latent channels, 64x at 44.1 kHz stereo (689 Hz latents)
VAE = {"channels": 8, "c_mults": [1, 2], "strides": [8, 8], "latent_dim": 4, "audio_channels": 2}


def _vae(seed, config=VAE):
    torch.manual_seed(seed)
    vae = OobleckVAE.from_config(config)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return vae


def sao_like_base(path, *, vae_seed=0, text=None, vae=VAE):
    """An init-checkpoint-like V2M file: prompt-conditioned DiT + curve channel, the VAE as pretransform.model.*,
    no 'codec' in the metadata (as `init-checkpoint --from sao1` writes it)."""
    torch.manual_seed(0)
    cfg = make_model_config(io_channels=4, embed_dim=64, depth=2, num_heads=2, cond_token_dim=32, text_dim=32,
                            with_curve=True)
    dit = V2MDiT(cfg, objective="v")
    state = dict(dit.state_dict())
    state.update({"pretransform.model." + k: v for k, v in _vae(vae_seed, vae).state_dict().items()})
    meta = {"v2m_format": V2M_FORMAT, "model_config": cfg, "objective": "v",
            "latent_rate": 44100 / np.prod(vae["strides"]),
            "sample_rate": 44100, "curve": {"encoder": "dinov2-large", "music_encoder": "musicfm"},
            "base": {"name": "tiny-sao"}}
    if text:
        meta["text"] = {"type": text}
    save_v2m_checkpoint(path, state, meta)
    return str(path)


@pytest.fixture(scope="module")
def road(tmp_path_factory):
    root = tmp_path_factory.mktemp("road")
    data = root / "music"
    click_music_folder(data, 2, 2.0, sample_rate=16000, hits=4, caption="calm piano {i}")
    models = root / "models"
    tiny_t5(str(models / "text_encoders" / "t5-base"), d_model=32)
    base = sao_like_base(root / "v2m_sao1.safetensors")
    return root, data, models, base


def _cli(capsys, *argv):
    from v2m_zero.core import cli

    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _small(toml: str, **kv) -> str:
    for key, value in kv.items():
        toml, n = re.subn(rf"(?m)^{key} = [^\n#]*", f"{key} = {value} ", toml)
        assert n == 1, key
    return toml.replace("every = 1000 ", "every = 0 ")  # [checkpoint] and [validation]


def test_sao1_road_prepare_train_generate(road, capsys, monkeypatch, tmp_path):
    """prepare --preset sao1 (the checkpoint's VAE; MusicFM missing -> log-mel with a warning, recorded),
    train --example --base sao1 (LoRA, T5-base by name), and the adapter applied at generation."""
    from v2m_zero.core.generate import load_music_model
    from v2m_zero.core.train import ClipCache
    from v2m_zero.model_io.lora import read_adapter

    root, data, models, base = road
    monkeypatch.setenv("V2M_MODELS_DIR", str(models))
    cache = tmp_path / "cache"
    rc, out, err = _cli(capsys, "prepare", data, "--out", cache, "--preset", "sao1", "--checkpoint", base,
                        "--clip-seconds", "0.5", "--device", "cpu")
    assert rc == 0, err
    assert "warning: no musicfm weights" in err and "logmel instead" in err
    spec = ClipCache(cache).spec
    assert spec["codec"]["type"] == "oobleck" and spec["codec"]["path"] == os.path.abspath(base)
    assert spec["latent_rate"] == 44100 / 64 and spec["sample_rate"] == 44100 and spec["latent_channels"] == 4
    assert spec["encoder"]["id"] == "logmel" and spec["music_encoder_fallback"]["wanted"] == "musicfm"

    rc, toml, err = _cli(capsys, "train", "--example", "--base", "sao1", "--checkpoint", base)
    assert rc == 0, err
    cfg = tomllib.loads(toml)
    assert cfg["base"] == "sao1" and cfg["model"]["from_checkpoint"] == os.path.abspath(base)
    assert cfg["text"]["encoder"] == "t5-base" and cfg["curve"]["music_encoder"] == "musicfm"
    assert cfg["lora"]["enabled"] and cfg["lora"]["targets"] == LORA_TARGETS and cfg["train"]["gradient_checkpointing"]
    toml = _small(toml, cache=json.dumps(str(cache)), val_clips=0, max_steps=2, batch_size=2, rank=2,
                  device='"cpu"', tensorboard="false")
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text(toml)
    rc, out, err = _cli(capsys, "train", cfg_path)
    assert rc == 0, err
    assert "warning: training on logmel music curves instead of musicfm" in err
    adapter = tmp_path / "runs" / "sao1-lora" / "checkpoints" / "v2m-lora-final.safetensors"
    _, meta = read_adapter(adapter)
    assert meta["curve"]["music_encoder_fallback"]["used"] == "logmel" and meta["text"]["type"] == "t5"
    gen = load_music_model(base, device="cpu", text_encoder=str(models / "text_encoders" / "t5-base"),
                           lora=str(adapter))
    assert gen.meta["curve"]["music_encoder"] == "logmel" and gen.curve_spec.encoder == "dinov2-large"
    assert gen.codec.latent_channels == 4


def _refused(capsys, cfg_dict, tmp_path, match):
    """The CLI refuses with one line and exit 2, and no training step ran (nothing in the run folder)."""
    cfg_path = tmp_path / "cfg.json.toml"
    lines = []
    for table, values in cfg_dict.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        else:
            lines.insert(0, f"{table} = {json.dumps(values)}")
    cfg_path.write_text("\n".join(lines) + "\n")
    rc, _, err = _cli(capsys, "train", cfg_path)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("v2m-zero train: error: "), err
    assert re.search(match, err), err
    run = tmp_path / cfg_dict["run_dir"]
    assert not (run / "state").exists() and not (run / "train_log.csv").exists()
    return err


def _run_cfg(cache, base, **over):
    cfg = {"run_dir": "run", "data": {"cache": str(cache), "val_clips": 0},
           "model": {"from_checkpoint": str(base)}, "text": {"encoder": "none"},
           "train": {"batch_size": 1, "max_steps": 1, "device": "cpu"}, "validation": {"every": 0},
           "log": {"tensorboard": False}}
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def test_refusals_before_the_first_step(road, capsys, tmp_path):
    from v2m_zero.core.train.prepare import prepare_dataset

    root, data, models, base = road
    # the old foot-gun: a patch-codec cache with the same channel count passes the channel check
    patch_cache = tmp_path / "patch"
    prepare_dataset(data, patch_cache, codec="patch:2:2:44100", clip_seconds=0.2, device="cpu")
    _refused(capsys, _run_cfg(patch_cache, base, text={"allow_none": True}), tmp_path,
             r"encoded with the patch codec but the base checkpoint v2m_sao1.safetensors uses oobleck latents"
             r".*--preset sao1")
    vae_cache = tmp_path / "vae"
    prepare_dataset(data, vae_cache, codec=base, clip_seconds=0.5, device="cpu")
    # a prompt-conditioned base trained without text
    _refused(capsys, _run_cfg(vae_cache, base), tmp_path, r"prompt-conditioned \(T5\) but text.encoder = \"none\"")
    # curve spec: music encoder and smoothing
    _refused(capsys, _run_cfg(vae_cache, base, text={"allow_none": True}, curve={"music_encoder": "musicfm"}), tmp_path,
             r"holds logmel music curves but the config asks for musicfm")
    _refused(capsys, _run_cfg(vae_cache, base, text={"allow_none": True}, curve={"smoothing_seconds": 1.0}), tmp_path,
             r"smoothed its curves with a 2.52033 s Hann kernel but the config asks for 1 s")
    # allow_none says the user means it: the run goes
    cfg = resolve_config(_run_cfg(vae_cache, base, text={"allow_none": True}, run_dir=str(tmp_path / "ok")))
    assert train(cfg).step == 1


def _spec(codec, **over):
    spec = {"codec": codec, "encoder": {"id": "logmel"}, "smoothing_seconds": 2.52, "latent_rate": 44100 / 64,
            "sample_rate": 44100, "latent_channels": 4}
    spec.update(over)
    return spec


def test_check_run_rates_channels_and_vae_weights(road, tmp_path):
    root, data, models, base = road
    cfg = resolve_config(_run_cfg(tmp_path / "c", base, text={"allow_none": True}), tmp_path)
    vae_cfg = dict(_vae(0).config)
    same = {"type": "oobleck", "config": vae_cfg, "path": base}
    assert check_run(cfg, _spec(same)).warnings == []
    for over, match in (({"latent_rate": 21.5}, "latent rate 21.5 but the base checkpoint .* has 689.062"),
                        ({"sample_rate": 48000}, "sample rate 48000"), ({"latent_channels": 8}, "latent channels 8")):
        with pytest.raises(ConsistencyError, match=match):
            check_run(cfg, _spec(same, **over))
    with pytest.raises(ConsistencyError, match="another VAE .*differs in latent_dim"):
        check_run(cfg, _spec({**same, "config": {**vae_cfg, "latent_dim": 8}}))
    # the same architecture in another file: the weights are compared by content hash
    other = tmp_path / "other_vae.safetensors"
    write_safetensors(other, _vae(1).state_dict())
    with pytest.raises(ConsistencyError, match="weights differ from the VAE in the base checkpoint"):
        check_run(cfg, _spec({**same, "path": str(other)}))
    copy = tmp_path / "same_vae.safetensors"
    write_safetensors(copy, _vae(0).state_dict())
    assert check_run(cfg, _spec({**same, "path": str(copy)})).warnings == []
    # a fallback the config accepts is a warning, recorded for the checkpoint
    cfg2 = resolve_config(_run_cfg(tmp_path / "c", base, text={"allow_none": True},
                                   curve={"music_encoder": "musicfm", "music_encoder_fallback": "logmel"}), tmp_path)
    res = check_run(cfg2,
                    _spec(same, music_encoder_fallback={"wanted": "musicfm", "used": "logmel", "reason": "no weights"}))
    assert ("instead of musicfm" in res.warnings[0]
            and res.curve_record["music_encoder_fallback"]["reason"] == "no weights")
    with pytest.raises(V2MError, match="base = \"sao1\" needs model.from_checkpoint"):
        check_run(resolve_config({"base": "sao1", "data": {"cache": "c"}, "model": {"from_config": {"depth": 1}}},
                                 tmp_path), _spec(same))


def test_the_preset_names_agree_everywhere(host):
    """The CLI's parser and the training node name the presets without importing the training code."""
    from v2m_zero.core.commands._common import PRESETS as CLI_PRESETS
    from v2m_zero.core.train import presets
    from v2m_zero.nodes import train as train_node

    assert CLI_PRESETS == presets.PRESETS
    assert list(train_node.BASE_NAMES) == list(presets.BASES) == [p for p in presets.PRESETS if p != "toy"]
    assert train_node.PRESET_CHOICES == [train_node.CUSTOM, *presets.BASES]


def test_example_configs_are_complete_and_valid(tmp_path):
    for base in ("toy", "sao1"):
        cfg = resolve_config(tomllib.loads(example_toml(base, tmp_path / "b.safetensors")), tmp_path)
        assert cfg["base"] == base
    sao = tomllib.loads(example_toml("sao1"))
    assert sao["curve"]["smoothing_seconds"] == pytest.approx(31 / 12.3, abs=1e-9)
    assert sao["text"]["encoder"] == "t5-base" and not sao["text"]["allow_none"]


# --------------------------------------------------------------------------------------------
# MusicFM without seams


def test_musicfm_has_no_seam_where_windows_meet():
    """A perfectly steady 32.04 s tone: its event curve must be flat. Encoded in two separate 30 s chunks
    (the old way) it shows a spurious event at t = 30 s; the overlap-add windows do not."""
    from test_prepare import _tiny_musicfm
    from v2m_zero.core.train.music_encoders import MusicFMEncoder, make_music_encoder

    model, _ = _tiny_musicfm()
    sr, n_frames = 24000, 801  # 32.04 s = SAO's 690 latent frames
    t = np.arange(n_frames * 960) / sr
    y = (0.2 * np.sin(2 * np.pi * 500 * t) + 0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)

    def dissimilarity(v):
        v = np.asarray(v, np.float64)
        a, b = v[:-1], v[1:]
        return 1 - (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    with torch.no_grad():  # the old chunking: [0, 30 s) and [30 s, 32.04 s) encoded apart
        old = np.concatenate([model.hidden_states(torch.from_numpy(y[s:s + 750 * 960])[None], upto=1)[1][0].numpy()
                              for s in (0, 750 * 960)])
    d_old = dissimilarity(old)
    seam = d_old[745:755].max()
    assert seam > 1000 * np.median(d_old[25:700])  # this clip does show the seam if it comes back
    enc = MusicFMEncoder(model=model, layer=1)
    assert enc.windows(n_frames) == [0, 51] and enc.windows(750) == [0]
    f = enc.encode(y[None], sr)
    assert f.values.shape[0] == n_frames
    d_new = dissimilarity(f.values)
    assert d_new[25:776].max() < 0.01 * seam  # nowhere an event like the seam, clip edges aside
    again = make_music_encoder(enc.describe() | {"id": "musicfm"}, model=model)
    assert again.windows(n_frames) == enc.windows(n_frames) and again.describe() == enc.describe()
