"""Curve plots (matplotlib, Agg canvas): size, no global matplotlib state, decimation, thinning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

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


# ---------------------------------------------------------------- every node preview fits and reads
DEMO_NOTE = ("DEMO checkpoint: a 4.6 M-parameter DiT trained on a CPU on procedurally arranged General MIDI music "
             "rendered with FluidSynth (benchmarks/zero_pair_music.py); 16 kHz mono, Griffin-Lim phase; not a real "
             "music model")
NODE_PX = 420 * 0.72  # a preview drawn a node's width wide (the templates' >= 420 canvas px) at zoom >= 0.72
CUTS = [1.5, 3.0, 4.25, 6.0, 7.5, 8.0, 10.0]


def _smooth(n=258, rate=21.533203):
    x = np.arange(n) / rate
    return Curve(values=sum(np.exp(-((x - c) / 0.4) ** 2) for c in CUTS).astype(np.float32), times=x,
                 duration=12.0, rate=rate)


PLOTS = {  # what each node draws (arguments as the node passes them), at the preview size
    "event_curve": lambda: plot.figure([("event curve (pixels)", _curve(288, 24.0))], peaks=CUTS,
                                       title="event curve (pixels), 7 hit points"),
    "smooth_curve": lambda: plot.figure([("smoothed", _smooth()), ("raw", _curve(288, 24.0, seed=2))], peaks=CUTS,
                                        title="smoothed: 0.2 s Hann, the model's smoothing, 750 samples at 62.500 Hz"),
    "sampler": lambda: plot.figure([("conditioning curve", _smooth(772, 64.333))],
                                   marks=[("windows", [0.0, 3.07]), ("joins", [3.5])],
                                   title="772 latent frames, 12.00 s; 2 windows of 8.93 s, overlap 2.00 s, "
                                         "crossfade 0.5 s at the calmest point",
                                   notes=[DEMO_NOTE, "the curve was smoothed for 2.52 s but the checkpoint expects "
                                                     "0.2 s: re-smoothed"]),
    "sync_report": lambda: plot.figure([("event curve", _curve(288, 24.0))],
                                       marks=[("cuts", CUTS), ("beats", np.arange(0.3, 12, 0.625))],
                                       title="SCH 0.857  chance 0.296"),
    "align_music": lambda: plot.figure([("event curve", _curve(288, 24.0))], peaks=CUTS,
                                       marks=[("hits", CUTS), ("before", np.arange(0.2, 12, 0.627)),
                                              ("after", np.arange(0.0, 12, 0.6))],
                                       title="Scene Cut Hit on 7 hit points: 0.14 -> 0.86 (chance level 0.29 -> "
                                             "0.55, tolerance ±0.1 s)"),
}


def _texts(fig):
    """The text the picture shows: every visible Text, tick labels only for ticks inside the axis range
    (matplotlib keeps labels of ticks out of view, which it does not draw)."""
    from matplotlib.text import Text

    ticks, shown = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                labels = (tick.label1, tick.label2)
                ticks.update(map(id, labels))
                if lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    shown += [lb for lb in labels if lb.get_visible()]
    shown += [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible()]
    return [t for t in shown if t.get_text().strip()]


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_node_preview_text_stays_inside_the_picture_and_reads_at_template_zoom(name):
    fig = PLOTS[name]()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = _texts(fig)
    assert len(texts) >= 6  # title, legend, tick labels, axis labels were drawn
    for t in texts:
        e = t.get_window_extent(renderer)
        assert (e.x0 >= box.x0 - 0.5 and e.x1 <= box.x1 + 0.5 and e.y0 >= box.y0 - 0.5
                and e.y1 <= box.y1 + 0.5), f"{name}: {t.get_text()[:60]!r} {e.bounds} outside {box.bounds}"
        screen_px = t.get_fontsize() * fig.dpi / 72.0 * NODE_PX / box.width
        assert screen_px >= 9.0, f"{name}: {t.get_text()[:40]!r} would be {screen_px:.1f} px on the canvas"
    # the plot uses the width: the curve axes span most of the picture
    main = max(fig.axes, key=lambda a: a.get_window_extent(renderer).height)
    assert main.get_window_extent(renderer).width >= 0.8 * box.width, name


def test_notes_grow_the_picture_and_keep_the_plot_height():
    plain = plot.plot_curves([("c", _smooth())], title="t")
    noted = plot.plot_curves([("c", _smooth())], title="t", notes=[DEMO_NOTE])
    assert plain.shape == (plot.PREVIEW_HEIGHT, plot.PREVIEW_WIDTH, 3)
    assert noted.shape[1] == plot.PREVIEW_WIDTH and noted.shape[0] > plain.shape[0] + 60
