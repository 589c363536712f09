"""Long soundtracks in flat memory: the audio spool and the streamed mastering equal the in-memory path."""

import os

import av
import numpy as np
import pytest

from v2m_zero.core.errors import MediaError
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.timing.media.audio import fit_length, resample_audio
from v2m_zero.core.timing.media.levels import TRUE_PEAK_CEILING_DB, fit_for_aac, true_peak
from v2m_zero.core.timing.media.stream import AudioSpool, master_stream


def _hot(sr, seconds=3.0, channels=2, gain=1.6, seed=0):
    rng = np.random.default_rng(seed)
    w = synth.click_track(list(np.arange(0.1, seconds, 0.37)), seconds, sample_rate=sr, channels=channels, seed=seed)
    w = w + 0.05 * rng.standard_normal(w.shape).astype(np.float32)
    return (gain * w / np.abs(w).max()).astype(np.float32)


def _spool(wave, sr, piece=7919):
    s = AudioSpool(wave.shape[0], sr)
    for i in range(0, wave.shape[1], piece):
        s.append(wave[:, i:i + piece])
    return s


def test_spool_round_trip_peak_and_cleanup():
    w = _hot(8000, 2.0, channels=2)
    with _spool(w, 8000) as s:
        assert len(s) == w.shape[1] and s.peak == pytest.approx(float(np.abs(w).max()))
        assert np.array_equal(s.to_array(), w)
        assert np.array_equal(np.concatenate(list(s.chunks(1000)), axis=1), w)
        with pytest.raises(MediaError, match="NaN"):
            s.append(np.full((2, 3), np.nan, np.float32))
        with pytest.raises(MediaError, match="expected audio"):
            s.append(np.zeros((1, 3), np.float32))
        path = s.path
        assert os.path.exists(path)
    assert not os.path.exists(path)


@pytest.mark.parametrize("sr,rate,gain", [(44100, 44100, 1.6), (8000, 48000, 1.6), (48000, 48000, 0.5)])
def test_streamed_mastering_equals_fit_for_aac(sr, rate, gain):
    w = _hot(sr, gain=gain)
    n = int(round(2.5 * rate))  # the video is shorter than the audio: trimmed
    ref = fit_for_aac(fit_length(resample_audio(w, sr, rate), n), rate)
    with _spool(w, sr) as s:
        chunks, got_rate, ch = master_stream(s, n, rate=rate)
        got = np.concatenate(list(chunks()), axis=1)
    assert got_rate == rate and ch == 2 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-4)
    assert true_peak(got, rate) <= 10 ** (TRUE_PEAK_CEILING_DB / 20) + 1e-4


def test_mux_and_write_audio_from_a_spool_equal_the_array_path(tmp_path):
    sr = 8000
    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=3.0, fps=24, size=(64, 36))
    w = _hot(sr, 3.2, channels=1)
    a = media.mux_audio(clip.path, w, sr, tmp_path / "a.mp4")
    with _spool(w, sr) as s:
        b = media.mux_audio(clip.path, s, sr, tmp_path / "b.mp4")
        wa = media.write_audio(tmp_path / "a.m4a", w, sr, layout="mono", master=True)
        wb = media.write_audio(tmp_path / "b.m4a", s, sr, layout="mono", master=True)
        fa = media.write_audio(tmp_path / "a.flac", w, sr, layout="mono")
        fb = media.write_audio(tmp_path / "b.flac", s, sr, layout="mono")
    for x, y in ((a, b), (wa, wb), (fa, fb)):
        da, ra = media.decode_audio(x)
        db_, rb = media.decode_audio(y)
        assert ra == rb and da.shape == db_.shape
        np.testing.assert_allclose(da, db_, atol=1e-3)
    assert media.probe_video(b).duration == pytest.approx(clip.duration)
    with _spool(w, sr) as s, pytest.raises(MediaError, match="channels"):
        media.write_audio(tmp_path / "x.wav", s, sr, layout="stereo")


def test_an_unclosed_spool_leaves_no_file():
    import gc

    s = _spool(np.zeros((1, 100), np.float32), 8000)
    path = s.path
    del s
    gc.collect()
    assert not os.path.exists(path)


@pytest.mark.parametrize("block", [37, 512])
def test_streamed_onset_envelope_and_beats_equal_librosa_on_the_whole_signal(block):
    """Scoring in flat memory: the onset envelope and beats from a stream of odd-sized chunks are librosa's."""
    import librosa

    from v2m_zero.core.eval import sch

    rng = np.random.default_rng(0)
    sr, n = 16000, 16000 * 21 + 123
    t = np.arange(n) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
         + 0.05 * rng.standard_normal(n)).astype(np.float32)
    cuts = np.cumsum(rng.integers(100, 30000, 2000))

    def chunks():
        yield from np.split(y, cuts[cuts < n])

    ref = librosa.onset.onset_strength(y=y, sr=sr, aggregate=np.median)
    got = sch.onset_envelope_stream(chunks, sr, block=block)[:ref.size]
    np.testing.assert_array_equal(got, ref)
    assert np.array_equal(sch.beat_times_stream(chunks, sr, n, block=block), sch.beat_times(y, sr))


def test_iter_audio_streams_exactly_what_decode_audio_returns(tmp_path):
    clip = synth.make_cut_clip(str(tmp_path / "v.mp4"), cut_times=[0.5], duration=2.3, fps=25, size=(32, 18))
    rng = np.random.default_rng(1)
    out = media.mux_audio(clip.path, (0.1 * rng.standard_normal((2, 2 * 44100))).astype(np.float32), 44100,
                          str(tmp_path / "m.mp4"))
    whole, sr = media.decode_audio(out)
    rate, channels, chunks = media.iter_audio(out, hold=3000)
    pieces = list(chunks())
    assert rate == sr and channels == whole.shape[0] and max(p.shape[1] for p in pieces) < whole.shape[1] / 10
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)
    assert np.array_equal(np.concatenate(list(chunks()), axis=1), whole)  # a second pass reads the file again


@pytest.mark.parametrize("ext,gain,channels", [(".mp4", 0.5, 1), (".mp4", 1.6, 2), (".mkv", 1.6, 1)])
def test_mux_writes_the_overshoot_checks_packets_instead_of_encoding_again(tmp_path, monkeypatch, ext, gain,
                                                                             channels):
    """The mux of a spool encodes its AAC once: the overshoot check's packets (kept on disk) are written,
    and the file is byte for byte the file that encoding a second time writes."""
    from v2m_zero.core.timing.media import mux, stream, write

    sr = 16000
    clip = synth.make_cut_clip(str(tmp_path / "c.mp4"), cut_times=[1.0], duration=3.0, fps=24, size=(64, 36))
    w = _hot(sr, 3.2, channels=channels, gain=gain)
    calls = {"check": 0, "encode": 0, "replay": 0}
    check, feed, replay = stream._encoded_true_peak, write._AacTrack._next, write._AacTrack._replay

    def spy(name, fn):
        def wrapped(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapped

    monkeypatch.setattr(stream, "_encoded_true_peak", spy("check", check))
    monkeypatch.setattr(write._AacTrack, "_next", spy("encode", feed))
    monkeypatch.setattr(write._AacTrack, "_replay", spy("replay", replay))
    files, seen = [], []
    for reuse in (False, True):
        monkeypatch.setattr(mux, "REUSE_CHECK_PACKETS", reuse)
        calls.update(check=0, encode=0, replay=0)
        with _spool(w, sr) as s:
            files.append(media.mux_audio(clip.path, s, sr, tmp_path / f"{reuse}{ext}"))
            folder_after = sorted(os.listdir(os.path.dirname(s.path)))
        seen.append(dict(calls))
        assert not [f for f in folder_after if f.startswith("v2m-aac-")]  # the kept packets are deleted
    assert seen[0]["check"] >= 1 and seen[0]["encode"] > 0 and seen[0]["replay"] == 0  # two encodes, as before
    assert seen[1]["check"] == seen[0]["check"] and seen[1]["encode"] == 0 and seen[1]["replay"] > 0
    if ext == ".mp4":  # (Matroska writes random UIDs: its bytes differ from run to run)
        with open(files[0], "rb") as a, open(files[1], "rb") as b:
            assert a.read() == b.read()
    kept = []
    for f in files:
        with av.open(f) as c:
            kept.append([(p.pts, p.duration, bytes(p)) for p in c.demux(audio=0) if p.size])
    assert kept[0] == kept[1] and len(kept[0]) > 40
    got, rate = media.decode_audio(files[1])
    if ext == ".mp4":  # sample-exact container: exactly the video's length
        assert got.shape[1] == round(clip.duration * rate)
    assert true_peak(got, rate) <= 10 ** (TRUE_PEAK_CEILING_DB / 20) + 1e-4


def test_kept_packets_are_not_used_when_the_final_gain_was_not_checked(tmp_path, monkeypatch):
    """When the third check still overshoots, the gain changes after it: the kept packets are not the
    file's audio, so the mux encodes (the spool is not ready)."""
    from v2m_zero.core.timing.media import stream

    sr = 16000
    w = _hot(sr, 2.0, channels=1, gain=0.9)
    monkeypatch.setattr(stream, "_encoded_true_peak", lambda *a, **kw: 2.0)  # always over the ceiling
    with _spool(w, sr) as s, stream.PacketSpool() as packets:
        master_stream(s, None, rate=48000, packets=packets)
        assert not packets.ready
    monkeypatch.undo()
    with _spool(w, sr) as s, stream.PacketSpool() as packets:
        chunks, rate, ch = master_stream(s, None, rate=48000, packets=packets)
        assert packets.ready and len(packets) > 0 and (packets.rate, packets.channels) == (rate, ch) == (48000, 1)
