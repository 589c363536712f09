"""SAME (Stable Audio 3's autoencoder) against diffusers' AutoencoderSAME (oracle), chunked decode,
its public layouts, and the codec factory."""

from __future__ import annotations

import pytest
import torch

from tiny_sa3 import SAME, randomise, tiny_same, tiny_sa3_file
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.model.same import SAMECodec, SAMEConfig
from v2m_zero.model_io.codec import codec_spec, make_codec
from v2m_zero.model_io.same import load_same, same_config_from_state_dict, same_from_diffusers, same_to_diffusers

# a stride-3 SAME with a sine-gated last decoder layer (strides are free here: the config says them)
ORACLE = dict(audio_channels=2, patch_size=4, channels=8, c_mults=[2], strides=[3], transformer_depths=[2],
              latent_dim=6, dim_heads=4, ff_mult=2.0, sliding_window=1, decoder_sinusoidal_blocks=[1], sample_rate=1600)


def _pair(differential: bool):
    diffusers = pytest.importorskip("diffusers")
    ours = SAMECodec({**ORACLE, "differential": differential}).eval()
    randomise(ours, 0, 0.3)
    ref = diffusers.AutoencoderSAME(audio_channels=2, patch_size=4, encoder_channels=8, encoder_c_mults=(2,),
                                    encoder_strides=(3,), encoder_transformer_depths=(2,), latent_dim=6,
                                    use_differential_attention=differential, dim_heads=4, ff_mult=2, sliding_window=1,
                                    decoder_sinusoidal_blocks=(1,), sampling_rate=1600).eval()
    ref.load_state_dict(same_to_diffusers(ours.state_dict()), strict=True)
    return ours, ref


@pytest.mark.parametrize("differential", [False, True])
def test_matches_diffusers_autoencoder_same(differential):
    ours, ref = _pair(differential)
    wave = torch.randn(2, 2, 4 * 3 * 9 + 7, generator=torch.Generator().manual_seed(1))  # not a multiple: padded
    with torch.no_grad():
        z, zr = ours.encode(wave), ref.encode(wave).latents
        y, yr = ours.decode(z), ref.decode(zr).sample
    assert z.shape == (2, 6, ours.latent_length(wave.shape[-1])) and z.abs().max() > 0.1
    torch.testing.assert_close(z, zr, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, yr, atol=1e-5, rtol=1e-5)
    assert y.shape[-1] == z.shape[-1] * ours.downsampling_ratio


def test_key_mapping_round_trip_and_diffusers_folder(tmp_path):
    ours, ref = _pair(True)
    sd = ours.state_dict()
    back = same_from_diffusers(same_to_diffusers(sd))
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    ref.save_pretrained(tmp_path / "vae")
    (tmp_path / "model_index.json").write_text("{}")
    loaded = load_same(tmp_path)  # a pipeline folder: vae/config.json + diffusion_pytorch_model.safetensors
    assert loaded.cfg.strides == [3] and loaded.sample_rate == 1600
    wave = torch.randn(1, 2, 240)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(wave), ours.encode(wave))
    assert isinstance(make_codec(str(tmp_path)), SAMECodec)


def test_chunked_decode_equals_full_decode():
    codec = SAMECodec({**ORACLE, "differential": True}).eval()
    randomise(codec, 2, 0.3)
    z = torch.randn(1, 6, 150, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = codec.decode(z)
        # receptive field: 2 layers x 1 latent frame each side; 8 frames of overlap cover it
        chunked = codec.decode_chunked(z, chunk_size=32, overlap=8)
        short = codec.decode_chunked(z[..., :20], chunk_size=32, overlap=8)
    assert chunked.shape == full.shape == (1, 2, 150 * 12)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, codec.decode(z[..., :20]))
    with pytest.raises(ModelError, match="overlap"):
        codec.decode_chunked(z, chunk_size=32, overlap=40)


def test_config_read_off_the_weights_and_what_they_cannot_say():
    sd = tiny_same().state_dict()
    cfg = SAMEConfig.from_dict(same_config_from_state_dict(sd))
    assert cfg.to_dict() == SAMEConfig.from_dict(SAME).to_dict()  # stride 16 and 44.1 kHz: SA3's, from no weight
    assert cfg.downsampling_ratio == 512
    # a stable_audio_3 pretransform config beside the weights says what they cannot
    ref = {"type": "autoencoder", "config": {
        "encoder": {"config": {"strides": [8], "sliding_window": [2, 2], "sinusoidal_blocks": [0]}},
        "decoder": {"config": {"sinusoidal_blocks": [1]}, "soft_clip": True},
        "bottleneck": {"config": {"auto_scale": True}}, "pretransform": {"config": {"channels": 2, "patch_size": 32}}}}
    cfg = SAMEConfig.from_dict(same_config_from_state_dict(sd, reference=ref))
    assert (cfg.strides, cfg.sliding_window, cfg.decoder_sinusoidal_blocks, cfg.soft_clip) == ([8], 2, [1], True)
    with pytest.raises(ModelError, match="symmetric"):
        same_config_from_state_dict(sd, reference={"config": {"encoder": {"config": {"sliding_window": [1, 2]}}}})
    with pytest.raises(ModelError, match="not a SAME"):
        same_config_from_state_dict({"x": torch.zeros(1)})


def test_codec_factory_reads_sa3_files_and_specs(tmp_path):
    src = tiny_sa3_file(str(tmp_path / "stable_audio_3_small_music_base.safetensors"))
    codec = make_codec(src)  # an SA3 single file: pretransform.model.*
    assert isinstance(codec, SAMECodec) and codec.latent_channels == 8 and codec.sample_rate == 44100
    wave = torch.randn(1, 2, 44100 // 4)
    with torch.no_grad():
        z = codec.encode(wave)
        torch.testing.assert_close(z, tiny_same().encode(wave))
    spec = codec_spec(codec, src)
    assert spec["type"] == "same" and spec["path"] == src and spec["config"]["strides"] == [16]
    again = make_codec(spec)
    with torch.no_grad():
        torch.testing.assert_close(again.encode(wave), z)
    standalone = tmp_path / "same_s.safetensors"  # stabilityai/SAME-S layout: no prefix
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_same().state_dict().items()}, str(standalone))
    assert isinstance(make_codec(str(standalone)), SAMECodec)
    with pytest.raises(ModelError, match="needs weights"):
        make_codec({"type": "same"})
    with pytest.raises(ModelError, match="SAME"):
        load_same(tmp_path / "missing.safetensors")


def test_codec_interface_checks():
    codec = tiny_same()
    with pytest.raises(V2MError, match="audio"):
        codec.encode(torch.zeros(1, 1, 100))
    with pytest.raises(V2MError, match="latents"):
        codec.decode(torch.zeros(1, 3, 4))
    assert codec.latent_length(513) == 2 and codec.latent_rate == pytest.approx(44100 / 512)
    with pytest.raises(ModelError, match="noise_augment_dim"):
        SAMEConfig.from_dict({"noise_augment_dim": 4})
