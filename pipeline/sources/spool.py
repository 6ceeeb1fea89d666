"""The receiver's spool: durable, rotating JSON-lines files, and draining them into the store.

Folder layout: `events-<UTC stamp>-<seq>.jsonl.part` is the file being appended (one per
receiver, rotated by size and age); closing renames it to `events-….jsonl` (atomic), which
`pipeline.ingest.drain.drain_spool` ingests and then moves to `archive/`. `.receiver.lock` and `.drain.lock` (flock)
keep one receiver and one drain per folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pipeline.sources import SourceError

PART, CLOSED = ".jsonl.part", ".jsonl"
NAME_RE = re.compile(r"^events-(\d{8}T\d{6}Z)-(\d+)\.jsonl(\.part)?$")


class SpoolError(SourceError):
    """The spool folder cannot be used (another receiver holds it, it is not a folder)."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only JSON-lines spool with group commit: `append` returns once its bytes (and
    everything appended before) are fsync'ed. One Spool per folder (flock); leftovers of a
    crashed receiver are closed at open, a torn last line (never acknowledged) cut off."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = 64 << 20,
                 max_age: float = 60.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.max_bytes, self.max_age, self._clock, self._mono = max_bytes, max_age, clock, monotonic
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpoolError(f"cannot use {self.root} as a spool folder: {e.strerror or e}") from None
        self._lock_fd = os.open(self.root / ".receiver.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolError(f"spool {self.root} is in use by another receiver (one per folder)") from None
        self._cv = threading.Condition()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = self._written = self._synced = 0
        self._opened = 0.0
        self._syncing = self._closed = False
        self._failed: OSError | None = None
        names = [NAME_RE.match(p.name) for p in [*self.root.iterdir(), *self._archived()]]
        self._seq = max((int(m.group(2)) for m in names if m), default=0)
        self.recover()

    def _archived(self) -> list[Path]:
        archive = self.root / "archive"
        return list(archive.iterdir()) if archive.is_dir() else []

    def recover(self) -> None:
        """Close `.part` files left by a dead receiver, cut after their last newline."""
        for part in sorted(self.root.glob("events-*" + PART)):
            data = part.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]
            if not keep:
                part.unlink()
                continue
            with part.open("r+b") as f:
                f.truncate(len(keep))
                os.fsync(f.fileno())
            os.replace(part, part.with_name(part.name[: -len(".part")]))
        fsync_dir(self.root)

    def append(self, data: bytes) -> None:
        """Append whole lines durably. Raises OSError when the spool cannot be written."""
        with self._cv:
            while True:
                if self._failed or self._closed:
                    raise self._failed or OSError("spool is closed")
                if self._fd is not None and self._due(len(data)):
                    if self._syncing:
                        self._cv.wait()
                        continue
                    self._close_current()
                break
            if self._fd is None:
                self._open_new()
            self._write(data)
            self._written += 1
            ticket = self._written
            while self._synced < ticket:
                if self._failed:
                    raise self._failed
                if self._syncing:
                    self._cv.wait()
                    continue
                self._sync_unlocked()

    def _sync_unlocked(self) -> None:
        """fsync outside the lock so that appends pile up behind it (group commit)."""
        self._syncing, target, fd = True, self._written, self._fd
        self._cv.release()
        try:
            os.fsync(fd)
        except OSError as e:
            self._failed = e
        finally:
            self._cv.acquire()
            self._syncing = False
            if not self._failed:
                self._synced = max(self._synced, target)
            self._cv.notify_all()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            os.ftruncate(self._fd, self._size)  # no torn line for the next append to join
            raise
        self._size += len(data)

    def _due(self, incoming: int = 0) -> bool:
        too_big = self._size > 0 and self._size + incoming > self.max_bytes
        return too_big or self._mono() - self._opened >= self.max_age

    def _open_new(self) -> None:
        stamp = self._clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._seq += 1
        self._path = self.root / f"events-{stamp}-{self._seq:06d}{PART}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        fsync_dir(self.root)
        self._size, self._opened = 0, self._mono()

    def _close_current(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self._path, self._path.with_name(self._path.name[: -len(".part")]))
        fsync_dir(self.root)
        self._fd, self._path, self._synced = None, None, self._written
        self._cv.notify_all()

    def rotate_if_due(self) -> bool:
        """Close the current file if it is older than `max_age` (called by a timer)."""
        with self._cv:
            if self._fd is None or self._syncing or self._failed or not self._due():
                return False
            self._close_current()
            return True

    def close(self) -> None:
        """Close the current file (ready to drain) and release the folder."""
        with self._cv:
            while self._syncing:
                self._cv.wait()
            if self._fd is not None and not self._failed:
                self._close_current()
            self._closed = True
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def closed_files(spool_dir: str | os.PathLike[str]) -> list[Path]:
    """The spool's closed files, oldest first (by stamp, then sequence)."""
    return sorted(p for p in Path(spool_dir).glob("events-*" + CLOSED) if NAME_RE.match(p.name))


def receiving_since(spool_dir: str | os.PathLike[str]) -> datetime | None:
    """When the oldest spool file still being appended was opened (None: none is open). Every
    event received before then is in a closed file, which
    `pipeline.ingest.drain.drain_spool` ingests."""
    stamps = [m.group(1) for f in Path(spool_dir).glob(f"events-*{PART}")
              if (m := NAME_RE.match(f.name))]
    if not stamps:
        return None
    return datetime.strptime(min(stamps), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
