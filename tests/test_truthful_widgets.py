"""Widgets tell the truth: values a connected model overrides, options that do not apply to the encoder
that runs, latent_length's bound and Train's dataset list are said on the node (its ui "text")."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core.errors import V2MError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing.curves import Curve


@pytest.fixture
def model(host):
    import folder_paths

    from v2m_zero.nodes import generate

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "tiny-v2m.safetensors"), smoothing_seconds=0.2)
    return generate.LoadModel.execute(checkpoint="tiny-v2m.safetensors", text_encoder="none",
                                      codec="from checkpoint", precision="fp32", offload=True).args[0]


def _raw(duration=12.0):
    t = np.arange(int(duration * 24)) / 24.0
    return Curve(np.random.default_rng(0).random(len(t)).astype(np.float32), t, duration)


def test_smooth_curve_says_the_model_overrides_its_widgets(host, model):
    from v2m_zero.nodes.curves import SmoothCurve

    host.STATE["previews"].clear()
    out = SmoothCurve.execute(curve=_raw(), kernel_seconds=2.52, target_rate=21.533, latent_length=0, scale=1.0,
                              offset=0.0, model=model)
    text = out.ui["text"][0]
    rate = model.latent_rate
    assert f"the model's smoothing {model.curve_spec.smoothing_seconds:g} s is used" in text
    assert "kernel_seconds 2.52 s overridden" in text and "target_rate 21.533 Hz overridden" in text
    assert f"the model's latent rate {rate:g} Hz is used" in text
    assert out.args[0].rate == pytest.approx(rate) and f"at {rate:.3f} Hz" in text.splitlines()[0]
    assert [k for k, _v in host.STATE["previews"]] == ["image"]  # the plot is still previewed
    plain = SmoothCurve.execute(curve=_raw(), kernel_seconds=2.52, target_rate=21.533, latent_length=0, scale=1.0,
                                offset=0.0).ui["text"][0]
    assert "overridden" not in plain and plain.startswith("used: 2.52 s Hann") and "21.533 Hz" in plain


def test_latent_length_is_bounded_by_what_a_sampler_uses(host):
    from v2m_zero.nodes.curves import MAX_LATENT_LENGTH, SmoothCurve

    widget = {i.id: i for i in SmoothCurve.define_schema().inputs}["latent_length"]
    assert widget.max == MAX_LATENT_LENGTH == 51200  # 512 s (longest window) at 100 Hz: the host refuses above
    with pytest.raises(V2MError, match="latent_length 5000 is more than a sampler can use") as e:
        SmoothCurve.execute(curve=_raw(12.0), kernel_seconds=2.52, target_rate=21.533, latent_length=5000,
                            scale=1.0, offset=0.0)
    assert "\n" not in str(e.value) and "at most 1200" in str(e.value)
    out = SmoothCurve.execute(curve=_raw(12.0), kernel_seconds=2.52, target_rate=21.533, latent_length=1200,
                              scale=1.0, offset=0.0)
    assert len(out.args[0]) == 1200 and "latent_length 1200 is used" in out.ui["text"][0]


def test_encode_frames_says_what_it_used_and_ignored(host, tmp_path):
    import fake_comfy

    from v2m_zero.nodes.video import EncodeFrames

    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(32, 18))
    v = fake_comfy.VideoFromFile(clip.path)
    out = EncodeFrames.execute("auto", 0.0, 0, 30.0, "dinov2-large", "mean_patch", "fp16", 16, video=v)
    text = out.ui["text"][0]
    assert text.startswith("used: pixels (auto: no model connected); 48 frames over 2.00 s")
    assert "ignored (DINOv2 only): dinov2_model, pooling, precision, download_if_missing" in text
    assert "ignored: fps 30 (the VIDEO's own 24.000 fps is used)" in text


def test_train_lists_music_folders_only(host):
    import folder_paths

    from v2m_zero.core.train.dataset_files import AUDIO_EXTENSIONS
    from v2m_zero.nodes import train

    assert train.MUSIC_EXTENSIONS == AUDIO_EXTENSIONS
    inp = folder_paths.get_input_directory()
    os.makedirs(os.path.join(inp, "3d"))
    open(os.path.join(inp, "3d", "mesh.glb"), "wb").close()
    os.makedirs(os.path.join(inp, "clipspace"))
    os.makedirs(os.path.join(inp, "my_music", "album"))
    open(os.path.join(inp, "my_music", "album", "song.flac"), "wb").close()
    assert train._dataset_choices() == [train.DEMO_DATASET, "my_music"]
    assert train.Train.validate_inputs(run_name="v2m_run") is True
    assert "run name" in train.Train.validate_inputs(run_name="../x")
    assert "preset" in train.Train.validate_inputs(run_name="ok", preset="nope")
