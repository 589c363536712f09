"""Curve plots (matplotlib, Agg canvas): size, no global matplotlib state, decimation, thinning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from v2m_zero.core.timing import plot
from v2m_zero.core.timing.curves import Curve


def _curve(n: int, rate: float, seed: int = 0) -> Curve:
    rng = np.random.default_rng(seed)
    return Curve(values=rng.standard_normal(n).astype(np.float32), times=np.arange(n) / rate, duration=n / rate,
                 rate=rate)


def test_picture_has_the_requested_size_and_is_not_blank():
    img = plot.plot_curves([("raw", _curve(240, 24.0))], peaks=[1.0, 5.0], marks=[("cuts", [2.0])], width=640,
                           height=300, title="t")
    assert img.shape == (300, 640, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # lines, text and markers were drawn


def test_no_pyplot_and_no_global_matplotlib_state():
    code = (
        "import matplotlib, sys, numpy as np\n"
        "rc = matplotlib.rcParams\n"
        "state = lambda: {k: rc._get(k) for k in rc}  # _get: reading 'backend' must not resolve it\n"
        "before = state()\n"
        "from v2m_zero.core.timing import plot\n"
        "from v2m_zero.core.timing.curves import Curve\n"
        "c = Curve(values=np.zeros(10, np.float32), times=np.arange(10) / 10.0, duration=1.0, rate=10.0)\n"
        "plot.plot_curves([('c', c)], peaks=[0.5], marks=[('m', [0.2])], title='x')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert state() == before, 'global rcParams changed'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_decimation_keeps_every_extreme_of_a_long_curve():
    rng = np.random.default_rng(1)
    t = np.arange(200_000) / 24.0
    v = rng.standard_normal(t.size)
    v[123_456] = 50.0  # one spike in a long video must survive
    v[7] = -40.0
    td, vd = plot._decimate(t, v, 800)
    assert td.size <= 2 * 800 + 2
    assert vd.max() == 50.0 and vd.min() == -40.0
    assert np.all(np.diff(td) > 0)
    # and each column keeps its own min and max
    cols = np.clip(((td - t[0]) / (t[-1] - t[0]) * 800).astype(int), 0, 799)
    assert len(np.unique(cols)) >= 790


def test_hit_points_are_thinned_to_the_width():
    times = np.linspace(0, 3600, 5000)
    shown = plot._thin(times, seconds_per_px=3600 / 800)
    assert 150 < shown.size <= 800 / plot._MIN_GAP_PX + 1
    assert np.all(np.diff(shown) >= plot._MIN_GAP_PX * 3600 / 800 - 1e-9)
    assert plot._thin([3.0, 1.0], 0.001).tolist() == [1.0, 3.0]


def test_long_video_plot_is_fast_enough_to_draw_and_labels_minutes():
    # an hour at 24 fps with 900 hit points and 7200 beats draws without error at preview size
    img = plot.plot_curves([("event curve", _curve(86_400, 24.0))], peaks=np.linspace(1, 3599, 900),
                           marks=[("cuts", np.linspace(1, 3599, 800)), ("beats", np.arange(0, 3600, 0.5))], width=512,
                           height=256)
    assert img.shape == (256, 512, 3)
