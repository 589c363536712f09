"""The fine-tuning road in ComfyUI: V2M_Train's sao1 preset writes a LoRA, Load V2M Model applies it with a
strength; "download if missing" fetches a model only when switched on (local Hub stand-in)."""

import os

import numpy as np
import pytest
from hub_server import HubServer
from test_presets import sao_like_base
from tiny_models import tiny_t5
from v2m_zero.core.errors import V2MError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media

pytest.importorskip("peft")

# a VAE with 4096x downsampling (10.8 Hz latents), so the preset's 32 s clips stay short for a CPU test
SLOW_VAE = {"channels": 4, "c_mults": [1, 1, 1, 1], "strides": [8, 8, 8, 8], "latent_dim": 4, "audio_channels": 2}
CONFIG_CHANGES = """
[data]
val_clips = 0
[lora]
rank = 2
[log]
tensorboard = false
"""


@pytest.fixture
def sao_host(host):
    import folder_paths

    models = os.path.join(folder_paths.models_dir, "v2m")
    sao_like_base(os.path.join(models, "checkpoints", "v2m_sao1.safetensors"), vae=SLOW_VAE)
    tiny_t5(os.path.join(models, "text_encoders", "t5-base"), d_model=32)
    music = os.path.join(folder_paths.get_input_directory(), "music")
    os.makedirs(music)
    rng = np.random.default_rng(0)
    for i in range(2):
        onsets = np.sort(rng.uniform(0, 19, 20))
        media.write_audio(os.path.join(music, f"m{i}.wav"),
                          synth.click_track(onsets, 20.0, sample_rate=8000, channels=1), 8000, layout="mono")
    return host


def test_train_node_sao1_preset_writes_a_lora_for_load_model(sao_host, caplog):
    import torch

    from v2m_zero.nodes import generate, train
    from v2m_zero.nodes.train import DEFAULT_CONFIG_TOML

    kw = dict(dataset="music", run_name="my-lora", init_checkpoint="v2m_sao1.safetensors", codec="patch:64:1:4000",
              music_encoder="logmel", clip_seconds=2.0, smoothing_seconds=2.52, max_steps=2,
              config=DEFAULT_CONFIG_TOML.replace("batch_size = 4", "batch_size = 2") + CONFIG_CHANGES)
    with pytest.raises(V2MError, match="choose it as init_checkpoint"):
        train.Train.execute(**{**kw, "init_checkpoint": "none"}, preset="sao1")
    with torch.inference_mode(), caplog.at_level("WARNING", logger="v2m_zero"):
        out = train.Train.execute(**kw, preset="sao1")
    path = out.args[0]
    assert path.endswith(os.path.join("v2m", "loras", "my-lora.safetensors")) and os.path.isfile(path)
    assert any("no musicfm weights" in r.message for r in caplog.records)  # log-mel fallback, warned
    from v2m_zero.model_io.lora import read_adapter

    _, meta = read_adapter(path)
    assert meta["lora"]["rank"] == 2 and meta["curve"]["music_encoder_fallback"]["used"] == "logmel"
    assert "my-lora.safetensors" in generate.LoadModel.define_schema().inputs[5].options
    common = dict(checkpoint="v2m_sao1.safetensors", text_encoder="t5-base", codec="from checkpoint", precision="fp32",
                  offload=False)
    base = generate.LoadModel.execute(**common).args[0]
    tuned = generate.LoadModel.execute(**common, lora="my-lora.safetensors", lora_strength=1.0).args[0]
    assert tuned.meta["lora"]["strength"] == 1.0 and tuned.meta["curve"]["music_encoder"] == "logmel"
    p = dict(base.dit.named_parameters())
    changed = [n for n, q in tuned.dit.named_parameters() if not torch.equal(q, p[n])]
    assert "model.model.transformer.layers.0.self_attn.to_qkv.weight" in changed


def test_download_if_missing_is_off_by_default(host, tmp_path, monkeypatch):
    import folder_paths

    from tiny_models import tiny_v2m_checkpoint
    from v2m_zero.nodes import generate

    tiny_v2m_checkpoint(os.path.join(folder_paths.models_dir, "v2m", "checkpoints", "t.safetensors"), text="t5",
                        text_dim=16)
    tiny_t5(str(tmp_path / "t5"))
    files = {f: open(tmp_path / "t5" / f, "rb").read() for f in os.listdir(tmp_path / "t5")}
    kw = dict(checkpoint="t.safetensors", text_encoder="t5-base", codec="from checkpoint", precision="fp32",
              offload=False)
    assert "t5-base" in generate.LoadModel.define_schema().inputs[1].options  # offered even before it is there
    with HubServer({"google-t5/t5-base": files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with pytest.raises(V2MError, match="switch on 'download_if_missing'"):
            generate.LoadModel.execute(**kw)
        assert hub.requests == []
        gen = generate.LoadModel.execute(**kw, download_if_missing=True).args[0]
    assert gen.text is not None
    assert os.path.isfile(os.path.join(folder_paths.models_dir, "v2m", "text_encoders", "t5-base", "model.safetensors"))
    assert host.STATE["progress"][-1] == (100, 100)


def test_train_node_sa3_preset_with_comfyuis_t5gemma_file(host, tmp_path):
    """The sa3 preset: a V2M checkpoint made from Stable Audio 3, and the T5Gemma single file ComfyUI users keep in
    models/text_encoders/ (no Hugging Face folder): the LoRA it writes loads in Load V2M Model."""
    import folder_paths
    import torch

    from tiny_sa3 import tiny_sa3_file, tiny_t5gemma_comfy_file
    from v2m_zero.model_io.sa3 import init_from_sa3
    from v2m_zero.nodes import generate, train
    from v2m_zero.nodes.train import DEFAULT_CONFIG_TOML

    v2m = os.path.join(folder_paths.models_dir, "v2m")
    sa3 = tiny_sa3_file(str(tmp_path / "stable_audio_3_small_music_base.safetensors"))
    os.makedirs(os.path.join(v2m, "checkpoints"), exist_ok=True)
    init_from_sa3(sa3, os.path.join(v2m, "checkpoints", "v2m_sa3.safetensors"))
    te = os.path.join(folder_paths.models_dir, "text_encoders")
    os.makedirs(te, exist_ok=True)
    tiny_t5gemma_comfy_file(os.path.join(te, "t5gemma_b_b_ul2.safetensors"))
    music = os.path.join(folder_paths.get_input_directory(), "music")
    os.makedirs(music)
    for i in range(2):
        media.write_audio(os.path.join(music, f"m{i}.wav"),
                          synth.click_track([0.5 + i, 3.0, 7.5], 20.0, sample_rate=44100), 44100)
    kw = dict(dataset="music", run_name="sa3-lora", init_checkpoint="v2m_sa3.safetensors", codec="patch:64:1:4000",
              music_encoder="logmel", clip_seconds=2.0, smoothing_seconds=2.52, max_steps=2,
              config=DEFAULT_CONFIG_TOML.replace("batch_size = 4", "batch_size = 2") + CONFIG_CHANGES)
    with torch.inference_mode():
        path = train.Train.execute(**kw, preset="sa3").args[0]
    assert path.endswith(os.path.join("v2m", "loras", "sa3-lora.safetensors")) and os.path.isfile(path)
    common = dict(checkpoint="v2m_sa3.safetensors", text_encoder="text_encoders/t5gemma_b_b_ul2.safetensors",
                  codec="from checkpoint", precision="fp32", offload=False)
    base = generate.LoadModel.execute(**common).args[0]
    tuned = generate.LoadModel.execute(**common, lora="sa3-lora.safetensors", lora_strength=1.0).args[0]
    assert tuned.meta["text"]["type"] == "t5gemma" and tuned.text is not None
    p = dict(base.dit.named_parameters())
    assert any(not torch.equal(q, p[n]) for n, q in tuned.dit.named_parameters() if ".layers." in n)
