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
              latent_dim=6, dim_heads=4, ff_mult=2.0, sliding_window=1, decoder_sinusoidal_blocks=[1], sample_rate=1600,
              decoder_conv_mapping=False)  # AutoencoderSAME: SAME-L's variant (sliding window, 1×1 mappings)


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


def test_config_read_off_the_weights_and_what_they_cannot_say(tmp_path):
    sd = tiny_same().state_dict()
    # sizes and both mappings (encoder 1×1, decoder kernel 3) are in the weights; the attention layout is not
    with pytest.raises(ModelError, match=r"neither SAME-S nor SAME-L.*model_config\.json beside the file"):
        same_config_from_state_dict(sd, name="x.safetensors")
    cfg = SAMEConfig.from_dict(same_config_from_state_dict(sd, stated={"sliding_window": 0, "chunk_size": 32}))
    assert cfg.to_dict() == SAMEConfig.from_dict(SAME).to_dict()  # stride 16 and 44.1 kHz: SA3's, from no weight
    assert (cfg.encoder_conv_mapping, cfg.decoder_conv_mapping, cfg.downsampling_ratio) == (False, True, 512)
    # a stable_audio_3 pretransform config beside the weights says what they cannot; keys it leaves out
    # mean the reference constructors' defaults (a decoder without sliding_window is chunked: refused here)
    enc = {"strides": [8], "sliding_window": [2, 2], "sinusoidal_blocks": [0]}
    ref = {"type": "autoencoder", "config": {
        "encoder": {"config": enc}, "decoder": {"config": {"sinusoidal_blocks": [1], "sliding_window": [2, 2],
                                                           "conv_mapping": True}, "soft_clip": True},
        "bottleneck": {"config": {"auto_scale": True}}, "pretransform": {"config": {"channels": 2, "patch_size": 32}}}}
    cfg = SAMEConfig.from_dict(same_config_from_state_dict(sd, reference=ref))
    assert (cfg.strides, cfg.sliding_window, cfg.decoder_sinusoidal_blocks, cfg.soft_clip) == ([8], 2, [1], True)
    assert (cfg.encoder_conv_mapping, cfg.decoder_conv_mapping, cfg.dim_heads) == (False, True, 128)  # ref. defaults
    del ref["config"]["decoder"]["config"]["sliding_window"]
    with pytest.raises(ModelError, match="differ in sliding_window"):
        same_config_from_state_dict(sd, reference=ref)
    with pytest.raises(ModelError, match="symmetric"):
        same_config_from_state_dict(sd, reference={"config": {"encoder": {"config": {"sliding_window": [1, 2]}}}})
    with pytest.raises(ModelError, match="'oobleck' encoder, not SAME"):  # SAO 1.0's config lying beside it
        same_config_from_state_dict(sd, reference={"config": {"encoder": {"type": "oobleck", "config": {}}}})
    with pytest.raises(ModelError, match="conformer"):
        same_config_from_state_dict(sd, reference={"config": {"encoder": {"config": {"conformer": True}}}})
    with pytest.raises(ModelError, match="not a SAME"):
        same_config_from_state_dict({"x": torch.zeros(1)})
    # the published shapes say the rest: SAME-S chunked (32, shifted), SAME-L a sliding window of 1
    from v2m_zero.model_io.same import KNOWN

    assert KNOWN[(768, 6)]["sliding_window"] == 0 and KNOWN[(768, 6)]["chunk_size"] == 32
    assert KNOWN[(1536, 12)]["sliding_window"] == 1


@pytest.mark.parametrize("bad, match", [
    ({"chunk_size": 24}, "not a multiple of stride"), ({"chunk_size": 10**9}, "chunk_size"),
    ({"strides": [16] * 20, "c_mults": [1] * 20, "transformer_depths": [1] * 20}, "levels"),
    ({"c_mults": [10**6]}, "c_mults"), ({"transformer_depths": [10**4]}, "transformer_depths"),
    ({"sliding_window": -1}, "sliding_window"), ({"ff_mult": float("inf")}, "ff_mult"),
    ({"chunk_midpoint_shift": "yes"}, "chunk_midpoint_shift"), ({"patch_size": 2.5}, "patch_size"),
    ({"chunk_size": 16, "strides": [16], "chunk_midpoint_shift": True}, "odd chunk"),
    ({"dim_heads": 6}, "whole heads"),
])
def test_config_numbers_are_bounded(bad, match):
    with pytest.raises(ModelError, match=match):
        SAMEConfig.from_dict({**SAME, **bad})


def test_old_single_conv_mapping_flag_sets_both_sides():
    cfg = SAMEConfig.from_dict({**SAME, "conv_mapping": True, "sliding_window": 1})
    assert cfg.encoder_conv_mapping and cfg.decoder_conv_mapping and "conv_mapping" not in cfg.to_dict()


def _reference_fixture():
    import json

    from safetensors.torch import load_file
    from same_reference import FIXTURE_JSON, FIXTURE_TENSORS, fixture_parameters

    record = json.load(open(FIXTURE_JSON))
    stored = load_file(FIXTURE_TENSORS)
    sd = fixture_parameters(record["parameters"], record["seed"])
    sd.update({k[len("buffer."):]: v for k, v in stored.items() if k.startswith("buffer.")})
    return record, stored, sd


@pytest.mark.parametrize("layout", ["sa3_file", "same_s_repo"])
def test_same_s_matches_the_reference_implementation(tmp_path, layout):
    """SAME-S's variant (chunks of 32 with the half-chunk shift, kernel-3 decoder mapping) against the
    stable_audio_3 reference's own outputs (tests/fixtures/same_s_reference.*, commit in its JSON),
    loaded through model_io from weights in the reference's exact key layout + its model_config.json."""
    import json

    from safetensors.torch import save_file
    from same_reference import PRETRANSFORM, model_config

    record, stored, sd = _reference_fixture()
    assert record["reference"]["commit"].startswith("636f906")
    if layout == "sa3_file":  # stable-audio-3-small-music-base: pretransform.model.* + model_config.json beside
        path = tmp_path / "model.safetensors"
        save_file({"pretransform.model." + k: v.contiguous() for k, v in sd.items()}, str(path))
        (tmp_path / "model_config.json").write_text(json.dumps(model_config()))
    else:  # stabilityai/SAME-S: the autoencoder alone, its config's "model" holds encoder/decoder at the top
        (tmp_path / "same").mkdir()
        path = tmp_path / "same" / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        (tmp_path / "same" / "weights").mkdir()
        (tmp_path / "same" / "weights" / "model_config.json").write_text(
            json.dumps({"model_type": "autoencoder", "sample_rate": 44100, "model": PRETRANSFORM["config"]}))
    codec = load_same(path)
    cfg = codec.cfg
    assert (cfg.sliding_window, cfg.chunk_size, cfg.chunk_midpoint_shift) == (0, 32, True)
    assert (cfg.encoder_conv_mapping, cfg.decoder_conv_mapping) == (False, True)
    with torch.no_grad():
        for wave, ref in (("wave_a", "latents_a"), ("wave_b", "latents_b")):
            z = codec.encode(stored[wave])
            n = codec.latent_length(stored[wave].shape[-1])  # the reference keeps the padding chunk's frame
            assert z.shape[-1] == n and stored[ref].shape[-1] >= n
            assert (z - stored[ref][..., :n]).abs().max() <= 1e-4
        lat = stored["latents_a"]
        even = codec.decode(lat)
        odd = codec.decode(lat[..., :19])
    assert even.shape == stored["decoded_even"].shape and stored["decoded_even"].abs().max() > 0.5
    assert (even - stored["decoded_even"]).abs().max() <= 1e-4
    assert odd.shape[-1] == 19 * 64 and (odd - stored["decoded_odd"][..., :19 * 64]).abs().max() <= 1e-4


def test_sliding_window_instead_of_chunks_is_caught_by_the_reference_fixture(tmp_path):
    """The fixture can fail: the same weights run as SAME-L's sliding window (or without the shift,
    or with the encoder's 1×1 mapping on the decoder side) are far from the reference."""
    from v2m_zero.model_io.same import same_config_from_state_dict as infer
    from same_reference import PRETRANSFORM

    _, stored, sd = _reference_fixture()
    cfg = infer(sd, reference=PRETRANSFORM)
    wave, ref = stored["wave_a"], stored["latents_a"]
    n = 19
    for change in ({"sliding_window": 1}, {"chunk_midpoint_shift": False}):
        codec = SAMECodec({**cfg, **change}).eval()
        codec.load_state_dict(sd)
        with torch.no_grad():
            assert (codec.encode(wave) - ref[..., :n]).abs().max() > 1e-2
    with pytest.raises(RuntimeError, match="mapping"):  # one flag for both sides: the decoder's kernel-3 won't fit
        SAMECodec({**cfg, "decoder_conv_mapping": False}).load_state_dict(sd)


def test_chunked_decode_windows_keep_the_chunk_phase():
    """Decoding in windows with SAME-S's chunks: windows start on whole chunks, so every frame away
    from a window edge equals the whole decode."""
    codec = SAMECodec({**SAME, "transformer_depths": [2]}).eval()
    randomise(codec, 4, 0.3)
    z = torch.randn(1, 8, 41, generator=torch.Generator().manual_seed(5))  # odd: the last window is re-aligned
    with torch.no_grad():
        full = codec.decode(z)
        win = codec.decode_chunked(z, chunk_size=16, overlap=7)  # step 9 -> 8 (a multiple of the 2-frame period)
    assert win.shape == full.shape == (1, 2, 41 * 512)
    torch.testing.assert_close(win, full, atol=1e-5, rtol=1e-5)


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


@pytest.mark.parametrize("name", ["SAME-S", "SAME-L"])
def test_published_shapes_without_a_config(name):
    """A ComfyUI file carries no config: the real SAME-S (small SA3s) and SAME-L (medium) are known by
    their shapes (built on the meta device: no memory), everything else they cannot say comes from KNOWN."""
    real = {"SAME-S": {}, "SAME-L": dict(channels=256, transformer_depths=[12], sliding_window=1,
                                         decoder_sinusoidal_blocks=[8], decoder_conv_mapping=False)}[name]
    with torch.device("meta"):
        codec = SAMECodec(real)
    shapes = {k: v for k, v in codec.state_dict().items()}
    cfg = SAMEConfig.from_dict(same_config_from_state_dict(shapes, name="stable_audio_3_x.safetensors"))
    assert cfg.to_dict() == codec.cfg.to_dict()
    assert cfg.downsampling_ratio == 4096 and cfg.latent_dim == 256
    assert (cfg.chunked, cfg.decoder_conv_mapping) == ((True, True) if name == "SAME-S" else (False, False))
