"""V2M_SyncReport on the fake host: cuts on the beat hit, the chance level is reported."""

import numpy as np
import torch

from v2m_zero.core.eval import synth


def test_sync_report_on_beat_video_and_on_images_plus_audio(host, tmp_path):
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import evaluate

    period = 0.5
    beats = np.arange(0.25, 8.0, period)
    cuts = [2.25, 4.25, 6.25]
    music = synth.click_track(beats, 8.0)
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=cuts, duration=8.0, fps=24, motion=False, audio=music)
    out = evaluate.SyncReport.execute(video=InputImpl.VideoFromFile(clip.path), fps=24.0, tolerance=0.1, shifts=100)
    report, image = out.args
    assert "Scene Cut Hit: 1.000" in report
    assert "chance level 0.3" in report or "chance level 0.4" in report  # ≈ 2·0.1/0.5
    assert image.shape[0] == 1 and image.shape[-1] == 3

    # the same frames as IMAGE + fps, with music off the beat given as AUDIO → no hits
    comps = InputImpl.VideoFromFile(clip.path).get_components()
    off = synth.click_track(beats + period / 2, 8.0)
    audio = {"waveform": torch.from_numpy(off)[None], "sample_rate": 44100}
    report2 = evaluate.SyncReport.execute(images=comps.images, audio=audio, fps=24.0, tolerance=0.1, shifts=100).args[0]
    assert "Scene Cut Hit: 0.000" in report2


def test_sync_report_without_audio_says_so(host, tmp_path):
    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import evaluate

    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0], duration=2.0, fps=24, motion=False)
    report = evaluate.SyncReport.execute(video=InputImpl.VideoFromFile(clip.path), fps=24.0, tolerance=0.1,
                                         shifts=50).args[0]
    assert "n/a" in report and "note:" in report and "audio" in report


def test_sync_report_without_pyscenedetect_uses_the_histogram_detector_and_says_so(host, tmp_path, monkeypatch):
    import sys

    from comfy_api.latest import InputImpl

    from v2m_zero.nodes import evaluate

    monkeypatch.setitem(sys.modules, "scenedetect", None)  # as on a host with only requirements.txt
    beats = np.arange(0.25, 8.0, 0.5)
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[2.25, 4.25, 6.25], duration=8.0, fps=24,
                               motion=False, audio=synth.click_track(beats, 8.0))
    report = evaluate.SyncReport.execute(video=InputImpl.VideoFromFile(clip.path), fps=24.0, tolerance=0.1,
                                         shifts=100).args[0]
    assert "Scene Cut Hit: 1.000" in report and "cuts: 3" in report
    assert "colour-histogram detector" in report and "pip install scenedetect" in report
