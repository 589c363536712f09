"""The v2m-zero command line: the main job, curve/mux/generate, and bad inputs."""

import json
import os

import numpy as np
import pytest

from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core import cli
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media


def run(*argv):
    return cli.main([str(a) for a in argv])


def test_demo_main_job(tmp_path, capsys, monkeypatch):
    """The README's main job: generated clip → curve → music from the bundled demo model → mux → SCH;
    the scoring's beat tracker is imported on a second thread started before sampling, joined before scoring."""
    import sys

    from v2m_zero.core.commands import demo

    events = []
    warm, sample, score = demo.warm_up_scoring, demo.sample_with_progress, demo.score

    def spy_warm():
        thread = warm()
        events.append(("warm", thread))
        return thread

    def spy_sample(*a, **kw):
        events.append(("sample", None))
        return sample(*a, **kw)

    def spy_score(*a, **kw):
        events.append(("score", events[0][1].is_alive()))
        return score(*a, **kw)

    monkeypatch.setattr(demo, "warm_up_scoring", spy_warm)
    monkeypatch.setattr(demo, "sample_with_progress", spy_sample)
    monkeypatch.setattr(demo, "score", spy_score)
    assert run("demo", "--out", tmp_path / "out", "--duration", "6") == 0
    assert [e[0] for e in events] == ["warm", "sample", "score"]
    assert events[0][1].name == "v2m-warm-up-scoring" and events[2][1] is False and "librosa.beat" in sys.modules
    text = capsys.readouterr().out
    for name in ("curve.json", "curve.png", "demo_with_music.mp4"):
        assert os.path.exists(tmp_path / "out" / name) and str(tmp_path / "out" / name) in text
    assert "DEMO checkpoint" in text
    m = [line for line in text.splitlines() if line.startswith("cuts found within one frame")][0]
    found, total = m.split(": ")[1].split("/")
    assert found == total and int(total) == 3  # demo cuts before 6 s: 1.5, 3.0, 4.25
    sch_line = [line for line in text.splitlines() if line.startswith("Scene Cut Hit:")][0]
    sch = float(sch_line.split()[3])
    null = float(sch_line.split("chance level ")[1].split(";")[0])
    assert 0.0 <= sch <= 1.0 and 0.0 <= null <= 1.0
    info = media.probe_video(str(tmp_path / "out" / "demo_with_music.mp4"))
    assert info.has_audio and info.duration == pytest.approx(6.0)
    wave, sr = media.decode_audio(str(tmp_path / "out" / "demo_with_music.mp4"))
    assert abs(wave.shape[1] - 6 * sr) <= 1 and np.abs(wave).max() > 0.01  # exact length, not silence


@pytest.mark.parametrize("argv, expected", [((), "fp32"), (("--precision", "bf16"), "bf16")])
def test_demo_precision_reaches_the_generator(tmp_path, monkeypatch, capsys, argv, expected):
    """``demo --precision`` is the generator's dtype (fp32 unless asked: the quick start's figures are fp32's);
    the model is loaded before anything is written, so a refusal there leaves the output folder empty."""
    import torch

    from v2m_zero.core import generate
    from v2m_zero.core.errors import V2MError

    seen = {}

    def spy_load(ckpt, **kw):
        model = load(ckpt, **kw)
        seen.update(kw, dtype=model.dtype, dit_dtype=next(model.dit.parameters()).dtype)
        raise V2MError("stop here")

    load = generate.load_music_model
    monkeypatch.setattr(generate, "load_music_model", spy_load)
    assert run("demo", "--out", tmp_path / "out", "--duration", "2", *argv) != 0
    assert "stop here" in capsys.readouterr().err
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[expected]
    assert seen["precision"] == expected and seen["dtype"] == dtype and seen["dit_dtype"] == dtype
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_demo_sonify_needs_no_model(tmp_path, capsys):
    assert run("demo", "--out", tmp_path / "out", "--duration", "4", "--sonify") == 0
    text = capsys.readouterr().out
    assert "sonification" in text and os.path.exists(tmp_path / "out" / "demo_with_soundtrack.mp4")


def test_demo_sonify_streams_its_soundtrack(tmp_path, monkeypatch, capsys):
    """--sonify writes its soundtrack block by block to a spool: never read back whole, the same audio
    whatever the block size, hits where the peaks are, the exact length."""
    from v2m_zero.core.commands import demo
    from v2m_zero.core.timing import curves
    from v2m_zero.core.timing.media import stream

    smooth = curves.Curve(np.linspace(-1, 2, 215).astype(np.float32), np.arange(215) / 21.5, 10.0, rate=21.5)
    peaks = [0.5, 0.6, 3.0, 9.9]
    sr = 8000
    with demo.sonify(smooth, peaks, 10.0, sr) as a:
        monkeypatch.setattr(demo, "SONIFY_BLOCK", 777)
        with demo.sonify(smooth, peaks, 10.0, sr) as b:
            wa, wb = a.to_array(), b.to_array()
    assert wa.shape == (2, 80000) and np.array_equal(wa, wb)
    level = np.abs(wa[0]).reshape(-1, 400).max(axis=1)  # 50 ms blocks
    assert all(level[int(p * 20)] > 2 * np.median(level) for p in peaks) and np.abs(wa).max() <= 1.0

    def whole(self):
        raise AssertionError("the sonification was read back whole")

    monkeypatch.setattr(stream.AudioSpool, "to_array", whole)
    assert run("demo", "--out", tmp_path / "out", "--duration", "3", "--sonify") == 0
    wave, rate = media.decode_audio(str(tmp_path / "out" / "demo_with_soundtrack.mp4"))
    assert abs(wave.shape[1] - 3 * rate) <= 1 and np.abs(wave).max() > 0.05


def test_curve_command_json_and_plot(tmp_path, capsys):
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0, 2.5], duration=4.0, fps=25, size=(96, 54))
    assert run("curve", clip.path, "--out", tmp_path / "c.json", "--plot", tmp_path / "c.png", "--encoder",
               "histogram") == 0
    data = json.load(open(tmp_path / "c.json"))
    assert {"times", "values", "peaks"} <= set(data)
    assert len(data["times"]) == len(data["values"]) == int(np.ceil(4.0 * 44100 / 2048))
    assert np.allclose(data["peaks"], clip.cut_times, atol=1 / 25 + 1e-6)
    assert open(tmp_path / "c.png", "rb").read(4) == b"\x89PNG"
    assert run("curve", clip.path, "--out", tmp_path / "d.json", "--length", "50") == 0
    assert len(json.load(open(tmp_path / "d.json"))["values"]) == 50


def test_mux_command(tmp_path, capsys):
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0], duration=2.0, fps=30, size=(64, 36))
    song = media.write_audio(str(tmp_path / "s.wav"), synth.click_track([0.5], 5.0), 44100)
    assert run("mux", clip.path, song, "--out", tmp_path / "o.mp4") == 0
    wave, sr = media.decode_audio(str(tmp_path / "o.mp4"))
    assert abs(wave.shape[1] - 2 * sr) <= 1024


def test_generate_command_tiny_model(tmp_path, capsys):
    ck = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[1.0], duration=2.0, fps=24, size=(64, 36))
    assert run("generate", clip.path, "--checkpoint", ck, "--steps", "3", "--cfg", "2", "--out", tmp_path / "g.mp4",
               "--audio-out", tmp_path / "g.wav") == 0
    wave, sr = media.decode_audio(str(tmp_path / "g.wav"))
    assert sr == 1600 and wave.shape[1] == round(2.0 * 1600)
    assert media.probe_video(str(tmp_path / "g.mp4")).has_audio


def _bad_inputs(tmp_path):
    good = synth.make_cut_clip(str(tmp_path / "good.mp4"), cut_times=[0.5], duration=1.0, fps=24, size=(64, 36)).path
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(open(good, "rb").read()[: os.path.getsize(good) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio_only = media.write_audio(str(tmp_path / "song.m4a"), synth.click_track([0.2], 1.0), 44100)
    one = synth.make_one_frame_clip(str(tmp_path / "one.mp4")).path
    return {"zero-byte": (str(zero), "zero.mp4"), "truncated": (str(trunc), "trunc.mp4"),
            "not a video": (str(text), "notes.mp4"),
            "audio-only": (audio_only, "song.m4a"), "one frame": (one, "at least 2 frames"),
            "missing": (str(tmp_path / "nope.mp4"), "nope.mp4")}


def test_bad_inputs_give_clear_errors_and_write_nothing(tmp_path, capsys):
    cases = _bad_inputs(tmp_path)
    for label, (path, must_name) in cases.items():
        out = tmp_path / f"out-{label.replace(' ', '_')}.json"
        assert run("curve", path, "--out", out) == 2, label
        err = capsys.readouterr().err
        assert "error:" in err and must_name in err, (label, err)
        assert not out.exists(), label
    # unknown encoder id
    good = str(tmp_path / "good.mp4")
    assert run("curve", good, "--encoder", "clip-vit", "--out", tmp_path / "x.json") == 2
    err = capsys.readouterr().err
    assert "unknown frame encoder 'clip-vit'" in err and "pixels" in err
    assert not (tmp_path / "x.json").exists()
    # mux of a bad video writes nothing
    song = media.write_audio(str(tmp_path / "s.wav"), synth.click_track([0.2], 1.0), 44100)
    for label in ("zero-byte", "truncated", "not a video", "audio-only"):
        assert run("mux", cases[label][0], song, "--out", tmp_path / "m.mp4") == 2
        assert not (tmp_path / "m.mp4").exists()
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".tmp") or f.endswith(".tmp")]
    assert leftovers == []
