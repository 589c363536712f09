"""A user's files are sacred: every output a job will write is checked before any work starts.

An :class:`OutputPlan` collects a job's inputs and outputs, then :meth:`OutputPlan.check` refuses,
with one clear line, an output that is one of the inputs (whatever the spelling of the path: ``./x``,
absolute, a symlink or a hard link), an output named twice, a file output that is a folder, an
extension the writer cannot produce, a missing or unwritable folder, or a read-only file. If the job
fails, the outputs it had already written (that did not exist before) are removed and the folders
it made are removed once empty. The writers themselves are atomic (``core.atomic``), so a failed
job leaves no partial file either.

Two jobs writing the same output at once would each report success with files holding a mix of both:
while a plan is entered, each output (or the output folder that holds it) carries a lock file beside it
(``.NAME.v2m-lock``, the owner's process id inside), made exclusively; a second job refuses in one line
naming the lock. A lock whose process is gone (a killed run) is taken over; locks are removed on exit.
"""

from __future__ import annotations

import os
import socket
import time
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
    locks: list[str] = field(default_factory=list)

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

    def lock(self) -> None:
        """Take the lock of every output (an output inside an output folder is covered by the folder's);
        :class:`OutputError` naming the other run's lock when one holds it."""
        folders = [o.path for o in self.outputs if o.folder]
        for out in self.outputs:
            if not out.folder and any(_inside(out.path, f) for f in folders):
                continue
            paths = [lock_path(out.path)] + ([os.path.join(out.path, LOCK_SUFFIX)] if out.folder else [])
            for path in paths:
                if path in self.locks:
                    break
                try:
                    _take_lock(path)
                except OutputError as exc:
                    raise OutputError(f"{out.label} {out.path!r}: {exc}") from None
                except OSError:  # a folder beside the output we may not write into: lock inside the folder
                    continue
                self.locks.append(path)
                break

    def unlock(self) -> None:
        for path in reversed(self.locks):
            try:
                os.remove(path)
            except OSError:
                pass
        self.locks.clear()

    def __enter__(self) -> "OutputPlan":
        self.check()
        self.make_folders()
        try:
            self.lock()
        except BaseException:
            self.unlock()
            self.remove_empty_folders()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        created = list(self.created)
        try:
            if exc_type is not None:
                self.created.clear()  # the folders go after the locks (a lock file may sit in one)
                self.undo()
        finally:
            self.unlock()
            if exc_type is not None:
                self.created = created
                self.remove_empty_folders()
        return False


# --------------------------------------------------------------------------------------------
# one writer per output


LOCK_SUFFIX = ".v2m-lock"


def lock_path(path: str) -> str:
    """The lock file of an output: ``.NAME.v2m-lock`` beside it."""
    path = os.path.abspath(path).rstrip(os.sep) or os.sep
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{LOCK_SUFFIX}")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([_real(path), _real(folder)]) == _real(folder)


def _owner_alive(text: str) -> bool:
    """Whether the run that wrote a lock (``pid host time``) may still be going."""
    parts = text.split()
    try:
        pid, host = int(parts[0]), parts[1]
    except (IndexError, ValueError):
        return False  # unreadable: not ours, or cut short by a crash
    if host != socket.gethostname() or os.name == "nt":
        return True  # another machine on a shared folder, or no safe way to ask (os.kill ends processes there)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _take_lock(path: str) -> None:
    me = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read(200)
            except OSError:
                text = ""
            if _owner_alive(text):
                parts = text.split()
                who = f"process {parts[0]}, since {' '.join(parts[2:4])}" if len(parts) >= 4 else "another process"
                raise OutputError(f"another v2m-zero run ({who}) is writing here; wait for it to finish or choose "
                                  f"another path (if no run is going, delete {path!r})") from None
            try:
                os.remove(path)  # a killed run's lock
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(me)
        return
    raise OutputError(f"could not take the lock {path!r}: another run took it first; try again")
