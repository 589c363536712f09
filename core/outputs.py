"""A user's files are sacred: every output a job will write is checked before any work starts.

An :class:`OutputPlan` collects a job's inputs and outputs, then :meth:`OutputPlan.check` refuses,
with one clear line, an output that is one of the inputs (whatever the spelling of the path: ``./x``,
absolute, a symlink or a hard link), an output named twice, a file output that is a folder, an
extension the writer cannot produce, a missing or unwritable folder, or a read-only file. If the job
fails, the outputs it had already written (that did not exist before) are removed and the folders
it made are removed once empty. The writers themselves are atomic (``core.atomic``), so a failed
job leaves no partial file either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import V2MError


#: the extensions the media writers produce, by kind (in the order help texts list them)
VIDEO_OUT = (".mp4", ".m4v", ".mov", ".mkv")
AUDIO_OUT = (".wav", ".flac", ".m4a", ".aac", ".mka")
#: the container each output extension is written in (FFmpeg's format names)
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
              ".wav": "wav", ".flac": "flac", ".m4a": "mp4", ".aac": "adts", ".mka": "matroska"}


class OutputError(V2MError):
    """An output path that cannot be written safely (it is an input, missing a folder, read-only, ...)."""


@dataclass
class _Entry:
    label: str
    path: str
    folder: bool = False
    extensions: tuple[str, ...] = ()
    create_parent: bool = False


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def same_file(a, b) -> bool:
    """Whether two paths name one file, whatever the spelling (``./x``, absolute, a symlink, a hard link)."""
    a, b = os.fspath(a), os.fspath(b)
    if _real(a) == _real(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _nearest_existing(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


@dataclass
class OutputPlan:
    """The files and folders a job reads and writes; see the module doc."""

    inputs: list[_Entry] = field(default_factory=list)
    outputs: list[_Entry] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    existed: set[str] = field(default_factory=set)

    def input(self, path, label: str) -> None:
        """A file or folder the job reads (never written); None is ignored."""
        if path:
            self.inputs.append(_Entry(label, os.fspath(path)))

    def file(self, path, label: str, *, extensions: tuple[str, ...] = (), create_parent: bool = False) -> str:
        """A file the job writes; returns its absolute path. ``create_parent``: the job makes its folder."""
        entry = _Entry(label, os.path.abspath(os.fspath(path)), extensions=tuple(e.lower() for e in extensions),
                       create_parent=create_parent)
        self.outputs.append(entry)
        return entry.path

    def folder(self, path, label: str) -> str:
        """A folder the job writes into (made by :meth:`make_folders`); returns its absolute path."""
        entry = _Entry(label, os.path.abspath(os.fspath(path)), folder=True)
        self.outputs.append(entry)
        return entry.path

    def check(self) -> "OutputPlan":
        """Raise :class:`OutputError` for the first output that cannot be written safely."""
        self.existed = {o.path for o in self.outputs if os.path.lexists(o.path)}
        for i, out in enumerate(self.outputs):
            for inp in self.inputs:
                if same_file(out.path, inp.path):
                    raise OutputError(f"{out.label} {out.path!r} is the {inp.label} {inp.path!r}: inputs are never "
                                      "overwritten; choose another output path")
                if out.folder and os.path.isdir(inp.path) and _real(inp.path) == _real(out.path):
                    raise OutputError(f"{out.label} {out.path!r} is the {inp.label} folder: choose another folder")
            for other in self.outputs[:i]:
                if same_file(out.path, other.path):
                    raise OutputError(f"{out.label} and {other.label} are the same file {out.path!r}: "
                                      "give them different paths")
            (self._check_folder if out.folder else self._check_file)(out)
        return self

    def _check_file(self, out: _Entry) -> None:
        if os.path.isdir(out.path):
            raise OutputError(f"{out.label} {out.path!r} is a folder: give a file path")
        ext = os.path.splitext(out.path)[1].lower()
        if out.extensions and ext not in out.extensions:
            raise OutputError(f"{out.label} {out.path!r}: the extension {ext or '(none)'!r} cannot be written; "
                              f"use one of {', '.join(out.extensions)}")
        parent = os.path.dirname(out.path)
        if not os.path.isdir(parent):
            if not out.create_parent:
                raise OutputError(f"{out.label} {out.path!r}: the folder {parent!r} does not exist; create it first")
            self._check_creatable(parent, out.label)
        elif not os.access(parent, os.W_OK):
            raise OutputError(f"{out.label} {out.path!r}: cannot write into the folder {parent!r} (permission denied)")
        if os.path.exists(out.path) and not os.access(out.path, os.W_OK):
            raise OutputError(f"{out.label} {out.path!r} is read-only: choose another path or make it writable")

    def _check_folder(self, out: _Entry) -> None:
        if os.path.exists(out.path) and not os.path.isdir(out.path):
            raise OutputError(f"{out.label} {out.path!r} is a file, not a folder: give a folder path")
        if os.path.isdir(out.path):
            if not os.access(out.path, os.W_OK):
                raise OutputError(f"{out.label} {out.path!r}: cannot write into this folder (permission denied)")
        else:
            self._check_creatable(out.path, out.label)

    @staticmethod
    def _check_creatable(folder: str, label: str) -> None:
        base = _nearest_existing(folder)
        if not os.path.isdir(base):
            raise OutputError(f"{label}: cannot create the folder {folder!r}: {base!r} is a file")
        if not os.access(base, os.W_OK):
            raise OutputError(f"{label}: cannot create the folder {folder!r} in {base!r} (permission denied)")

    def make_folders(self) -> None:
        """Create the output folders (and the folders of file outputs that may be created)."""
        wanted = [o.path for o in self.outputs if o.folder] + [os.path.dirname(o.path) for o in self.outputs
                                                               if not o.folder and o.create_parent]
        for folder in wanted:
            missing = []
            p = folder
            while not os.path.exists(p):
                missing.append(p)
                p = os.path.dirname(p)
            for m in reversed(missing):
                os.mkdir(m)
                self.created.append(m)

    def undo(self) -> None:
        """After a failed job: remove the output files it created (files that existed before stay)
        and the folders :meth:`make_folders` made, once empty."""
        for out in self.outputs:
            if not out.folder and out.path not in self.existed and os.path.isfile(out.path):
                try:
                    os.remove(out.path)
                except OSError:
                    pass
        self.remove_empty_folders()

    def remove_empty_folders(self) -> None:
        """Undo :meth:`make_folders` for folders the failed job left empty."""
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)  # only succeeds when empty
            except OSError:
                pass
        self.created.clear()

    def __enter__(self) -> "OutputPlan":
        self.check()
        self.make_folders()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.undo()
        return False
