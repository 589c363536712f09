"""The one file-format registry (model_io.formats): every real layout is recognised from tiny files
written in that layout, an unknown file gets one clear error naming it, and the DiT of every
DiT-carrying format is read through one entry."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from v2m_zero.core.errors import ModelError
from v2m_zero.model_io import formats
from tiny_models import tiny_v2m_checkpoint
from tiny_sa3 import tiny_sa3_file, tiny_same, tiny_t5gemma_comfy_file


def _save(path, sd, metadata=None):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata or {"format": "pt"})
    return str(path)


def _sao1(path):
    """SAO 1.0's single-file layout at toy sizes: DiT without the curve channel, seconds conditioners, VAE."""
    from v2m_zero.core.model.dit import V2MDiT, make_model_config
    from v2m_zero.core.model.oobleck import OobleckVAE

    torch.manual_seed(0)
    sd = dict(V2MDiT(make_model_config(io_channels=4, embed_dim=64, depth=2, num_heads=1, cond_token_dim=64,
                                       global_cond_dim=128)).state_dict())
    vae = OobleckVAE.from_config({"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "latent_dim": 4,
                                  "audio_channels": 2})
    sd.update({f"pretransform.model.{k}": v for k, v in vae.state_dict().items()})
    return _save(path, sd)


def _t5(path):
    """google-t5/t5-base's model.safetensors layout (ComfyUI's t5_base.safetensors) at toy sizes."""
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=20, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   relative_attention_num_buckets=8)
    sd = {k: v.clone() for k, v in T5EncoderModel(cfg).state_dict().items()}
    return _save(path, sd)


def _oobleck(path):
    from v2m_zero.core.model.oobleck import OobleckVAE

    vae = OobleckVAE.from_config({"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "latent_dim": 4,
                                  "audio_channels": 2})
    return _save(path, vae.state_dict())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from v2m_zero.model_io.sa3 import init_from_sa3

    d = tmp_path_factory.mktemp("formats")
    out = {
        "v2m": tiny_v2m_checkpoint(str(d / "v2m.safetensors")),
        "sa3": tiny_sa3_file(str(d / "stable_audio_3_small_music_base.safetensors")),
        "sao1": _sao1(d / "stable_audio_open_1.0.safetensors"),
        "t5": _t5(d / "t5_base.safetensors"),
        "same": _save(d / "same.safetensors", tiny_same().state_dict()),
        "oobleck": _oobleck(d / "vae.safetensors"),
        "v2m_lora": _save(d / "lora.safetensors", {"x.lora_A": torch.zeros(2, 2)}, {"v2m_lora": "1"}),
    }
    tiny_t5gemma_comfy_file(str(d / "t5gemma_b_b_ul2.safetensors"))
    out["t5gemma"] = str(d / "t5gemma_b_b_ul2.safetensors")
    out["v2m_from_sa3"] = str(d / "v2m_from_sa3.safetensors")
    init_from_sa3(out["sa3"], out["v2m_from_sa3"])
    return out


@pytest.mark.parametrize("kind", ["v2m", "sa3", "sao1", "t5", "t5gemma", "same", "oobleck", "v2m_lora"])
def test_each_real_layout_is_recognised_from_its_header(files, kind):
    fmt = formats.identify(files[kind])
    assert fmt.id == kind
    assert formats.is_format(files[kind], kind)
    others = [k for k in formats.BY_ID if k != kind]
    assert not formats.is_format(files[kind], *others)


def test_a_v2m_checkpoint_made_from_sa3_is_a_v2m_checkpoint(files):
    """It keeps SA3's keys, but its metadata says what it is: V2M is tried first."""
    assert formats.identify(files["v2m_from_sa3"]) is formats.V2M


def test_is_format_tells_apart_the_layouts_the_nodes_list(files):
    assert formats.is_format(files["sao1"], "sao1") and not formats.is_format(files["sa3"], "sao1")
    assert formats.is_format(files["sa3"], "sa3") and not formats.is_format(files["v2m_from_sa3"], "sa3")
    assert formats.is_format(files["t5"], "t5") and not formats.is_format(files["t5gemma"], "t5")
    assert formats.is_format(files["t5gemma"], "t5gemma") and not formats.is_format(files["t5"], "t5gemma")
    assert formats.is_format(files["v2m"], "v2m")


def test_an_unknown_file_gets_one_clear_error_naming_it(tmp_path):
    other = _save(tmp_path / "sd15.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)})
    assert formats.detect(other) is None and not formats.is_format(other, *formats.BY_ID)
    with pytest.raises(ModelError) as err:
        formats.identify(other)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(other) and "model.diffusion_model" in msg and "Fix:" in msg
    with pytest.raises(ModelError, match="sd15.safetensors: holds no music DiT"):
        formats.read_dit(other)


def test_an_unreadable_file_is_no_format_and_its_error_names_it(tmp_path):
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x02}q\x00.")
    assert not formats.is_format(pickle, "sa3") and not formats.is_format(tmp_path / "missing.safetensors", "sao1")
    with pytest.raises(ModelError, match="model.ckpt: is a PyTorch pickle"):
        formats.identify(pickle)
    with pytest.raises(ValueError, match="unknown format id"):
        formats.is_format(pickle, "sao")


@pytest.mark.parametrize("kind", ["v2m", "sa3", "sao1", "v2m_from_sa3"])
def test_read_dit_reads_every_dit_carrying_format(files, kind):
    dit = formats.read_dit(files[kind], dtype=torch.bfloat16)
    assert dit.curve_channels == 1 and not dit.training
    assert dit.meta["v2m_format"] == 1 and dit.objective in ("v", "rectified_flow")
    assert next(dit.parameters()).dtype == torch.bfloat16 and next(dit.parameters()).device.type == "cpu"
    if kind == "sao1":
        assert "zero weights" in dit.meta["note"]


@pytest.mark.parametrize("kind", ["t5", "t5gemma", "same", "oobleck", "v2m_lora"])
def test_read_dit_refuses_files_without_a_dit_by_name(files, kind):
    with pytest.raises(ModelError, match=r"is a .*, which holds no music DiT\. Fix:"):
        formats.read_dit(files[kind])
