"""VGGish for FAD: log-mel frontend (vs. the ``mel_features`` definition), network layout, local
weight loading (safetensors / weights_only ``.pth``), refusal of unsafe pickles, and
``metrics.fad`` on generated audio. No real weights are needed: a random VGGish stands in."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from v2m_zero.core import eval as metrics  # noqa: E402
from v2m_zero.model_io.vggish import load_vggish  # noqa: E402
from v2m_zero.core.eval import synth, vggish  # noqa: E402
from v2m_zero.core.timing import media  # noqa: E402
from v2m_zero.core.errors import ModelError  # noqa: E402

SR = 16000


# ----------------------------------------------------------------------------------------
# frontend


@pytest.mark.parametrize("n_samples", [0, 399, 15599, 15600, 16000, 3 * SR, 10 * SR + 1234])
def test_frontend_frame_count_and_shape(n_samples):
    # 25 ms = 400-sample windows every 160 samples, no padding; examples of 96 frames, no overlap.
    n_frames = 0 if n_samples < 400 else 1 + (n_samples - 400) // 160
    expected = n_frames // 96
    wave = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32) * 0.1
    ex = vggish.waveform_to_examples(wave, SR)
    assert ex.shape == (expected, 96, 64) and ex.dtype == np.float32
    assert vggish.num_examples(n_samples) == expected
    if expected:
        assert np.all(np.isfinite(ex))


def test_frontend_known_values():
    # Silence: every mel energy is 0, so every value is log(0 + 0.01).
    ex = vggish.waveform_to_examples(np.zeros(2 * SR, np.float32), SR)
    assert ex.shape == (2, 96, 64) and np.allclose(ex, math.log(0.01))
    # Stereo [C, T] is averaged over channels.
    rng = np.random.default_rng(0)
    st = rng.standard_normal((2, SR)).astype(np.float32) * 0.1
    assert np.array_equal(vggish.waveform_to_examples(st, SR), vggish.waveform_to_examples(st.mean(0), SR))
    # A 1 kHz tone peaks in the band whose centre (in HTK mel) is nearest 1 kHz's mel (~1000).
    t = np.arange(SR) / SR
    ex = vggish.waveform_to_examples(0.5 * np.sin(2 * np.pi * 1000.0 * t).astype(np.float32), SR)
    lo, hi = 1127 * math.log(1 + 125 / 700), 1127 * math.log(1 + 7500 / 700)
    centres = [lo + (i + 1) * (hi - lo) / 65 for i in range(64)]
    want = min(range(64), key=lambda i: abs(centres[i] - 1127 * math.log(1 + 1000 / 700)))
    assert int(np.argmax(ex[0].mean(axis=0))) == want


def _htk_mel(hz):
    return 1127.0 * math.log(1.0 + hz / 700.0)


def test_mel_filterbank_matches_mel_features_definition():
    m = vggish.mel_matrix()
    assert m.shape == (257, 64)  # 512-point rfft of 400-sample windows, 64 bands
    # HTK mel: 1000 Hz ≈ 1000 mel; 125 Hz ≈ 185.17 mel; 7500 Hz ≈ 2773.33 mel.
    assert _htk_mel(1000.0) == pytest.approx(1000.0, abs=0.05)
    assert float(vggish.hertz_to_mel(125.0)) == pytest.approx(185.17, abs=0.01)
    assert float(vggish.hertz_to_mel(7500.0)) == pytest.approx(2773.33, abs=0.01)
    # 66 band edges equally spaced in mel; band i rises on [e_i, e_{i+1}], falls on [e_{i+1}, e_{i+2}].
    lo, hi = _htk_mel(125.0), _htk_mel(7500.0)
    edges = [lo + k * (hi - lo) / 65 for k in range(66)]
    edges_hz = [700.0 * (math.exp(e / 1127.0) - 1.0) for e in edges]
    assert edges_hz[0] == pytest.approx(125.0) and edges_hz[-1] == pytest.approx(7500.0)
    assert edges_hz[1] == pytest.approx(154.7, abs=0.1)  # hand-computed: centre of band 0
    ref = np.zeros((257, 64))
    for b in range(1, 257):  # DC bin stays 0
        f_mel = _htk_mel(b * 8000.0 / 256)
        for i in range(64):
            up = (f_mel - edges[i]) / (edges[i + 1] - edges[i])
            down = (edges[i + 2] - f_mel) / (edges[i + 2] - edges[i + 1])
            ref[b, i] = max(0.0, min(up, down))
    np.testing.assert_allclose(m, ref, atol=1e-12)
    # Nothing at or below 125 Hz (bin 4 = 125 Hz) nor at or above 7500 Hz (bin 240).
    assert not m[:5].any() and not m[240:].any()
    # Band 0 covers only the bins strictly between 125 Hz and edges_hz[2].
    nz = np.flatnonzero(m[:, 0])
    assert nz.min() * 31.25 > 125.0 and nz.max() * 31.25 < edges_hz[2]


# ----------------------------------------------------------------------------------------
# network and weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random VGGish state dict saved as safetensors and as a torch.save ``.pth``."""
    torch.manual_seed(0)
    sd = {k: v.contiguous() for k, v in vggish.VGGish().state_dict().items()}
    root = tmp_path_factory.mktemp("vggish")
    st_dir, pth_dir = root / "st", root / "pth"
    st_dir.mkdir()
    pth_dir.mkdir()
    save_file(sd, str(st_dir / "vggish.safetensors"))
    torch.save(sd, str(pth_dir / "vggish-10086976.pth"))
    return {"sd": sd, "st": st_dir, "pth": pth_dir}


def test_state_dict_layout_is_torchvggish():
    sd = vggish.VGGish().state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    convs = [(0, 64, 1), (3, 128, 64), (6, 256, 128), (8, 256, 256), (11, 512, 256), (13, 512, 512)]
    expected = {}
    for i, out_ch, in_ch in convs:
        expected[f"features.{i}.weight"] = (out_ch, in_ch, 3, 3)
        expected[f"features.{i}.bias"] = (out_ch,)
    for i, (n_in, n_out) in zip((0, 2, 4), ((12288, 4096), (4096, 4096), (4096, 128))):
        expected[f"embeddings.{i}.weight"] = (n_out, n_in)
        expected[f"embeddings.{i}.bias"] = (n_out,)
    assert shapes == expected


def _reference_forward(sd, x):
    """torchvggish's VGG.forward written out: conv/ReLU/pool stack, NCHW → NHWC flatten
    (transpose(1, 3) then transpose(1, 2)), fc 12288→4096→4096→128; FAD strips the last ReLU."""
    import torch.nn.functional as F

    x = x[:, None]
    for i, pool in ((0, True), (3, True), (6, False), (8, True), (11, False), (13, True)):
        x = F.relu(F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
        if pool:
            x = F.max_pool2d(x, 2, 2)
    x = x.transpose(1, 3).transpose(1, 2).contiguous().view(x.shape[0], -1)
    x = F.relu(F.linear(x, sd["embeddings.0.weight"], sd["embeddings.0.bias"]))
    x = F.relu(F.linear(x, sd["embeddings.2.weight"], sd["embeddings.2.bias"]))
    return F.linear(x, sd["embeddings.4.weight"], sd["embeddings.4.bias"])


def test_load_safetensors_and_pth_give_n_by_128(weights):
    rng = np.random.default_rng(3)
    ex = vggish.waveform_to_examples(rng.standard_normal(3 * SR).astype(np.float32) * 0.2, SR)
    with torch.no_grad():
        ref = _reference_forward(weights["sd"], torch.from_numpy(ex)).numpy()
    outs = []
    for src in (weights["st"], weights["pth"], weights["st"] / "vggish.safetensors"):
        model = load_vggish(src, "cpu")
        assert not model.training and not model.postprocess and not model.final_relu
        out = vggish.embed_examples(model, ex)
        assert out.shape == (3, 128) and out.dtype == np.float32
        outs.append(out)
    np.testing.assert_allclose(outs[0], ref, rtol=1e-4, atol=1e-6)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    assert (ref < 0).any()  # pre-activation: no final ReLU


def test_postprocessor_pca_and_quantisation(weights, tmp_path):
    shutil.copy(weights["pth"] / "vggish-10086976.pth", tmp_path / "vggish-10086976.pth")
    with pytest.raises(ModelError, match="PCA"):
        load_vggish(tmp_path, postprocess=True)
    # The public PCA file holds numpy arrays (means as [128]); identity PCA, zero means.
    torch.save({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(128)},
               str(tmp_path / "vggish_pca_params-970ea276.pth"))
    model = load_vggish(tmp_path, postprocess=True, final_relu=True)
    raw = load_vggish(tmp_path, final_relu=True)
    ex = vggish.waveform_to_examples(np.random.default_rng(4).standard_normal(SR).astype(np.float32), SR)
    q, r = vggish.embed_examples(model, ex), vggish.embed_examples(raw, ex)
    assert (r >= 0).all()
    np.testing.assert_array_equal(q, np.round((np.clip(r, -2, 2) + 2) * 255 / 4))


def test_key_and_shape_mismatch_listed(weights, tmp_path):
    sd = dict(weights["sd"])
    del sd["embeddings.4.weight"]
    sd["embeddings.4.bias"] = torch.zeros(64)
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, str(tmp_path / "vggish.pth"))
    with pytest.raises(ModelError) as err:
        load_vggish(tmp_path)
    msg = str(err.value)
    assert "missing keys" in msg and "embeddings.4.weight" in msg
    assert "unexpected keys" in msg and "extra.weight" in msg
    assert "shape mismatches" in msg and "embeddings.4.bias" in msg and "(64,)" in msg


_CALLED = []


def _side_effect(*args):  # what a malicious pickle would run; must never be called
    _CALLED.append(args)
    return 0


class _Evil:
    def __reduce__(self):
        return (_side_effect, ("pwned",))


def test_pickle_with_non_tensor_refused(tmp_path):
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "payload": _Evil()}, str(tmp_path / "vggish.pth"))
    with pytest.raises(ModelError, match="weights_only") as err:
        load_vggish(tmp_path)
    assert "vggish.pth" in str(err.value) and not _CALLED
    # A junk file and an allowed-but-not-tensor value are refused too.
    (tmp_path / "vggish.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="vggish.pth"):
        load_vggish(tmp_path)
    torch.save({"features.0.weight": torch.zeros(1), "note": "text"}, str(tmp_path / "vggish.pth"))
    with pytest.raises(ModelError, match="'note' is a str"):
        load_vggish(tmp_path)


def test_missing_weights_error_names_folder_and_file(tmp_path):
    with pytest.raises(ModelError) as err:
        load_vggish(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "vggish.safetensors" in msg and "vggish-10086976.pth" in msg


# ----------------------------------------------------------------------------------------
# FAD


def _tone(freq, seconds, sr=SR, amp=0.4):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def audio_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fad_audio")
    gen, gen_copy, ref = root / "gen", root / "gen_copy", root / "ref"
    for d in (gen, gen_copy, ref):
        d.mkdir()
    for i, f in enumerate((220.0, 440.0, 880.0)):
        media.write_audio(gen / f"tone{i}.wav", _tone(f, 3.0), SR, layout="mono")
    # 44.1 kHz stereo: exercises the decode-time resampling to 16 kHz and the channel mean.
    media.write_audio(gen / "tone3.wav", np.stack([_tone(330.0, 2.5, 44100)] * 2), 44100)
    for name in sorted(p.name for p in gen.iterdir()):
        shutil.copy(gen / name, gen_copy / name)
    rng = np.random.default_rng(7)
    for i in range(3):
        noise = (rng.standard_normal(3 * SR) * 0.3).astype(np.float32)
        clicks = synth.click_track(np.arange(0.25, 3.0, 0.5), 3.0, sample_rate=SR, channels=1, seed=i)
        media.write_audio(ref / f"noise{i}.wav", noise + np.asarray(clicks, np.float32).reshape(-1), SR,
                              layout="mono")
    return {"gen": gen, "gen_copy": gen_copy, "ref": ref}


def test_embed_file_shapes(weights, audio_sets, tmp_path):
    model = load_vggish(weights["st"])
    assert vggish.embed_file(audio_sets["gen"] / "tone0.wav", model).shape == (3, 128)
    assert vggish.embed_file(audio_sets["gen"] / "tone3.wav", model).shape == (2, 128)
    short = media.write_audio(tmp_path / "short.wav", _tone(440.0, 0.9), SR, layout="mono")
    assert vggish.embed_file(short, model).shape == (0, 128)
    # weights= instead of a model: loaded once and cached.
    e = vggish.embed_file(audio_sets["gen"] / "tone0.wav", weights=weights["pth"])
    np.testing.assert_array_equal(e, vggish.embed_file(audio_sets["gen"] / "tone0.wav", model))


def test_fad_between_folders(weights, audio_sets):
    diff = metrics.fad(audio_sets["gen"], audio_sets["ref"], weights_dir=weights["st"])
    assert diff["skipped"] is None and diff["n_gen"] == 4 and diff["n_ref"] == 3
    assert math.isfinite(diff["value"]) and diff["value"] > 0
    same = metrics.fad(audio_sets["gen"], audio_sets["gen_copy"], weights_dir=weights["pth"])
    assert same["skipped"] is None and same["value"] == pytest.approx(0.0, abs=1e-6 * diff["value"])
    # the weights file itself also works, and gives the same number as the folder
    by_file = metrics.fad(audio_sets["gen"], audio_sets["ref"], weights_dir=weights["st"] / "vggish.safetensors")
    assert by_file["value"] == pytest.approx(diff["value"], rel=1e-9)


def test_fad_skips_without_weights(tmp_path, audio_sets):
    gen, ref = audio_sets["gen"], audio_sets["ref"]
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "clap"
    other.mkdir()
    (other / "config.json").write_text("{}")
    for wdir, word in ((None, "no weights folder"), (tmp_path / "missing", "not found"), (empty, "empty"),
                       (other, "vggish.safetensors")):
        res = metrics.fad(gen, ref, weights_dir=wdir)
        assert res["value"] is None and res["skipped"].startswith("FAD:") and word in res["skipped"]
    assert str(other) in metrics.fad(gen, ref, weights_dir=other)["skipped"]


def test_metrics_import_stays_torch_free():
    code = "import sys; import v2m_zero.core.eval; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
