"""Opening media inputs (paths or binary file objects) with errors that name the file and the fix."""

from __future__ import annotations

import io
import os

import av

from ...errors import MediaError


def source_name(src) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    name = getattr(src, "name", None)
    if isinstance(name, (str, os.PathLike)):
        return os.fspath(name)
    return "<in-memory stream>"


def check_source(src, name: str) -> None:
    """Fail early, naming the file, for a missing or empty input."""
    if isinstance(src, (str, os.PathLike)):
        if not os.path.exists(name):
            raise MediaError(
                f"Media file not found: {name!r}. Check the path (and that the file was uploaded/copied there)."
            )
        if os.path.isdir(name):
            raise MediaError(f"{name!r} is a folder, not a media file. Pass the path of a video or audio file.")
        if os.path.getsize(name) == 0:
            raise MediaError(
                f"Media file {name!r} is empty (0 bytes). Re-export or re-copy the file; the copy probably failed."
            )
        return
    if not (hasattr(src, "read") and hasattr(src, "seek")):
        raise MediaError(f"Cannot read media from {type(src).__name__}: pass a file path or a binary file-like object.")
    try:
        src.seek(0, io.SEEK_END)
        size = src.tell()
        src.seek(0)
    except (OSError, ValueError) as exc:
        raise MediaError(f"Media stream {name!r} is not seekable ({exc}). Save it to a file first.") from exc
    if size == 0:
        raise MediaError(f"Media stream {name!r} is empty (0 bytes). Re-export or re-copy the file.")


def is_attached_picture(stream) -> bool:
    """Whether a video stream is a still attached to the file (cover art of an mp3/m4a/flac), not video."""
    flag = getattr(getattr(av.stream, "Disposition", None), "attached_pic", 1024)
    try:
        return bool(int(stream.disposition) & int(flag))
    except (AttributeError, TypeError, ValueError):
        return False


def video_streams(container) -> list:
    """The container's video streams that are moving pictures (attached pictures left out)."""
    return [s for s in container.streams.video if not is_attached_picture(s)]


def video_stream(container):
    """The first moving-picture video stream (see :func:`video_streams`); None when there is none."""
    streams = video_streams(container)
    return streams[0] if streams else None


def open_input(src, name: str, need: str = "video"):
    """Open `src` for reading; raise MediaError naming the file if it is unusable.

    need: "video" (must have a video stream), "audio" (must have an audio stream) or "any".
    """
    check_source(src, name)
    try:
        container = av.open(src if isinstance(src, (str, os.PathLike)) else src, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(
            f"{name!r} could not be opened as a media file ({exc}). It is not a video/audio file, or it is "
            "truncated or corrupt (e.g. an incomplete download or copy); re-export or re-download it."
        ) from exc
    try:
        if need == "video" and not video_streams(container):
            if container.streams.video:  # only cover art: an audio file with a picture, not a video
                kinds = ("only an attached picture: an audio file with cover art" if container.streams.audio
                         else "only an attached picture, a still image")
            else:
                kinds = "it is an audio-only file" if container.streams.audio else "it is a file without video"
            raise MediaError(
                f"{name!r} has no video stream ({kinds}). "
                "Pass a video file; for music/audio use the audio inputs."
            )
        if need == "audio" and not container.streams.audio:
            raise MediaError(
                f"{name!r} has no audio stream. Pass a file that contains audio (or skip audio decoding for this file)."
            )
    except BaseException:
        container.close()
        raise
    return container


def rewind(src) -> None:
    if not isinstance(src, (str, os.PathLike)) and hasattr(src, "seek"):
        try:
            src.seek(0)
        except (OSError, ValueError):
            pass
