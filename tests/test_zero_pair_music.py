"""benchmarks/zero_pair_music.py and real_footage.py: composites with known cuts (synthetic stand-ins
for the registry clips), and a smoke run at toy scale where FluidSynth is installed. The research
target is not asserted here (see benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def fake_footage(tmp_path):
    """Three synthetic clips standing in for the registry clips (no download)."""
    from v2m_zero.core import examples

    paths = {}
    for i, (dur, fps) in enumerate(((4.0, 25), (3.0, 10), (6.0, 30))):
        p = str(tmp_path / f"src{i}.mp4")
        examples.make_cut_clip(p, cut_times=[], duration=dur, fps=fps, size=(96, 54), seed=i)
        paths[f"src{i}.mp4"] = p
    return paths


def test_composite_has_frame_aligned_cuts_and_exact_length(tmp_path, fake_footage):
    rf = _load("real_footage")
    from v2m_zero.core.timing import media

    footage = rf.Footage(fake_footage, size=(64, 36))
    assert all(f.shape[1:] == (36, 64, 3) for f, _ in footage.clips.values())
    rng = np.random.default_rng(0)
    c = footage.composite(str(tmp_path / "c.mp4"), rng, duration=8.0, fps=24)
    assert c.duration == 8.0 and len(c.shots) == len(c.cuts) + 1
    assert all(abs(x * 24 - round(x * 24)) < 1e-4 for x in c.cuts)
    gaps = np.diff([0.0] + c.cuts + [8.0])
    assert gaps.min() >= 1.0 - 1e-9  # no sliver of a shot
    assert all(a[0] != b[0] for a, b in zip(c.shots, c.shots[1:]))  # never the same clip twice in a row
    info = media.probe_video(c.path)
    assert abs(float(info.duration) - 8.0) < 1e-6
    # the same seed gives the same composite
    again = footage.composite(str(tmp_path / "d.mp4"), np.random.default_rng(0), duration=8.0, fps=24)
    assert again.cuts == c.cuts and again.shots == c.shots


def test_music_measures_tell_pitch_from_noise():
    zpm = _load("zero_pair_music")
    sr = 16000
    t = np.arange(sr * 2) / sr
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)).astype(np.float32) * 0.2
    noise = np.random.default_rng(0).standard_normal(t.size).astype(np.float32) * 0.2
    a, b = zpm.music_measures(tone, sr), zpm.music_measures(noise, sr)
    assert a["harmonic_share"] > 0.9 and b["harmonic_share"] < 0.6
    assert a["chroma_peak_share"] > 0.2 and b["chroma_peak_share"] < 0.15


def test_quick_run_end_to_end(tmp_path, fake_footage, monkeypatch):
    pytest.importorskip("pretty_midi")
    pytest.importorskip("scenedetect")
    gm = _load("gm_music")
    try:
        gm.find_fluidsynth()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    zpm = _load("zero_pair_music")
    monkeypatch.setattr(zpm.real_footage, "fetch", lambda log=None: fake_footage)
    from v2m_zero.model_io.checkpoint import read_metadata

    result = zpm.main(["--quick", "--out", str(tmp_path / "run"), "--seed", "1", "--videos", "1"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(saved["summary"]) == {"curve", "text-only", "mismatched curve (next video's)",
                                     "reference: GM music with hits at the cuts",
                                     "reference: GM music with hits at random times"}
    for fd in saved["frechet"].values():  # one video: no Gaussian to fit, so no distance
        assert fd["n_video"] == 1 and fd["training music"] is None
    meta = read_metadata(result["checkpoint"])
    assert meta["demo"] is True and meta["codec"]["type"] == "mel" and meta["latent_rate"] == 62.5
    assert meta["curve"]["encoder"] == "pixels" and meta["curve"]["music_encoder"] == "logmel"
    assert os.path.getsize(result["checkpoint"]) < 10e6
