"""CurveSpec: one typed curve spec with one default, read from every checkpoint we ever wrote."""

from __future__ import annotations

import os

import numpy as np
import pytest

from v2m_zero.core.errors import CurveError
from v2m_zero.core.timing import curves
from v2m_zero.core.timing.curves import Curve, Features
from v2m_zero.core.timing.spec import CurveSpec
from v2m_zero.model_io.checkpoint import read_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo", "v2m-zero-demo-music.safetensors")


def test_the_one_default_is_the_papers_kernel():
    spec = CurveSpec()
    assert spec.smoothing_seconds == pytest.approx(31 / 12.3)
    assert spec.smoothing_seconds == curves.DEFAULT_SMOOTHING_SECONDS
    assert spec.encoder == "dinov2-large" and spec.standardise


def test_metadata_round_trip_keeps_every_field():
    spec = CurveSpec(encoder="dinov2-base", encoder_options={"pooling": "cls"}, music_encoder="logmel",
                     music_encoder_options={"n_mels": 64}, smoothing_seconds=1.5, clip_seconds=8.0, channels=1,
                     extra={"note": "kept"})
    d = spec.to_dict()
    assert d["music_encoder_spec"] == {"id": "logmel", "n_mels": 64} and d["window"] == "hann" and d["note"] == "kept"
    assert CurveSpec.from_dict(d) == spec


def test_reads_the_bundled_demo_checkpoint():
    meta = read_metadata(DEMO)
    spec = CurveSpec.from_dict(meta["curve"])
    assert spec.encoder == "pixels" and spec.music_encoder == "logmel"
    assert spec.smoothing_seconds == pytest.approx(0.2) and spec.clip_seconds == 8.0
    assert spec.music_encoder_options["n_mels"] == 64
    assert spec.to_dict() == {**meta["curve"]}


def test_missing_metadata_takes_the_defaults_and_bad_values_are_refused():
    assert CurveSpec.from_dict(None) == CurveSpec()
    assert CurveSpec.from_dict({"smoothing_seconds": 0.5}).smoothing_seconds == 0.5
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(CurveError, match="smoothing"):
            CurveSpec(smoothing_seconds=bad)
    with pytest.raises(CurveError, match="window"):
        CurveSpec.from_dict({"window": "gaussian"})
    with pytest.raises(CurveError, match="rate"):
        CurveSpec(rate=0.0)


def test_cache_spec_gives_the_training_curve_spec():
    cache = {"encoder": {"id": "logmel", "n_mels": 32}, "smoothing_seconds": 0.8, "standardise": True,
             "clip_duration": 4.0}
    spec = CurveSpec.from_cache(cache, encoder="pixels")
    assert ((spec.encoder, spec.music_encoder, spec.smoothing_seconds, spec.clip_seconds)
            == ("pixels", "logmel", 0.8, 4.0))
    assert spec.music_encoder_options == {"n_mels": 32}


def test_conditioning_curve_is_eq_2_to_4():
    rng = np.random.default_rng(0)
    feats = Features(values=rng.standard_normal((50, 8)).astype(np.float32), times=np.arange(50) / 10.0, duration=5.0)
    spec = CurveSpec(smoothing_seconds=0.6)
    got = spec.conditioning_curve(feats, length=40)
    want = curves.smooth_curve(curves.resample_curve(curves.event_curve(feats), length=40), 0.6)
    np.testing.assert_array_equal(got.values, want.values)
    # the spec's own grid is used when none is given, a given one wins
    assert len(spec.replace(rate=20.0).conditioning_curve(feats)) == 100
    assert len(spec.replace(rate=20.0).conditioning_curve(feats, length=7)) == 7
    with pytest.raises(CurveError, match="grid"):
        spec.smooth(Curve(np.zeros(3), np.arange(3.0), 1.0))
