"""A frame's CSV rows formatted ahead of writing, while a core is idle.

``tabguard audit data`` writes its clean rows as CSV at the very end, after every check: at a
million rows Arrow's writer takes 1.5-2 CPU-s there (half of it turning doubles into text),
with nothing else left to run beside it. The text of a row does not depend on the audit,
only whether the row is written does. :class:`PreformattedCsv` formats every row of the frame
as it was read, a block at a time, in a thread the operating system runs only on a core that
would otherwise idle (Linux's ``SCHED_IDLE`` class): while the audit's last imports end and
the rows are validated, and wherever a lane of the audit waits. At the end, the blocks done
are written with the dropped rows cut out, and the blocks left are formatted then, as before.

The file is the one :func:`tabguard.io.write_table` writes: Arrow formats each value on its
own (numbers in their shortest form, text quoted), so a block's text is the text of its rows
in the whole table, and a row's bytes run from the end of the row before it to its own line
end. Where a value holds a line break (a block has more line ends than rows) that block's
kept rows are formatted again at the end.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Rows formatted at a time (about 9 MB of text at 25 columns).
BLOCK_ROWS = 65_536
#: Frames with fewer rows are written as before: their text takes tens of milliseconds.
MIN_ROWS = 200_000
#: Text kept ahead at most (a million rows of 25 columns: 145 MB); the rows beyond it are
#: formatted at the end, as before, so a file of tens of millions of rows holds no more.
MAX_AHEAD_BYTES = 512 << 20
_OPTIONS = {"quoting_style": "needed"}  # write_table's


def _idle_class() -> bool:
    """Put the calling thread in the idle scheduling class (Linux: run only where a core has
    nothing else to run); False where the system has no such class."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: this thread
    except OSError:
        return False
    return True


def frame_buffers(data: pd.DataFrame) -> list[Any]:
    """The memory each column of ``data`` reads its values from (addresses, sizes, types):
    two frames with the same list share their values (a shallow copy, ``reset_index``)."""
    out: list[Any] = [tuple(map(str, data.columns)), len(data)]
    for j in range(data.shape[1]):
        arr = data.iloc[:, j].array
        chunked = getattr(arr, "_pa_array", None)  # Arrow-backed text and numbers
        if chunked is not None:
            out.append(
                (
                    str(chunked.type),
                    tuple(
                        (ch.offset, len(ch), *((b.address, b.size) for b in ch.buffers() if b))
                        for ch in chunked.chunks
                    ),
                )
            )
            continue
        values = arr.to_numpy() if hasattr(arr, "_ndarray") else None
        if values is None or values.dtype == object:
            return []  # values whose memory is not plain: never taken as the same
        face = values.__array_interface__
        out.append((face["data"][0], face["typestr"], face["shape"], face["strides"]))
    return out


def arrow_table(data: pd.DataFrame) -> Any:
    """``data`` as an Arrow table without its index, or None where Arrow cannot type a column
    (ints and strings mixed in one object column): such a frame is written by pandas."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


class PreformattedCsv:
    """The CSV text of every row of ``data``, formatted ahead in an idle-class thread.

    Parameters
    ----------
    data : DataFrame
        The rows as they will be written (not modified afterwards).
    block_rows : int, optional
        Rows formatted at a time (default :data:`BLOCK_ROWS`).

    Notes
    -----
    Does nothing where the system has no idle scheduling class (the thread would take a core
    from the work it is meant to wait for) or Arrow cannot represent the frame; keeps at most
    :data:`MAX_AHEAD_BYTES` of text (the first blocks), the rest being formatted at the end.
    """

    def __init__(self, data: pd.DataFrame, *, block_rows: int | None = None) -> None:
        step = block_rows or BLOCK_ROWS
        self.buffers = frame_buffers(data)
        self._data: pd.DataFrame | None = data
        self._n = len(data)
        self._edges = [*range(0, self._n, step), self._n]
        self._blocks: list[tuple[Any, np.ndarray | None] | None] = [None] * (len(self._edges) - 1)
        self._table: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tabguard-csv-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not _idle_class():
            return
        try:
            data = self._data
            table = None if data is None else arrow_table(data)
            if table is None:
                return
            with self._lock:
                self._table = table
            held = 0
            for i in range(len(self._blocks)):
                if self._closed or held >= MAX_AHEAD_BYTES:
                    return
                block = _format(table, self._edges[i], self._edges[i + 1])
                held += block[0].size
                with self._lock:  # a block is the writer's once it is closed
                    if self._closed:
                        return
                    self._blocks[i] = block
        except Exception:
            # work ahead only, nothing to report here: the writer formats what is left (a
            # frame Arrow cannot hold is written by pandas, as write_table does), and any other
            # failure is raised there again, where the user sees it
            return

    def matches(self, data: pd.DataFrame) -> bool:
        """Whether ``data`` reads its values from the memory of the frame formatted."""
        return bool(self.buffers) and frame_buffers(data) == self.buffers

    def write(self, path: str | Path, rows: np.ndarray | None = None) -> bool:
        """Write the header and the rows where ``rows`` is True (all rows when omitted) to
        ``path``, as :func:`tabguard.io.write_table` would; False (nothing written) when the
        frame could not be formatted by Arrow. The blocks not formatted yet are formatted here:
        the first half of them on this thread, each written as it is made, the second half
        meanwhile on another (as ``write_table``'s two halves); each block's text is let go
        once written."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        with self._lock:
            self._closed = True  # the thread starts no block and keeps none it ends
            table, blocks = self._table, self._blocks
            self._blocks = [None] * len(blocks)
        if table is None:
            table = None if self._data is None else arrow_table(self._data)
            if table is None:
                return False
        self._data = None
        keep = np.ones(self._n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        todo = [i for i, b in enumerate(blocks) if b is None and keep[self._span(i)].any()]
        late = set(todo[len(todo) // 2 :])
        head = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(0, 0), head, pacsv.WriteOptions(**_OPTIONS))
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="tabguard-csv") as pool,
            open(path, "wb") as f,
        ):
            # Arrow releases the interpreter lock: the late blocks are formatted meanwhile
            later = pool.submit(self._format_all, table, sorted(late))
            f.write(memoryview(head.getvalue()))
            for i in range(len(blocks)):
                part = keep[self._span(i)]
                if not part.any():
                    continue
                block = blocks[i]
                if block is None and i in late:
                    block = later.result().pop(i)  # popped: let go once written
                elif block is None:
                    block = _format(table, self._edges[i], self._edges[i + 1])
                blocks[i] = None  # written below: its text is let go
                self._write_block(f, table, i, part, block)
        return True

    def _write_block(
        self, f: Any, table: Any, i: int, part: np.ndarray, block: tuple[Any, np.ndarray | None]
    ) -> None:
        """Block ``i``'s rows where ``part`` is True, from its text."""
        text, ends = block
        view = memoryview(text)
        if part.all():
            f.write(view)
        elif ends is not None:
            for a, b in _runs(part):
                f.write(view[0 if a == 0 else int(ends[a - 1]) + 1 : int(ends[b - 1]) + 1])
        else:  # a value with a line break: this block's kept rows formatted anew
            start = self._edges[i]
            for a, b in _runs(part):
                piece = table.slice(start + a, b - a)
                f.write(memoryview(_format(piece, 0, piece.num_rows)[0]))

    def _span(self, i: int) -> slice:
        return slice(self._edges[i], self._edges[i + 1])

    def _format_all(self, table: Any, which: list[int]) -> dict[int, Any]:
        return {i: _format(table, self._edges[i], self._edges[i + 1]) for i in which}


def _format(table: Any, start: int, stop: int) -> tuple[Any, np.ndarray | None]:
    """Rows ``start:stop`` of ``table`` as CSV without the header, and the position of each
    row's line end (None when a value holds a line break)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        table.slice(start, stop - start),
        sink,
        pacsv.WriteOptions(include_header=False, **_OPTIONS),
    )
    text = sink.getvalue()
    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
    return text, ends if len(ends) == stop - start else None


def _runs(keep: np.ndarray) -> list[tuple[int, int]]:
    """The runs of True in ``keep`` as (start, stop) pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
