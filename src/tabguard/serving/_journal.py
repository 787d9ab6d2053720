"""The prediction log's journal: every record handed to the kernel before its response leaves.

The log's writer batches records in memory before they reach the database; a process killed
(SIGKILL, OOM killer, a crashed worker) would lose that batch although each of its requests
was answered. The journal closes the gap: :meth:`Journal.append` writes the record's row as one
JSON line to an append-only file with one ``write(2)`` before the pipeline returns, so once a
decision is answered its record is in the kernel's page cache and survives the death of the
process. The writer marks rows stored once the database (or the spool) has them; a segment
whose rows are all stored is deleted.

Files (in ``[log] journal_dir``)::

    <token>.lock            held (flock) by the live process that writes <token>.*.jsonl
    <token>.000001.jsonl    segments, rotated every ``segment_bytes``

A process takes its lock file before it writes a segment (created under a temporary name,
locked, then renamed, so no other process can see it unlocked). A lock file that another
process can lock belongs to a dead process: :meth:`Journal.orphans` yields its segments for
replay (inserts are idempotent on ``decision_id``, so rows already in the database are not
duplicated), then :meth:`Journal.release` deletes them. Claims are themselves held by the
flock, so two processes never replay the same orphan at once, and a claimer that dies
mid-replay leaves it to the next.

Durability (``[log] fsync``): ``interval`` (default) fsyncs the journal every
``fsync_interval`` seconds from the writer thread, off the request path; ``always`` fsyncs
each record before its response (a disk flush per request); ``never`` leaves it to the kernel.
A killed process loses nothing under any policy (the page cache belongs to the kernel); a power
loss or kernel crash can lose the records written since the last fsync (docs/serving.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FsyncPolicy = Literal["interval", "always", "never"]

#: Bytes after which the journal starts a new segment.
SEGMENT_BYTES = 8 * 1024 * 1024
_TOKENS = itertools.count()


@dataclass
class _Segment:
    seq: int
    path: Path
    fd: int
    appended: int = 0
    stored: int = 0
    dirty: bool = False  # written since the last fsync


class Journal:
    """An append-only, per-process journal of prediction-log rows.

    Parameters
    ----------
    directory : path-like
        Shared by the processes of one deployment (each writes its own files).
    fsync : {'interval', 'always', 'never'}
        When the data reaches the disk (see the module docstring).
    fsync_interval : float
        Seconds between fsyncs under ``interval``.
    segment_bytes : int
        Size after which a new segment file is started.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if fsync not in ("interval", "always", "never"):
            raise ValueError(f"fsync must be 'interval', 'always' or 'never'; got {fsync!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.segment_bytes = segment_bytes
        self.token = f"{os.getpid()}-{time.time_ns()}-{next(_TOKENS)}"
        self._lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}
        self._active: _Segment | None = None
        self._size = 0
        self._seq = 0
        self._last_sync = time.monotonic()
        self._closed = False
        # Lock first, under a name nobody looks at, then make it visible.
        tmp = self.directory / f".{self.token}.lock-tmp"
        self._lock_fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.lock_path = self.directory / f"{self.token}.lock"
        os.replace(tmp, self.lock_path)
        _fsync_dir(self.directory)

    # ---- the request path -------------------------------------------------------------------

    def append(self, line: bytes) -> int:
        """Write one line (ending in a newline) and return its segment number."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the journal is closed")
            seg = self._active
            if seg is None or self._size >= self.segment_bytes:
                seg = self._rotate()
            os.write(seg.fd, line)
            self._size += len(line)
            seg.appended += 1
            seg.dirty = True
            if self.fsync == "always":
                os.fsync(seg.fd)
                seg.dirty = False
            return seg.seq

    def _rotate(self) -> _Segment:
        self._seq += 1
        path = self.directory / f"{self.token}.{self._seq:06d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        seg = _Segment(self._seq, path, fd)
        self._segments[seg.seq] = seg
        self._active = seg
        self._size = 0
        if self.fsync != "never":
            _fsync_dir(self.directory)  # the new file's name survives a power loss
        return seg

    # ---- the writer thread ------------------------------------------------------------------

    def mark_stored(self, counts: dict[int, int]) -> None:
        """Count rows of each segment as stored; delete full segments that are not active."""
        done: list[_Segment] = []
        with self._lock:
            for seq, n in counts.items():
                seg = self._segments.get(seq)
                if seg is None:
                    continue
                seg.stored += n
                if seg is not self._active and seg.stored >= seg.appended:
                    done.append(self._segments.pop(seq))
        for seg in done:
            _close_and_unlink(seg)

    def sync_due(self) -> float:
        """Fsync when the interval has passed (``interval`` policy); seconds until the next."""
        if self.fsync != "interval":
            return self.fsync_interval
        wait = self._last_sync + self.fsync_interval - time.monotonic()
        if wait > 0:
            return wait
        self.sync()
        return self.fsync_interval

    def sync(self) -> None:
        """Fsync every segment written since the last fsync (releases the GIL while it waits)."""
        with self._lock:
            dirty = [s for s in self._segments.values() if s.dirty]
            for seg in dirty:
                seg.dirty = False
        for seg in dirty:
            with contextlib.suppress(OSError):  # a segment deleted meanwhile
                os.fsync(seg.fd)
        self._last_sync = time.monotonic()

    def pending(self) -> int:
        """Rows written but not yet stored."""
        with self._lock:
            return sum(s.appended - s.stored for s in self._segments.values())

    def close(self, *, drained: bool) -> None:
        """Stop appending; delete this process's files when ``drained`` (all rows stored)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            segments = list(self._segments.values())
            self._segments.clear()
            self._active = None
        for seg in segments:
            if drained:
                _close_and_unlink(seg)
            else:
                with contextlib.suppress(OSError):
                    os.fsync(seg.fd)
                os.close(seg.fd)
        if drained:
            self.lock_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)  # left behind: a later process replays the segments

    # ---- orphans of dead processes ----------------------------------------------------------

    def orphans(self) -> Iterator[Orphan]:
        """Claim the journals of dead processes, one at a time (release each when replayed)."""
        for lock_path in sorted(self.directory.glob("*.lock")):
            if lock_path == self.lock_path:
                continue
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its process is alive, or another one is replaying it
                os.close(fd)
                continue
            token = lock_path.name[: -len(".lock")]
            segments = sorted(self.directory.glob(f"{token}.*.jsonl"))
            orphan = Orphan(lock_path, fd, segments)
            try:
                yield orphan
            finally:
                orphan.close()


@dataclass
class Orphan:
    """The claimed journal of a dead process."""

    lock_path: Path
    fd: int
    segments: list[Path]

    def lines(self) -> Iterator[bytes]:
        """Every line of its segments, oldest first (a torn last line included)."""
        for path in self.segments:
            with contextlib.suppress(FileNotFoundError), path.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        yield line

    def release(self) -> None:
        """Delete the replayed segments and the lock file."""
        for path in self.segments:
            path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def _close_and_unlink(seg: _Segment) -> None:
    with contextlib.suppress(OSError):
        os.close(seg.fd)
    seg.path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # A new name is durable only once the directory entry is (POSIX).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
