"""Files a kill cannot tear: durable writes and renames, a torn last line cut off, one writer per output.

A process can be killed between any two instructions, and a machine can lose power before the kernel writes
its cache. So what a rename publishes or a run reports as written is ``fsync``'d first (and the folder holding a
renamed or new file after), a line-per-record file is appended with one ``write`` per line (a kill leaves
whole lines and at most one torn last line, which the reader cuts), and an output two runs could both append
to is guarded by an exclusive lock (:func:`exclusive_lock`).
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


class InUseError(OSError):
    """Another process holds the lock of an output this one would write; the message names its pid."""


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a folder's entries (a rename into it, a file created in it) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """``fsync`` every file and folder under ``path``: call before renaming a freshly written folder into place."""
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def replace_with(path: str | os.PathLike, write) -> None:
    """Make ``path`` whole or not at all: ``write(tmp)`` writes a temporary file beside it, which is fsync'd and
    renamed over ``path`` (a failed write removes it)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def replace_file(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`replace_with`)."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    replace_with(path, write)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline with one ``write``, fsync'd before this returns."""
    created = not os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def cut_torn_line(path: str | os.PathLike) -> bool:
    """Cut a last line without its newline (a write a kill interrupted) off ``path``; True when one was cut."""
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return False
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return False
        keep, pos = 0, end
        while pos > 0:  # back to the last newline, a block at a time: the file may be long
            size = min(1 << 16, pos)
            pos -= size
            f.seek(pos)
            found = f.read(size).rfind(b"\n")
            if found >= 0:
                keep = pos + found + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return True


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    pid = os.read(fd, 32).decode(errors="replace").strip()
    return pid if pid.isdigit() else "unknown"


@contextmanager
def exclusive_lock(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, holding this process's pid) for the block.

    If another process holds it, raise :class:`InUseError` with ``busy`` formatted with its ``pid``, at once.
    The lock goes with the process (a killed holder frees it); the file is removed on release.
    """
    path = os.fspath(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise InUseError(busy.format(pid=pid)) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # a holder removed the file as it released it: lock the one at the path now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            os.unlink(path)  # while still held: a process waiting on the old file sees it gone and retries
        except FileNotFoundError:
            pass
        os.close(fd)
