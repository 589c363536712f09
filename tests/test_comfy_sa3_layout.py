"""ComfyUI's own Stable Audio 3 checkpoint layout (``models/checkpoints/stable_audio_3_*.safetensors``).

``fixtures/comfy_sa3_layout.json`` holds the tensor names and shapes ComfyUI's loader builds for SA3 small
and medium (yzkee/ComfyUI @ 783545f6, ComfyUI 0.33.0 with native SA3; written by
``fixtures/make_comfy_sa3_layout.py`` on the meta device) and the DiT config ComfyUI's ``model_detection``
reads back. These tests hold our readers to those real names and shapes (no weights needed: shapes only),
and the tiny files of ``tiny_sa3`` to the same names.
"""

from __future__ import annotations

import json
import os
import re

import pytest
import torch

from tiny_sa3 import SAME_PRETRANSFORM, tiny_sa3_state_dict
from v2m_zero.core.model.sa3 import SA3DiT
from v2m_zero.model_io import sa3

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "comfy_sa3_layout.json")


@pytest.fixture(scope="module")
def layout():
    with open(FIXTURE) as f:
        return json.load(f)


def shapes(tensors, skip=("pretransform.",)):
    return {k: sa3._Shape(v) for k, v in tensors.items() if not k.startswith(skip)}


@pytest.mark.parametrize("size", ["small", "medium"])
def test_dit_config_read_off_comfyuis_layout_rebuilds_it_exactly(layout, size):
    real = layout[size]
    sd = shapes(real["tensors"])
    cfg = sa3.sa3_model_config(sd, None, f"stable_audio_3_{size}.safetensors")
    dit = cfg["diffusion"]["config"]
    comfy = real["detected_unet_config"]
    for key in ("embed_dim", "depth", "num_heads", "io_channels", "num_memory_tokens", "local_add_cond_dim",
                "global_cond_dim", "project_cond_tokens", "input_concat_dim", "timestep_features_type",
                "global_cond_type"):
        assert dit[key] == comfy[key], key
    assert dit["attn_kwargs"]["differential"] == comfy["attn_kwargs"]["differential"] == (size == "medium")
    assert dit["ff_kwargs"]["mult"] == 4.0  # ComfyUI reads none: FeedForward's default
    assert cfg["conditioning"]["configs"][0]["config"]["padding_mode"] == "learned"
    with torch.device("meta"):
        model = SA3DiT(cfg)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: v for k, v in real["tensors"].items() if not k.startswith("pretransform.")}
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}


@pytest.mark.parametrize("size", ["small", "medium"])
def test_comfyuis_layout_is_recognised_as_sa3_by_its_signature(layout, size):
    names = set(layout[size]["tensors"])
    assert all(k in names for k in sa3.SIGNATURE)
    # ComfyUI's own checkpoints keep the text encoder apart (models/text_encoders/t5gemma_b_b_ul2.safetensors)
    assert not any(k.startswith(sa3.TEXT_ENCODER_PREFIX) for k in names)


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+\.", ".N.", key)


@pytest.mark.parametrize("differential,size", [(False, "small"), (True, "medium")])
def test_tiny_sa3_files_use_comfyuis_names(layout, differential, size):
    tiny = tiny_sa3_state_dict(0, differential=differential)
    ours = {_pattern(k) for k in tiny if not k.startswith(("pretransform.", sa3.TEXT_ENCODER_PREFIX))}
    theirs = {_pattern(k) for k in layout[size]["tensors"] if not k.startswith("pretransform.")}
    assert ours == theirs
    # and the widths ComfyUI takes as given: 768-wide seconds embedder and text tokens, FF 4x
    comfy = layout[size]["tensors"]
    for key in ("conditioner.conditioners.seconds_total.embedder.embedding.1.weight",
                "conditioner.conditioners.prompt.padding_embedding", "model.model.to_cond_embed.0.weight"):
        assert list(tiny[key].shape)[:1] == comfy[key][:1] or list(tiny[key].shape)[-1:] == comfy[key][-1:], key
    ff = tiny["model.model.transformer.layers.0.ff.ff.0.proj.weight"].shape
    assert ff[0] == 2 * 4 * ff[1]


def _reference_names(key: str) -> str:
    """ComfyUI builds weight norm with torch's parametrizations (and loads either naming); the stable_audio_3
    reference saves ``weight_g``/``weight_v`` (torch.nn.utils.weight_norm)."""
    return key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                "weight_v")


@pytest.mark.parametrize("size", ["small", "medium"])
def test_same_config_read_off_comfyuis_layout_rebuilds_it_exactly(layout, size):
    from v2m_zero.core.model.same import SAMECodec
    from v2m_zero.model_io.same import same_config_from_state_dict

    prefix = "pretransform.model."
    real = {_reference_names(k[len(prefix):]): v for k, v in layout[size]["tensors"].items() if k.startswith(prefix)}
    cfg = same_config_from_state_dict({k: sa3._Shape(v) for k, v in real.items()}, name=size)
    assert cfg["channels"] == layout[size]["vae_config"]["channels"]
    assert cfg["transformer_depths"] == [layout[size]["vae_config"]["transformer_depths"]]
    with torch.device("meta"):
        codec = SAMECodec(cfg)
    ours = {k: list(v.shape) for k, v in codec.state_dict().items()}
    assert set(ours) == set(real)
    assert {k: (v, real[k]) for k, v in ours.items() if real[k] != v} == {}


def test_init_from_a_file_saved_with_comfyuis_weight_norm_names(tmp_path):
    from safetensors.torch import save_file

    from v2m_zero.model_io.checkpoint import read_metadata
    from v2m_zero.model_io.weights import read_safetensors

    sd = tiny_sa3_state_dict(0)
    comfy = {k.replace("weight_g", "parametrizations.weight.original0").replace("weight_v",
                                                                                "parametrizations.weight.original1"): v
             for k, v in sd.items()}
    assert any("parametrizations" in k for k in comfy)
    for name, tensors in (("ref", sd), ("comfy", comfy)):
        (tmp_path / name).mkdir()
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / name / "model.safetensors"))
        # the tiny SAME's attention layout is in no weight: its model_config.json says it, as the real one does
        (tmp_path / name / "model_config.json").write_text(json.dumps({"model": {"pretransform": SAME_PRETRANSFORM}}))
        sa3.init_from_sa3(tmp_path / name / "model.safetensors", tmp_path / f"v2m_{name}.safetensors")
    a, _ = read_safetensors(tmp_path / "v2m_ref.safetensors")
    b, _ = read_safetensors(tmp_path / "v2m_comfy.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert (read_metadata(tmp_path / "v2m_ref.safetensors")["codec"]
            == read_metadata(tmp_path / "v2m_comfy.safetensors")["codec"])


def test_codec_from_a_file_saved_with_comfyuis_weight_norm_names(tmp_path):
    """The Load V2M Model road reads the codec straight from the SA3 file: ComfyUI's naming loads the same SAME."""
    from safetensors.torch import save_file

    from v2m_zero.model_io.same import load_same

    sd = tiny_sa3_state_dict(0)
    comfy = {k.replace("weight_g", "parametrizations.weight.original0").replace("weight_v",
                                                                                "parametrizations.weight.original1"): v
             for k, v in sd.items()}
    codecs = []
    for name, tensors in (("ref", sd), ("comfy", comfy)):
        (tmp_path / name).mkdir()
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / name / "model.safetensors"))
        (tmp_path / name / "model_config.json").write_text(json.dumps({"model": {"pretransform": SAME_PRETRANSFORM}}))
        codecs.append(load_same(tmp_path / name / "model.safetensors"))
    a, b = (c.state_dict() for c in codecs)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
