"""Oobleck VAE / PatchCodec / safe weight I/O, with diffusers' AutoencoderOobleck as the oracle."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

from v2m_zero.core.model.oobleck import SAO_VAE_CONFIG, OobleckVAE
from v2m_zero.core.model.codec import PatchCodec
from v2m_zero.model_io.codec import diffusers_to_oobleck, infer_oobleck_config, load_codec
from v2m_zero.core.errors import ModelError
from v2m_zero.model_io.weights import (
    check_state_dict,
    read_safetensors,
    read_safetensors_header,
    strip_prefix,
    write_safetensors,
)

TINY = {"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "latent_dim": 4, "audio_channels": 2}


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so Snake alpha/beta and weight-norm gains are not at their init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return module.eval()


def _diffusers_tiny(seed: int = 0):
    diffusers = pytest.importorskip("diffusers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's weight_norm deprecation notice
        ref = diffusers.AutoencoderOobleck(
            encoder_hidden_size=8, downsampling_ratios=[2, 2], channel_multiples=[1, 2], decoder_channels=8,
            decoder_input_channels=4, audio_channels=2, sampling_rate=44100,
        )
    return _randomize(ref, seed)


def _tiny_vae(seed: int = 0, config=TINY) -> OobleckVAE:
    torch.manual_seed(seed)
    return _randomize(OobleckVAE.from_config(config), seed)


# ---------------------------------------------------------------------------- architecture


def test_sao_layout_key_names_and_shapes():
    with torch.device("meta"):
        vae = OobleckVAE()
    sd = vae.state_dict()
    assert vae.sample_rate == 44100 and vae.downsampling_ratio == 2048 and vae.latent_channels == 64
    assert vae.latent_rate == pytest.approx(44100 / 2048)
    # Names and shapes of the real SAO 1.0 VAE (pretransform.model.* without the prefix).
    assert tuple(sd["encoder.layers.0.weight_v"].shape) == (128, 2, 7)
    assert tuple(sd["encoder.layers.7.weight_v"].shape) == (128, 2048, 3)  # mean + scale
    assert tuple(sd["decoder.layers.0.weight_v"].shape) == (2048, 64, 7)
    assert tuple(sd["decoder.layers.1.layers.0.beta"].shape) == (2048,)
    assert tuple(sd["decoder.layers.1.layers.1.weight_g"].shape) == (2048, 1, 1)  # transposed conv: dim 0 = in
    assert tuple(sd["decoder.layers.7.weight_v"].shape) == (2, 128, 7)
    assert "decoder.layers.7.bias" not in sd
    assert not any("parametrizations" in k for k in sd)
    assert 150e6 < sum(p.numel() for p in vae.parameters()) < 160e6
    assert infer_oobleck_config(sd) == {**SAO_VAE_CONFIG, "decoder_channels": 128}


def _sat_to_diffusers_key(key: str, n_blocks: int) -> str:
    """Independent restatement of diffusers' scripts/convert_stable_audio.py renaming rules."""
    part, _, rest = key.partition(".")
    m = re.match(r"layers\.(\d+)\.(.*)$", rest)
    idx, tail = int(m.group(1)), m.group(2)
    if idx == 0:
        return f"{part}.conv1.{tail}"
    if idx == n_blocks + 1:
        return f"{part}.snake1.{tail}"
    if idx == n_blocks + 2:
        return f"{part}.conv2.{tail}"
    sub = re.match(r"layers\.(\d+)\.(.*)$", tail)
    j, leaf = int(sub.group(1)), sub.group(2)
    names = ["res_unit1", "res_unit2", "res_unit3", "snake1", "conv1"] if part == "encoder" else \
        ["snake1", "conv_t1", "res_unit1", "res_unit2", "res_unit3"]
    name = names[j]
    if name.startswith("res_unit"):
        u = re.match(r"layers\.(\d)\.(.*)$", leaf)
        leaf = f"{['snake1', 'conv1', 'snake2', 'conv2'][int(u.group(1))]}.{u.group(2)}"
        return f"{part}.block.{idx - 1}.{name}.{leaf}"
    return f"{part}.block.{idx - 1}.{name}.{leaf}"


def test_key_layout_matches_diffusers_converter_rules():
    ours = OobleckVAE.from_config(TINY).state_dict()
    ref = _diffusers_tiny().state_dict()
    mapped = {_sat_to_diffusers_key(k, 2) for k in ours}
    assert mapped == set(ref)
    assert set(diffusers_to_oobleck(ref)) == set(ours)


# ---------------------------------------------------------------------------- oracle


@torch.no_grad()
def test_matches_diffusers_encode_decode_and_sample():
    ref = _diffusers_tiny(seed=1)
    sd = diffusers_to_oobleck(ref.state_dict())
    vae = OobleckVAE.from_config(infer_oobleck_config(sd)).eval()
    vae.load_state_dict(sd, strict=True)

    wave = 0.5 * torch.randn(2, 2, 96, generator=torch.Generator().manual_seed(3))
    dist = ref.encode(wave).latent_dist
    mean = vae.encode(wave)
    assert mean.shape == (2, 4, 24)
    torch.testing.assert_close(mean, dist.mean, atol=1e-5, rtol=1e-5)
    _, std = vae.encode_distribution(wave)
    torch.testing.assert_close(std, dist.std, atol=1e-5, rtol=1e-5)
    # Same generator, same draws: the sampled latents agree too.
    sample = vae.encode(wave, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(sample, dist.sample(torch.Generator().manual_seed(7)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(sample, mean)

    z = torch.randn(2, 4, 20, generator=torch.Generator().manual_seed(4))
    out = vae.decode(z)
    assert out.shape == (2, 2, 80)
    torch.testing.assert_close(out, ref.decode(z).sample, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_load_diffusers_folder_and_pipeline_folder(tmp_path):
    ref = _diffusers_tiny(seed=2)
    ref.save_pretrained(tmp_path / "pipe" / "vae", safe_serialization=True)
    z = torch.randn(1, 4, 12, generator=torch.Generator().manual_seed(0))
    expect = ref.decode(z).sample
    for folder in (tmp_path / "pipe" / "vae", tmp_path / "pipe"):
        vae = load_codec(folder)
        assert not vae.training and not any(p.requires_grad for p in vae.parameters())
        torch.testing.assert_close(vae.decode(z), expect, atol=1e-5, rtol=1e-5)
    assert load_codec(tmp_path / "pipe", sample_rate=48000).sample_rate == 48000


# ---------------------------------------------------------------------------- loading our layouts


@torch.no_grad()
def test_load_sao_single_file_with_prefix(tmp_path):
    vae = _tiny_vae(seed=5)
    tensors = {f"pretransform.model.{k}": v for k, v in vae.state_dict().items()}
    tensors["model.model.transformer.layers.0.weight"] = torch.ones(3, 3)  # a DiT tensor we must skip
    tensors["conditioner.conditioners.prompt.proj.weight"] = torch.ones(2)
    path = write_safetensors(tmp_path / "model.safetensors", tensors, {"format": "pt"})
    loaded = load_codec(path)
    assert loaded.config["c_mults"] == [1, 2] and loaded.latent_channels == 4
    z = torch.randn(2, 4, 10)
    torch.testing.assert_close(loaded.decode(z), vae.decode(z))
    wave = torch.randn(1, 2, 64)
    torch.testing.assert_close(loaded.encode(wave), vae.encode(wave))


@torch.no_grad()
def test_load_standalone_with_new_torch_weight_norm_names(tmp_path):
    vae = _tiny_vae(seed=6)
    renamed = {k.replace("weight_g", "parametrizations.weight.original0")
               .replace("weight_v", "parametrizations.weight.original1"): v for k, v in vae.state_dict().items()}
    path = write_safetensors(tmp_path / "vae.safetensors", renamed)
    z = torch.randn(1, 4, 8)
    torch.testing.assert_close(load_codec(path).decode(z), vae.decode(z))
    # A folder holding the one file works too, and dtype is honoured.
    half = load_codec(tmp_path, dtype=torch.float64)
    assert next(half.parameters()).dtype == torch.float64


def test_weight_g_v_are_plain_parameters():
    vae = OobleckVAE.from_config(TINY)
    names = dict(vae.named_parameters())
    assert "encoder.layers.0.weight_g" in names and "encoder.layers.0.weight_v" in names
    assert "decoder.layers.1.layers.0.alpha" in names
    # Weight norm: the effective kernel has the norm weight_g along dim 0.
    conv = vae.encoder.layers[0]
    w = conv.weight()
    torch.testing.assert_close(w.flatten(1).norm(dim=1), conv.weight_g.flatten().abs())


def test_from_config_accepts_stable_audio_tools_pretransform_config():
    sat = {"model": {"pretransform": {"type": "autoencoder", "config": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 8, "c_mults": [1, 2],
                                                  "strides": [2, 2], "latent_dim": 8, "use_snake": True}},
        "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 8, "c_mults": [1, 2],
                                                  "strides": [2, 2], "latent_dim": 4, "use_snake": True,
                                                  "final_tanh": False}},
        "bottleneck": {"type": "vae"}, "latent_dim": 4, "downsampling_ratio": 4, "io_channels": 2}}},
        "sample_rate": 32000}
    vae = OobleckVAE.from_config(sat)
    assert vae.sample_rate == 32000 and vae.downsampling_ratio == 4 and vae.latent_channels == 4
    assert set(vae.state_dict()) == set(OobleckVAE.from_config(TINY).state_dict())
    with pytest.raises(ModelError, match="bottleneck"):
        OobleckVAE.from_config({**TINY, "bottleneck": "rvq"})


# ---------------------------------------------------------------------------- chunked decode


@torch.no_grad()
def test_decode_chunked_equals_full_decode():
    cfg = {"channels": 4, "c_mults": [1, 2], "strides": [4, 4], "latent_dim": 4}
    vae = _tiny_vae(seed=8, config=cfg)
    z = torch.randn(2, 4, 203, generator=torch.Generator().manual_seed(1))
    full = vae.decode(z)
    # The decoder's receptive field (~17 latent frames here) fits inside overlap / 2.
    chunked = vae.decode_chunked(z, chunk_size=64, overlap=48)
    assert chunked.shape == full.shape == (2, 2, 203 * 16)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    # Too little overlap: interior seams differ, but the first chunk's interior is still exact.
    rough = vae.decode_chunked(z, chunk_size=32, overlap=4)
    assert (rough - full).abs().max() > 1e-4
    torch.testing.assert_close(rough[..., : 16 * 10], full[..., : 16 * 10], atol=1e-5, rtol=1e-5)
    # Shorter than one chunk: a plain decode.
    torch.testing.assert_close(vae.decode_chunked(z[..., :50]), vae.decode(z[..., :50]))


# ---------------------------------------------------------------------------- PatchCodec


def test_patch_codec_round_trip_and_shapes():
    codec = PatchCodec(patch_size=8, audio_channels=2)
    assert codec.latent_channels == 16 and codec.downsampling_ratio == 8 and codec.sample_rate == 44100
    assert codec.latent_rate == pytest.approx(44100 / 8)
    wave = torch.randn(3, 2, 800, generator=torch.Generator().manual_seed(0))
    z = codec.encode(wave)
    assert z.shape == (3, 16, 100)
    torch.testing.assert_close(codec.decode(z), wave, atol=1e-6, rtol=0)
    wave64 = wave.double()
    assert (codec.decode(codec.encode(wave64)) - wave64).abs().max() < 1e-12
    # Orthonormal: energy preserved; deterministic.
    torch.testing.assert_close(z.pow(2).sum(), wave.pow(2).sum(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(codec.encode(wave), z, atol=0, rtol=0)
    # A constant (DC) stereo-identical signal lands in one latent channel.
    dc = torch.ones(1, 2, 64)
    zdc = codec.encode(dc)
    assert zdc[:, 1:].abs().max() < 1e-6 and zdc[:, 0].abs().min() > 1
    # Length not a multiple of the patch: padded with silence.
    odd = torch.randn(1, 2, 21)
    back = codec.decode(codec.encode(odd))
    assert back.shape == (1, 2, 24)
    torch.testing.assert_close(back[..., :21], odd, atol=1e-6, rtol=0)
    assert back[..., 21:].abs().max() < 1e-6
    mono = PatchCodec(patch_size=4, audio_channels=1, sample_rate=16000, scale=2.0)
    x = torch.randn(1, 1, 40)
    torch.testing.assert_close(mono.decode(mono.encode(x)), x, atol=1e-6, rtol=0)


def test_codec_input_checks():
    codec = PatchCodec(patch_size=4)
    with pytest.raises(ValueError, match="2 channel"):
        codec.encode(torch.randn(1, 1, 16))
    with pytest.raises(ValueError, match="latents"):
        codec.decode(torch.randn(1, 3, 16))


# ---------------------------------------------------------------------------- bad files


def test_bad_files_give_clear_errors(tmp_path):
    vae = _tiny_vae(seed=9)
    good = write_safetensors(tmp_path / "good.safetensors", vae.state_dict())

    with pytest.raises(ModelError, match="not found"):
        load_codec(tmp_path / "nope.safetensors")

    pickle_path = tmp_path / "vae.ckpt"
    torch.save({"state_dict": vae.state_dict()}, pickle_path)
    with pytest.raises(ModelError, match=r"vae\.ckpt.*pickle.*safetensors"):
        load_codec(pickle_path)

    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.safetensors.*empty"):
        read_safetensors(tmp_path / "empty.safetensors")

    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cut\.safetensors.*truncated"):
        load_codec(tmp_path / "cut.safetensors")
    (tmp_path / "cuthead.safetensors").write_bytes(data[:40])
    with pytest.raises(ModelError, match=r"cuthead\.safetensors.*truncated"):
        read_safetensors(tmp_path / "cuthead.safetensors")

    (tmp_path / "junk.safetensors").write_bytes(b"hello world, definitely not tensors" * 10)
    with pytest.raises(ModelError, match=r"junk\.safetensors.*not a safetensors"):
        read_safetensors(tmp_path / "junk.safetensors")

    sd = vae.state_dict()
    missing = {k: v for k, v in sd.items() if "decoder.layers.2.layers.3" not in k}
    write_safetensors(tmp_path / "missing.safetensors", missing)
    with pytest.raises(ModelError, match=r"missing\.safetensors.*missing keys: decoder\.layers\.2\.layers\.3"):
        load_codec(tmp_path / "missing.safetensors")

    wrong = dict(sd)
    wrong["decoder.layers.1.layers.0.alpha"] = torch.zeros(5)
    write_safetensors(tmp_path / "wrong.safetensors", wrong)
    with pytest.raises(ModelError, match=r"wrong\.safetensors.*shape mismatches: decoder\.layers\.1\.layers\.0\.alpha"):
        load_codec(tmp_path / "wrong.safetensors")

    with pytest.raises(ModelError, match=r"good\.safetensors.*shape mismatches"):
        load_codec(good, config={**TINY, "channels": 16})

    write_safetensors(tmp_path / "other.safetensors", {"foo.weight": torch.ones(2)})
    with pytest.raises(ModelError, match=r"other\.safetensors.*no Oobleck VAE"):
        load_codec(tmp_path / "other.safetensors")

    with pytest.raises(ModelError, match="folder"):
        read_safetensors(tmp_path)


# ---------------------------------------------------------------------------- weights helpers


def test_write_read_metadata_prefix_and_atomicity(tmp_path):
    a = torch.arange(6.0).reshape(2, 3)
    tensors = {"x.a": a, "x.tied": a, "y.b": torch.ones(2, dtype=torch.float16)}
    path = write_safetensors(tmp_path / "sub" / "w.safetensors", tensors, {"config": {"k": 1}, "name": "w"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.safetensors"]  # no temp file left
    sd, meta = read_safetensors(path)
    assert set(sd) == {"x.a", "x.tied", "y.b"} and sd["y.b"].dtype == torch.float16
    assert json.loads(meta["config"]) == {"k": 1} and meta["name"] == "w"
    only, _ = read_safetensors(path, prefix="x.")
    assert set(only) == {"a", "tied"}
    torch.testing.assert_close(only["a"], a)
    header, _ = read_safetensors_header(path)
    assert header["x.a"]["shape"] == [2, 3]
    with pytest.raises(ModelError, match="prefix"):
        read_safetensors(path, prefix="z.")
    assert strip_prefix({"p.a": 1, "q.b": 2}, "p.") == {"a": 1}
    # A failed write leaves the previous file untouched.
    with pytest.raises(Exception):
        write_safetensors(path, {"bad": "not a tensor"})
    assert set(read_safetensors(path)[0]) == {"x.a", "x.tied", "y.b"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.safetensors"]


def test_check_state_dict_lists_first_keys():
    module = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(8)])
    sd = module.state_dict()
    check_state_dict(module, sd, name="ok.safetensors")
    bad = {k: v for k, v in sd.items() if not k.endswith("bias")}
    bad["extra"] = torch.ones(1)
    bad["0.weight"] = torch.ones(3, 2)
    with pytest.raises(ModelError) as err:
        check_state_dict(module, bad, name="bad.safetensors")
    msg = str(err.value)
    assert msg.startswith("bad.safetensors")
    assert "8 missing keys: 0.bias, 1.bias, 2.bias, 3.bias, 4.bias (+3 more)" in msg
    assert "1 unexpected keys: extra" in msg and "0.weight (file (3, 2) vs model (2, 2))" in msg
