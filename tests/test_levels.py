"""Audio that never clips, any channel layout, and muxes whose durations agree (VFR, B-frames, MKV)."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from v2m_zero.core.errors import MediaError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.timing.media.levels import TRUE_PEAK_CEILING_DB, fit_for_aac, true_peak

SR = 48000


def _bright_loop(seconds: float = 3.0, peak: float = 0.9999) -> np.ndarray:
    """A 3 kHz sawtooth with clicks: energy up to Nyquist, the material AAC overshoots on (about +6 dB)."""
    t = np.arange(int(seconds * SR)) / SR
    saw = 2 * ((t * 3000) % 1) - 1
    clicks = synth.click_track(np.arange(0.1, seconds, 0.25), seconds, sample_rate=SR, channels=1)[0]
    w = saw + clicks
    w = w / np.abs(w).max() * peak
    return np.stack([w, -w]).astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synth.make_cut_clip(str(tmp_path_factory.mktemp("lv") / "v.mp4"), cut_times=[1.0], duration=3.0, fps=24,
                               size=(96, 54))


def test_true_peak_sees_inter_sample_peaks():
    t = np.arange(SR) / SR
    # a sine at fs/4 sampled 45° off its peaks: every sample is 0.707, the waveform reaches 1.0
    w = np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4).astype(np.float32)[None]
    assert np.abs(w).max() == pytest.approx(0.7071, abs=1e-3)
    assert true_peak(w, SR) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("peak", [0.9999, 3.0])
def test_decoded_peak_stays_below_full_scale(clip, tmp_path, peak, caplog):
    loop = _bright_loop(peak=peak)
    # without the limit the encoder overshoots: the reason this exists
    raw = tmp_path / "raw.m4a"
    media.write_audio(raw, np.clip(loop, -1, 1), SR)
    assert np.abs(media.decode_audio(raw)[0]).max() > 1.0
    with caplog.at_level(logging.WARNING, logger="v2m_zero"):
        out = media.mux_audio(clip.path, loop, SR, tmp_path / "o.mp4")
    decoded, _ = media.decode_audio(out)
    assert np.abs(decoded).max() <= 1.0
    assert true_peak(decoded, SR) <= 10 ** (TRUE_PEAK_CEILING_DB / 20) * 1.01
    hot = [r for r in caplog.records if "above full scale" in r.getMessage()]
    assert bool(hot) == (peak > 1.0)  # a warning exactly when the input is hotter than full scale


def test_quiet_audio_is_untouched_and_silence_is_reported(caplog):
    quiet = (0.2 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)[None]
    np.testing.assert_array_equal(fit_for_aac(quiet, SR), quiet)
    with caplog.at_level(logging.WARNING, logger="v2m_zero"):
        out = fit_for_aac(np.zeros((2, SR), np.float32), SR, where="x.mp4")
    assert not out.any() and any("silent" in r.getMessage() and "x.mp4" in r.getMessage() for r in caplog.records)
    with pytest.raises(MediaError, match="no samples"):
        fit_for_aac(np.zeros((2, 0), np.float32), SR)


def test_written_audio_files_never_clip(tmp_path):
    hot = (3.0 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)[None]
    path = media.write_audio(tmp_path / "hot.wav", hot, SR, layout="mono")
    back, _ = media.decode_audio(path)
    assert np.abs(back).max() < 1.0 and np.abs(back).max() > 0.8  # limited, not clipped to a square


@pytest.mark.parametrize("layout, channels",
                         [("mono", 1), ("stereo", 2), ("2.1", 3), ("5.0", 5), ("5.1", 6), ("7.1", 8)])
def test_any_channel_layout_decodes_and_muxes(clip, tmp_path, layout, channels):
    rng = np.random.default_rng(channels)
    wave = (rng.uniform(-0.4, 0.4, (channels, SR)) * np.linspace(0, 1, SR)).astype(np.float32)
    for ext in (".wav", ".flac"):
        path = media.write_audio(tmp_path / f"a{ext}", wave, SR, layout=layout)
        back, sr = media.decode_audio(path)
        assert sr == SR and back.shape == (channels, SR)
        np.testing.assert_allclose(back, wave, atol=1e-4)
        assert media.decode_audio(path, channels=2)[0].shape == (2, SR)
    # the mux of a 7.1 wav crashed the interpreter (PyAV's planar path): run it in a child process
    code = ("import sys; from v2m_zero.core.timing import media; w, sr = media.decode_audio(sys.argv[1]); "
            "media.mux_audio(sys.argv[2], w, sr, sys.argv[3])")
    out = tmp_path / "m.mp4"
    done = subprocess.run([sys.executable, "-c", code, str(path), clip.path, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert media.decode_audio(out)[0].shape[0] == min(channels, 2)


# --------------------------------------------------------------------------------------------
# VFR and reordered video: the output's container and video-stream durations equal the input's


def _write_raw(path: str, times: np.ndarray, *, bframes: bool, durations: bool = True, fmt: str | None = None) -> str:
    """H.264 frames at ``times`` (seconds), with or without B-frames and per-packet durations."""
    rng = np.random.default_rng(0)
    with av.open(path, "w", format=fmt) as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 96, 54, "yuv420p"
        vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        vs.options = {} if bframes else {"bf": "0"}
        for _i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (54, 96, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in vs.encode(frame):
                if not durations:
                    packet.duration = 0
                out.mux(packet)
        for packet in vs.encode(None):
            if not durations:
                packet.duration = 0
            out.mux(packet)
    return path


def _durations(path: str) -> tuple[float, float, float]:
    """(our probe, the container's duration, the video stream's own duration) in seconds."""
    with av.open(path) as c:
        v = c.streams.video[0]
        if v.duration:
            stream = float(v.duration * v.time_base)
        else:  # Matroska keeps it as a tag
            h, m, s = v.metadata["DURATION"].split(":")
            stream = int(h) * 3600 + int(m) * 60 + float(s)
        return media.probe_video(path).duration, c.duration / 1e6, stream


VFR_TIMES = np.concatenate([np.arange(30) / 60.0, 0.5 + np.arange(1, 6) * 0.4])


@pytest.mark.parametrize("source", ["vfr-bframes.mkv", "vfr-no-durations.mkv", "vfr.mkv", "cfr-bframes.mp4"])
@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
def test_mux_durations_agree_and_are_stable(tmp_path, source, ext):
    times = np.arange(48) / 24.0 if source.startswith("cfr") else VFR_TIMES
    src = _write_raw(str(tmp_path / source), times, bframes="bframes" in source, durations="no-durations" not in source)
    want = media.probe_video(src).duration
    audio = synth.click_track([0.3, 1.1], 3.0, sample_rate=SR)
    first = media.mux_audio(src, audio, SR, tmp_path / f"once{ext}")
    again = media.mux_audio(first, audio, SR, tmp_path / f"twice{ext}")
    tol = 0.0015 if ext == ".mkv" else 1e-6  # Matroska stores milliseconds
    for out in (first, again):
        probe, container, stream = _durations(out)
        assert probe == pytest.approx(want, abs=tol) and stream == pytest.approx(want, abs=tol)
        if ext == ".mkv":  # Matroska has no edit list: the AAC priming frame can count (≤ 1 frame, 21 ms)
            assert want - tol <= container <= want + 1024 / SR + tol
        else:
            assert container == pytest.approx(want, abs=tol)
    assert _durations(again) == pytest.approx(_durations(first), abs=1e-9)
