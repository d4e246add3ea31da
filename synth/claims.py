"""Chunk claims: two ``c2-syn generate`` runs on one output folder share the work.

Before a process generates chunk ``c`` it takes an exclusive, non-blocking
``flock`` on ``responses/.chunk-<c>.lock`` (which records its pid and host for
messages). A second run skips chunks another process holds, generates the rest,
and then waits for the held ones, so each chunk is generated once and the
result equals one run's. The lock belongs to the open file, so the kernel drops
it when its process dies, even by SIGKILL: a crashed run never leaves a stale
claim on its host, and the waiting run takes the chunk over. After taking a
lock the chunk file is checked again, so a chunk finished a moment earlier is
never redone. On a network file system ``flock`` is only as good as the
mount's lock support; where it is local-only, two hosts may both generate a
chunk, which wastes time but cannot mix data (chunks are written atomically
and deterministically, and the manifest is created exclusively).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

HOST = socket.gethostname()


def lock_path(chunk_file: Path) -> Path:
    """``.chunk-00007.lock`` beside ``chunk-00007.jsonl`` (hidden: never read as data)."""
    return chunk_file.with_name(f".{chunk_file.stem}.lock")


class Claim:
    """A held claim on one chunk; release it (or leave the ``with`` block) when the chunk is on disk."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Remove the lock file, then drop the lock (a waiter then sees the chunk file)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def claim(chunk_file: Path) -> Claim | None:
    """Claim ``chunk_file`` for this process; None when it exists or another process holds it."""
    if chunk_file.is_file():
        return None
    path = lock_path(chunk_file)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:  # the file we locked must still be the lock file (a releaser unlinks it)
        current = os.stat(path).st_ino
    except FileNotFoundError:
        current = None
    if current != os.fstat(fd).st_ino:
        os.close(fd)
        return None
    held = Claim(path, fd)
    if chunk_file.is_file():  # finished by another process between the check and the lock
        held.release()
        return None
    record = json.dumps({"pid": os.getpid(), "host": HOST}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    return held


def holder(chunk_file: Path) -> str:
    """Who holds ``chunk_file``'s claim, for a waiting message (``pid 123 on host``)."""
    try:
        info = json.loads(lock_path(chunk_file).read_text(encoding="utf-8") or "{}")
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


__all__ = ["HOST", "Claim", "claim", "holder", "lock_path"]
