"""Frame encoders: registry, weightless encoders, and a tiny DINOv2 through the real loader."""

import numpy as np
import pytest

from v2m_zero.core.timing import curves, encoders
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import ModelError, V2MError
from v2m_zero.core.precision import torch_dtype
from tiny_models import tiny_dinov2


def test_registry_lists_and_rejects_unknown_ids():
    ids = encoders.encoder_ids()
    # short ids and the folder names that checkpoints' curve specs record
    for needed in ("pixels", "histogram", "dinov2", "dinov2-s", "dinov2-b", "dinov2-g", "dinov2-large", "dinov2-small"):
        assert needed in ids
    with pytest.raises(V2MError, match="unknown frame encoder 'nope'.*pixels"):
        encoders.get_encoder("nope")


def test_pixels_encoder_shapes_and_scale():
    enc = encoders.get_encoder("pixels", grid=8)
    frames = np.zeros((3, 40, 64, 3), np.uint8)
    frames[1] = 255
    f = enc.encode(frames)
    assert f.shape == (3, 8 * 8 * 3) and f.dtype == np.float32
    assert np.allclose(f[0], -1) and np.allclose(f[1], 1)


def test_area_resize_is_box_mean():
    x = np.arange(4 * 6, dtype=np.uint8).reshape(1, 4, 6, 1)
    y = encoders._area_resize(x, 2, 3)
    assert y[0, 0, 0, 0] == pytest.approx(np.mean([0, 1, 6, 7]))
    up = encoders._area_resize(x, 8, 12)  # smaller than the grid: nearest, never NaN
    assert up.shape == (1, 8, 12, 1) and np.all(np.isfinite(up)) and up[0, 0, 0, 0] == 0


def test_histogram_encoder_is_bhattacharyya():
    enc = encoders.get_encoder("histogram", bins=4)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 20, 30, 3), dtype=np.uint8)
    f = enc.encode(frames)
    assert f.shape == (2, 64)
    assert np.allclose((f**2).sum(axis=1), 1.0)  # sqrt of a normalised histogram
    same = enc.encode(np.stack([frames[0], frames[0][:, ::-1]]))  # mirrored: same colours
    assert curves.cosine_dissimilarity(same)[0] == pytest.approx(0.0, abs=1e-6)


def test_tiny_dinov2_saved_and_loaded_through_real_loader(tmp_path, monkeypatch):
    import torch

    folder = tmp_path / "models" / "encoders" / "dinov2-tiny"
    ref, proc = tiny_dinov2(str(folder))
    assert (folder / "model.safetensors").exists()
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path / "models"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 72, 128, 3), dtype=np.uint8)
    for pooling in ("mean_patch", "cls"):
        enc = encoders.get_encoder("dinov2", model="dinov2-tiny", pooling=pooling, device="cpu", batch_size=2)
        assert enc.decode_size == 64
        got = enc.encode(frames)
        px = proc(images=list(frames), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            h = ref(pixel_values=px).last_hidden_state
        want = (h[:, 1:].mean(1) if pooling == "mean_patch" else h[:, 0]).numpy()
        assert got.shape == (5, 32)
        np.testing.assert_allclose(got, want, atol=1e-5)
        enc.close()


def test_tiny_dinov2_bf16_and_video(tmp_path):
    folder = tmp_path / "dinov2-tiny"
    tiny_dinov2(str(folder))
    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=2.0, fps=12, size=(96, 54))
    enc = encoders.get_encoder("dinov2", model=str(folder), precision="bf16", device="cpu")
    feats = encoders.encode_video(clip.path, enc)
    assert feats.values.shape == (24, 32) and np.all(np.isfinite(feats.values))
    assert feats.meta["pooling"] == "mean_patch"


def test_dinov2_missing_folder_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("V2M_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="models/v2m/encoders/dinov2-large"):
        encoders.get_encoder("dinov2")
    with pytest.raises(V2MError, match="precision"):
        torch_dtype("fp8")


def test_encode_frames_in_memory_times():
    frames = np.zeros((10, 8, 8, 3), np.uint8)
    feats = encoders.encode_frames(frames, 25.0, encoders.get_encoder("pixels"), batch=3)
    np.testing.assert_allclose(feats.times, np.arange(10) / 25.0)
    assert feats.duration == pytest.approx(0.4)
    with pytest.raises(V2MError, match="fps"):
        encoders.encode_frames(frames, 0, encoders.get_encoder("pixels"))


def test_encode_frames_thins_by_time_and_converts_chunks():
    frames = np.zeros((30, 8, 8, 3), np.uint8)
    seen = []

    def convert(chunk):
        seen.append(len(chunk))
        return np.asarray(chunk)

    feats = encoders.encode_frames(frames, 30.0, encoders.get_encoder("pixels"), sample_fps=10.0, batch=4,
                                   convert=convert)
    np.testing.assert_allclose(feats.times, np.arange(10) / 10.0)
    assert seen == [4, 4, 2] and feats.duration == pytest.approx(1.0)
