"""Newer ComfyUI (0.33+): a video trimmed by core Trim Video is used as the user sees it, and the
fake host follows the current API (trim window, BaseException interrupt, nested SaveVideo format,
GetVideoComponents' 5 outputs, CreateVideo's bit_depth, VideoComponents.alpha)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from v2m_zero.core import examples
from v2m_zero.core.errors import MediaError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.timing.media.window import write_window


@pytest.fixture
def clip(host):
    """12 s, cuts at 2, 5, 9 s, 24 fps, with a soundtrack (the issue's case: a 4 s trim of 12 s)."""
    import folder_paths

    inp = folder_paths.get_input_directory()
    path = os.path.join(inp, "long.mp4")
    c = examples.make_cut_clip(path, cut_times=[2.0, 5.0, 9.0], duration=12.0, fps=24, size=(64, 36))
    tone = synth.click_track([1.0, 6.0], 12.0, sample_rate=48000)
    with_audio = os.path.join(inp, "long_a.mp4")
    media.mux_audio(path, tone, 48000, with_audio)
    return c, with_audio


def _encode(video_link):
    return {"class_type": "V2M_EncodeFrames",
            "inputs": {"encoder": "pixels", "sample_fps": 0.0, "size": 0, "fps": 24.0, "dinov2_model": "dinov2-large",
                       "pooling": "mean_patch", "precision": "fp32", "batch_size": 16, "video": video_link}}


def _trim(start, duration):
    return {"class_type": "Video Slice", "inputs": {"video": ["v", 0], "start_time": start, "duration": duration,
                                                    "strict_duration": False}}


def test_trim_video_then_encode_frames_and_event_curve_see_only_the_trim(host, clip):
    from v2m_zero.nodes import node_list

    graph = {
        "v": {"class_type": "LoadVideo", "inputs": {"file": "long_a.mp4"}},
        "t": _trim(4.0, 4.0),
        "e": _encode(["t", 0]),
        "c": {"class_type": "V2M_EventCurve", "inputs": {"features": ["e", 0], "peak_threshold": 0.0, "min_gap": 0.25}},
        "w": _encode(["v", 0]),
    }
    out = host.run_graph(graph, node_list())
    feats = out["e"][0]
    assert feats.duration == pytest.approx(4.0, abs=1 / 24 + 1e-6)
    assert len(feats.times) == 96 and feats.times[-1] < 4.0
    assert out["w"][0].duration == pytest.approx(12.0, abs=1 / 24 + 1e-6)  # untrimmed: the whole file, as before
    cuts = [float(x) for x in out["c"][2].split(",")]
    assert cuts == pytest.approx([1.0], abs=1 / 24 + 1e-6)  # the 5 s cut, 1 s into the trim; not 2 s or 9 s


def test_trim_video_then_mux_audio_writes_the_trimmed_length(host, clip):
    from v2m_zero.nodes import node_list

    song = {"waveform": __import__("torch").zeros(1, 2, 48000 * 10), "sample_rate": 48000}
    graph = {
        "v": {"class_type": "LoadVideo", "inputs": {"file": "long_a.mp4"}},
        "t": _trim(4.0, 4.0),
    }
    out = host.run_graph(graph, node_list())
    from v2m_zero.nodes.audio import MuxAudio

    res = MuxAudio.execute(out["t"][0], song, True, "video/trim")
    info = media.probe_video(res.args[0].get_stream_source())
    assert info.duration == pytest.approx(4.0, abs=1 / 24 + 1e-6) and info.frame_count == 96
    wave, sr = media.decode_audio(res.args[0].get_stream_source())
    assert abs(wave.shape[1] / sr - info.duration) < 0.025


def test_negative_start_counts_from_the_end_and_sync_report_uses_the_trim(host, clip):
    from v2m_zero.nodes import node_list

    graph = {
        "v": {"class_type": "LoadVideo", "inputs": {"file": "long_a.mp4"}},
        "t": _trim(-4.0, 0.0),  # the last 4 s: 8..12, one cut at 9 s
        "e": _encode(["t", 0]),
        "r": {"class_type": "V2M_SyncReport", "inputs": {"video": ["t", 0], "fps": 24.0, "tolerance": 0.1,
                                                         "shifts": 10}},
    }
    out = host.run_graph(graph, node_list())
    assert out["e"][0].duration == pytest.approx(4.0, abs=1 / 24 + 1e-6)
    report = out["r"][0]
    assert "duration: 4.000 s" in report and "cut times: 1.00" in report  # the 9 s cut, 1 s into the trim


def test_write_window_frames_audio_and_bad_window(host, clip, tmp_path):
    _c, path = clip
    out = write_window(path, str(tmp_path / "w.mp4"), 2.5, 3.0)
    info = media.probe_video(out)
    assert info.frame_count == 72 and info.duration == pytest.approx(3.0, abs=1e-3)
    wave, sr = media.decode_audio(out)
    ref, _ = media.decode_audio(path)
    assert abs(wave.shape[1] - 3 * sr) < 1100
    # the click at 6 s of the source is at 3.5 s... outside; the one at 1 s too: the window holds no click
    assert np.abs(wave).max() < 0.5 * np.abs(ref).max()
    whole = write_window(path, str(tmp_path / "end.mp4"), 10.0)  # duration 0: to the end
    assert media.probe_video(whole).duration == pytest.approx(2.0, abs=1e-3)
    silent = media.probe_video(write_window(path, str(tmp_path / "s.mp4"), 1.0, 1.0, audio=False))
    assert not silent.has_audio and silent.frame_count == 24
    with pytest.raises(MediaError, match="holds no frame") as e:
        write_window(path, str(tmp_path / "none.mp4"), 20.0, 1.0)
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "none.mp4")


def test_untrimmed_video_is_read_in_place(host, clip):
    from v2m_zero.nodes.host import convert
    import fake_comfy

    _c, path = clip
    v = fake_comfy.VideoFromFile(path)
    assert convert.video_view(v) == (0.0, 0.0, False)
    assert convert.video_to_file(v) == (path, False)  # no copy
    t = v.as_trimmed(1.0, 2.0)
    assert convert.video_view(t) == (1.0, 2.0, False) and convert.video_source(t) is None
    tmp, temporary = convert.video_to_file(t)
    assert temporary and media.probe_video(tmp).duration == pytest.approx(2.0, abs=1e-3)
    os.unlink(tmp)


def test_interrupt_is_a_base_exception_and_is_not_swallowed(host, clip):
    import fake_comfy
    from v2m_zero.nodes.video import EncodeFrames

    assert issubclass(fake_comfy.InterruptProcessingException, BaseException)
    assert not issubclass(fake_comfy.InterruptProcessingException, Exception)
    v = fake_comfy.VideoFromFile(clip[1]).as_trimmed(1.0, 8.0)
    fake_comfy.STATE["interrupt"] = True
    with pytest.raises(fake_comfy.InterruptProcessingException):
        EncodeFrames.execute("pixels", 0.0, 0, 24.0, "dinov2-large", "mean_patch", "fp32", 16, video=v)
    import folder_paths

    temp = folder_paths.get_temp_directory()
    assert not [f for f in os.listdir(temp) if f.endswith(".mp4")] if os.path.isdir(temp) else True


def test_save_video_nested_format_get_components_five_outputs_create_video_bit_depth(host, clip):
    from v2m_zero.nodes import node_list

    graph = {
        "v": {"class_type": "LoadVideo", "inputs": {"file": "long_a.mp4"}},
        "t": _trim(0.0, 2.0),
        "g": {"class_type": "GetVideoComponents", "inputs": {"video": ["t", 0]}},
        "cv": {"class_type": "CreateVideo", "inputs": {"images": ["g", 0], "fps": 24.0, "bit_depth": 8}},
        "e": _encode(["cv", 0]),
        "sv": {"class_type": "SaveVideo", "inputs": {"video": ["t", 0], "filename_prefix": "video/n",
                                                     "format": {"format": "mp4", "codec": {"codec": "auto"}}}},
    }
    out = host.run_graph(graph, node_list())
    assert len(out["g"]) == 5 and out["g"][3] == 8 and out["g"][0].shape[0] == 48
    assert out["e"][0].duration == pytest.approx(2.0, abs=1 / 24 + 1e-6)
    import folder_paths

    saved = [os.path.join(d, f) for d, _s, fs in os.walk(folder_paths.get_output_directory()) for f in fs]
    assert len(saved) == 1 and media.probe_video(saved[0]).duration == pytest.approx(2.0, abs=0.05)


def test_extension_on_load_and_node_list(host):
    import asyncio

    from v2m_zero.nodes import make_extension

    ext = make_extension()
    asyncio.run(ext.on_load())
    assert len(asyncio.run(ext.get_node_list())) >= 13


def test_dotdot_path_gets_our_line_though_the_host_refuses_it_first(host):
    """ComfyUI 0.33's get_annotated_filepath raises ValueError("Invalid file path: ...") for a path leaving
    the input folder; the node still answers with its own one line (at validation, before the run)."""
    import folder_paths

    from v2m_zero.nodes.align import LoadMusic
    from v2m_zero.nodes.video import LoadVideo

    with pytest.raises(ValueError, match="Invalid file path"):
        folder_paths.get_annotated_filepath("../secret.mp4")
    for msg in (LoadVideo.validate_inputs(file="../secret.mp4"), LoadMusic.validate_inputs(audio="../secret.mp4")):
        assert isinstance(msg, str) and "points outside ComfyUI's input folder" in msg and "\n" not in msg
    with pytest.raises(MediaError, match="points outside"):
        LoadVideo.execute(file="../../V.mp4")


def test_fake_host_validates_dropdowns_and_ranges_at_queue_time(host):
    """As both hosts do: the widget value must be in its dropdown / range, unless validate_inputs names it."""
    from v2m_zero.nodes import node_list

    bad = {"s": {"class_type": "V2M_SmoothCurve",
                 "inputs": {"curve": None, "kernel_seconds": 2.5, "target_rate": 21.5, "latent_length": 1000000,
                            "scale": 1.0, "offset": 0.0}}}
    with pytest.raises(RuntimeError, match="bigger than max of 51200"):
        host.run_graph(bad, node_list())
    enc = {"e": {"class_type": "V2M_EncodeFrames",
                 "inputs": {"encoder": "nope", "sample_fps": 0.0, "size": 0, "fps": 24.0,
                            "dinov2_model": "dinov2-large", "pooling": "mean_patch", "precision": "fp32",
                            "batch_size": 16}}}
    with pytest.raises(RuntimeError, match="Value not in list: encoder"):
        host.run_graph(enc, node_list())


def test_cropped_video_is_written_by_the_host_as_shown(host, clip):
    """The newest comfy_api also crops (a private rectangle; its get_dimensions is the crop's): the bridge
    lets the host's own save_to write what it shows, trim included."""
    import fake_comfy

    from v2m_zero.nodes.host import convert
    from v2m_zero.nodes.video import EncodeFrames

    _c, path = clip
    v = fake_comfy.VideoFromFile(path, crop=(8, 4, 32, 16)).as_trimmed(2.0, 3.0)
    assert convert.video_view(v) == (2.0, 3.0, True) and convert.video_source(v) is None
    tmp, temporary = convert.video_to_file(v)
    info = media.probe_video(tmp)
    assert temporary and (info.width, info.height) == (32, 16) and info.frame_count == 72
    os.unlink(tmp)
    feats = EncodeFrames.execute("pixels", 0.0, 0, 24.0, "dinov2-large", "mean_patch", "fp32", 16, video=v).args[0]
    assert len(feats) == 72
    whole = fake_comfy.VideoFromFile(path, crop=(0, 0, 64, 36))  # a crop of the whole frame is no crop
    assert convert.video_view(whole) == (0.0, 0.0, False) and convert.video_source(whole) == path
