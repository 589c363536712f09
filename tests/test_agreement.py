"""Curve and checkpoint agree: the comparison of specs, Encode Frames 'auto', Smooth Curve following
the model, the Sampler's notes (text and on its plot) and the CLI's warning."""

from __future__ import annotations

import os
import types

import pytest

from v2m_zero.core import examples
from v2m_zero.core.timing.spec import CurveSpec, curve_mismatches, encoder_name

DEMO = "demo/v2m-zero-demo-music.safetensors"
ENC = dict(sample_fps=0.0, size=0, fps=24.0, dinov2_model="dinov2-large", pooling="mean_patch", precision="fp32",
           batch_size=16)


def test_encoder_names_and_mismatches():
    assert encoder_name("dinov2", {"model": "/m/v2m/encoders/dinov2-base/"}) == "dinov2-base"
    assert encoder_name("dinov2-l") == encoder_name("dinov2") == "dinov2-large"
    model = CurveSpec(encoder="pixels", smoothing_seconds=0.2)
    assert curve_mismatches({"encoder": "pixels", "standardise": True}, model) == []
    notes = curve_mismatches({"encoder": "histogram", "smoothing_seconds": 2.52}, model)
    assert (len(notes) == 2 and "'histogram'" in notes[0] and "'pixels'" in notes[0]
            and "2.52 s" in notes[1] and "0.2 s" in notes[1])
    # a raw curve the sampler smooths with the model's own spec: smoothing cannot disagree
    assert curve_mismatches({"encoder": "pixels", "smoothing_seconds": 9.0}, model, smoothed_here=True) == []
    assert "not standardised" in curve_mismatches({"standardise": False}, model)[0]


@pytest.fixture
def graph_parts(host):
    import folder_paths

    from v2m_zero.nodes import curves, generate, video

    clip = examples.make_cut_clip(os.path.join(folder_paths.get_input_directory(), "c.mp4"), cut_times=[1.0],
                                  duration=2.0, fps=24, size=(64, 36))
    vid = video.LoadVideo.execute(file="c.mp4").args[0]
    model = generate.LoadModel.execute(checkpoint=DEMO, text_encoder="none", codec="from checkpoint", precision="fp32",
                                       offload=True).args[0]
    return types.SimpleNamespace(video=video, curves=curves, generate=generate, vid=vid, model=model, clip=clip)


def test_auto_encoder_follows_the_model(graph_parts):
    g = graph_parts
    feats = g.video.EncodeFrames.execute(video=g.vid, encoder="auto", model=g.model, **ENC).args[0]
    assert feats.encoder == g.model.curve_spec.encoder == "pixels"
    assert (g.video.EncodeFrames.execute(video=g.vid, encoder="auto", **ENC).args[0].encoder
            == "pixels")  # no model: weightless
    sao_like = types.SimpleNamespace(curve_spec=CurveSpec(encoder="dinov2-large", encoder_options={"pooling": "cls"}))
    assert g.video._auto_encoder(sao_like, "dinov2-small", "mean_patch") == ("dinov2", "dinov2-large", "cls")
    from v2m_zero.core.errors import V2MError

    with pytest.raises(V2MError, match="dinov2-large"):  # the folder the model needs is named
        g.video.EncodeFrames.execute(video=g.vid, encoder="auto", model=types.SimpleNamespace(curve_spec=CurveSpec()),
                                     **ENC)


def test_smooth_curve_follows_the_model_and_the_sampler_agrees(graph_parts, host):
    g = graph_parts
    feats = g.video.EncodeFrames.execute(video=g.vid, encoder="auto", model=g.model, **ENC).args[0]
    raw = g.curves.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args[0]
    smooth = g.curves.SmoothCurve.execute(curve=raw, kernel_seconds=2.52, target_rate=21.5, latent_length=0, scale=1.0,
                                          offset=0.0, model=g.model).args[0]
    assert smooth.rate == pytest.approx(62.5) and smooth.spec["smoothing_seconds"] == pytest.approx(0.2)
    out = g.generate.Sampler.execute(model=g.model, curve=smooth, prompt="", negative_prompt="", steps=2, cfg=3.0,
                                     seed=0, uncond="both")
    text = out.ui["text"][0]
    assert text.startswith("notes:") and "DEMO" in text and "frame encoder" not in text and "smoothed" not in text


def test_sampler_says_when_curve_and_checkpoint_differ(graph_parts, host):
    g = graph_parts
    feats = g.video.EncodeFrames.execute(video=g.vid, encoder="histogram", **ENC).args[0]
    raw = g.curves.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args[0]
    smooth = g.curves.SmoothCurve.execute(curve=raw, kernel_seconds=2.52, target_rate=62.5, latent_length=0, scale=1.0,
                                          offset=0.0).args[0]
    out = g.generate.Sampler.execute(model=g.model, curve=smooth, prompt="", negative_prompt="", steps=2, cfg=3.0,
                                     seed=0, uncond="both")
    text, plot = out.ui["text"][0], out.args[1]
    assert "'histogram' frame encoder" in text and "2.52 s Hann kernel" in text and "0.2 s" in text
    agree = g.generate.Sampler.execute(model=g.model, curve=g.curves.EventCurve.execute(
        features=g.video.EncodeFrames.execute(video=g.vid, encoder="pixels", **ENC).args[0],
        peak_threshold=0.0, min_gap=0.25).args[0],
        prompt="", negative_prompt="", steps=2, cfg=3.0, seed=0, uncond="both")
    assert "frame encoder" not in agree.ui["text"][0]
    # the notes are in the report drawn on the node (web/v2m_zero.js), not a second time on the plot
    assert plot.shape == agree.args[1].shape


def test_cli_generate_warns_when_the_encoder_differs(tmp_path, capsys):
    from v2m_zero.core.cli import main

    clip = examples.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(64, 36))
    from v2m_zero.model_io.folders import DEMO_CHECKPOINT

    rc = main(["generate", clip.path, "--checkpoint", DEMO_CHECKPOINT, "--encoder", "histogram", "--steps", "2",
               "--out", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert rc == 0 and "v2m-zero generate: warning: the curve comes from the 'histogram' frame encoder" in err
    rc = main(["generate", clip.path, "--checkpoint", DEMO_CHECKPOINT, "--steps", "2", "--out",
               str(tmp_path / "p.mp4")])
    assert rc == 0 and "warning" not in capsys.readouterr().err
