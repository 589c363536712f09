"""Smoke test of benchmarks/zero_pair_toy.py at toy scale (--quick): it runs end to end and writes a
loadable demo checkpoint. The research target (SCH − sch_null) is not asserted here."""

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "zero_pair_toy.py")


def _load():
    pytest.importorskip("scenedetect")
    spec = importlib.util.spec_from_file_location("zero_pair_toy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_music_patterns_are_deterministic_and_in_range():
    toy = _load()
    a = [toy.segment_onsets(np.random.default_rng(3), 8.0) for _ in range(1)]
    b = [toy.segment_onsets(np.random.default_rng(3), 8.0) for _ in range(1)]
    assert a == b
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(60):
        kind, on = toy.segment_onsets(rng, 8.0)
        kinds.add(kind)
        assert all(0 <= t < 8.0 for t in on) and on == sorted(on)
    assert kinds == set(toy.PATTERNS)
    cuts = toy.cut_times(np.random.default_rng(1), 8.0)
    assert cuts and all(0.5 <= c < 7.6 for c in cuts) and np.all(np.diff(cuts) >= 0.7 - 1e-9)


def test_quick_run_end_to_end(tmp_path):
    toy = _load()
    from v2m_zero.core import generate
    from v2m_zero.model_io.checkpoint import read_metadata

    out = tmp_path / "toy"
    result = toy.main(["--quick", "--out", str(out), "--seed", "1"])
    ckpt = result["checkpoint"]
    assert os.path.isfile(ckpt) and os.path.getsize(ckpt) < 5e6
    assert (out / "results.json").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["summary"]) == {"curve", "text-only", "oracle (clicks at cuts)", "random clicks"}
    for name, s in saved["summary"].items():
        assert s["n_videos"] == 2, name
    # the spelled-out curves/flow sampling and generate.* agree exactly
    assert result["generate_vs_manual_max_abs_diff"] == 0.0

    meta = read_metadata(ckpt)
    assert meta["demo"] is True and meta["objective"] == "rectified_flow" and meta["text"] == {"type": "none"}
    assert meta["codec"]["type"] == "patch" and meta["codec"]["config"]["scale"] > 0
    assert meta["curve"]["encoder"] == "pixels" and meta["curve"]["music_encoder"] == "logmel"
    assert meta["curve"]["smoothing_seconds"] == toy.SMOOTHING
    assert meta["latent_rate"] == toy.SAMPLE_RATE / toy.PATCH and meta["sample_rate"] == toy.SAMPLE_RATE

    gen = generate.load_music_model(ckpt, device="cpu")  # fp16 weights cast to fp32
    assert next(gen.dit.parameters()).dtype.is_floating_point
    assert gen.codec.scale == meta["codec"]["config"]["scale"]
    clip = toy.make_videos(str(tmp_path / "v"), 1, seed=5)[0]
    from v2m_zero.core.timing import encoders

    raw = encoders.encode_video_curve(clip.path, encoders.get_encoder("pixels"))
    cond = generate.conditioning_curve_for(gen, raw, clip.duration)
    lat = generate.sample_latents(gen, cond, "", generate.SamplingSettings(steps=2, cfg=3.0, seed=0),
                                  duration=clip.duration)
    wave = generate.decode_latents(gen, lat, clip.duration)
    assert wave.shape == (1, int(round(clip.duration * toy.SAMPLE_RATE))) and np.isfinite(wave).all()
