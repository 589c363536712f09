"""Our nodes with ComfyUI's core nodes, as a prompt would wire them (the fake host's core nodes
follow ComfyUI's own code: LoadVideo → VideoFromFile, CreateVideo → VideoFromComponents,
SaveVideo → save_to, LoadAudio → float32 [1, C, T], SaveAudio/PreviewAudio → FLAC via PyAV)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from v2m_zero.core import examples
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media


@pytest.fixture
def inputs(host):
    import folder_paths

    inp = folder_paths.get_input_directory()
    clip = examples.make_cut_clip(os.path.join(inp, "clip.mp4"), cut_times=[1.0, 2.0], duration=3.0, fps=24,
                                  size=(96, 54))
    media.write_audio(os.path.join(inp, "song.flac"), synth.click_track([0.5, 1.0, 2.0], 4.0, sample_rate=22050), 22050)
    return clip


def _encode(video_link):
    return {"class_type": "V2M_EncodeFrames",
            "inputs": {"encoder": "auto", "sample_fps": 0.0, "size": 0, "fps": 24.0, "dinov2_model": "dinov2-large",
                       "pooling": "mean_patch", "precision": "fp32", "batch_size": 16,
                       "video": video_link, "model": ["m", 0]}}


MODEL = {"class_type": "V2M_LoadModel",
         "inputs": {"checkpoint": "demo/v2m-zero-demo-music.safetensors", "text_encoder": "none",
                                                   "codec": "from checkpoint", "precision": "fp32", "offload": True}}


def _saved(kind: str) -> list[str]:
    import folder_paths

    root = folder_paths.get_output_directory() if kind == "output" else folder_paths.get_temp_directory()
    return sorted(os.path.join(d, f) for d, _s, fs in os.walk(root) for f in fs)


def test_core_load_video_in_our_audio_out_to_core_save_audio_preview_and_save_video(host, inputs):
    from v2m_zero.nodes import node_list

    graph = {
        "m": MODEL,
        "v": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "e": _encode(["v", 0]),
        "c": {"class_type": "V2M_EventCurve", "inputs": {"features": ["e", 0], "peak_threshold": 0.0, "min_gap": 0.25}},
        "s": {"class_type": "V2M_Sampler",
              "inputs": {"model": ["m", 0], "curve": ["c", 0], "prompt": "", "negative_prompt": "",
                                                      "steps": 4, "cfg": 3.0, "seed": 0, "uncond": "both"}},
        "d": {"class_type": "V2M_DecodeLatents", "inputs": {"model": ["m", 0], "latent": ["s", 0]}},
        "sa": {"class_type": "SaveAudio", "inputs": {"audio": ["d", 0], "filename_prefix": "audio/V2M"}},
        "pa": {"class_type": "PreviewAudio", "inputs": {"audio": ["d", 0]}},
        "mx": {"class_type": "V2M_MuxAudio",
               "inputs": {"video": ["v", 0], "audio": ["d", 0], "save_mp4": False, "filename_prefix": "video/V2M"}},
        "sv": {"class_type": "SaveVideo",
               "inputs": {"video": ["mx", 0], "filename_prefix": "video/out", "format": "auto", "codec": "auto"}},
        "r": {"class_type": "V2M_SyncReport",
              "inputs": {"video": ["mx", 0], "fps": 24.0, "tolerance": 0.1, "shifts": 50}},
    }
    out = host.run_graph(graph, node_list())
    assert out["c"][2].count(",") == 1  # both cuts of the core-loaded video found
    flac = [p for p in _saved("output") if p.endswith(".flac")]
    assert len(flac) == 1 and "audio" in flac[0]
    wave, sr = media.decode_audio(flac[0])
    assert sr == 16000 and wave.shape == (1, 48000)  # the demo model's 16 kHz mono, exactly the video's 3 s
    assert any(p.endswith(".flac") for p in _saved("temp"))  # PreviewAudio
    video = [p for p in _saved("output") if p.endswith(".mp4")]
    assert len(video) == 1  # SaveVideo copied our VIDEO's streams
    info = media.probe_video(video[0])
    assert info.has_audio and info.frame_count == 72 and info.duration == pytest.approx(3.0, abs=0.03)
    assert out["r"][0].startswith("Scene Cut Hit")


def test_core_create_video_and_load_audio_into_our_nodes(host, inputs):
    import torch

    from v2m_zero.nodes import node_list

    graph = {
        "m": MODEL,
        "v": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "g": {"class_type": "GetVideoComponents", "inputs": {"video": ["v", 0]}},
        "cv": {"class_type": "CreateVideo", "inputs": {"images": ["g", 0], "fps": 24.0}},
        "e": _encode(["cv", 0]),
        "c": {"class_type": "V2M_EventCurve", "inputs": {"features": ["e", 0], "peak_threshold": 0.0, "min_gap": 0.25}},
        "la": {"class_type": "LoadAudio", "inputs": {"audio": "song.flac"}},
        "mx": {"class_type": "V2M_MuxAudio",
               "inputs": {"video": ["cv", 0], "audio": ["la", 0], "save_mp4": True, "filename_prefix": "video/V2M"}},
        "sv": {"class_type": "SaveVideo",
               "inputs": {"video": ["mx", 0], "filename_prefix": "video/copy", "format": "auto", "codec": "auto"}},
    }
    out = host.run_graph(graph, node_list())
    la = out["la"][0]
    assert (la["waveform"].ndim == 3 and la["waveform"].shape[:2] == (1, 2) and la["waveform"].dtype == torch.float32
            and la["sample_rate"] == 22050)
    assert np.allclose([float(x) for x in out["c"][2].split(",")], inputs.cut_times, atol=1 / 24 + 1e-6)
    for path in [p for p in _saved("output") if p.endswith(".mp4")]:
        info = media.probe_video(path)
        assert info.has_audio and info.frame_count == 72 and info.duration == pytest.approx(3.0, abs=0.03)
        wave, sr = media.decode_audio(path)
        assert abs(wave.shape[1] / sr - 3.0) < 0.03  # the 4 s song fitted to the 3 s video
    assert len([p for p in _saved("output") if p.endswith(".mp4")]) == 2


def test_create_video_with_audio_is_used_without_a_lossy_re_encode(host, inputs):
    import torch
    from comfy_api.latest import InputImpl, Types

    from v2m_zero.nodes.host import convert

    audio = {"waveform": torch.zeros(1, 2, 4410), "sample_rate": 44100}
    vc = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(3, 16, 16, 3), audio=audio,
                                                             frame_rate=24))
    assert convert.video_source(vc) is None  # frames are taken directly, not through an in-memory H.264 encode
    assert hasattr(vc, "get_stream_source")  # (which ComfyUI's VideoInput would offer)
