"""Media users really have, made in code with PyAV: videos in AV1, ProRes, GIF, VP9, HEVC and MJPEG, audio
files with cover art, a video with two audio tracks, and V2M checkpoints whose metadata lies.

An encoder this PyAV build lacks is reported by :func:`encoder_available` so a test can skip that case
visibly (``pytest.skip`` naming the encoder) instead of passing silently.
"""

from __future__ import annotations

import json

import av
import numpy as np

#: name → (file name, encoder, pixel format, encoder options); 24 frames at 12 fps, 64×48, one cut at 1 s
CODEC_VIDEOS = {
    "av1": ("av1.mp4", "libsvtav1", "yuv420p", {"preset": "12"}),
    "prores": ("prores.mov", "prores_ks", "yuv422p10le", {}),
    "gif": ("anim.gif", "gif", "rgb8", {}),
    "vp9": ("vp9.webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "hevc": ("hevc.mp4", "libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "mjpeg": ("mjpeg.avi", "mjpeg", "yuvj420p", {}),
}
#: AV1 encoders PyAV may carry, in the order tried
AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001 - UnknownCodecError and friends
        return False


def encoder_for(kind: str) -> str | None:
    """The encoder that makes the ``kind`` case here, or None when this PyAV has none."""
    if kind == "av1":
        return next((e for e in AV1_ENCODERS if encoder_available(e)), None)
    enc = CODEC_VIDEOS[kind][1]
    return enc if encoder_available(enc) else None


def make_codec_video(path, kind: str, *, fps: int = 12, frames: int = 24, size=(64, 48)) -> str:
    """A small video in ``kind``'s codec: grey, then brighter after 1 s (one cut), a moving bar."""
    _, _, pix, options = CODEC_VIDEOS[kind]
    encoder = encoder_for(kind)
    if encoder is None:
        raise RuntimeError(f"no encoder for {kind}")
    if kind == "av1" and encoder != "libsvtav1":
        options = {}
    with av.open(str(path), "w") as c:
        s = c.add_stream(encoder, rate=fps)
        s.width, s.height = size
        s.pix_fmt = pix
        s.options = dict(options)
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), 30 + 150 * (i >= fps), np.uint8)
            arr[:, : (i * 3) % size[0]] = 220
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return str(path)


def make_song_with_cover(path, fmt: str, codec: str, *, sample_rate: int = 44100, seconds: float = 2.0) -> str:
    """An audio file with an attached picture (cover art, a JPEG stream marked ``attached_pic``)."""
    with av.open(str(path), "w", format=fmt) as c:
        a = c.add_stream(codec, rate=sample_rate, layout="mono")
        v = c.add_stream("mjpeg", rate=1)
        v.width, v.height, v.pix_fmt = 32, 32, "yuvj420p"
        v.disposition = av.stream.Disposition.attached_pic
        img = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 128, np.uint8), format="rgb24")
        img.pts = 0
        for p in list(v.encode(img)) + list(v.encode(None)):
            c.mux(p)
        _encode_audio(c, a, _beats(sample_rate, seconds), sample_rate)
    return str(path)


def _beats(sample_rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-8 * (t % 0.5))).astype(np.float32)[None]


def _encode_audio(container, stream, wave: np.ndarray, sample_rate: int) -> None:
    for i in range(0, wave.shape[1], 4096):
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i:i + 4096]), format="fltp", layout="mono")
        f.sample_rate, f.pts = sample_rate, i
        for p in stream.encode(f):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def add_audio_tracks(video, out, waves, sample_rate: int = 44100) -> str:
    """``video``'s stream copied with one AAC track per wave (mono float ``[1, T]``)."""
    with av.open(str(video)) as inp, av.open(str(out), "w") as o:
        vs = inp.streams.video[0]
        ovs = o.add_stream_from_template(vs)
        streams = [o.add_stream("aac", rate=sample_rate, layout="mono") for _ in waves]
        for p in inp.demux(vs):
            if p.size:
                p.stream = ovs
                o.mux(p)
        for s, w in zip(streams, waves):
            _encode_audio(o, s, np.ascontiguousarray(np.asarray(w, np.float32)[:1]), sample_rate)
    return str(out)


def with_metadata(src, dst, key: str, value) -> str:
    """A copy of the V2M checkpoint ``src`` whose metadata ``key`` (dotted; list items by index) is ``value``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    top, *rest = key.split(".")
    if not rest:
        meta[top] = json.dumps(value)
    else:
        block = json.loads(meta.get(top, "{}"))
        node = block
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(rest[-1]) if isinstance(node, list) else rest[-1]] = value
        meta[top] = json.dumps(block)
    save_file(tensors, str(dst), metadata=meta)
    return str(dst)
