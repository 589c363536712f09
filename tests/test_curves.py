"""Event curve maths (paper eq. 2–4) and hit points on generated clips."""

from fractions import Fraction

import numpy as np
import pytest

from v2m_zero.core.timing import curves, encoders
from v2m_zero.core.eval import synth
from v2m_zero.core.timing.curves import Curve, Features
from v2m_zero.core.errors import CurveError

SAO_RATE = 44100 / 2048
CUTS = [0.9, 2.0, 2.75, 4.1]


# ---------------------------------------------------------------- pure maths
def test_cosine_dissimilarity_matches_definition():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(6, 5))
    a = curves.cosine_dissimilarity(f)
    for k in range(5):
        s = f[k] @ f[k + 1] / (np.linalg.norm(f[k]) * np.linalg.norm(f[k + 1]))
        assert a[k] == pytest.approx(1 - s, abs=1e-12)


def test_standardise_zero_mean_unit_variance_and_constant_gives_zeros():
    a = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    z = curves.standardise(a)
    assert z.mean() == pytest.approx(0, abs=1e-12)
    assert z.std() == pytest.approx(1, abs=1e-12)
    const = curves.standardise(np.full(10, 0.37))
    assert np.all(const == 0) and not np.any(np.isnan(const))


def test_event_curve_times_are_the_frame_after_the_change():
    t = np.array([0.0, 0.04, 0.1, 0.13, 0.2])  # variable spacing
    f = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)
    c = curves.event_curve(Features(f, t, 0.25))
    np.testing.assert_allclose(c.times, t[1:])
    assert np.argmax(c.values) == 1 and c.times[1] == 0.1


def test_event_curve_needs_two_frames():
    with pytest.raises(CurveError, match="at least 2 frames"):
        curves.event_curve(Features(np.ones((1, 3)), np.zeros(1), 0.04))


def test_resample_is_exact_mean_by_time_and_keeps_spikes():
    # A single 1/60 s spike must survive down-sampling to 21.5 Hz with its area.
    t = np.arange(600) / 60.0
    v = np.zeros(600)
    v[301] = 60.0  # area 1.0 over [301/60, 302/60)
    c = Curve(v, t, 10.0)
    r = curves.resample_curve(c, rate=SAO_RATE)
    assert len(r) == curves.latent_length(10.0, SAO_RATE) == 216
    assert r.values.sum() / SAO_RATE == pytest.approx(1.0, rel=1e-5)
    assert abs(r.times[np.argmax(r.values)] - 301 / 60) < 1 / SAO_RATE
    # constants are preserved, and a given length is honoured exactly
    flat = curves.resample_curve(Curve(np.full(600, 2.5), t, 10.0), length=123)
    assert len(flat) == 123 and np.allclose(flat.values, 2.5)


def test_resample_needs_exactly_one_target():
    c = Curve(np.zeros(3), np.arange(3.0), 3.0)
    with pytest.raises(CurveError):
        curves.resample_curve(c)
    with pytest.raises(CurveError):
        curves.resample_curve(c, rate=2.0, length=5)


def test_hann_kernel_matches_paper_size_and_is_normalised():
    k = curves.hann_kernel(curves.DEFAULT_SMOOTHING_SECONDS, curves.PAPER_LATENT_RATE)
    assert len(k) == 31
    assert k.sum() == pytest.approx(1.0)
    assert np.argmax(k) == 15 and np.allclose(k, k[::-1])
    assert len(curves.hann_kernel(curves.DEFAULT_SMOOTHING_SECONDS, SAO_RATE)) == 55


def test_smooth_preserves_peak_location_and_constants():
    v = np.zeros(200)
    v[77] = 1.0
    c = Curve(v, np.arange(200) / SAO_RATE, 200 / SAO_RATE, rate=SAO_RATE)
    s = curves.smooth_curve(c, 1.0)
    assert np.argmax(s.values) == 77
    assert s.values.sum() == pytest.approx(1.0, rel=1e-6)
    flat = curves.smooth_curve(c.replace(values=np.full(200, 3.0)), 2.0)
    assert np.allclose(flat.values, 3.0)
    with pytest.raises(CurveError, match="uniformly sampled"):
        curves.smooth_curve(Curve(v, np.arange(200.0), 200.0), 1.0)


def test_curve_json_round_trip():
    c = curves.smooth_curve(curves.resample_curve(Curve(np.arange(10.0), np.arange(10) / 10, 1.0), rate=20), 0.2)
    d = Curve.from_dict(c.to_dict())
    np.testing.assert_allclose(d.values, c.values, atol=1e-6)
    assert d.rate == c.rate and d.duration == c.duration


def test_curve_rejects_nan():
    with pytest.raises(CurveError, match="NaN"):
        Curve(np.array([0.0, np.nan]), np.array([0.0, 1.0]), 2.0)


def test_find_peaks_threshold_and_gap():
    t = np.arange(100) / 10
    v = np.zeros(100)
    v[[20, 21, 60]] = [5.0, 4.0, 6.0]
    peaks = curves.find_peaks(Curve(v, t, 10.0), min_gap=0.25)
    np.testing.assert_allclose(peaks, [2.0, 6.0])
    assert len(curves.find_peaks(Curve(np.zeros(10), np.arange(10.0), 10.0))) == 0


# ---------------------------------------------------------------- generated clips
def _clip_curve(tmp_path, fps, *, vfr=False, encoder="pixels", name="c.mp4", cuts=CUTS, duration=5.0):
    clip = synth.make_cut_clip(str(tmp_path / name), cut_times=cuts, duration=duration, fps=fps, vfr=vfr, size=(96, 54))
    feats = encoders.encode_video(clip.path, encoders.get_encoder(encoder))
    return clip, curves.event_curve(feats)


@pytest.mark.parametrize("fps", [12, 24, 25, Fraction(30000, 1001), 60])
@pytest.mark.parametrize("encoder", ["pixels", "histogram"])
def test_peaks_within_one_frame_of_cuts(tmp_path, fps, encoder):
    clip, raw = _clip_curve(tmp_path, fps, encoder=encoder)
    peaks = curves.find_peaks(raw)
    assert len(peaks) == len(clip.cut_times), (peaks, clip.cut_times)
    frame = 1.0 / float(fps)
    for p, c in zip(peaks, clip.cut_times):
        assert abs(p - c) <= frame + 1e-6


def test_peaks_within_one_frame_vfr(tmp_path):
    clip, raw = _clip_curve(tmp_path, 30, vfr=True)
    peaks = curves.find_peaks(raw)
    assert len(peaks) == len(clip.cut_times)
    gaps = np.diff(clip.frame_times)
    assert gaps.max() - gaps.min() > 0.01  # really variable
    for p, c in zip(peaks, clip.cut_times):
        # the frame after the cut, by its own (variable) duration
        i = int(np.searchsorted(clip.frame_times, c))
        assert abs(p - c) <= (clip.frame_times[i + 1] - clip.frame_times[i]) + 1e-6
    # curve times are the real, uneven frame times
    np.testing.assert_allclose(raw.times, clip.frame_times[1:], atol=1e-4)


def test_same_content_at_different_fps_gives_same_curve(tmp_path):
    smooth = {}
    for fps in (24, 60):
        _, raw = _clip_curve(tmp_path, fps, name=f"c{fps}.mp4")
        smooth[fps] = curves.smooth_curve(curves.resample_curve(raw, rate=SAO_RATE))
    a, b = smooth[24].values, smooth[60].values
    assert len(a) == len(b)
    # aligned within one latent frame: the best lag is 0 ± 1 and the shapes agree
    za, zb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    lags = range(-3, 4)
    corr = [np.mean(np.roll(za, k) * zb) for k in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 1
    assert max(corr) > 0.95
    # around every cut the smoothed curves peak on the same latent frame (± 1)
    for c in CUTS:
        win = np.flatnonzero(np.abs(smooth[24].times - c) <= 0.5)
        ia, ib = win[np.argmax(a[win])], win[np.argmax(b[win])]
        assert abs(int(ia) - int(ib)) <= 1, (c, ia, ib)


def test_static_clip_gives_zero_curve(tmp_path):
    clip = synth.make_static_clip(str(tmp_path / "s.mp4"), duration=2.0, fps=24)
    for enc in ("pixels", "histogram"):
        raw = curves.event_curve(encoders.encode_video(clip.path, encoders.get_encoder(enc)))
        assert np.all(raw.values == 0)
        sm = curves.conditioning_curve(encoders.encode_video(clip.path, encoders.get_encoder(enc)), rate=SAO_RATE)
        assert np.all(sm.values == 0) and len(curves.find_peaks(raw)) == 0


def test_streaming_curve_equals_feature_curve(tmp_path):
    clip = synth.make_cut_clip(str(tmp_path / "s.mp4"), cut_times=CUTS, duration=5.0, fps=30, size=(96, 54))
    enc = encoders.get_encoder("pixels")
    ref = curves.event_curve(encoders.encode_video(clip.path, enc, batch=7))
    got = encoders.encode_video_curve(clip.path, enc, batch=7)
    np.testing.assert_allclose(got.values, ref.values, atol=1e-9)
    np.testing.assert_allclose(got.times, ref.times)
    assert got.duration == ref.duration
    one = synth.make_one_frame_clip(str(tmp_path / "one.mp4"))
    with pytest.raises(CurveError, match="at least 2 frames"):
        encoders.encode_video_curve(one.path, enc)
