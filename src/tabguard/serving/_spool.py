"""The prediction log's spool: batches that could not reach the database, kept on local disk."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: File of the rows the database refused for their content, with the reason.
DEAD_LETTER = "dead-letter.jsonl"


class Spool:
    """Batches of rows kept on local disk while the database is unreachable.

    Each batch is one ``*.jsonl`` file, written to a temporary name, fsync'd, then renamed
    (atomic), so a visible file is always complete. Replay claims a file by renaming it to
    ``*.claimed-<pid>``; claims of processes that died are released at start-up.

    Parameters
    ----------
    directory : Path
        Where the files live (created on first write).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._seq = 0
        self._lock = threading.Lock()

    def write(self, rows: Sequence[dict[str, Any]]) -> Path:
        """Write ``rows`` durably as one file; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}"
        tmp = self.directory / f"{name}.tmp-{os.getpid()}"
        final = self.directory / f"{name}.jsonl"
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=True, allow_nan=False))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._fsync_dir()
        return final

    def _fsync_dir(self) -> None:
        # The rename is durable only once the directory entry is (POSIX).
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def files(self) -> list[Path]:
        """Return the complete, unclaimed batch files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.jsonl"), key=lambda p: p.name)

    def claim(self, path: Path) -> Path | None:
        """Claim a file for replay; ``None`` when another process got it first."""
        claimed = path.with_name(f"{path.stem}.claimed-{os.getpid()}")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def release_orphans(self) -> int:
        """Make files of dead processes replayable again; return how many were released.

        A ``.claimed-<pid>`` file whose process is gone goes back to ``.jsonl``; a
        ``.tmp-<pid>`` file (a process died while writing) is released too: its complete lines
        are replayed and a torn last line goes to the dead-letter file.
        """
        if not self.directory.is_dir():
            return 0
        import psutil

        released = 0
        for path in self.directory.iterdir():
            stem, dot, tag = path.name.rpartition(".")
            if not dot or "-" not in tag:
                continue
            kind, _, pid_text = tag.partition("-")
            if kind not in ("claimed", "tmp") or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid == os.getpid() or psutil.pid_exists(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(f"{stem}.jsonl"))
                released += 1
        return released

    def read(self, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        """Return the rows of a file and the lines that could not be parsed."""
        rows: list[dict[str, Any]] = []
        bad: list[str] = []
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    bad.append(line)
                    continue
                if isinstance(row, dict) and "decision_id" in row:
                    rows.append(row)
                else:
                    bad.append(line)
        return rows, bad

    def dead_letter(self, items: Sequence[Any], error: str) -> None:
        """Append rows (or unparsable lines) the database refused, with the reason."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.directory / DEAD_LETTER).open("a", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps({"error": error, "row": item}, ensure_ascii=True))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())

    def pending_records(self) -> int:
        """Count the rows waiting in spool files (claimed ones included)."""
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.iterdir():
            if path.name == DEAD_LETTER or ".tmp-" in path.name:
                continue
            with contextlib.suppress(FileNotFoundError), path.open("rb") as fh:
                total += sum(1 for line in fh if line.strip())
        return total

    def dead_letter_records(self) -> int:
        """Count the rows in the dead-letter file."""
        path = self.directory / DEAD_LETTER
        if not path.is_file():
            return 0
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
