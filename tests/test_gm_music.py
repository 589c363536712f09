"""benchmarks/gm_music.py: procedural GM arrangements (logic without FluidSynth; rendering only where
FluidSynth and a GM SoundFont are installed)."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    spec = importlib.util.spec_from_file_location("gm_music", os.path.join(ROOT, "benchmarks", "gm_music.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gm_music"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gm = _load()


def test_arrangements_are_deterministic_and_cover_styles_meters_and_tempos():
    a = gm.arrange(np.random.default_rng(3), 32.0)
    b = gm.arrange(np.random.default_rng(3), 32.0)
    assert a.caption() == b.caption() and a.hits == b.hits and len(a.notes) == len(b.notes)
    styles, meters = set(), set()
    for i, style in enumerate(sorted(gm.STYLES)):
        arr = gm.arrange(np.random.default_rng(i), 32.0, style=style)
        styles.add(arr.style)
        meters.add(arr.meter_name)
        assert 70 <= arr.tempo <= 160
        assert all(60 <= s.tempo <= 175 for s in arr.sections)
        parts = {n.part for n in arr.notes}
        assert parts == {"drums", "bass", "chords", "lead"}, (style, parts)
        assert all(0 <= n.start < n.end <= 32.0 and 0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 for n in arr.notes)
        cap = arr.caption()
        assert style in cap and f"{arr.tempo:.0f} BPM" in cap and arr.instruments["lead"] in cap
    assert styles == set(gm.STYLES) and len(meters) >= 4


def test_hits_fall_on_the_beat_grid_and_are_the_loudest_moments():
    """Every section holds a whole number of beats at its tempo (no jump of the beat grid at a hit),
    hit gaps vary (not all on bar lines), and each hit has a crash with kick."""
    gaps = []
    for seed in range(6):
        arr = gm.arrange(np.random.default_rng(seed), 64.0)
        assert arr.hits == [s.start for s in arr.sections[1:]]
        for s in arr.sections[:-1]:
            beats = (s.end - s.start) * s.tempo / 60.0
            assert abs(beats - round(beats)) < 1e-6 and round(beats) >= 1
        drums = [n for n in arr.notes if n.part == "drums"]
        for h in arr.hits:
            at = {n.pitch for n in drums if abs(n.start - h) < 1e-9}
            assert {gm.CRASH, gm.KICK} <= at
        gaps += list(np.diff([0.0] + arr.hits))
    assert min(gaps) < 2.0 < max(gaps) and len(set(np.round(gaps, 2))) > 10


def test_given_hits_fit_the_tempo_and_fills_lead_into_them():
    hits = [1.3, 2.9, 4.1, 6.6]
    arr = gm.arrange(np.random.default_rng(0), 8.0, style="rock", hits=hits)
    assert arr.hits == hits
    for s in arr.sections[:-1]:
        beats = (s.end - s.start) * s.tempo / 60.0
        assert abs(beats - round(beats)) < 1e-6
    assert gm.fitted_tempo(1.5, 120) == pytest.approx(120.0)  # 3 beats
    assert gm.fitted_tempo(1.3, 120) == pytest.approx(60 * 3 / 1.3)
    assert 60 <= gm.fitted_tempo(0.4, 70) <= 175 and 60 <= gm.fitted_tempo(7.9, 160) <= 175


def test_midi_file_has_the_four_parts(tmp_path):
    pretty_midi = pytest.importorskip("pretty_midi")
    arr = gm.arrange(np.random.default_rng(1), 16.0, style="funk")
    path = gm.write_midi(arr, str(tmp_path / "a.mid"))
    pm = pretty_midi.PrettyMIDI(path)
    by_name = {i.name: i for i in pm.instruments}
    assert set(by_name) == {"drums", "bass", "chords", "lead"} and by_name["drums"].is_drum
    assert by_name["bass"].program == gm.INSTRUMENTS["bass"][arr.instruments["bass"]]
    assert sum(len(i.notes) for i in pm.instruments) == len(arr.notes)


def test_render_with_fluidsynth():
    pytest.importorskip("pretty_midi")
    try:
        gm.find_fluidsynth()
    except RuntimeError as exc:
        assert "fluid-soundfont-gm" in str(exc)
        pytest.skip(str(exc))
    import librosa

    arr = gm.arrange(np.random.default_rng(2), 6.0, style="pop")
    wave = gm.render_arrangement(arr, 16000)
    assert wave.shape == (96000,) and wave.dtype == np.float32
    assert 0.85 < float(np.abs(wave).max()) <= 0.9 + 1e-6
    # pitched music: most of the energy is harmonic (HPSS)
    spec = librosa.stft(wave)
    harm, _ = librosa.decompose.hpss(spec)
    assert float((np.abs(harm) ** 2).sum() / (np.abs(spec) ** 2).sum()) > 0.3
