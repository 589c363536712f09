"""Training data preparation and music encoders (tiny: patch codec at 1.6 kHz, logmel curves)."""

import json
import os

import numpy as np
import pytest
import torch
from v2m_zero.core.timing import curves, media
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.train.music_encoders import (CodecMusicEncoder, LogMelEncoder, MusicFMEncoder, get_music_encoder,
                                                music_encoder_ids)
from v2m_zero.model_io.musicfm import load_musicfm
from v2m_zero.model_io.codec import make_codec
from v2m_zero.core.train.prepare import prepare_dataset
from v2m_zero.model_io.weights import read_safetensors

SR = 1600
CODEC = "patch:32:1:1600"  # 32 latent channels at 50 Hz


def _onsets(rng, duration, n, gap=0.35):
    while True:
        t = np.sort(rng.uniform(0.2, duration - 0.3, n))
        if np.all(np.diff(t) > gap):
            return t


def make_music(folder, *, n=3, duration=5.0, seed=0, corrupt=True):
    """Click tracks at random onsets: .wav/.flac, sidecar captions for some, a captions.csv for one."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    onsets = {}
    for i in range(n):
        ext = ".flac" if i == 1 else ".wav"
        name = f"song{i}{ext}"
        t = _onsets(rng, duration, 6)
        media.write_audio(os.path.join(folder, name),
                          synth.click_track(t, duration, sample_rate=SR, channels=1, seed=i),
                              SR, layout="mono")
        onsets[name] = t
        if i != n - 1:
            with open(os.path.join(folder, f"song{i}.txt"), "w") as f:
                f.write(f"caption {i}\n")
    with open(os.path.join(folder, "captions.csv"), "w") as f:
        f.write("file,caption\n")
        f.write(f"song{n - 1}.wav,from the manifest\n")
    if corrupt:
        with open(os.path.join(folder, "broken.wav"), "wb") as f:
            f.write(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 4)
    return onsets


def _prep(data, cache, **kw):
    kw.setdefault("codec", CODEC)
    kw.setdefault("clip_seconds", 2.0)
    kw.setdefault("smoothing_seconds", 0.1)
    kw.setdefault("device", "cpu")
    return prepare_dataset(data, cache, **kw)


def test_prepare_writes_shards_manifest_and_reports_corrupt_file(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    make_music(data)
    seen = []
    res = _prep(data, cache, progress=lambda d, t, name: seen.append((d, t, name)))
    # 5 s files in 2 s clips: two full clips + a 1 s tail (>= half a clip) padded -> 3 clips each
    assert res.clips == res.new_clips == 9
    assert [s["file"] for s in res.skipped] == ["broken.wav"] and res.skipped[0]["reason"]
    assert seen[-1][:2] == (4, 4)
    m = json.loads((cache / "manifest.json").read_text())
    assert m["skipped"][0]["file"] == "broken.wav"
    spec = m["spec"]
    assert spec["encoder"]["id"] == "logmel" and spec["smoothing_seconds"] == 0.1 and spec["clip_seconds"] == 2.0
    assert spec["latent_rate"] == 50.0 and spec["latent_length"] == 100 and spec["codec"]["type"] == "patch"
    caps = {c["file"]: c["caption"] for c in m["clips"]}
    assert caps == {"song0.wav": "caption 0", "song1.flac": "caption 1", "song2.wav": "from the manifest"}
    offs = [c["offset"] for c in m["clips"] if c["file"] == "song0.wav"]
    secs = [c["seconds"] for c in m["clips"] if c["file"] == "song0.wav"]
    assert offs == [0.0, 2.0, 4.0] and secs == [2.0, 2.0, 1.0]
    t, _ = read_safetensors(cache / "shard-00000.safetensors")
    assert t["latents"].shape == (9, 32, 100) and t["curves"].shape == (9, 100) and t["seconds"].shape == (9,)
    assert torch.isfinite(t["curves"]).all()
    # the latents are the codec's encoding of the clip
    from v2m_zero.core.timing.media import decode_audio

    wave, _ = decode_audio(str(data / "song0.wav"), sample_rate=SR, channels=1)
    ref = make_codec(CODEC).encode(torch.from_numpy(wave[:, 3200:6400])[None])
    torch.testing.assert_close(t["latents"][1:2], ref, atol=1e-5, rtol=0)


def test_resume_skips_done_files_and_last_clip_drop(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    make_music(data)
    _prep(data, cache)
    res = _prep(data, cache)
    assert res.new_clips == 0 and res.files_skipped_done == 3 and res.clips == 9 and not res.rebuilt
    # a caption edit is picked up without re-encoding
    (data / "song0.txt").write_text("new words")
    media.write_audio(str(data / "late.wav"), synth.click_track([0.5, 1.5], 2.0, sample_rate=SR, channels=1), SR,
                          layout="mono")
    res = _prep(data, cache)
    assert res.new_clips == 1 and res.clips == 10
    m = json.loads((cache / "manifest.json").read_text())
    assert {c["caption"] for c in m["clips"] if c["file"] == "song0.wav"} == {"new words"}
    assert len(m["shards"]) == 2
    # last_clip="drop" is part of the spec: a rebuild, and partial tails are gone
    res = _prep(data, cache, last_clip="drop")
    assert res.rebuilt and res.clips == 7


def test_spec_change_invalidates_cache(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    make_music(data, n=1, corrupt=False)
    _prep(data, cache)
    msgs = []
    res = _prep(data, cache, smoothing_seconds=0.3, log=msgs.append)
    assert res.rebuilt and res.new_clips == 3 and any("smoothing_seconds" in m for m in msgs)
    res = _prep(data, cache, smoothing_seconds=0.3, music_encoder="codec", log=msgs.append)
    assert res.rebuilt and any("encoder" in m and "rebuilding" in m for m in msgs)
    assert json.loads((cache / "manifest.json").read_text())["spec"]["encoder"]["id"] == "codec"
    assert not _prep(data, cache, smoothing_seconds=0.3, music_encoder="codec").rebuilt


def test_cached_curves_peak_at_onsets(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    onsets = make_music(data, n=2, duration=6.0, seed=3, corrupt=False)
    _prep(data, cache, clip_seconds=6.0, smoothing_seconds=0.0)  # one clip per file, unsmoothed
    m = json.loads((cache / "manifest.json").read_text())
    t, _ = read_safetensors(cache / "shard-00000.safetensors")
    rate = m["spec"]["latent_rate"]
    for row, clip in enumerate(m["clips"]):
        curve = curves.Curve(values=t["curves"][row].numpy(), times=np.arange(100 * 3) / rate, duration=6.0, rate=rate)
        peaks = curves.find_peaks(curve, threshold=1.0, min_gap=0.2)
        truth = onsets[clip["file"]]
        # every onset has a peak within two latent frames (40 ms); the synth's hits also end
        # abruptly 0.3 s later, which the log-mel sees as (weaker) events too
        err = np.abs(peaks[None, :] - truth[:, None]).min(axis=1)
        assert err.max() <= 2 / rate, (peaks, truth)
        at_onsets = [curve.values[int(round(x * rate))] for x in peaks if np.abs(truth - x).min() <= 2 / rate]
        assert np.min(at_onsets) > np.percentile(curve.values, 90)


def test_logmel_and_codec_features_have_times():
    wave = synth.click_track([0.5, 1.2], 2.0, sample_rate=SR, channels=1)
    f = LogMelEncoder().encode(wave, SR)
    assert f.values.shape[1] == 64 and f.duration == 2.0 and f.encoder == "logmel"
    np.testing.assert_allclose(f.times, np.arange(len(f)) * 512 / 22050)
    assert f.times[-1] < 2.0 and len(f) == int(np.ceil(2.0 * 22050 / 512))
    codec = make_codec(CODEC)
    g = CodecMusicEncoder(codec).encode(wave, SR)
    assert g.values.shape == (100, 32)
    np.testing.assert_allclose(g.times, np.arange(100) / 50.0)
    assert set(music_encoder_ids()) >= {"logmel", "codec", "musicfm"}
    with pytest.raises(V2MError, match="unknown music encoder"):
        get_music_encoder("nope")


# --------------------------------------------------------------------------------------------
# MusicFM


def _tiny_musicfm(seed=0):
    from v2m_zero.core.model.musicfm import MusicFM25Hz, musicfm_conformer_config

    torch.manual_seed(seed)
    cfg = musicfm_conformer_config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
                                   conv_depthwise_kernel_size=7, num_conv_pos_embeddings=8,
                                   num_conv_pos_embedding_groups=4)
    m = MusicFM25Hz(cfg, n_mels=128, conv_dim=8, stat_mean=6.77, stat_std=18.4)
    with torch.no_grad():
        for name, b in m.named_buffers():
            if "running_mean" in name:
                b.normal_(0, 0.1)
            elif "running_var" in name:
                b.uniform_(0.5, 1.5)
    return m.eval(), cfg


def _save_public_layout(model, path):
    """The public pretrained_*.pt layout: {"state_dict": {"model.<key>": tensor}} with the
    pre-training heads and old-torch weight-norm names."""
    sd = {}
    for k, v in model.state_dict().items():
        k = (k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v"))
        sd["model." + k] = v.clone()
    sd["model.quantizer_melspec_2048_0.random_projection"] = torch.randn(512, 16)
    sd["model.quantizer_melspec_2048_0.codebook"] = torch.randn(4096, 16)
    sd["model.linear.weight"] = torch.randn(4096, 64)
    sd["model.linear.bias"] = torch.zeros(4096)
    sd["model.cls_token"] = torch.randn(64)
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 1000}, path)


def test_musicfm_loads_pickled_state_dict_with_weights_only(tmp_path):
    src, cfg = _tiny_musicfm()
    ckpt = tmp_path / "pretrained_msd.pt"
    _save_public_layout(src, ckpt)
    (tmp_path / "msd_stats.json").write_text(json.dumps({"melspec_2048_mean": 6.77, "melspec_2048_std": 18.4}))
    model = load_musicfm(ckpt, conformer_config=cfg)
    x = torch.randn(1, 960 * 12) * 0.1
    with torch.no_grad():
        ref, got = src.hidden_states(x), model.hidden_states(x)
    assert len(got) == 3 and got[0].shape == (1, 12, 64)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    enc = MusicFMEncoder(model=model, layer=1)
    wave = np.random.default_rng(0).standard_normal((2, 24000)).astype(np.float32) * 0.1
    f = enc.encode(wave, 24000)
    assert f.values.shape == (25, 64) and f.duration == 1.0
    np.testing.assert_allclose(f.times, np.arange(25) * 0.04)
    # the architecture read off the shapes (heads from the rotary buffer) gives the same model
    assert load_musicfm(ckpt).depth == 2


def test_musicfm_refuses_pickles_with_code_and_missing_stats(tmp_path):
    import collections

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "cls": collections.Counter}, bad)  # a class reference, not tensors
    (tmp_path / "msd_stats.json").write_text(json.dumps({"melspec_2048_mean": 0.0, "melspec_2048_std": 1.0}))
    with pytest.raises(ModelError, match="weights_only|safely"):
        load_musicfm(bad)
    src, cfg = _tiny_musicfm()
    lone = tmp_path / "lone"
    lone.mkdir()
    _save_public_layout(src, lone / "pretrained_msd.pt")
    with pytest.raises(ModelError, match="stats"):
        load_musicfm(lone / "pretrained_msd.pt", conformer_config=cfg)


def test_musicfm_mel_matches_librosa_htk():
    import librosa

    src, _ = _tiny_musicfm()
    y = np.random.default_rng(1).standard_normal(24000).astype(np.float32) * 0.1
    with torch.no_grad():
        ours = src.preprocessor_melspec_2048(torch.from_numpy(y)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=y, sr=24000, n_fft=2048, hop_length=240, n_mels=128, htk=True, norm=None,
                                         power=2.0, center=True, pad_mode="reflect")
    ref = 10 * np.log10(np.maximum(ref, 1e-10))
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_cli_prepare_end_to_end(tmp_path, capsys):
    import argparse

    from v2m_zero.core.commands import prepare as prep_cmd

    data, cache = tmp_path / "data", tmp_path / "cache"
    make_music(data, n=2)
    parser = argparse.ArgumentParser()
    prep_cmd.add_arguments(parser)
    args = parser.parse_args([str(data), "--out", str(cache), "--codec", CODEC, "--clip-seconds", "2",
                              "--smoothing", "0.1", "--device", "cpu"])
    assert prep_cmd.run(args) == 0
    captured = capsys.readouterr()
    assert "6 clips" in captured.out and "1 skipped" in captured.out and "broken.wav" in captured.err


def test_codec_spec_round_trips_patch_scale():
    from v2m_zero.core.model.codec import PatchCodec
    from v2m_zero.model_io.codec import codec_spec, make_codec

    spec = codec_spec(PatchCodec(patch_size=64, audio_channels=1, sample_rate=4000, scale=0.25))
    again = make_codec(spec)
    assert spec["config"]["scale"] == 0.25 and again.scale == 0.25 and again.latent_channels == 64


def test_every_music_encoder_makes_its_curve_through_one_method():
    """conditioning_curve: codec features from latents when given (the audio is never decoded), else from audio;
    make_music_encoder rebuilds an encoder from the description a cache records."""
    from v2m_zero.core.timing.spec import CurveSpec
    from v2m_zero.core.train.music_encoders import make_music_encoder
    from v2m_zero.model_io.codec import make_codec

    codec = make_codec(CODEC)
    wave = synth.click_track([0.2, 0.9, 1.4], 2.0, sample_rate=SR, channels=1)
    lat = codec.encode(torch.from_numpy(wave)[None])[0]
    spec = CurveSpec(smoothing_seconds=0.2)
    enc = make_music_encoder("codec", codec=codec)

    def never():
        raise AssertionError("decoded although latents were given")

    from_latents = enc.conditioning_curve(never, SR, spec=spec, length=lat.shape[-1], latents=lat, duration=2.0)
    from_audio = enc.conditioning_curve(wave, SR, spec=spec, length=lat.shape[-1])
    np.testing.assert_allclose(from_latents.values, from_audio.values, atol=1e-5)
    logmel = make_music_encoder({"id": "logmel", "n_mels": 32, "sample_rate": 16000, "hop_length": 256, "n_fft": 512,
                                 "amin": 1e-10})
    assert logmel.describe()["n_mels"] == 32 and make_music_encoder(logmel) is logmel
    curve = logmel.conditioning_curve(lambda: wave, SR, spec=spec, length=50)
    assert len(curve) == 50 and np.isfinite(curve.values).all()
