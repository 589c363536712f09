"""core.media and core.synth: exact probing, true timestamps, audio decode, the mux length contract."""

import hashlib
import io
import os
import types
from fractions import Fraction

import av
import numpy as np
import pytest

from v2m_zero.core.timing import media
from v2m_zero.core.eval import synth
from v2m_zero.core.errors import MediaError

FPS_CASES = [12, 24, 25, Fraction(30000, 1001), 60]


def _video_packets(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return [(p.pts, p.dts) for p in c.demux(v) if p.size], v.time_base


def _audio_packets(path):
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        return [(p.pts, p.duration) for p in c.demux(a) if p.size], a.time_base


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _all_times(src, **kw):
    return np.concatenate([b.times for b in media.iter_frames(src, **kw)])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One short CFR clip per fps and one VFR clip, shared by the read-only tests."""
    d = tmp_path_factory.mktemp("clips")
    out = {}
    for fps in FPS_CASES:
        out[fps] = synth.make_cut_clip(d / f"cfr_{float(fps):.3f}.mp4", cut_times=[0.5], duration=1.3, fps=fps)
    out["vfr"] = synth.make_cut_clip(d / "vfr.mp4", cut_times=[0.4, 0.9], duration=1.5, vfr=True, seed=3)
    return out


# ------------------------------------------------------------------ probe


@pytest.mark.parametrize("fps", FPS_CASES, ids=str)
def test_probe_exact_cfr(clips, fps):
    clip = clips[fps]
    info = media.probe_video(clip.path)
    n = round(1.3 * fps)
    assert info.frame_count == n == len(clip.frame_times)
    assert info.duration == pytest.approx(float(n / Fraction(fps)), abs=1e-9)
    assert info.duration == pytest.approx(clip.duration, abs=1e-9)
    assert info.fps == pytest.approx(float(fps), rel=1e-6)
    assert (info.width, info.height) == (160, 90)
    assert info.start_time == 0.0 and not info.has_audio and info.audio_sample_rate is None


def test_ntsc_stored_as_30000_1001(tmp_path):
    frames = np.zeros((5, 16, 16, 3), np.uint8)
    for fps in (29.97, Fraction(30000, 1001)):
        out = media.write_video(frames, fps, tmp_path / "n.mp4")
        with av.open(out) as c:
            assert c.streams.video[0].average_rate == Fraction(30000, 1001)
        assert media.probe_video(out).duration == pytest.approx(5 * 1001 / 30000, abs=1e-9)


def test_probe_exact_vfr(clips):
    clip = clips["vfr"]
    info = media.probe_video(clip.path)
    assert info.frame_count == len(clip.frame_times)
    assert info.duration == pytest.approx(clip.duration, abs=1e-6)
    gaps = np.diff(clip.frame_times)
    assert gaps.min() >= 1 / 60 - 1e-4 and gaps.max() <= 1 / 20 + 1e-4 and gaps.std() > 1e-3


def test_probe_file_like(clips):
    data = open(clips[24].path, "rb").read()
    info = media.probe_video(io.BytesIO(data))
    assert info.frame_count == 31 and info.duration == pytest.approx(31 / 24)
    batches = list(media.iter_frames(io.BytesIO(data), size=None))
    assert sum(len(b) for b in batches) == 31


# ------------------------------------------------------------------ iter_frames


@pytest.mark.parametrize("key", [24, Fraction(30000, 1001), "vfr"], ids=str)
def test_iter_frames_times_equal_written_pts(clips, key):
    clip = clips[key]
    times = _all_times(clip.path, size=None)
    assert times[0] == 0.0
    np.testing.assert_allclose(times, clip.frame_times, rtol=0, atol=1e-6)


def test_iter_frames_size_and_dtype(tmp_path):
    clip = synth.make_cut_clip(tmp_path / "c.mp4", cut_times=[], duration=0.25, fps=24, size=(320, 180))
    b = next(iter(media.iter_frames(clip.path, size=64)))
    assert b.frames.dtype == np.uint8 and b.frames.shape[1:] == (64, 114, 3)
    assert b.times.dtype == np.float64
    b = next(iter(media.iter_frames(clip.path, size=32)))  # 5.6x: the two-stage path
    assert b.frames.shape[1:] == (32, 57, 3)
    b = next(iter(media.iter_frames(clip.path, size=1000)))  # never upscale
    assert b.frames.shape[1:] == (180, 320, 3)
    b = next(iter(media.iter_frames(clip.path, size=None)))
    assert b.frames.shape[1:] == (180, 320, 3)
    # portrait keeps the aspect ratio too
    tall = media.write_video(np.zeros((2, 200, 100, 3), np.uint8), 24, tmp_path / "t.mp4")
    assert next(iter(media.iter_frames(tall, size=50))).frames.shape[1:] == (100, 50, 3)


def test_iter_frames_downscale_matches_box_filter(tmp_path):
    """The fast two-stage scaler is close to an exact box (area) average of the native frame."""
    clip = synth.make_cut_clip(tmp_path / "c.mp4", cut_times=[], duration=0.1, fps=24, size=(640, 384))
    small = next(iter(media.iter_frames(clip.path, size=32))).frames[0].astype(float)  # 53x32
    full = next(iter(media.iter_frames(clip.path, size=None))).frames[0].astype(float)
    box = full[: 32 * 12, : 53 * 12].reshape(32, 12, 53, 12, 3).mean(axis=(1, 3))
    assert np.abs(small - box).mean() < 4.0


def test_iter_frames_sample_fps_picks_by_time(clips):
    clip = clips[60]  # 78 frames at 60 fps
    times = _all_times(clip.path, size=32, sample_fps=10)
    ft = clip.frame_times
    want = []
    for k in range(int(ft[-1] * 10) + 1):
        idx = np.flatnonzero(ft >= k / 10 - 1e-9)
        if len(idx) and (not want or ft[idx[0]] > want[-1]):
            want.append(ft[idx[0]])
    np.testing.assert_allclose(times, want, atol=1e-9)
    # VFR: every tick gets the first frame at or after it, each frame at most once
    vclip = clips["vfr"]
    vt = _all_times(vclip.path, size=32, sample_fps=7)
    assert np.all(np.diff(vt) > 0)
    for k in range(int(vclip.frame_times[-1] * 7) + 1):
        first = vclip.frame_times[vclip.frame_times >= k / 7 - 1e-9][0]
        assert np.any(np.abs(vt - first) < 1e-6)
    # faster than the frame rate: no duplicates, every frame once
    assert len(_all_times(clip.path, size=32, sample_fps=1000)) == len(ft)


def test_iter_frames_streams_in_bounded_batches(clips):
    gen = media.iter_frames(clips[60].path, size=32, batch=16)
    assert isinstance(gen, types.GeneratorType)
    sizes = [len(b) for b in gen]
    assert max(sizes) <= 16 and sizes[:-1] == [16] * (len(sizes) - 1) and sum(sizes) == 78
    with pytest.raises(ValueError):
        media.iter_frames(clips[60].path, batch=0)


# ------------------------------------------------------------------ audio


def test_decode_audio_layouts_and_resampling(tmp_path):
    onsets = [0.25, 0.75]
    wave = synth.click_track(onsets, 1.0, sample_rate=44100, channels=2)
    assert wave.dtype == np.float32 and wave.shape == (2, 44100) and np.abs(wave).max() <= 0.9 + 1e-6
    st = media.write_audio(tmp_path / "st.m4a", wave, 44100)
    mono = media.write_audio(tmp_path / "mono.wav", wave[:1], 44100, layout="mono")
    six = synth.click_track(onsets, 1.0, sample_rate=48000, channels=6)
    surround = media.write_audio(tmp_path / "s51.flac", six, 48000, layout="5.1")
    surround_aac = media.write_audio(tmp_path / "s51.m4a", six, 48000, layout="5.1")

    x, sr = media.decode_audio(st)
    assert sr == 44100 and x.shape == (2, 44100) and x.dtype == np.float32  # AAC padding trimmed
    x, sr = media.decode_audio(mono)
    assert sr == 44100 and x.shape == (1, 44100)
    np.testing.assert_allclose(x[0], wave[0], atol=1e-4)  # 16-bit PCM round trip
    x, sr = media.decode_audio(mono, channels=2, sample_rate=22050)
    assert sr == 22050 and x.shape == (2, 22050)
    for path in (surround, surround_aac):
        x, sr = media.decode_audio(path)
        assert sr == 48000 and x.shape == (6, 48000)
        for ch, rate in ((1, 16000), (2, 44100)):
            x, sr = media.decode_audio(path, channels=ch, sample_rate=rate)
            assert sr == rate and x.shape == (ch, rate) and x.dtype == np.float32
            assert np.abs(x).max() <= 1.0
            first = np.argmax(np.abs(x[0]) > 0.05) / rate  # onset survives decode/downmix/resample
            assert first == pytest.approx(onsets[0], abs=0.005)


def test_resample_and_fit_length():
    x = np.random.default_rng(0).standard_normal((2, 4410)).astype(np.float32)
    assert media.resample_audio(x, 44100, 44100) is not None
    np.testing.assert_array_equal(media.resample_audio(x, 44100, 44100), x)
    y = media.resample_audio(x, 44100, 48000)
    assert y.shape == (2, 4800) and y.dtype == np.float32
    assert media.fit_length(x, 5000).shape == (2, 5000) and np.all(media.fit_length(x, 5000)[:, 4410:] == 0)
    np.testing.assert_array_equal(media.fit_length(x, 100), x[:, :100])


# ------------------------------------------------------------------ mux


@pytest.mark.parametrize("fps", FPS_CASES, ids=str)
def test_mux_length_contract(tmp_path, clips, fps):
    src = clips[fps].path
    before = _digest(src)
    info = media.probe_video(src)
    sr = 44100 if fps in (24, 60) else 48000
    wave = synth.click_track([0.1, 0.6], 3.0, sample_rate=sr)  # longer than the video: trimmed
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = media.mux_audio(src, wave, sr, out_dir / "m.mp4")
    assert os.listdir(out_dir) == ["m.mp4"]  # no temp files left
    assert _digest(src) == before  # input untouched

    n = round(info.duration * sr)
    got, got_sr = media.decode_audio(out)
    assert got_sr == sr and abs(got.shape[1] - n) <= 1024  # documented tolerance
    assert got.shape[1] == n  # and exact for MP4 (sample-exact timestamps)
    # the audio stream ends exactly where the video ends
    apk, atb = _audio_packets(out)
    assert atb == Fraction(1, sr)
    assert apk[-1][0] + apk[-1][1] == n  # last packet ends at n samples
    assert sum(d for p, d in apk if p >= 0) == n  # (the packet before 0 is AAC priming, cut by the edit list)
    # the video keeps every frame at the same timestamps
    out_info = media.probe_video(out)
    assert out_info.frame_count == info.frame_count and out_info.duration == pytest.approx(info.duration, abs=1e-9)
    assert out_info.has_audio and out_info.audio_sample_rate == sr and out_info.audio_channels == 2
    (ip, itb), (op, otb) = _video_packets(src), _video_packets(out)
    assert [p * itb for p, _ in ip] == [p * otb for p, _ in op]
    with av.open(out) as c:
        # the audio has a whole number of samples: it may end up to half a sample after the video
        assert c.duration / 1e6 == pytest.approx(info.duration, abs=0.5 / sr + 1.5e-6)  # AV_TIME_BASE is 1 µs
        vs = c.streams.video[0]
        assert float(vs.duration * vs.time_base) == pytest.approx(info.duration, abs=1e-9)
    # onset lands at the right time (priming removed)
    first = np.argmax(np.abs(got[0]) > 0.05) / sr
    assert first == pytest.approx(0.1, abs=0.003)


def test_mux_pads_short_audio_resamples_and_other_containers(tmp_path, clips):
    src = clips[25].path
    info = media.probe_video(src)
    short = synth.click_track([0.1], 0.5, sample_rate=32000, channels=1)
    for ext in (".mp4", ".mov", ".mkv"):
        out = media.mux_audio(src, short, 32000, tmp_path / f"m{ext}")
        got, sr = media.decode_audio(out)
        assert sr == 48000 and got.shape[0] == 1  # 32 kHz -> 48 kHz, mono kept
        assert abs(got.shape[1] - round(info.duration * 48000)) <= 1024
        assert np.abs(got[:, int(0.6 * sr):]).max() < 0.01  # padded with silence
        oi = media.probe_video(out)
        assert oi.frame_count == info.frame_count
        # Matroska stores milliseconds: durations are exact to 1 ms there
        assert oi.duration == pytest.approx(info.duration, abs=1e-9 if ext != ".mkv" else 1.5e-3)


def test_mux_replaces_existing_audio_and_muxes_silent_video(tmp_path):
    a = synth.click_track([0.2], 1.0, sample_rate=44100)
    with_audio = synth.make_cut_clip(tmp_path / "a.mp4", cut_times=[], duration=1.0, fps=24, audio=a, sample_rate=44100)
    info = media.probe_video(with_audio.path)
    assert info.has_audio and info.audio_channels == 2
    x, _ = media.decode_audio(with_audio.path)
    assert x.shape == (2, 44100)
    b = synth.click_track([0.5], 1.0, sample_rate=48000, channels=1)
    out = media.mux_audio(with_audio.path, b, 48000, tmp_path / "b.mp4")
    with av.open(out) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
    got, sr = media.decode_audio(out)
    assert sr == 48000 and got.shape == (1, 48000)
    assert np.argmax(np.abs(got[0]) > 0.05) / sr == pytest.approx(0.5, abs=0.003)


def test_mux_video_not_starting_at_zero(tmp_path):
    times = 0.5 + np.arange(10) / 10
    frames = np.random.default_rng(0).integers(0, 255, (10, 32, 48, 3), dtype=np.uint8)
    src = media.write_video(frames, 10, tmp_path / "off.mp4", times=times)
    info = media.probe_video(src)
    assert info.start_time == pytest.approx(0.5) and info.duration == pytest.approx(1.0)
    np.testing.assert_allclose(_all_times(src, size=None), times - 0.5, atol=1e-6)
    out = media.mux_audio(src, synth.click_track([0.1], 2.0, sample_rate=48000), 48000, tmp_path / "m.mp4")
    oi = media.probe_video(out)
    assert oi.start_time == 0.0 and oi.frame_count == 10 and oi.duration == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(_all_times(out, size=None), times - 0.5, atol=1e-6)
    got, sr = media.decode_audio(out)
    assert got.shape == (2, 48000)
    assert np.argmax(np.abs(got[0]) > 0.05) / sr == pytest.approx(0.1, abs=0.003)  # in sync with frame 0


def test_mux_odd_size(tmp_path):
    clip = synth.make_cut_clip(tmp_path / "odd.mp4", cut_times=[0.3], duration=0.6, fps=24, size=(161, 91))
    info = media.probe_video(clip.path)
    assert (info.width, info.height, info.frame_count) == (161, 91, 14)
    b = next(iter(media.iter_frames(clip.path, size=None)))
    assert b.frames.shape[1:] == (91, 161, 3)
    out = media.mux_audio(clip.path, np.zeros((2, 1000), np.float32), 44100, tmp_path / "odd_m.mp4")
    assert media.probe_video(out).frame_count == 14
    assert media.decode_audio(out)[0].shape == (2, round(info.duration * 44100))


def test_mux_refuses_nan_and_same_path(tmp_path, clips):
    src = clips[24].path
    bad = np.zeros((2, 1000), np.float32)
    bad[0, 10] = np.nan
    out = tmp_path / "nan.mp4"
    with pytest.raises(MediaError, match="NaN/Inf in audio; refusing to write"):
        media.mux_audio(src, bad, 44100, out)
    assert os.listdir(tmp_path) == []
    with pytest.raises(MediaError, match="NaN/Inf"):
        media.write_video(np.zeros((2, 16, 16, 3), np.uint8), 24, out, audio=bad, sample_rate=44100)
    assert os.listdir(tmp_path) == []
    before = _digest(src)
    with pytest.raises(MediaError, match="input"):
        media.mux_audio(src, np.zeros((2, 10), np.float32), 44100, src)
    with pytest.raises(MediaError, match="input"):
        same = os.path.join(os.path.dirname(src), ".", os.path.basename(src))
        media.mux_audio(src, np.zeros((2, 10), np.float32), 44100, same)
    assert _digest(src) == before


def test_failed_write_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        media.write_video(frames(), 24, tmp_path / "x.mp4")
    with pytest.raises(MediaError, match="shape"):
        media.write_video([np.zeros((16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)], 24, tmp_path / "x.mp4")
    assert os.listdir(tmp_path) == []


def test_write_video_vfr_times_and_float_frames(tmp_path):
    times = np.array([0.0, 0.02, 0.05, 0.1, 0.11])
    frames = np.random.default_rng(0).random((5, 20, 30, 3)).astype(np.float32)
    out = media.write_video(frames, 25, tmp_path / "v.mp4", times=times)
    np.testing.assert_allclose(_all_times(out, size=None), times, atol=1e-6)
    assert media.probe_video(out).duration == pytest.approx(0.11 + 1 / 25, abs=1e-6)
    with pytest.raises(MediaError, match="increasing"):
        media.write_video(frames, 25, tmp_path / "w.mp4", times=times[::-1])
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


# ------------------------------------------------------------------ synth


def test_synth_cut_clip_truth(tmp_path):
    clip = synth.make_cut_clip(tmp_path / "c.mp4", cut_times=[0.5, 1.01], duration=1.5, fps=24)
    assert clip.cut_times == [0.5, 1.0416666666666667]  # first frame at or after each cut
    frames = np.concatenate([b.frames for b in media.iter_frames(clip.path, size=None)]).astype(np.float32)
    diff = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    cut_idx = {int(round(c * 24)) - 1 for c in clip.cut_times}
    within = np.array([d for i, d in enumerate(diff) if i not in cut_idx])
    across = np.array([diff[i] for i in sorted(cut_idx)])
    assert within.max() * 5 < across.min()
    assert within.max() > 0  # gentle motion inside a shot
    one = synth.make_one_frame_clip(tmp_path / "one.mp4")
    assert media.probe_video(one.path).frame_count == 1
    static = synth.make_static_clip(tmp_path / "s.mp4", duration=0.5, fps=24, size=(32, 32))
    sf = np.concatenate([b.frames for b in media.iter_frames(static.path, size=None)])
    assert len(sf) == 12 and np.all(sf == sf[0])


# ------------------------------------------------------------------ bad inputs


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, clips):
    d = tmp_path_factory.mktemp("bad")
    good = open(clips[24].path, "rb").read()
    (d / "empty.mp4").write_bytes(b"")
    (d / "half.mp4").write_bytes(good[: len(good) // 2])
    (d / "text.mp4").write_text("this is a text file, not a video\n" * 40)
    media.write_audio(d / "audio_only.m4a", synth.click_track([0.1], 0.5), 44100)
    # MP4 with the index first ("faststart"), cut short: opens, but frames are missing
    with av.open(str(d / "fast.mp4"), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(24):
            img = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    fast = (d / "fast.mp4").read_bytes()
    (d / "fast_cut.mp4").write_bytes(fast[: int(len(fast) * 0.7)])
    return d


@pytest.mark.parametrize(
    "name, words",
    [
        ("missing.mp4", "not found"),
        ("empty.mp4", "empty"),
        ("half.mp4", "truncated or corrupt"),
        ("text.mp4", "not a video"),
        ("audio_only.m4a", "no video stream"),
        ("fast_cut.mp4", "truncated"),
    ],
)
def test_bad_inputs_raise_media_error_naming_file(bad_files, name, words):
    path = str(bad_files / name)
    with pytest.raises(MediaError, match=words) as e1:
        media.probe_video(path)
    with pytest.raises(MediaError, match=words) as e2:
        for _ in media.iter_frames(path, size=32):
            pass
    for e in (e1, e2):
        assert path in str(e.value)
        assert isinstance(e.value, ValueError)


def test_decode_audio_without_audio_says_so(clips):
    with pytest.raises(MediaError, match="no audio stream") as e:
        media.decode_audio(clips[24].path)
    assert clips[24].path in str(e.value)


def test_synth_motion_has_no_jumps_inside_a_shot(tmp_path):
    """A long shot pans smoothly (bounces at the edges): PySceneDetect finds no cut in it."""
    from scenedetect import AdaptiveDetector, detect

    clip = synth.make_cut_clip(str(tmp_path / "long.mp4"), cut_times=[], duration=8.0, fps=24, seed=1)
    frames = np.concatenate([b.frames for b in media.iter_frames(clip.path, size=None)]).astype(np.float32)
    step = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < 6 * np.median(step) + 1.0
    assert len(detect(clip.path, AdaptiveDetector())) <= 1


@pytest.mark.parametrize("vfr", [False, True])
def test_iter_frames_stats_match_probe(tmp_path, vfr):
    clip = synth.make_cut_clip(str(tmp_path / "s.mp4"), cut_times=[0.5], duration=1.3, fps=Fraction(30000, 1001),
                               vfr=vfr, size=(64, 36))
    stats = {}
    n = sum(len(b) for b in media.iter_frames(clip.path, size=16, batch=5, stats=stats))
    info = media.probe_video(clip.path)
    assert stats == {"frame_count": info.frame_count, "duration": info.duration} and n == info.frame_count
