"""One cut-detector interface: every detector returns cut times (s) with the video's duration."""

from __future__ import annotations

import numpy as np
import pytest

from v2m_zero.core.errors import MediaError, V2MError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import cuts

CUTS = [1.0, 2.25, 3.5]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cuts") / "c.mp4")
    return synth.make_cut_clip(path, cut_times=CUTS, duration=5.0, fps=24, size=(160, 90), motion=False)


@pytest.mark.parametrize("detector, tolerance", [("scenedetect", 1.5 / 24), ("histogram", 0.15), ("curve_peaks", 1e-6)])
def test_every_detector_finds_the_cuts(clip, detector, tolerance):
    if detector == "scenedetect":
        pytest.importorskip("scenedetect")
    found = cuts.get_detector(detector).detect(clip.path)
    assert isinstance(found, cuts.CutTimes) and isinstance(found, list)
    assert len(found) == len(clip.cut_times)
    np.testing.assert_allclose(found, clip.cut_times, atol=tolerance)
    assert found.duration == pytest.approx(clip.duration, abs=1 / 24)
    assert cuts.detect_cuts(clip.path, detector) == found


def test_registry_and_errors(tmp_path):
    assert set(cuts.detector_ids()) >= {"scenedetect", "histogram", "curve_peaks"}
    with pytest.raises(V2MError, match="unknown cut detector"):
        cuts.get_detector("magic")
    with pytest.raises(MediaError, match="not found"):
        cuts.SceneDetectCuts().detect(str(tmp_path / "missing.mp4"))
    static = synth.make_static_clip(str(tmp_path / "s.mp4"))
    assert cuts.HistogramCuts().detect(static.path) == [] and cuts.CurvePeakCuts().detect(static.path) == []
