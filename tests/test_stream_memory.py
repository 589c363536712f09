"""Flat memory on the CLI roads (issue 24): frames and audio are never held whole.

Instrumented, not timed: the frame reader is wrapped to count the frames alive at once (weak
references to every batch it yields), the audio spool to record its largest read and to refuse a
whole read (``to_array``), and the whole-file audio decoder is made to fail, so scoring, muxing
and the audio file must all stream. (tracemalloc was tried too: it slows the run tenfold, and its
peak is set by one chunk resampled from the tiny codec's 1600 Hz to 48 kHz and oversampled 4x
for the true-peak meter, not by the length.)
"""

from __future__ import annotations

import weakref

import pytest

from tiny_models import tiny_v2m_checkpoint
from v2m_zero.core import cli
from v2m_zero.core.eval import synth
from v2m_zero.core.timing import media
from v2m_zero.core.timing.media import stream

SECONDS = 40.0  # 64 k samples at the tiny codec's 1600 Hz: 16 spool chunks of CHUNK (below)
CHUNK = 4096  # the spool's chunk, made small so that a short clip is many chunks long
FPS = 25


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    cuts = [round(0.8 + 2.3 * k, 2) for k in range(int(SECONDS / 2.3) - 1)]
    return synth.make_cut_clip(str(folder / "long.mp4"), cut_times=cuts, duration=SECONDS, fps=FPS, size=(64, 36))


class Watch:
    """Live frames (weak references to every batch the reader yields) and the spool's reads."""

    def __init__(self, monkeypatch):
        self.live = self.most_live = self.frames_seen = self.largest_read = self.spooled = 0
        real_iter, real_read = media.iter_frames, stream.AudioSpool.read

        def iter_frames(*a, **kw):
            for b in real_iter(*a, **kw):
                n = len(b)
                self.live += n
                self.frames_seen += n
                self.most_live = max(self.most_live, self.live)
                weakref.finalize(b.frames, self._gone, n)
                yield b

        def read(spool, start, n):
            out = real_read(spool, start, n)
            self.largest_read = max(self.largest_read, out.shape[1])
            self.spooled = max(self.spooled, spool.length)
            return out

        def whole(*a, **kw):
            raise AssertionError("the whole audio track was loaded")

        monkeypatch.setattr(stream, "CHUNK", CHUNK)
        monkeypatch.setattr(media, "iter_frames", iter_frames)
        monkeypatch.setattr(stream.AudioSpool, "read", read)
        monkeypatch.setattr(stream.AudioSpool, "to_array", whole)
        monkeypatch.setattr(media, "decode_audio", whole)

    def _gone(self, n):
        self.live -= n


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_cli_streams_frames_and_audio(clip, tmp_path, monkeypatch, command):
    ck = tiny_v2m_checkpoint(str(tmp_path / "tiny.safetensors"))
    watch = Watch(monkeypatch)
    common = ["--checkpoint", ck, "--steps", "1", "--cfg", "1", "--window", "4", "--overlap", "1"]
    if command == "generate":
        out = str(tmp_path / "g.mp4")
        argv = ["generate", clip.path, *common, "--out", out, "--audio-out", str(tmp_path / "g.flac")]
    else:
        out = str(tmp_path / "d" / "demo_with_music.mp4")
        argv = ["demo", "--video", clip.path, *common, "--out", str(tmp_path / "d")]
    assert cli.main(argv) == 0
    n_frames = round(SECONDS * FPS)
    assert watch.frames_seen >= n_frames  # the curve read every frame (the demo's cut detector reads its own)
    assert watch.most_live <= 4 * 64, f"{watch.most_live} of {n_frames} frames alive at once"
    assert watch.spooled == round(SECONDS * 1600) and watch.largest_read <= CHUNK < watch.spooled / 8
    info = media.probe_video(out)
    assert info.has_audio and info.duration == pytest.approx(SECONDS, abs=1e-3)
