"""Timing-half nodes called through execute() on a fake host (as ComfyUI's tests-unit do)."""

import os
import shutil
from fractions import Fraction

import numpy as np
import pytest

from v2m_zero.core.timing import media
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import MediaError, V2MError

CUTS = [1.0, 2.5]


@pytest.fixture
def nodes(host):
    from v2m_zero.nodes import audio, curves, video

    return video, curves, audio


@pytest.fixture
def clip_in_input(host, tmp_path):
    import folder_paths

    clip = synth.make_cut_clip(str(tmp_path / "clip.mp4"), cut_times=CUTS, duration=3.5, fps=24, size=(96, 54))
    dst = os.path.join(folder_paths.get_input_directory(), "clip.mp4")
    shutil.copy(clip.path, dst)
    return clip, "clip.mp4"


def _encode_kwargs(**kw):
    base = dict(encoder="pixels", sample_fps=0.0, size=0, fps=24.0, dinov2_model="dinov2-large", pooling="mean_patch",
                precision="fp32", batch_size=16)
    base.update(kw)
    return base


def test_extension_lists_prefixed_nodes(host):
    import asyncio

    import v2m_zero

    ext = asyncio.run(v2m_zero.comfy_entrypoint())
    asyncio.run(ext.on_load())
    nodes = asyncio.run(ext.get_node_list())
    ids = [n.define_schema().node_id for n in nodes]
    assert {"V2M_LoadVideo", "V2M_EncodeFrames", "V2M_EventCurve", "V2M_SmoothCurve", "V2M_MuxAudio"} <= set(ids)
    assert all(i.startswith("V2M_") for i in ids) and len(ids) == len(set(ids))
    for n in nodes:  # every input has a tooltip
        for inp in n.define_schema().inputs:
            assert inp.tooltip, (n.__name__, inp.id)


def test_load_video_outputs_and_confinement(nodes, clip_in_input):
    video, _, _ = nodes
    clip, name = clip_in_input
    assert name in video.LoadVideo.define_schema().inputs[0].options
    out = video.LoadVideo.execute(file=name)
    vid, fps, duration, count = out.args
    assert fps == pytest.approx(24.0) and duration == pytest.approx(3.5) and count == 84
    assert vid.get_stream_source().endswith("clip.mp4")
    for bad in ("../clip.mp4", "/etc/passwd", "../../x.mp4"):
        with pytest.raises(MediaError, match="outside ComfyUI's input folder|not found"):
            video.LoadVideo.execute(file=bad)
        assert isinstance(video.LoadVideo.validate_inputs(file=bad), str)
    assert video.LoadVideo.validate_inputs(file=name) is True


def test_load_video_rejects_broken_file(nodes, host):
    import folder_paths

    video, _, _ = nodes
    path = os.path.join(folder_paths.get_input_directory(), "empty.mp4")
    open(path, "wb").close()
    with pytest.raises(MediaError, match="empty.mp4"):
        video.LoadVideo.execute(file="empty.mp4")


def test_encode_event_smooth_chain_from_video(nodes, clip_in_input, host):
    video, curves_n, _ = nodes
    clip, name = clip_in_input
    vid = video.LoadVideo.execute(file=name).args[0]
    feats = video.EncodeFrames.execute(video=vid, **_encode_kwargs()).args[0]
    assert len(feats) == 84
    assert host.STATE["progress"] and host.STATE["progress"][-1] == (84, 84)
    curve, plot, hits = curves_n.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args
    got = [float(x) for x in hits.split(",")]
    assert np.allclose(got, clip.cut_times, atol=1 / 24 + 1e-6)
    assert plot.ndim == 4 and plot.shape[-1] == 3 and float(plot.max()) <= 1.0
    assert host.STATE["previews"][-1][0] == "image"
    smooth, plot2 = curves_n.SmoothCurve.execute(curve=curve, kernel_seconds=2.52, target_rate=44100 / 2048,
                                                 latent_length=0, scale=1.0, offset=0.0).args
    assert len(smooth) == int(np.ceil(3.5 * 44100 / 2048))
    fixed = curves_n.SmoothCurve.execute(curve=curve, kernel_seconds=1.0, target_rate=10.0, latent_length=100,
                                         scale=2.0, offset=0.5).args[0]
    assert len(fixed) == 100 and fixed.spec["scale"] == 2.0


def test_encode_frames_from_images_matches_video(nodes, clip_in_input):
    video, curves_n, _ = nodes
    clip, name = clip_in_input
    vid = video.LoadVideo.execute(file=name).args[0]
    comps = vid.get_components()  # IMAGE [B,H,W,3] float as a video-generation node would give
    feats = video.EncodeFrames.execute(images=comps.images, **_encode_kwargs(fps=24.0)).args[0]
    hits = curves_n.EventCurve.execute(features=feats, peak_threshold=0.0, min_gap=0.25).args[2]
    assert np.allclose([float(x) for x in hits.split(",")], clip.cut_times, atol=1 / 24 + 1e-6)
    half = video.EncodeFrames.execute(images=comps.images, **_encode_kwargs(fps=24.0, sample_fps=12.0)).args[0]
    assert len(half) == 42 and np.allclose(np.diff(half.times), 1 / 12)
    # a VIDEO made from components (CreateVideo) works too
    from comfy_api.latest import InputImpl, Types

    vc = InputImpl.VideoFromComponents(Types.VideoComponents(images=comps.images, frame_rate=Fraction(24)))
    f2 = video.EncodeFrames.execute(video=vc, **_encode_kwargs()).args[0]
    np.testing.assert_allclose(f2.values, feats.values)


def test_encode_frames_needs_an_input_and_honours_interrupt(nodes, clip_in_input, host):
    video, _, _ = nodes
    with pytest.raises(V2MError, match="connect a video or images"):
        video.EncodeFrames.execute(**_encode_kwargs())
    vid = video.LoadVideo.execute(file=clip_in_input[1]).args[0]
    host.STATE["interrupt"] = True
    with pytest.raises(host.InterruptProcessingException):
        video.EncodeFrames.execute(video=vid, **_encode_kwargs())


def test_mux_node_saves_exact_length(nodes, clip_in_input, host):
    import folder_paths
    import torch

    video, _, audio = nodes
    vid = video.LoadVideo.execute(file=clip_in_input[1]).args[0]
    src_bytes = open(vid.get_stream_source(), "rb").read()
    wave = torch.from_numpy(synth.click_track([0.5, 1.0], 5.0)).unsqueeze(0)  # longer than the video
    out = audio.MuxAudio.execute(video=vid, audio={"waveform": wave, "sample_rate": 44100}, save_mp4=True,
                                 filename_prefix="video/V2M").args[0]
    path = out.get_stream_source()
    assert path.startswith(folder_paths.get_output_directory())
    info = media.probe_video(path)
    assert info.frame_count == 84 and info.duration == pytest.approx(3.5)
    got, sr = media.decode_audio(path)
    assert abs(got.shape[1] - round(3.5 * sr)) <= 1024
    assert open(vid.get_stream_source(), "rb").read() == src_bytes
    assert host.STATE["previews"][-1][0] == "video"


def test_mux_node_from_components_leaves_no_temp(nodes, clip_in_input, host):
    import folder_paths
    import torch
    from comfy_api.latest import InputImpl, Types

    _, _, audio = nodes
    images = torch.rand(30, 36, 64, 3)
    vc = InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=Fraction(30)))
    wave = torch.zeros(1, 2, 22050)
    out = audio.MuxAudio.execute(video=vc, audio={"waveform": wave, "sample_rate": 44100}, save_mp4=False,
                                 filename_prefix="x").args[0]
    info = media.probe_video(out.get_stream_source())
    assert info.frame_count == 30 and info.duration == pytest.approx(1.0)
    temp = folder_paths.get_temp_directory()
    assert [f for f in os.listdir(temp) if f.startswith("v2m-") and not f.startswith("v2m-mux-")] == []


def test_video_from_components_keeps_its_audio_when_written_to_a_file(host):
    import torch
    from comfy_api.latest import InputImpl, Types

    from v2m_zero.nodes.host import convert

    audio = {"waveform": torch.from_numpy(synth.click_track([0.3], 1.0))[None], "sample_rate": 44100}
    vc = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(24, 36, 64, 3), audio=audio,
                                                             frame_rate=Fraction(24)))
    path, temporary = convert.video_to_file(vc)
    try:
        assert temporary and media.probe_video(path).has_audio
    finally:
        os.unlink(path)
    bad = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(2, 36, 64, 3), frame_rate=Fraction(0)))
    import folder_paths

    before = set(os.listdir(folder_paths.get_temp_directory()))
    with pytest.raises(Exception):
        convert.video_to_file(bad)
    assert set(os.listdir(folder_paths.get_temp_directory())) == before  # no temp file left
