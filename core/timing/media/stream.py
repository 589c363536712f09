"""Audio of any length in flat memory: a spool on disk and the mux's mastering, chunk by chunk.

:class:`AudioSpool` holds float32 audio ``[C, T]`` in a temporary file, appended and read back in
chunks, so a long generated soundtrack never sits in memory whole. :func:`master_stream` is
:func:`.levels.fit_for_aac` for such a source: the same steps (downmix, resample to an AAC rate,
fit to the video's length, true-peak limiting, the gain that keeps the *encoded* true peak below
the ceiling), each a streaming pass over the spool — soxr's ``ResampleStream``, pedalboard's
limiter with ``reset=False`` and an AAC encoder feeding a decoder packet by packet are exact
streaming equivalents of their whole-signal calls — so memory holds a few chunks whatever the
length. The passes are recomputed from the spool, not stored; only the overshoot check's AAC
packets may be kept (:class:`PacketSpool`, on disk), so the mux writes them instead of encoding
the same audio a second time (AAC encoding is deterministic and the same samples give the same
packets however they are chunked).
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import av
import numpy as np

from ...errors import MediaError
from .audio import downmix_stereo

CHUNK = 1 << 16  # samples per chunk
_AAC_RATES = (44100, 48000)
_OVERSAMPLE = 4


class _TempFile:
    """A temporary file that closing (or leaving the ``with`` block, or garbage collection) deletes."""

    def _open_temp(self, prefix: str, suffix: str, folder: str | None) -> None:
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        self._file = os.fdopen(fd, "w+b")

    def close(self) -> None:
        if getattr(self, "_file", None) is None:
            return
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self.path):
            os.remove(self.path)

    def __del__(self) -> None:  # a spool nobody closed still leaves no file behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AudioSpool(_TempFile):
    """Float32 audio ``[C, T]`` at ``sample_rate`` in a temporary file (frames interleaved).

    ``append`` chunks (NaN/Inf refused), then ``chunks()`` reads them back in order; the peak
    is tracked on the way in. Closing (or leaving the ``with`` block) deletes the file.
    """

    def __init__(self, channels: int, sample_rate: int, *, folder: str | None = None):
        if int(channels) < 1 or int(sample_rate) < 1:
            raise MediaError(f"an audio spool needs channels >= 1 and a positive sample rate, "
                             f"got {channels}, {sample_rate}")
        self.channels, self.sample_rate = int(channels), int(sample_rate)
        self._open_temp("v2m-audio-", ".f32", folder)
        self.length = 0
        self.peak = 0.0

    def append(self, chunk: np.ndarray) -> None:
        w = np.asarray(chunk, dtype=np.float32)
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2 or w.shape[0] != self.channels:
            raise MediaError(f"expected audio [{self.channels}, samples], got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise MediaError("NaN/Inf in the generated audio; nothing was written")
        if w.shape[1]:
            self.peak = max(self.peak, float(np.max(np.abs(w))))
            self._file.seek(0, os.SEEK_END)
            self._file.write(np.ascontiguousarray(w.T).tobytes())
            self.length += w.shape[1]

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples ``[start, start + n)`` (fewer at the end) as ``[C, m]``."""
        start, n = max(0, int(start)), max(0, min(int(n), self.length - int(start)))
        self._file.flush()
        self._file.seek(start * self.channels * 4)
        data = np.frombuffer(self._file.read(n * self.channels * 4), dtype=np.float32)
        return data.reshape(-1, self.channels).T.copy()

    def chunks(self, size: int | None = None) -> Iterator[np.ndarray]:
        """The audio in order, ``size`` samples at a time (default :data:`CHUNK`)."""
        size = int(size or CHUNK)
        for s in range(0, self.length, size):
            yield self.read(s, size)

    def to_array(self) -> np.ndarray:
        """The whole audio in memory ``[C, T]`` (where a whole tensor is the contract, e.g. ComfyUI's
        AUDIO): filled chunk by chunk, so the peak is the array itself plus one chunk."""
        out = np.empty((self.channels, self.length), np.float32)
        for s in range(0, self.length, CHUNK):
            c = self.read(s, CHUNK)
            out[:, s:s + c.shape[1]] = c
        return out

    def __len__(self) -> int:
        return self.length


class PacketSpool(_TempFile):
    """Encoded AAC packets in a temporary file (flat memory: an hour at 192 kbit/s is 86 MB on disk),
    with their timing in small arrays: the overshoot check's encode, kept so the mux can write it.

    ``ready`` is set by :func:`master_stream` when the packets are exactly the encoding of what its
    ``chunks()`` yield (at ``rate``, ``channels``, ``bitrate``); otherwise the mux encodes as before.
    Closing (or leaving the ``with`` block) deletes the file.
    """

    def __init__(self, *, folder: str | None = None):
        self._open_temp("v2m-aac-", ".bin", folder)
        self.ready = False
        self.rate = self.channels = self.bitrate = 0
        self.clear()

    def clear(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._rows: list[tuple[int, int, int, int]] = []  # (pts, dts, duration, size) in samples / bytes
        self.ready = False

    def add(self, packet) -> None:
        data = bytes(packet)
        self._file.seek(0, os.SEEK_END)
        self._file.write(data)
        self._rows.append((int(packet.pts), int(packet.dts if packet.dts is not None else packet.pts),
                           int(packet.duration or 0), len(data)))

    def __len__(self) -> int:
        return len(self._rows)

    def packets(self) -> Iterator[tuple[int, int, int, bytes]]:
        """(pts, dts, duration, data) in encoding order; times in samples."""
        self._file.flush()
        self._file.seek(0)
        offset = 0
        for pts, dts, duration, size in self._rows:
            self._file.seek(offset)
            offset += size
            yield pts, dts, duration, self._file.read(size)


# --------------------------------------------------------------------------------------------
# streaming stages


def _downmix(w: np.ndarray) -> np.ndarray:
    return downmix_stereo(w) if w.shape[0] > 2 else w


def _resampled(chunks: Iterable[np.ndarray], sr_in: int, sr_out: int, channels: int) -> Iterator[np.ndarray]:
    if sr_in == sr_out:
        yield from chunks
        return
    import soxr

    rs = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")
    for c in chunks:
        out = rs.resample_chunk(np.ascontiguousarray(c.T), last=False)
        if len(out):
            yield np.ascontiguousarray(out.T)
    out = rs.resample_chunk(np.zeros((0, channels), np.float32), last=True)
    if len(out):
        yield np.ascontiguousarray(out.T)


def _fitted(chunks: Iterable[np.ndarray], n_total: int, channels: int) -> Iterator[np.ndarray]:
    """Exactly ``n_total`` samples: trimmed, or padded with silence."""
    sent = 0
    for c in chunks:
        c = c[:, :max(0, n_total - sent)]
        if c.shape[1]:
            yield c
            sent += c.shape[1]
    while sent < n_total:
        n = min(CHUNK, n_total - sent)
        yield np.zeros((channels, n), np.float32)
        sent += n


def _limited(chunks: Iterable[np.ndarray], sr: int, ceiling_db: float, n_total: int,
             channels: int) -> Iterator[np.ndarray]:
    """pedalboard's brick-wall limiter (as :func:`.levels.limit_true_peak`), streamed: its
    look-ahead holds samples back, so the tail is flushed with silence and cut to length."""
    import pedalboard

    limiter = pedalboard.BrickwallLimiter(ceiling_db=ceiling_db - 0.5, true_peak=True)

    def run():
        for c in chunks:
            yield limiter.process(np.ascontiguousarray(c), float(sr), reset=False)
        for _ in range(8):
            yield limiter.process(np.zeros((channels, 4096), np.float32), float(sr), reset=False)

    yield from _fitted((np.asarray(c, np.float32) for c in run()), n_total, channels)


class _TruePeak:
    """Running true peak (4x oversampled with soxr's stream: no seams between chunks)."""

    def __init__(self, sr: int, channels: int):
        import soxr

        self.rs = soxr.ResampleStream(sr, sr * _OVERSAMPLE, channels, dtype="float32", quality="HQ")
        self.channels, self.peak = channels, 0.0

    def add(self, c: np.ndarray, last: bool = False) -> None:
        if c.size:
            self.peak = max(self.peak, float(np.max(np.abs(c))))
        up = self.rs.resample_chunk(np.ascontiguousarray(c.T), last=last)
        if len(up):
            self.peak = max(self.peak, float(np.max(np.abs(up))))

    def finish(self) -> float:
        self.add(np.zeros((self.channels, 0), np.float32), last=True)
        return self.peak


def _encoded_true_peak(chunks: Iterable[np.ndarray], sr: int, channels: int, bitrate: int,
                       keep: PacketSpool | None = None) -> float:
    """True peak of the audio after AAC encoding (encoder → decoder packet by packet); ``keep``
    receives the encoded packets (cleared first)."""
    layout = "mono" if channels == 1 else "stereo"
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = sr, layout, "fltp", int(bitrate)
    enc.time_base = Fraction(1, sr)
    enc.open()
    dec = av.CodecContext.create("aac", "r")
    dec.sample_rate, dec.layout = sr, layout
    dec.extradata = enc.extradata
    meter = _TruePeak(sr, channels)
    pos = 0
    if keep is not None:
        keep.clear()

    def decode(packets):
        for p in packets:
            if keep is not None and p is not None:
                keep.add(p)
            for f in dec.decode(p):
                meter.add(f.to_ndarray().astype(np.float32, copy=False))

    for c in chunks:
        for i in range(0, c.shape[1], 8192):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(c[:, i:i + 8192]), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sr, pos, Fraction(1, sr)
            pos += frame.samples
            decode(enc.encode(frame))
    decode(enc.encode(None))
    decode([None])
    return meter.finish()


# --------------------------------------------------------------------------------------------
# mastering


def mux_rate(sample_rate: int) -> int:
    """The AAC rate the mux writes audio of ``sample_rate`` at (as ``write._prepare_audio``)."""
    return int(sample_rate) if int(sample_rate) in _AAC_RATES else 48000


def master_stream(spool: AudioSpool, n_total: int | None, *, rate: int | None = None, bitrate: int = 192_000,
                  where: str = "the output", aac: bool = True, report: bool = True,
                  packets: PacketSpool | None = None) -> tuple[Callable[[], Iterator[np.ndarray]], int, int]:
    """:func:`.levels.fit_for_aac` (``aac=False``: only the true-peak limiting) for a spool:
    more than two channels downmixed, resampled to ``rate`` (default: the spool's), fitted to
    ``n_total`` samples at that rate (None: the spool's length). Returns ``(chunks, rate,
    channels)``; ``chunks()`` yields the mastered audio, recomputed from the spool on each call.
    ``report=False`` logs no warning about silent or hot audio. ``packets`` (with ``aac``): an
    empty :class:`PacketSpool` that receives the overshoot check's AAC packets; it is ``ready``
    when they are exactly the encoding of ``chunks()`` (the gain the last check measured is the
    final gain), so a writer can use them instead of encoding again.
    """
    from .levels import TRUE_PEAK_CEILING_DB, db, log

    if spool.length == 0:
        raise MediaError(f"The audio for {where!r} has no samples: nothing to write. "
                         "Give audio that lasts longer than 0 s.")
    ch = spool.channels if spool.channels <= 2 else 2
    sr = int(rate or spool.sample_rate)
    if n_total is None:
        n_total = int(round(spool.length * sr / spool.sample_rate))

    def conformed() -> Iterator[np.ndarray]:
        mixed = (_downmix(c) for c in spool.chunks())
        return _fitted(_resampled(mixed, spool.sample_rate, sr, ch), n_total, ch)

    ceiling = 10.0 ** (TRUE_PEAK_CEILING_DB / 20.0)
    meter, sample_peak = _TruePeak(sr, ch), 0.0
    for c in conformed():
        sample_peak = max(sample_peak, float(np.max(np.abs(c))) if c.size else 0.0)
        meter.add(c)
    tp = meter.finish()
    if sample_peak == 0.0:
        if report:
            log.warning("the audio for %s is completely silent: the soundtrack will be silence", where)
        return conformed, sr, ch
    if sample_peak > 1.0 and report:
        log.warning("the audio for %s peaks at %+.1f dBFS, above full scale: it is limited to %.1f dBTP instead of "
                    "being clipped", where, db(sample_peak), TRUE_PEAK_CEILING_DB)
    limit = tp > ceiling

    def limited() -> Iterator[np.ndarray]:
        return _limited(conformed(), sr, TRUE_PEAK_CEILING_DB, n_total, ch) if limit else conformed()

    gain = checked = 1.0
    if aac:
        for _ in range(3):  # the encoder's overshoot, measured on the decoded audio
            checked = gain
            over = _encoded_true_peak((c * np.float32(gain) for c in limited()), sr, ch, bitrate, packets) / ceiling
            if over <= 1.0:
                break
            gain *= 0.995 / over
        if packets is not None and gain == checked:  # the last check encoded exactly what chunks() yield
            packets.ready, packets.rate, packets.channels, packets.bitrate = True, sr, ch, int(bitrate)
    if gain == 1.0:
        return limited, sr, ch
    return (lambda: (c * np.float32(gain) for c in limited())), sr, ch
