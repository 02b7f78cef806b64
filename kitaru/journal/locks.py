"""Kernel-held execution locks: liveness that dies with the process that holds it.

The process that runs an execution holds a write lock on one small file per execution,
in a folder beside the journal (``kitaru.db-leases/``). The kernel drops the lock the
moment the holder dies, whatever killed it, so "is the owner alive?" is answered by the
kernel instead of by pid arithmetic, which fails across PID namespaces (containers
sharing a volume all see themselves as pid 1) and after ``fork``.

The locks are open-file-description locks (``F_OFD_SETLK``): unlike classic POSIX
locks they belong to one open file, not to the whole process, so closing some other
descriptor of the same file does not drop them, two threads of one process conflict as
two processes do, and a forked child does not become a second holder (it closes its
inherited copies; the lock stays with the parent's open file).

A holder removes its file while it still holds the lock; a process that locked a file
somebody removed meanwhile notices (the path no longer names its inode) and tries again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import struct
import threading
import weakref
from pathlib import Path

__all__ = ["ExecutionLocks", "HeldLock", "kernel_id"]

# struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t), padding.
_FLOCK = "hhqqi4x"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _flock(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0)


def kernel_id() -> str:
    """An id of the running kernel: the same for every process and container on it.

    Locks of this module only mean something between processes of one kernel; a lease
    written under another kernel id is judged by its expiry instead.
    """
    try:
        return _BOOT_ID.read_text().strip()[:8]
    except OSError:
        return ""


class HeldLock:
    """One execution's lock, held by this process until ``release``."""

    def __init__(self, fd: int, path: Path):
        self._fd = fd
        self.path = path
        self._lock = threading.Lock()
        _held.add(self)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Remove the file and drop the lock (in that order: see the module docstring)."""
        with self._lock:
            if self._fd < 0:
                return
            # A file left behind (a folder that refuses removal) is harmless: the next
            # holder locks it as it is.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = -1

    def abandon(self) -> None:
        """Close this copy without removing the file or touching other copies.

        What a forked child does with the copies it inherited (the parent still holds
        the lock through its own open file), and what a dying process amounts to.
        """
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1


_held: weakref.WeakSet[HeldLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_held):
        lock.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ExecutionLocks:
    """The lock files of one journal."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, exec_id: str) -> Path:
        name = exec_id if _SAFE_NAME.fullmatch(exec_id) else None
        if name is None or name.startswith("."):
            name = "x" + hashlib.sha256(exec_id.encode()).hexdigest()[:40]
        return self.folder / name

    def try_acquire(self, exec_id: str) -> HeldLock | None:
        """Lock ``exec_id`` for this process; None if a live process holds it."""
        path = self._path(exec_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK))
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return None
                raise
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return HeldLock(fd, path)
            # The previous holder removed the file between our open and our lock.
            os.close(fd)

    def is_held(self, exec_id: str) -> bool:
        """True while some live process on this kernel holds ``exec_id``'s lock."""
        try:
            fd = os.open(self._path(exec_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK))
        finally:
            os.close(fd)
        kind: int = struct.unpack(_FLOCK, answer)[0]
        return kind != fcntl.F_UNLCK
