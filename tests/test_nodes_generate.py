"""The whole node graph on the fake host with a tiny V2M checkpoint:
LoadVideo → EncodeFrames → EventCurve → LoadModel/Sampler → DecodeLatents → MuxAudio."""

import os
import shutil

import numpy as np
import pytest

from tiny_models import PATCH, tiny_v2m_checkpoint
from v2m_zero.core.timing import media
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import V2MError


@pytest.fixture
def setup(host, tmp_path):
    import folder_paths

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    os.makedirs(ckdir)
    tiny_v2m_checkpoint(os.path.join(ckdir, "tiny-v2m.safetensors"))
    return host


@pytest.mark.parametrize("fps", [24, 30000 / 1001])
def test_graph_video_to_music_exact_length(setup, tmp_path, fps):
    import folder_paths

    from v2m_zero.nodes import audio, curves, generate, video

    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[0.8, 1.6], duration=2.5, fps=fps, size=(64, 36))
    shutil.copy(clip.path, os.path.join(folder_paths.get_input_directory(), "c.mp4"))
    assert "tiny-v2m.safetensors" in generate.LoadModel.define_schema().inputs[0].options

    vid, _, duration, frames = video.LoadVideo.execute(file="c.mp4").args
    feats = video.EncodeFrames.execute(video=vid, encoder="pixels", sample_fps=0.0, size=0, fps=24.0,
                                       dinov2_model="dinov2-large",
                                       pooling="mean_patch", precision="fp32", batch_size=16).args[0]
    curve = curves.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args[0]
    model = generate.LoadModel.execute(checkpoint="tiny-v2m.safetensors", text_encoder="none", codec="from checkpoint",
                                       precision="fp32", offload=True).args[0]
    setup.STATE["progress"].clear()
    latent, plot = generate.Sampler.execute(model=model, curve=curve, prompt="upbeat", negative_prompt="", steps=6,
                                            cfg=3.0, seed=3, uncond="both").args
    assert [p for p in setup.STATE["progress"]][-1] == (6, 6) and len(setup.STATE["progress"]) == 6
    assert latent["type"] == "audio" and latent["samples"].shape[1] == 16
    assert latent["duration"] == pytest.approx(duration)
    aud = generate.DecodeLatents.execute(model=model, latent=latent).args[0]
    wave = aud["waveform"]
    assert aud["sample_rate"] == PATCH["sample_rate"] and wave.ndim == 3
    assert wave.shape[-1] == round(duration * PATCH["sample_rate"])
    assert np.isfinite(wave.numpy()).all()
    assert setup.STATE["previews"][-1][0] == "audio"

    out = audio.MuxAudio.execute(video=vid, audio=aud, save_mp4=True, filename_prefix="video/V2M").args[0]
    info = media.probe_video(out.get_stream_source())
    assert info.frame_count == frames and info.duration == pytest.approx(duration)
    got, sr = media.decode_audio(out.get_stream_source())
    assert abs(got.shape[1] - round(duration * sr)) <= 1024


def test_sampler_interrupt_stops_within_a_step(setup, tmp_path):
    from v2m_zero.core.timing.curves import Curve
    from v2m_zero.nodes import generate

    model = generate.LoadModel.execute(checkpoint="tiny-v2m.safetensors", text_encoder="none", codec="from checkpoint",
                                       precision="fp32", offload=False).args[0]
    curve = Curve(np.zeros(40), np.arange(1, 41) / 20, 2.05)
    setup.STATE["interrupt"] = True
    with pytest.raises(setup.InterruptProcessingException):
        generate.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=50, cfg=1.0, seed=0,
                                 uncond="both")
    assert len(setup.STATE["progress"]) == 0  # raised at the first step's callback


def test_sampler_follows_the_checkpoints_sampling_defaults(setup, monkeypatch):
    """Widgets left at 'the checkpoint's own' (0 / "from checkpoint") take the recorded steps, cfg and
    uncond; values set on the widgets (as saved workflows of earlier versions have them) win."""
    import folder_paths

    from v2m_zero.core.model import flow
    from v2m_zero.core.timing.curves import Curve
    from v2m_zero.nodes import generate

    ckdir = os.path.join(folder_paths.models_dir, "v2m", "checkpoints")
    tiny_v2m_checkpoint(os.path.join(ckdir, "own.safetensors"),
                        sampling={"steps": 3, "cfg_scale": 2.5, "uncond": "curve"})
    model = generate.LoadModel.execute(checkpoint="own.safetensors", text_encoder="none", codec="from checkpoint",
                                       precision="fp32", offload=False).args[0]
    curve = Curve(np.zeros(40), np.arange(1, 41) / 20, 2.05)
    seen = []
    real = flow.CFGDenoiser.__init__

    def spy(self, model, cfg_scale, uncond="both", negative=None, **kw):
        seen.append((cfg_scale, uncond))
        real(self, model, cfg_scale, uncond=uncond, negative=negative, **kw)

    monkeypatch.setattr(flow.CFGDenoiser, "__init__", spy)
    schema = {i.id: i for i in generate.Sampler.define_schema().inputs}
    defaults = {k: schema[k].default for k in ("steps", "cfg", "seed", "uncond")}
    assert defaults == {"steps": 0, "cfg": 0.0, "seed": 0, "uncond": "from checkpoint"}
    generate.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", **defaults)
    assert seen == [(2.5, "curve")] and len(setup.STATE["progress"]) == 3  # 3 steps: the checkpoint's
    seen.clear()
    setup.STATE["progress"].clear()
    generate.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", steps=5, cfg=4.0, seed=0,
                             uncond="both")
    assert seen == [(4.0, "both")] and len(setup.STATE["progress"]) == 5
    bad = os.path.join(ckdir, "bad.safetensors")
    tiny_v2m_checkpoint(bad, sampling={"steps": 10**9})
    model = generate.LoadModel.execute(checkpoint="bad.safetensors", text_encoder="none", codec="from checkpoint",
                                       precision="fp32", offload=False).args[0]
    with pytest.raises(V2MError, match=r"bad\.safetensors: the checkpoint's sampling\.steps"):  # bounded, file named
        generate.Sampler.execute(model=model, curve=curve, prompt="", negative_prompt="", **defaults)


def test_load_model_errors_are_clear(setup):
    from v2m_zero.nodes import generate

    with pytest.raises(V2MError, match="models/v2m/checkpoints"):
        generate.LoadModel.execute(checkpoint="missing.safetensors", text_encoder="none", codec="from checkpoint",
                                   precision="fp32", offload=True)
    with pytest.raises(V2MError, match="invalid model name"):
        generate.LoadModel.execute(checkpoint="../../x.safetensors", text_encoder="none", codec="from checkpoint",
                                   precision="fp32", offload=True)
    with pytest.raises(V2MError, match="audio latents"):
        generate.DecodeLatents.execute(model=None, latent={"samples": None})
