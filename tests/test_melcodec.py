"""MelCodec: the weightless log-mel codec (shapes, latent rate, round-trip quality, the codec factory,
checkpoints that carry it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v2m_zero.core.errors import V2MError
from v2m_zero.core.model.melcodec import MelCodec
from v2m_zero.model_io.codec import codec_spec, make_codec
from v2m_zero.core.sampling import SamplingSettings


def _chord_with_hits(sr: int, seconds: float = 2.0) -> np.ndarray:
    """A sustained A-minor triad with harmonics plus decaying noise hits every 0.5 s."""
    t = np.arange(int(sr * seconds)) / sr
    y = sum(0.2 / k * np.sin(2 * np.pi * f * k * t) for f in (220.0, 261.63, 329.63) for k in (1, 2, 3))
    rng = np.random.default_rng(0)
    env = np.exp(-((t % 0.5) / 0.03))
    return (y + 0.3 * env * rng.standard_normal(t.size)).astype(np.float32)


def _logmel_db(codec: MelCodec, wave: torch.Tensor) -> np.ndarray:
    return 20 * np.log10(np.maximum(codec.mel_magnitude(wave).numpy()[0, 0], 1e-5))


def test_shapes_and_latent_rate():
    codec = MelCodec(sample_rate=16000, n_mels=64, hop_length=256)
    assert codec.latent_rate == pytest.approx(62.5) and codec.latent_channels == 64 and codec.downsampling_ratio == 256
    wave = torch.from_numpy(_chord_with_hits(16000, 1.0))[None, None]
    z = codec.encode(wave)
    assert z.shape == (1, 64, codec.latent_length(16000)) == (1, 64, 63)  # ceil(16000 / 256)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    back = codec.decode(z)
    assert back.shape == (1, 1, 63 * 256) and torch.isfinite(back).all()
    # batches and channels: stereo doubles the latent channels, items are independent
    stereo = MelCodec(n_mels=32, audio_channels=2)
    w2 = torch.cat([wave, 0.5 * wave], dim=1).repeat(2, 1, 1)
    z2 = stereo.encode(w2)
    assert z2.shape == (2, 64, 63)
    torch.testing.assert_close(z2[0], z2[1])
    assert stereo.decode(z2).shape == (2, 2, 63 * 256)


def test_latent_scaling_and_silence():
    codec = MelCodec(n_mels=32, offset=-3.0, scale=2.0)
    silence = codec.encode(torch.zeros(1, 1, 4096))
    torch.testing.assert_close(silence, torch.full_like(silence, (np.log(1e-5) + 3.0) / 2.0))
    assert codec.decode(silence).abs().max() == 0  # the floor decodes to true silence
    wave = torch.from_numpy(_chord_with_hits(16000, 0.5))[None, None]
    raw = MelCodec(n_mels=32, offset=0.0, scale=1.0).encode(wave)
    torch.testing.assert_close(codec.encode(wave), (raw + 3.0) / 2.0)


def test_round_trip_keeps_the_spectrogram_and_the_pitch():
    """encode → Griffin-Lim decode → encode stays close where there is energy (loud bins within
    a few dB), deterministic, and keeps the chord's pitch classes."""
    import librosa

    sr = 16000
    codec = MelCodec()
    wave = torch.from_numpy(_chord_with_hits(sr))[None, None]
    back = codec.decode(codec.encode(wave))
    torch.testing.assert_close(codec.decode(codec.encode(wave)), back)  # fixed random phase start
    a, b = _logmel_db(codec, wave), _logmel_db(codec, back)
    loud = a > a.max() - 40
    err = float(np.abs(a - b)[loud].mean())
    assert err < 3.0, err
    # a broken inversion (no phase reconstruction: random phases) is far worse
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(rng.standard_normal(wave.shape[-1]).astype(np.float32) * float(wave.std()))[None, None]
    assert float(np.abs(a - _logmel_db(codec, noise))[loud].mean()) > 3 * err
    chroma = librosa.feature.chroma_stft(y=back[0, 0].numpy(), sr=sr).mean(axis=1)
    assert set(np.argsort(chroma)[-3:]) == {9, 0, 4}  # A, C, E


def test_bad_configs_and_inputs_are_refused():
    for kw in ({"n_mels": 0}, {"hop_length": 2048, "n_fft": 1024}, {"scale": 0.0}, {"fmin": 9000.0}, {"amin": 0.0}):
        with pytest.raises(V2MError):
            MelCodec(**kw)
    codec = MelCodec(n_mels=16)
    with pytest.raises(V2MError, match="1 channel"):
        codec.encode(torch.zeros(1, 2, 512))
    with pytest.raises(V2MError, match="latents"):
        codec.decode(torch.zeros(1, 8, 4))


def test_codec_factory_round_trip():
    codec = MelCodec(sample_rate=22050, n_mels=80, hop_length=512, offset=-4.0, scale=1.5)
    spec = codec_spec(codec)
    assert spec["type"] == "mel" and spec["config"]["n_mels"] == 80
    again = make_codec(spec)
    assert isinstance(again, MelCodec) and again.config == codec.config
    assert codec_spec(again) == spec
    s = make_codec("mel:64:16000:320")
    assert (s.n_mels, s.sample_rate, s.hop_length, s.latent_rate) == (64, 16000, 320, 50.0)
    assert isinstance(make_codec("mel"), MelCodec)
    from v2m_zero.core.errors import ModelError

    with pytest.raises(ModelError, match="mel:N_MELS"):
        make_codec("mel:many")


def test_checkpoint_records_the_mel_codec(tmp_path):
    """A V2M checkpoint declaring a mel codec loads with it; latent rate and decode follow the codec."""
    from v2m_zero.core import generate
    from v2m_zero.core.model.dit import V2MDiT, make_model_config
    from v2m_zero.model_io.checkpoint import V2M_FORMAT, read_metadata, save_v2m_checkpoint

    codec = MelCodec(sample_rate=8000, n_mels=16, hop_length=160, n_fft=512)
    cfg = make_model_config(io_channels=16, embed_dim=32, depth=1, num_heads=1, cond_token_dim=32, with_curve=True)
    path = str(tmp_path / "mel.safetensors")
    save_v2m_checkpoint(path, V2MDiT(cfg, objective="rectified_flow").state_dict(), {
        "v2m_format": V2M_FORMAT, "model_config": cfg, "objective": "rectified_flow", "latent_rate": codec.latent_rate,
        "sample_rate": codec.sample_rate, "curve": {"encoder": "pixels", "smoothing_seconds": 0.2},
        "codec": codec_spec(codec), "text": {"type": "none"}})
    assert read_metadata(path)["latent_rate"] == 50.0
    gen = generate.load_music_model(path, device="cpu")
    assert isinstance(gen.codec, MelCodec) and gen.codec.config == codec.config
    assert gen.latent_rate == 50.0 and gen.sample_rate == 8000
    lat = generate.sample_latents(gen, None, "", SamplingSettings(steps=2, cfg=1.0, seed=0), duration=0.5)
    assert lat.shape == (1, 16, 25)
    wave = generate.decode_latents(gen, lat, 0.5)
    assert wave.shape == (1, 4000) and np.isfinite(wave).all()


def test_decode_matches_librosa_nnls():
    """The clipped pseudo-inverse decodes as librosa's NNLS does (which starts from it), at a fraction of its cost."""
    import librosa

    codec = MelCodec()
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    tone = sum(np.sin(2 * np.pi * f * t) * np.exp(-4 * (t % 0.25)) for f in (220, 330, 523))
    waves = [0.25 * tone + 0.02 * rng.standard_normal(t.size)]
    latents = [codec.encode(torch.tensor(w, dtype=torch.float32)[None, None]) for w in waves]
    latents.append(torch.from_numpy(rng.standard_normal((1, 128, 48)).astype(np.float32) * 0.5))  # off-manifold
    for z in latents:
        mel = np.exp(z.numpy()[0] * codec.scale + codec.offset)
        mel = np.where(mel <= codec.amin * 1.0001, 0.0, mel).astype(np.float32)
        ours = np.maximum(codec.mel_inverse() @ mel, 0.0)
        ref = librosa.util.nnls(codec.mel_filters(), mel)
        fb = codec.mel_filters()
        err_ours, err_ref = np.linalg.norm(fb @ ours - mel), np.linalg.norm(fb @ ref - mel)
        assert err_ours <= 1.02 * err_ref + 1e-6
        assert np.abs(ours - ref).max() <= 0.02 * np.abs(ref).max()
        y = codec.decode(z)
        assert y.shape[-1] == z.shape[-1] * codec.hop_length and torch.isfinite(y).all()


def test_griffin_lim_matches_librosa(monkeypatch):
    """The codec's Griffin-Lim (torch, real arithmetic) is librosa's fast Griffin-Lim within float
    rounding: same start, iteration and normalisation, on a real spectrogram and an off-manifold one;
    decode goes through it."""
    import librosa

    from v2m_zero.core.model import melcodec

    codec = MelCodec()
    wave = torch.from_numpy(_chord_with_hits(codec.sample_rate))[None, None]
    rng = np.random.default_rng(5)
    mags = [np.abs(librosa.stft(wave.numpy()[0, 0], n_fft=1024, hop_length=256, center=True, pad_mode="constant")),
            np.abs(rng.standard_normal((513, 61))).astype(np.float32) ** 2]
    for mag in mags:
        n = mag.shape[1] - 1
        ref = librosa.griffinlim(mag, n_iter=32, hop_length=256, n_fft=1024, window="hann", center=True,
                                 pad_mode="constant", length=n * 256, momentum=0.99, init="random", random_state=0)
        ours = melcodec.griffin_lim(mag, 32, 256, 1024)
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (n * 256,)
        assert np.sqrt(np.mean((ours - ref) ** 2) / np.mean(ref ** 2)) < 1e-3
        assert np.abs(ours - ref).max() < 1e-2 * np.abs(ref).max()
    calls = []
    real = melcodec.griffin_lim
    monkeypatch.setattr(melcodec, "griffin_lim", lambda *a: calls.append(a[1:]) or real(*a))
    codec.decode(codec.encode(wave))
    assert calls == [(32, 256, 1024)]
